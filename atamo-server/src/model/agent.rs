//! Agents as the API and `atamo.toml` describe them, and their registrations.

use std::path::{Path, PathBuf};

use atamo_agents::registration::{AgentRegistration, AgentSource};
use atamo_agents::ProcessSpec;
use atamo_core::bounded::Concurrency;
use atamo_core::MessageTemplate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// How an agent does its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Calls a REST endpoint (`config`: the HTTP agent's settings, `url` first).
    Http,
    /// Runs a PostgreSQL function or a named SQLite statement.
    Sql,
    /// Sends mail over SMTP.
    Email,
    /// Runs a program, without a shell.
    Command,
    /// A native plugin library from the plugins directory (`config`: `{"library", "kind",
    /// "config"}`; admin only).
    Native,
    /// A program speaking the process-agent protocol, supervised by the hub (`config`: the
    /// process spec: `{"program", "args", "env", "config", "ping_interval_ms", ...}`; admin
    /// only).
    Process,
}

impl AgentKind {
    /// The kind's name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Sql => "sql",
            Self::Email => "email",
            Self::Command => "command",
            Self::Native => "native",
            Self::Process => "process",
        }
    }

    /// The action type an agent of this kind handles when its definition names none.
    pub fn default_action_type(self) -> Option<&'static str> {
        match self {
            Self::Http => Some("http.request"),
            Self::Sql => Some("sql.call"),
            Self::Email => Some("email.send"),
            Self::Command => Some("command.run"),
            Self::Native | Self::Process => None,
        }
    }

    /// Whether only an admin may register it (it runs code of its own choosing).
    pub fn admin_only(self) -> bool {
        matches!(self, Self::Native | Self::Process)
    }
}

/// An agent as the API and `atamo.toml` describe it.
///
/// ```json
/// {"id": "hook", "kind": "http", "config": {"url": "http://127.0.0.1:9000/hook"}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentDef {
    /// The agent's id: letters, digits, `.`, `-`, `_`.
    #[serde(deserialize_with = "checked_id")]
    pub id: String,
    /// How it does its work.
    pub kind: AgentKind,
    /// The kind's settings.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
    /// The action types it handles; registered when missing. Default: the kind's own
    /// (`http.request`, `sql.call`, `email.send`, `command.run`); native and process agents must
    /// name theirs.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "checked_ids"
    )]
    pub handles: Vec<String>,
    /// Fields every action for it must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub action_template: Option<MessageTemplate>,
    /// How many of its calls may run at once (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Who looks after it (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The tenant it belongs to; tenant-bound keys see only their tenant's agents.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "checked_opt_id"
    )]
    pub tenant: Option<String>,
    /// The definition's version (free text, for the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A native agent's `config`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeConfig {
    library: PathBuf,
    kind: String,
    #[serde(default = "empty_object")]
    config: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// An HTTP agent's settings, with `url` taken as `base_url` (the shorter name the API's
/// examples use).
fn http_config(config: &Value) -> Value {
    let mut config = config.clone();
    if let Some(obj) = config.as_object_mut() {
        if !obj.contains_key("base_url") {
            if let Some(url) = obj.remove("url") {
                obj.insert("base_url".into(), url);
            }
        }
    }
    config
}

/// Checks an id the service stores or routes on: 1 to 200 of letters, digits, `.`, `-`, `_`.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "`{c}` is not allowed: use letters, digits, `.`, `-` and `_`"
        ));
    }
    Ok(())
}

/// An id read through [`check_id`], so that a bad one is an error at its field.
pub(super) fn checked_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    check_id(&id).map_err(serde::de::Error::custom)?;
    Ok(id)
}

/// Ids read through [`check_id`]: a bad one is an error at its index.
fn checked_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct Id(#[serde(deserialize_with = "checked_id")] String);
    Ok(Vec::<Id>::deserialize(d)?
        .into_iter()
        .map(|i| i.0)
        .collect())
}

/// An optional id read through [`check_id`].
fn checked_opt_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Id(#[serde(deserialize_with = "checked_id")] String);
    Ok(Option::<Id>::deserialize(d)?.map(|i| i.0))
}

impl AgentDef {
    /// The action types it handles, its kind's default when it names none.
    pub fn handled_types(&self) -> Vec<String> {
        if self.handles.is_empty() {
            self.kind
                .default_action_type()
                .map(|t| vec![t.to_owned()])
                .unwrap_or_default()
        } else {
            self.handles.clone()
        }
    }

    /// Every problem with the definition that can be seen without building the agent, as
    /// `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(e) = check_id(&self.id) {
            out.push(("id".into(), e));
        }
        if !self.config.is_object() {
            out.push(("config".into(), "must be an object".into()));
        }
        if self.handled_types().is_empty() {
            out.push((
                "handles".into(),
                format!(
                    "a {} agent must name the action types it handles",
                    self.kind.as_str()
                ),
            ));
        }
        for (i, t) in self.handles.iter().enumerate() {
            if let Err(e) = check_id(t) {
                out.push((format!("handles[{i}]"), e));
            }
        }
        if let Some(t) = &self.tenant {
            if let Err(e) = check_id(t) {
                out.push(("tenant".into(), e));
            }
        }
        match self.kind {
            AgentKind::Native => {
                if let Err(e) = serde_json::from_value::<NativeConfig>(self.config.clone()) {
                    out.push(("config".into(), e.to_string()));
                }
            }
            AgentKind::Process => {
                if let Err(e) = serde_json::from_value::<ProcessSpec>(self.config.clone()) {
                    out.push(("config".into(), e.to_string()));
                }
            }
            _ => {}
        }
        out
    }

    /// The registration the plugin host carries out. Native libraries are looked up in
    /// `plugins_dir` by the loader.
    pub fn registration(&self, _plugins_dir: &Path) -> Result<AgentRegistration, String> {
        let (source, config) = match self.kind {
            AgentKind::Http => (
                AgentSource::Builtin {
                    kind: self.kind.as_str().to_owned(),
                },
                http_config(&self.config),
            ),
            AgentKind::Sql | AgentKind::Email | AgentKind::Command => (
                AgentSource::Builtin {
                    kind: self.kind.as_str().to_owned(),
                },
                self.config.clone(),
            ),
            AgentKind::Native => {
                let n: NativeConfig =
                    serde_json::from_value(self.config.clone()).map_err(|e| e.to_string())?;
                (
                    AgentSource::Native {
                        library: n.library,
                        kind: n.kind,
                    },
                    n.config,
                )
            }
            AgentKind::Process => {
                let mut spec: ProcessSpec =
                    serde_json::from_value(self.config.clone()).map_err(|e| e.to_string())?;
                let init = std::mem::replace(&mut spec.config, empty_object());
                (AgentSource::Process(Box::new(spec)), init)
            }
        };
        Ok(AgentRegistration {
            id: self.id.clone(),
            source,
            config,
            handles: self.handled_types(),
            action_template: self.action_template.clone(),
            concurrency: self.concurrency.map(Concurrency::get),
            owner: self.owner.clone(),
            version: self.version.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_issue_example_is_an_http_agent_handling_http_requests() {
        let def: AgentDef = serde_json::from_value(
            json!({"id":"hook","kind":"http","config":{"url":"http://127.0.0.1:9000/hook"}}),
        )
        .unwrap();
        assert!(def.problems().is_empty());
        let reg = def.registration(Path::new(".")).unwrap();
        assert_eq!(reg.handles, vec!["http.request".to_owned()]);
        assert_eq!(
            reg.config,
            json!({"base_url": "http://127.0.0.1:9000/hook"})
        );
        assert!(matches!(reg.source, AgentSource::Builtin { ref kind } if kind == "http"));
    }

    #[test]
    fn every_problem_is_named() {
        let mut fields: Vec<String> = crate::model::body::read::<AgentDef>(
            br#"{"id": "bad id", "kind": "native", "handles": ["ok", "no way"], "concurrency": 0}"#,
        )
        .unwrap_err()
        .into_iter()
        .map(|(f, _)| f)
        .collect();
        fields.sort();
        assert_eq!(fields, ["concurrency", "handles[1]", "id"]);
        let def: AgentDef = serde_json::from_value(json!({
            "id": "ok", "kind": "native", "config": {"library": 3}
        }))
        .unwrap();
        let fields: Vec<String> = def.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["handles", "config"]);
        for n in [0, 10_001] {
            let e = serde_json::from_value::<AgentDef>(
                json!({"id": "a", "kind": "http", "concurrency": n}),
            )
            .unwrap_err();
            assert!(e.to_string().contains("must be from 1 to 10000"), "{e}");
        }
        assert!(serde_json::from_value::<AgentDef>(json!({"id": "a", "kind": "ftp"})).is_err());
        assert!(serde_json::from_value::<AgentDef>(
            json!({"id": "a", "kind": "http", "colour": 1})
        )
        .is_err());
    }

    #[test]
    fn native_and_process_configs_split_into_source_and_init() {
        let def: AgentDef = serde_json::from_value(json!({
            "id": "inv", "kind": "native", "handles": ["check"],
            "config": {"library": "libinv.so", "kind": "inventory", "config": {"warehouse": "b"}}
        }))
        .unwrap();
        let reg = def.registration(Path::new(".")).unwrap();
        assert_eq!(reg.config, json!({"warehouse": "b"}));
        assert!(matches!(reg.source, AgentSource::Native { ref kind, .. } if kind == "inventory"));

        let def: AgentDef = serde_json::from_value(json!({
            "id": "words", "kind": "process", "handles": ["count"],
            "config": {"program": "python3", "args": ["agent.py"], "config": {"lang": "en"}}
        }))
        .unwrap();
        let reg = def.registration(Path::new(".")).unwrap();
        assert_eq!(reg.config, json!({"lang": "en"}));
        let AgentSource::Process(spec) = reg.source else {
            panic!("not a process source")
        };
        assert_eq!(spec.config, json!({}));
    }
}
