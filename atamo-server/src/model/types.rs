//! Event types and action types as the API and `atamo.toml` describe them.

use atamo_core::bounded::KeepAlive;
use atamo_core::failure::RetryPolicy;
use atamo_core::hub::{ActionTypeDef, EventTypeDef};
use atamo_core::store::Durability;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::agent::{check_id, checked_id};

/// An event type as the API and `atamo.toml` describe it.
///
/// ```json
/// {"name": "order.created", "required": ["order.id"], "durability": "durable"}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeBody {
    /// The type's name: letters, digits, `.`, `-`, `_`.
    #[serde(deserialize_with = "checked_id")]
    pub name: String,
    /// What it means.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Payload fields every event of this type must carry (`customer.id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// How long answers to requests of this type are kept for a client that went away, in
    /// milliseconds (at most 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_ms: Option<KeepAlive>,
    /// Whether its events and actions are kept in the store (`durable`, the default) or in
    /// memory only (`memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
}

impl EventTypeBody {
    /// The hub's definition, or every problem as `(field, message)`.
    pub fn to_def(&self) -> Result<EventTypeDef, Vec<(String, String)>> {
        let mut problems = Vec::new();
        if let Err(e) = check_id(&self.name) {
            problems.push(("name".into(), e));
        }
        let mut def = EventTypeDef::new(self.name.as_str()).described(self.description.clone());
        match def
            .clone()
            .requiring(self.required.iter().map(String::as_str))
        {
            Ok(d) => def = d,
            Err(e) => problems.push(("required".into(), e.to_string())),
        }
        def.keep_alive = self.keep_alive_ms;
        if let Some(d) = self.durability {
            def = def.durability(d);
        }
        if problems.is_empty() {
            Ok(def)
        } else {
            Err(problems)
        }
    }

    /// The body describing a registered type.
    pub fn from_def(def: &EventTypeDef) -> Self {
        Self {
            name: def.name.to_string(),
            description: def.description.clone(),
            required: def
                .template
                .required
                .iter()
                .map(|p| p.to_string())
                .collect(),
            keep_alive_ms: def.keep_alive,
            durability: def.durability,
        }
    }
}

/// An action type as the API and `atamo.toml` describe it.
///
/// ```json
/// {"name": "email.send", "retry": {"max_attempts": 5}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionTypeBody {
    /// The type's name: letters, digits, `.`, `-`, `_`.
    #[serde(deserialize_with = "checked_id")]
    pub name: String,
    /// What it asks for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How failed actions of this type are tried again (default: `[retry]` of `atamo.toml`,
    /// else the hub's default policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

impl ActionTypeBody {
    /// The hub's definition, or every problem as `(field, message)`.
    pub fn to_def(&self) -> Result<ActionTypeDef, Vec<(String, String)>> {
        if let Err(e) = check_id(&self.name) {
            return Err(vec![("name".into(), e)]);
        }
        let mut def = ActionTypeDef::new(self.name.as_str()).described(self.description.clone());
        if let Some(r) = self.retry {
            def = def.retry(r);
        }
        Ok(def)
    }

    /// The body describing a registered type.
    pub fn from_def(def: &ActionTypeDef) -> Self {
        Self {
            name: def.name.to_string(),
            description: def.description.clone(),
            retry: def.retry,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn types_convert_both_ways() {
        let body: EventTypeBody = serde_json::from_value(json!({
            "name": "order.created", "required": ["order.id"], "keep_alive_ms": 1000,
            "durability": "memory"
        }))
        .unwrap();
        let def = body.to_def().unwrap();
        assert_eq!(EventTypeBody::from_def(&def), body);
        let bad = EventTypeBody {
            name: "a b".into(),
            required: vec!["".into()],
            ..body
        };
        assert_eq!(bad.to_def().unwrap_err().len(), 2);
        let a: ActionTypeBody =
            serde_json::from_value(json!({"name": "email.send", "retry": {"max_attempts": 3}}))
                .unwrap();
        assert_eq!(ActionTypeBody::from_def(&a.to_def().unwrap()), a);
    }
}
