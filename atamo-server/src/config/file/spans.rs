//! Where things are in the spanned document: paths of keys, spans of values and fields, and
//! the names messages list.

use std::ops::Range;

use toml::de::DeValue;
use toml::Spanned;

/// A value of the document, with where it is written.
pub(super) type Value<'i> = Spanned<DeValue<'i>>;

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `` `a`, `b` or `c` ``.
pub(super) fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

pub(super) fn has_datetime(v: &Value<'_>) -> bool {
    match v.get_ref() {
        DeValue::Datetime(_) => true,
        DeValue::Table(t) => t.iter().any(|(_, cv)| has_datetime(cv)),
        DeValue::Array(a) => a.iter().any(has_datetime),
        _ => false,
    }
}

fn inside(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The path below `v` (`.kind`, `[2].url`) of the key or value at `span`.
pub(super) fn find_path(v: &Value<'_>, span: &Range<usize>) -> Option<String> {
    match v.get_ref() {
        DeValue::Table(t) => t.iter().find_map(|(k, cv)| {
            let seg = format!(".{}", k.get_ref());
            if inside(&k.span(), span) {
                return Some(seg);
            }
            if let Some(rest) = find_path(cv, span) {
                return Some(seg + &rest);
            }
            inside(&cv.span(), span).then_some(seg)
        }),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, cv)| {
            let seg = format!("[{i}]");
            if let Some(rest) = find_path(cv, span) {
                return Some(seg + &rest);
            }
            inside(&cv.span(), span).then_some(seg)
        }),
        _ => None,
    }
}

/// Where `key`'s value starts in table `v`; `v` itself when it has no such key.
pub(super) fn child_span(v: &Value<'_>, key: &str) -> Range<usize> {
    v.get_ref()
        .as_table()
        .and_then(|t| t.get(key))
        .map_or_else(|| v.span(), Spanned::span)
}

/// Where a validator's field (`config`, `handles[1]`) starts in `entry`.
pub(super) fn locate(entry: &Value<'_>, field: &str) -> Range<usize> {
    let (key, index) = match field.split_once('[') {
        Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (field, None),
    };
    let Some(value) = entry.get_ref().as_table().and_then(|t| t.get(key)) else {
        return entry.span();
    };
    index
        .and_then(|i| value.get_ref().as_array().and_then(|a| a.get(i)))
        .unwrap_or(value)
        .span()
}

/// The value at a dotted path below `v` (digits index arrays), as deep as the path leads,
/// with the path it followed (`.body.to`).
pub(super) fn descend<'v, 'i>(v: &'v Value<'i>, dotted: &str) -> (&'v Value<'i>, String) {
    let mut at = v;
    let mut followed = String::new();
    for seg in dotted.split('.').filter(|s| !s.is_empty()) {
        let next = match at.get_ref() {
            DeValue::Table(t) => t.get(seg),
            DeValue::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        let Some(next) = next else {
            break;
        };
        at = next;
        followed.push('.');
        followed.push_str(seg);
    }
    (at, followed)
}
