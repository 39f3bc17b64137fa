use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::ids::{AgentId, EventType};

/// A dotted path into a JSON payload, such as `customer.id` or `items.0.sku`.
///
/// A segment made of digits indexes an array when the value there is an array, and names an
/// object key otherwise.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    text: Arc<str>,
    segments: Arc<[Box<str>]>,
}

/// Why a text is not a field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field path {path:?} is invalid: {reason}")]
pub struct FieldPathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FieldPath {
    /// Parses `a.b.c`. Segments must be non-empty and free of whitespace.
    pub fn parse(path: &str) -> Result<Self, FieldPathError> {
        let err = |reason| FieldPathError {
            path: path.to_owned(),
            reason,
        };
        if path.is_empty() {
            return Err(err("it is empty"));
        }
        let mut segments = Vec::new();
        for seg in path.split('.') {
            if seg.is_empty() {
                return Err(err("it has an empty segment"));
            }
            if seg.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(err("it contains whitespace or a control character"));
            }
            segments.push(Box::from(seg));
        }
        Ok(Self {
            text: Arc::from(path),
            segments: segments.into(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The segments of the path.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(|s| &**s)
    }

    /// The value at this path, if there is one. JSON `null` counts as absent.
    pub fn lookup<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        let mut cur = root;
        for seg in self.segments.iter() {
            cur = match cur {
                Value::Object(map) => map.get(&**seg)?,
                Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        (!cur.is_null()).then_some(cur)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldPath({:?})", &*self.text)
    }
}

impl FromStr for FieldPath {
    type Err = FieldPathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for FieldPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The shape a message's payload must have: the fields it must carry.
///
/// Event types are registered with one (what an event of that type must carry) and agents with
/// one (what the actions they receive must carry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTemplate {
    /// Fields that must be present and not null.
    #[serde(default)]
    pub required: Vec<FieldPath>,
}

impl MessageTemplate {
    /// A template that requires nothing.
    pub fn any() -> Self {
        Self::default()
    }

    /// A template requiring the given dotted paths.
    pub fn requiring<I, S>(paths: I) -> Result<Self, FieldPathError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let required = paths
            .into_iter()
            .map(|p| FieldPath::parse(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { required })
    }

    /// Every required field missing from `payload`, in the template's order.
    pub fn missing<'a>(&'a self, payload: &'a Value) -> impl Iterator<Item = &'a FieldPath> + 'a {
        self.required
            .iter()
            .filter(move |path| path.lookup(payload).is_none())
    }
}

/// One thing wrong with a message. Errors that reject a message list every problem, not only
/// the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// No event type of this name is registered.
    #[error("event type `{event_type}` is not registered")]
    UnknownEventType {
        /// The type the event named.
        event_type: EventType,
    },
    /// The payload lacks a field the template requires.
    #[error("payload field `{field}` is required but missing")]
    MissingField {
        /// The missing field.
        field: FieldPath,
    },
    /// The payload is not a JSON object.
    #[error("payload must be a JSON object")]
    PayloadNotObject,
    /// A name in the message is not valid.
    #[error("{0}")]
    BadName(String),
    /// An action lacks a field the agent's action template requires.
    #[error("action for agent `{agent}` lacks required field `{field}`")]
    MissingActionField {
        /// The agent whose template requires the field.
        agent: AgentId,
        /// The missing field.
        field: FieldPath,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_rejects_paths() {
        assert_eq!(
            FieldPath::parse("a.b")
                .unwrap()
                .segments()
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("a. b").is_err());
    }

    #[test]
    fn looks_up_objects_and_arrays_and_treats_null_as_absent() {
        let v = json!({"customer": {"id": 42, "tags": ["x", "y"], "gone": null}});
        let get = |p: &str| FieldPath::parse(p).unwrap().lookup(&v).cloned();
        assert_eq!(get("customer.id"), Some(json!(42)));
        assert_eq!(get("customer.tags.1"), Some(json!("y")));
        assert_eq!(get("customer.tags.2"), None);
        assert_eq!(get("customer.gone"), None);
        assert_eq!(get("customer.id.deeper"), None);
    }

    #[test]
    fn template_lists_every_missing_field() {
        let t = MessageTemplate::requiring(["order.id", "customer.id", "total"]).unwrap();
        let missing: Vec<_> = t
            .missing(&json!({"total": 3}))
            .map(|f| f.to_string())
            .collect();
        assert_eq!(missing, ["order.id", "customer.id"]);
    }
}
