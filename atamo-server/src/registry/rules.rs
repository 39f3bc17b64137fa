//! Rules: checked against the registered agents and event types, kept in the rule book.

use atamo_config::Rule;
use atamo_core::ids::RuleId;
use atamo_core::store::RegistryWrite;

use super::errors::{rules_error, to_json};
use super::persist::change_record;
use super::state::{Registry, Source, RULE};
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldError};

impl Registry {
    /// Checks that the rule's agent exists and handles its action, and that its event type is
    /// registered.
    fn check_rule_refs(&self, rule: &Rule) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        let agents = self.inner.control.agents();
        match agents.iter().find(|a| a.id == rule.agent) {
            None => errors.push(FieldError {
                field: "agent".into(),
                message: format!("agent `{}` is not registered", rule.agent),
            }),
            Some(a) if !a.handles.contains(&rule.action) => errors.push(FieldError {
                field: "action".into(),
                message: format!(
                    "agent `{}` does not handle `{}`; it handles {}",
                    rule.agent,
                    rule.action,
                    a.handles
                        .iter()
                        .map(|h| format!("`{h}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            Some(_) => {}
        }
        if !self
            .inner
            .control
            .event_types()
            .iter()
            .any(|t| t.name == rule.event_type)
        {
            errors.push(FieldError {
                field: "event_type".into(),
                message: format!(
                    "event type `{}` is not registered; POST /v1/event-types first",
                    rule.event_type
                ),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(errors))
        }
    }

    /// Adds a rule and stores it.
    pub async fn create_rule(&self, rule: Rule, caller: &Caller) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        if self.inner.rules.get(&rule.id).is_some() {
            return Err(ApiError::conflict(format!(
                "rule `{}` already exists",
                rule.id
            )));
        }
        self.check_rule_refs(&rule)?;
        self.inner.rules.insert(rule.clone()).map_err(rules_error)?;
        let rules = &self.inner.rules;
        self.persist_or_undo(
            &RULE,
            rule.id.as_str(),
            to_json(&rule)?,
            RegistryWrite::Create,
            caller,
            || {
                rules.remove(&rule.id);
            },
        )
        .await?;
        self.remember_rule(&rule.id, Source::Api);
        Ok(())
    }

    /// Replaces a rule.
    pub async fn replace_rule(&self, rule: Rule, caller: &Caller) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        let Some(old) = self.inner.rules.get(&rule.id) else {
            return Err(ApiError::not_found(format!("rule `{}`", rule.id)));
        };
        self.check_rule_refs(&rule)?;
        self.inner.rules.upsert(rule.clone()).map_err(rules_error)?;
        let rules = &self.inner.rules;
        self.persist_or_undo(
            &RULE,
            rule.id.as_str(),
            to_json(&rule)?,
            RegistryWrite::Upsert,
            caller,
            || {
                let _ = rules.upsert(old);
            },
        )
        .await?;
        self.remember_rule(&rule.id, Source::Api);
        Ok(())
    }

    /// Removes a rule.
    pub async fn delete_rule(&self, id: &str, caller: &Caller) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        let rid = RuleId::from(id);
        let Some(old) = self.inner.rules.get(&rid) else {
            return Err(ApiError::not_found(format!("rule `{id}`")));
        };
        let record = change_record(caller, &RULE, id, "deleted", &to_json(&old)?);
        self.inner
            .definitions
            .delete(&RULE, id, vec![record])
            .await?;
        self.mark_applied(&RULE, id, None);
        self.inner.rules.remove(&rid);
        if let Ok(mut s) = self.inner.rule_sources.lock() {
            s.remove(id);
        }
        Ok(())
    }
}
