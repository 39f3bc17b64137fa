//! Storing changes in the definitions registry (with their audit records), and applying what
//! it holds: at start, and whenever other nodes changed it.

use std::collections::HashSet;

use atamo_config::Rule;
use atamo_core::ids::{ActionType, AgentId, EventType, RuleId};
use atamo_core::message::Timestamp;
use atamo_core::store::{AuditRecord, RegistryKind, RegistryOutcome, RegistryWrite};
use serde_json::{json, Value};

use super::errors::rules_error;
use super::state::{LoadReport, Registry, Source, ACTION_TYPE, AGENT, EVENT_TYPE, RULE};
use crate::api::auth::Caller;
use crate::api::error::{error_chain, ApiError};
use crate::model::{ActionTypeBody, AgentDef, EventTypeBody};

/// The audit record of a change.
pub(super) fn change_record(
    caller: &Caller,
    kind: &RegistryKind,
    id: &str,
    change: &str,
    body: &Value,
) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at: Timestamp::now(),
        step: "registry_changed".into(),
        event_id: None,
        correlation_id: None,
        request_id: None,
        action_id: None,
        event_type: None,
        user: Some(caller.audit_name().as_str().into()),
        tenant: caller.tenant.clone(),
        agent: (*kind == AGENT).then(|| AgentId::from(id)),
        detail: json!({
            "kind": kind,
            "id": id,
            "change": change,
            "role": caller.role,
            "definition": body,
        }),
    }
}

impl Registry {
    /// [`persist`](Self::persist)s a change that was just applied to the hub; when it cannot
    /// be stored, `undo` takes it back out of the hub, so that the hub and the store never
    /// disagree.
    pub(super) async fn persist_or_undo(
        &self,
        kind: &RegistryKind,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        caller: &Caller,
        undo: impl FnOnce(),
    ) -> Result<(), ApiError> {
        let stored = self.persist(kind, id, body, mode, caller).await;
        if stored.is_err() {
            undo();
        }
        stored
    }

    pub(super) async fn persist(
        &self,
        kind: &RegistryKind,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        let change = match mode {
            RegistryWrite::Create => "created",
            _ => "replaced",
        };
        let record = change_record(caller, kind, id, change, &body);
        match self
            .inner
            .definitions
            .put(kind, id, body, mode, vec![record])
            .await?
        {
            RegistryOutcome::Written { revision } => {
                self.mark_applied(kind, id, Some(revision));
                Ok(())
            }
            RegistryOutcome::Exists => Err(ApiError::conflict(format!(
                "{kind} `{id}` already exists (added by another node)"
            ))),
            RegistryOutcome::Missing => Err(ApiError::not_found(format!("{kind} `{id}`"))),
        }
    }

    /// Applies what `atamo.toml` declares (not stored). Every failure is reported; the rest
    /// is applied.
    pub async fn apply_declared(
        &self,
        event_types: &[EventTypeBody],
        action_types: &[ActionTypeBody],
        agents: &[AgentDef],
        rules: &[Rule],
    ) -> LoadReport {
        let mut report = LoadReport::default();
        for t in event_types {
            self.note(&mut report, "event type", &t.name, self.apply_event_type(t));
        }
        for t in action_types {
            self.note(
                &mut report,
                "action type",
                &t.name,
                self.apply_action_type(t),
            );
        }
        for a in agents {
            let r = self.apply_agent(a).await;
            if r.is_ok() {
                self.remember_agent(a.clone(), Source::File);
            }
            self.note(&mut report, "agent", &a.id, r);
        }
        for rule in rules {
            let r = self.inner.rules.insert(rule.clone()).map_err(rules_error);
            if r.is_ok() {
                self.remember_rule(&rule.id, Source::File);
            }
            self.note(&mut report, "rule", rule.id.as_str(), r);
        }
        report
    }

    fn note(&self, report: &mut LoadReport, what: &str, id: &str, r: Result<(), ApiError>) {
        match r {
            Ok(()) => report.applied += 1,
            Err(e) => report.failed.push(format!(
                "{what} `{id}`: {}",
                e.problem().detail_with_fields()
            )),
        }
    }

    /// Brings this node in line with the store: applies what other nodes added or changed
    /// since (by revision), and removes what they deleted. Changes made through this node are
    /// already applied and are skipped.
    pub async fn sync(&self) -> LoadReport {
        let _w = self.inner.write.lock().await;
        let mut report = LoadReport::default();
        let mut seen: HashSet<(RegistryKind, String)> = HashSet::new();
        for kind in [EVENT_TYPE, ACTION_TYPE, AGENT, RULE] {
            let entries = match self.inner.definitions.entries(&kind).await {
                Ok(e) => e,
                Err(e) => {
                    report
                        .failed
                        .push(format!("{kind}s could not be read: {}", error_chain(&e)));
                    // Without the list, nothing of this kind can be known to be deleted.
                    if let Ok(applied) = self.inner.applied.lock() {
                        seen.extend(applied.keys().filter(|(k, _)| *k == kind).cloned());
                    }
                    continue;
                }
            };
            for e in entries {
                seen.insert((kind.clone(), e.id.clone()));
                if self.applied_revision(&kind, &e.id) == Some(e.revision) {
                    continue;
                }
                let r = self.apply_entry(&kind, &e.id, e.body).await;
                if r.is_ok() {
                    self.mark_applied(&kind, &e.id, Some(e.revision));
                }
                self.note(&mut report, kind.as_str(), &e.id, r);
            }
        }
        let gone: Vec<(RegistryKind, String)> = self
            .inner
            .applied
            .lock()
            .map(|a| a.keys().filter(|k| !seen.contains(*k)).cloned().collect())
            .unwrap_or_default();
        // Rules first, so that no rule is left naming a removed agent.
        for (kind, id) in gone
            .iter()
            .filter(|(k, _)| *k == RULE)
            .chain(gone.iter().filter(|(k, _)| *k == AGENT))
        {
            if *kind == RULE {
                self.inner.rules.remove(&RuleId::from(id.as_str()));
                if let Ok(mut s) = self.inner.rule_sources.lock() {
                    s.remove(id);
                }
            } else {
                self.remove_agent(id).await;
                if let Ok(mut agents) = self.inner.agents.lock() {
                    agents.remove(id);
                }
            }
            self.mark_applied(kind, id, None);
            report.applied += 1;
        }
        report
    }

    /// Applies one stored entry, replacing what this node has under its id.
    async fn apply_entry(
        &self,
        kind: &RegistryKind,
        id: &str,
        body: Value,
    ) -> Result<(), ApiError> {
        let bad = |e: serde_json::Error| ApiError::internal(format!("stored {kind} `{id}`: {e}"));
        if *kind == EVENT_TYPE {
            let t: EventTypeBody = serde_json::from_value(body).map_err(bad)?;
            let _ = self
                .inner
                .control
                .unregister_event_type(&EventType::from(t.name.as_str()));
            self.apply_event_type(&t)
        } else if *kind == ACTION_TYPE {
            let t: ActionTypeBody = serde_json::from_value(body).map_err(bad)?;
            let _ = self
                .inner
                .control
                .unregister_action_type(&ActionType::from(t.name.as_str()));
            self.apply_action_type(&t)
        } else if *kind == AGENT {
            let a: AgentDef = serde_json::from_value(body).map_err(bad)?;
            if self.agent_def(&a.id).is_some() {
                self.remove_agent(&a.id).await;
            }
            self.apply_agent(&a).await?;
            self.remember_agent(a, Source::Api);
            Ok(())
        } else {
            let rule: Rule = serde_json::from_value(body).map_err(bad)?;
            self.inner.rules.upsert(rule.clone()).map_err(rules_error)?;
            self.remember_rule(&rule.id, Source::Api);
            Ok(())
        }
    }

    /// Applies what the store holds, replacing declarations of the same id.
    pub async fn load_stored(&self) -> LoadReport {
        self.sync().await
    }

    /// Syncs with the store every `every`, until the returned task is aborted.
    pub fn sync_every(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let report = registry.sync().await;
                for f in &report.failed {
                    tracing::warn!("registry sync: {f}");
                }
            }
        })
    }
}
