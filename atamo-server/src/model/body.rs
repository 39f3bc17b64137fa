//! Reading a JSON body into its type, naming every bad field rather than the first.
//!
//! serde stops at the first error. To name them all, the body is read as JSON once, then
//! into its type; at each error the field is recorded and the JSON repaired there (an unknown
//! field removed; a missing or wrong value replaced by the first stand-in the type accepts:
//! `1`, `"a"`, `true`, `{}`, `[]`, ..., or the variant the error names), and the type is read
//! again, until it reads or no stand-in fits. The stand-ins never reach the caller: any error
//! found means the body is refused. Integers no 64-bit integer holds are refused at their
//! field too (see `numbers`).
//!
//! A body larger than [`REPAIR_LIMIT`] is refused at its first bad field only, so that a large
//! bad body costs one read, not one per field.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use super::numbers;

/// One bad field: its path (`config.url`, `handles[1]`, `body` for the whole) and what is
/// wrong with it.
pub type Problem = (String, String);

/// At most this many fields are named.
pub const MAX_PROBLEMS: usize = 50;

/// Bodies up to this size have every bad field named; larger ones their first.
pub const REPAIR_LIMIT: usize = 64 * 1024;

/// Reads `bytes` (JSON) into a `T`, or every bad field.
pub fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Vec<Problem>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        vec![("body".to_owned(), message)]
    })?;
    let mut problems: Vec<Problem> = numbers::out_of_range(bytes, "")
        .into_iter()
        .map(|field| (field, numbers::MESSAGE.to_owned()))
        .collect();
    let repair = bytes.len() <= REPAIR_LIMIT;
    match read_value::<T>(value, "", repair) {
        Ok(t) if problems.is_empty() => Ok(t),
        Ok(_) => Err(problems),
        Err(found) => {
            for p in found {
                if !problems.iter().any(|(f, _)| *f == p.0) {
                    problems.push(p);
                }
            }
            Err(problems)
        }
    }
}

/// Reads `value` into a `T`, or every bad field (each prefixed with `prefix`, as
/// `events[2].`); with `repair` false, the first only.
pub fn read_value<T: DeserializeOwned>(
    value: Value,
    prefix: &str,
    repair: bool,
) -> Result<T, Vec<Problem>> {
    match read_all::<T>(value, prefix, repair) {
        (Some(t), problems) if problems.is_empty() => Ok(t),
        (_, problems) => Err(problems),
    }
}

/// Reads `value` into a `T`, naming every bad field; with the problems, the `T` read from the
/// repaired value when the repairs got that far, so that the caller's own checks can name
/// the fields serde had no objection to (stand-ins pass every check of a name).
pub fn read_all<T: DeserializeOwned>(
    mut value: Value,
    prefix: &str,
    repair: bool,
) -> (Option<T>, Vec<Problem>) {
    let mut problems: Vec<Problem> = Vec::new();
    // Each round names a field or stops; a field named twice stops it too.
    for _ in 0..MAX_PROBLEMS * 2 {
        let failure = match attempt::<T>(&value) {
            Ok(t) => return (Some(t), problems),
            Err(f) => f,
        };
        let field = failure.field(prefix);
        if problems.iter().any(|(f, _)| *f == field) {
            break;
        }
        // An object refused as a whole (a policy whose parts disagree) after one of its parts
        // was replaced by a stand-in: the stand-in's doing, not the client's.
        let stand_in_inside = problems.iter().any(|(f, _)| {
            f.strip_prefix(field.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        });
        if !stand_in_inside {
            problems.push((field, failure.message.clone()));
        }
        if !repair || problems.len() >= MAX_PROBLEMS || !fix::<T>(&mut value, &failure) {
            break;
        }
    }
    (None, problems)
}

/// Whether `value` is small enough (about [`REPAIR_LIMIT`] bytes of JSON) to have every bad
/// field named.
pub fn is_small(value: &Value) -> bool {
    fn fits(v: &Value, budget: &mut usize) -> bool {
        let cost = match v {
            Value::String(s) => s.len() + 2,
            Value::Array(_) | Value::Object(_) => 2,
            _ => 8,
        };
        if cost > *budget {
            return false;
        }
        *budget -= cost;
        match v {
            Value::Array(items) => items.iter().all(|i| fits(i, budget)),
            Value::Object(map) => map.iter().all(|(k, i)| {
                let key = k.len() + 3;
                key <= *budget && {
                    *budget -= key;
                    fits(i, budget)
                }
            }),
            _ => true,
        }
    }
    let mut budget = REPAIR_LIMIT;
    fits(value, &mut budget)
}

/// One step into a JSON document.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where reading failed and why.
struct Failure {
    /// The value at fault, when the error names one.
    at: Option<Vec<Step>>,
    /// The object holding the field at fault (for a missing or unknown field).
    member: Option<(Vec<Step>, String)>,
    message: String,
}

impl Failure {
    /// The field's path, for the caller.
    fn field(&self, prefix: &str) -> String {
        let steps = match (&self.member, &self.at) {
            (Some((object, name)), _) => {
                let mut s = object.clone();
                s.push(Step::Key(name.clone()));
                s
            }
            (None, Some(at)) => at.clone(),
            (None, None) => Vec::new(),
        };
        let mut out = prefix.trim_end_matches('.').to_owned();
        for step in &steps {
            match step {
                Step::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        if out.is_empty() {
            "body".to_owned()
        } else {
            out
        }
    }

    /// The same place as `other`.
    fn same_place(&self, other: &Failure) -> bool {
        self.field("") == other.field("")
    }
}

/// Reads `value` into a `T` once.
fn attempt<T: DeserializeOwned>(value: &Value) -> Result<T, Failure> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut steps = Some(Vec::new());
        for segment in e.path() {
            match (segment, steps.as_mut()) {
                (Segment::Map { key }, Some(s)) => s.push(Step::Key(key.clone())),
                (Segment::Enum { variant }, Some(s)) => s.push(Step::Key(variant.clone())),
                (Segment::Seq { index }, Some(s)) => s.push(Step::Index(*index)),
                _ => steps = None,
            }
        }
        let message = e.into_inner().to_string();
        let member = steps.as_ref().and_then(|s| member_of(s, &message));
        Failure {
            at: steps,
            member,
            message,
        }
    })
}

/// For "missing field `x`" and "unknown field `x`": the object and the field's name.
fn member_of(steps: &[Step], message: &str) -> Option<(Vec<Step>, String)> {
    let (rest, unknown) = if let Some(r) = message.strip_prefix("missing field `") {
        (r, false)
    } else if let Some(r) = message.strip_prefix("unknown field `") {
        (r, true)
    } else {
        return None;
    };
    let name = rest.split('`').next()?.to_owned();
    let mut object = steps.to_vec();
    // The path of an unknown field already ends with its name.
    if unknown && object.last() == Some(&Step::Key(name.clone())) {
        object.pop();
    }
    Some((object, name))
}

/// Values a type is likely to accept in place of a bad one.
fn stand_ins() -> [Value; 8] {
    [
        Value::from(1),
        Value::from("a"),
        Value::Bool(true),
        Value::Object(Default::default()),
        Value::Array(Vec::new()),
        Value::from(0),
        Value::from(0.5),
        Value::Null,
    ]
}

/// The first variant an error lists (`expected one of `http`, ...` or `expected `off``).
fn named_variant(message: &str) -> Option<Value> {
    let rest = message
        .split_once("expected one of `")
        .or_else(|| message.split_once("expected `"))?
        .1;
    Some(Value::from(rest.split('`').next()?))
}

/// Repairs `value` where `failure` is, so that reading goes past it; false when nothing fits.
fn fix<T: DeserializeOwned>(value: &mut Value, failure: &Failure) -> bool {
    if let Some((object, name)) = &failure.member {
        let Some(Value::Object(map)) = pointer(value, object) else {
            return false;
        };
        if failure.message.starts_with("unknown field") {
            return map.remove(name).is_some();
        }
        let mut at = object.clone();
        at.push(Step::Key(name.clone()));
        return try_stand_ins::<T>(value, &at, failure);
    }
    let Some(at) = &failure.at else {
        return false;
    };
    if at.is_empty() {
        // The whole body is wrong (not an object, or a rule the type refuses as a whole).
        return false;
    }
    if try_stand_ins::<T>(value, at, failure) {
        return true;
    }
    // Nothing fits: drop the member, if it may be left out.
    let (parent, last) = at.split_at(at.len() - 1);
    let (Some(Value::Object(map)), Step::Key(key)) = (pointer(value, parent), &last[0]) else {
        return false;
    };
    let Some(old) = map.remove(key) else {
        return false;
    };
    match attempt::<T>(value) {
        Ok(_) => true,
        Err(next) if !next.same_place(failure) => true,
        Err(_) => {
            if let Some(Value::Object(map)) = pointer(value, parent) {
                map.insert(key.clone(), old);
            }
            false
        }
    }
}

/// Puts the first stand-in that reads past `failure` at `at`.
fn try_stand_ins<T: DeserializeOwned>(value: &mut Value, at: &[Step], failure: &Failure) -> bool {
    let mut candidates: Vec<Value> = stand_ins().into();
    candidates.extend(named_variant(&failure.message));
    let mut tried = 0;
    while tried < candidates.len() {
        let candidate = candidates[tried].clone();
        tried += 1;
        if !set(value, at, candidate) {
            return false;
        }
        match attempt::<T>(value) {
            Ok(_) => return true,
            Err(next) if !next.same_place(failure) => return true,
            Err(next) => {
                // The type said what it wants instead: try that too, once.
                if let Some(v) = named_variant(&next.message) {
                    if !candidates.contains(&v) {
                        candidates.push(v);
                    }
                }
            }
        }
    }
    false
}

/// The value at `steps`.
fn pointer<'v>(value: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    let mut at = value;
    for step in steps {
        at = match (step, at) {
            (Step::Key(k), Value::Object(map)) => map.get_mut(k)?,
            (Step::Index(i), Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Sets the value at `steps` (creating the last member of an object).
fn set(value: &mut Value, steps: &[Step], new: Value) -> bool {
    let Some((last, parent)) = steps.split_last() else {
        return false;
    };
    match (pointer(value, parent), last) {
        (Some(Value::Object(map)), Step::Key(k)) => {
            map.insert(k.clone(), new);
            true
        }
        (Some(Value::Array(items)), Step::Index(i)) if *i < items.len() => {
            items[*i] = new;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
