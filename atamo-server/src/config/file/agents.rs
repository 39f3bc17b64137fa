//! `[[agents]]`: the agents registered at start, built-in agents' settings included.

use std::borrow::Cow;
use std::collections::HashMap;

use toml::de::DeValue;
use toml::Spanned;

use super::checker::Checker;
use super::spans::{child_span, join, Value};
use crate::model::{AgentDef, AgentKind};

impl<'i> Checker<'_> {
    pub(super) fn agents<'v>(
        &mut self,
        path: &str,
        v: &'v Value<'i>,
    ) -> Vec<(String, &'v Value<'i>, AgentDef)> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (p, entry) in self.array(path, v) {
            let (agent, reported) = self.get_all::<AgentDef>(&p, entry);
            let Some(agent) = agent else {
                continue;
            };
            let problems = agent.problems();
            self.problems(&p, entry, problems, &reported);
            // The kind's settings are checked when the kind and the settings themselves read.
            let settings_read = !reported
                .iter()
                .any(|f| f.is_empty() || f == "body" || f == "kind" || f.starts_with("config"));
            if settings_read {
                self.builtin_config(&p, entry, agent.kind);
            }
            if !reported.is_empty() {
                continue;
            }
            let at = child_span(entry, "id");
            self.unique(&mut seen, "agent", &agent.id, &at, &join(&p, "id"));
            out.push((p, entry, agent));
        }
        out
    }

    /// Reads a built-in agent's `config` into that agent's own settings type, without
    /// building the agent, so that a misspelt or missing setting is found before the service
    /// starts.
    pub(super) fn builtin_config(&mut self, path: &str, entry: &Value<'i>, kind: AgentKind) {
        use atamo_agents::builtin::{command, email, http, sql};
        let Some(config) = entry.get_ref().as_table().and_then(|t| t.get("config")) else {
            // No settings: the agent's kind says what it misses.
            let empty = serde_json::Value::Object(Default::default());
            let missing = match kind {
                AgentKind::Http => serde_json::from_value::<http::HttpConfig>(empty).err(),
                AgentKind::Sql => serde_json::from_value::<sql::SqlConfig>(empty).err(),
                AgentKind::Email => serde_json::from_value::<email::EmailConfig>(empty).err(),
                AgentKind::Command => serde_json::from_value::<command::CommandConfig>(empty).err(),
                AgentKind::Native | AgentKind::Process => None,
            };
            if let Some(e) = missing {
                self.error(entry.span(), &join(path, "config"), e.to_string());
            }
            return;
        };
        if !config.get_ref().is_table() {
            // Reported by the model's validator.
            return;
        }
        let p = join(path, "config");
        match kind {
            AgentKind::Http => {
                // `url` stands for `base_url`, as the agent's registration reads it.
                let mut config = config.clone();
                if let DeValue::Table(t) = config.get_mut() {
                    if !t.contains_key("base_url") {
                        if let Some((key, url)) = t.remove_entry("url") {
                            t.insert(Spanned::new(key.span(), Cow::Borrowed("base_url")), url);
                        }
                    }
                }
                drop(self.get::<http::HttpConfig>(&p, &config));
            }
            AgentKind::Sql => drop(self.get::<sql::SqlConfig>(&p, config)),
            AgentKind::Email => drop(self.get::<email::EmailConfig>(&p, config)),
            AgentKind::Command => drop(self.get::<command::CommandConfig>(&p, config)),
            AgentKind::Native | AgentKind::Process => {}
        }
    }
}
