//! Agents, rules and types of a running service: applied to the hub, kept in the store so
//! they survive a restart.
//!
//! What `atamo.toml` declares is applied first and is not stored; what the API adds is stored
//! (registry kinds `agent`, `rule`, `event_type`, `action_type`) and applied at every start
//! after the file, so a definition changed through the API wins over the file's. Each entry
//! has a revision: [`Registry::sync`] applies what other nodes on the same store changed since
//! this node last looked, and removes what they deleted.
//! Every change made through the API is written to the audit log in the same transaction
//! (step `registry_changed`, with the key that made it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use atamo_agents::registration::{PluginHost, RegistrationError};
use atamo_config::{Rule, RuleBook, RuleSetError};
use atamo_core::hub::ConfigError;
use atamo_core::ids::{ActionType, AgentId, EventType, RuleId};
use atamo_core::message::Timestamp;
use atamo_core::store::{AuditRecord, RegistryOutcome, RegistryWrite, Store};
use atamo_core::Control;
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldError};
use crate::model::{ActionTypeBody, AgentDef, EventTypeBody};

/// The registry kinds.
pub const AGENT: &str = "agent";
/// Rules.
pub const RULE: &str = "rule";
/// Event types.
pub const EVENT_TYPE: &str = "event_type";
/// Action types.
pub const ACTION_TYPE: &str = "action_type";

/// The rule provider id the service's rules live under.
pub const RULES_PROVIDER: &str = "rules";

/// Where a definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `atamo.toml`.
    File,
    /// The API (kept in the store).
    Api,
}

/// Definitions the service applied.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    control: Control,
    host: PluginHost,
    rules: RuleBook,
    agents: Mutex<BTreeMap<String, (AgentDef, Source)>>,
    rule_sources: Mutex<BTreeMap<String, Source>>,
    /// Changes run one at a time, so that the hub and the store change in the same order.
    write: tokio::sync::Mutex<()>,
    plugins_dir: PathBuf,
    /// The retry policy of action types registered without one (`[retry]` in `atamo.toml`).
    default_retry: Option<atamo_core::failure::RetryPolicy>,
    /// The revision of each stored entry this node has applied, by (kind, id).
    applied: Mutex<std::collections::HashMap<(String, String), u64>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// What loading definitions did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Definitions applied.
    pub applied: usize,
    /// Definitions that could not be applied, with why (the service starts without them).
    pub failed: Vec<String>,
}

fn config_error(e: ConfigError) -> ApiError {
    use atamo_core::hub::ConfigProblem;
    if e.problems
        .iter()
        .any(|p| matches!(p, ConfigProblem::Duplicate { .. }))
    {
        return ApiError::conflict(e.to_string());
    }
    ApiError::field("body", e.to_string())
}

fn rules_error(e: RuleSetError) -> ApiError {
    use atamo_config::RuleProblem;
    if e.problems
        .iter()
        .any(|p| matches!(p, RuleProblem::DuplicateId { .. }))
    {
        return ApiError::conflict(e.to_string());
    }
    ApiError::invalid(
        e.problems
            .iter()
            .map(|p| FieldError {
                field: match p {
                    RuleProblem::Template { .. } => "template".into(),
                    _ => "body".into(),
                },
                message: p.to_string(),
            })
            .collect(),
    )
}

fn registration_error(e: RegistrationError) -> ApiError {
    match e {
        RegistrationError::Builtin(p) => ApiError::invalid(
            p.problems
                .into_iter()
                .map(|m| FieldError {
                    field: "config".into(),
                    message: m,
                })
                .collect(),
        ),
        RegistrationError::Hub { error, .. } => config_error(error),
        other => ApiError::field("config", other.to_string()),
    }
}

/// The audit record of a change.
fn change_record(caller: &Caller, kind: &str, id: &str, change: &str, body: &Value) -> AuditRecord {
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
        agent: (kind == AGENT).then(|| AgentId::from(id)),
        detail: json!({
            "kind": kind,
            "id": id,
            "change": change,
            "role": caller.role,
            "definition": body,
        }),
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

impl Registry {
    /// A registry applying to the hub behind `control`, with agents loaded through `host`.
    pub fn new(
        store: Arc<dyn Store>,
        control: Control,
        host: PluginHost,
        rules: RuleBook,
        plugins_dir: PathBuf,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                control,
                host,
                rules,
                agents: Mutex::default(),
                rule_sources: Mutex::default(),
                write: tokio::sync::Mutex::new(()),
                plugins_dir,
                default_retry: None,
                applied: Mutex::default(),
            }),
        }
    }

    /// Gives action types registered without a retry policy this one.
    #[must_use]
    pub fn default_retry(self, policy: Option<atamo_core::failure::RetryPolicy>) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.default_retry = policy;
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Self { inner },
        }
    }

    /// The plugin host.
    pub fn host(&self) -> &PluginHost {
        &self.inner.host
    }

    /// Where native agent libraries are looked up.
    pub fn plugins_dir(&self) -> &std::path::Path {
        &self.inner.plugins_dir
    }

    // ---- event and action types ------------------------------------------------------------

    fn apply_event_type(&self, body: &EventTypeBody) -> Result<(), ApiError> {
        let def = body.to_def().map_err(ApiError::fields)?;
        self.inner
            .control
            .register_event_type(def)
            .map_err(config_error)
    }

    fn apply_action_type(&self, body: &ActionTypeBody) -> Result<(), ApiError> {
        let mut def = body.to_def().map_err(ApiError::fields)?;
        if def.retry.is_none() {
            def.retry = self.inner.default_retry;
        }
        self.inner
            .control
            .register_action_type(def)
            .map_err(config_error)
    }

    /// Registers an event type and stores it.
    pub async fn create_event_type(
        &self,
        body: EventTypeBody,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        self.apply_event_type(&body)?;
        let value = to_json(&body)?;
        let stored = self
            .persist(EVENT_TYPE, &body.name, value, RegistryWrite::Create, caller)
            .await;
        if stored.is_err() {
            let _ = self
                .inner
                .control
                .unregister_event_type(&EventType::from(body.name.as_str()));
        }
        stored
    }

    /// Every registered event type.
    pub fn event_types(&self) -> Vec<EventTypeBody> {
        self.inner
            .control
            .event_types()
            .iter()
            .map(EventTypeBody::from_def)
            .collect()
    }

    /// Registers an action type and stores it.
    pub async fn create_action_type(
        &self,
        body: ActionTypeBody,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        self.apply_action_type(&body)?;
        let value = to_json(&body)?;
        let stored = self
            .persist(
                ACTION_TYPE,
                &body.name,
                value,
                RegistryWrite::Create,
                caller,
            )
            .await;
        if stored.is_err() {
            let _ = self
                .inner
                .control
                .unregister_action_type(&ActionType::from(body.name.as_str()));
        }
        stored
    }

    /// Every registered action type.
    pub fn action_types(&self) -> Vec<ActionTypeBody> {
        self.inner
            .control
            .action_types()
            .iter()
            .map(ActionTypeBody::from_def)
            .collect()
    }

    // ---- agents ------------------------------------------------------------------------------

    /// Registers the action types an agent handles that are not registered yet.
    fn ensure_action_types(&self, def: &AgentDef) {
        let known: Vec<String> = self
            .inner
            .control
            .action_types()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        for t in def.handled_types() {
            if !known.contains(&t) {
                let mut def = atamo_core::hub::ActionTypeDef::new(t.as_str());
                def.retry = self.inner.default_retry;
                let _ = self.inner.control.register_action_type(def);
            }
        }
    }

    async fn apply_agent(&self, def: &AgentDef) -> Result<(), ApiError> {
        let problems = def.problems();
        if !problems.is_empty() {
            return Err(ApiError::fields(problems));
        }
        self.ensure_action_types(def);
        let registration = def
            .registration(&self.inner.plugins_dir)
            .map_err(|e| ApiError::field("config", e))?;
        self.inner
            .host
            .register_agent(registration)
            .await
            .map_err(registration_error)
    }

    async fn remove_agent(&self, id: &str) {
        if let Err(e) = self.inner.host.unregister_agent(id).await {
            tracing::debug!(agent = id, error = %e, "agent was not registered");
        }
    }

    /// Registers an agent and stores it.
    pub async fn create_agent(&self, def: AgentDef, caller: &Caller) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        if self.agent_def(&def.id).is_some()
            || self
                .inner
                .control
                .agents()
                .iter()
                .any(|a| a.id.as_str() == def.id)
        {
            return Err(ApiError::conflict(format!(
                "agent `{}` is already registered",
                def.id
            )));
        }
        self.apply_agent(&def).await?;
        let value = to_json(&def)?;
        if let Err(e) = self
            .persist(AGENT, &def.id, value, RegistryWrite::Create, caller)
            .await
        {
            self.remove_agent(&def.id).await;
            return Err(e);
        }
        self.remember_agent(def, Source::Api);
        Ok(())
    }

    /// Replaces an agent's definition (the old one comes back if the new one fails).
    pub async fn replace_agent(&self, def: AgentDef, caller: &Caller) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        let Some((old, source)) = self.agent_def(&def.id) else {
            return Err(ApiError::not_found(format!("agent `{}`", def.id)));
        };
        let problems = def.problems();
        if !problems.is_empty() {
            return Err(ApiError::fields(problems));
        }
        self.remove_agent(&def.id).await;
        if let Err(e) = self.apply_agent(&def).await {
            if let Err(back) = self.apply_agent(&old).await {
                tracing::error!(agent = %def.id, error = %back, "the previous definition could not be restored");
            }
            return Err(e);
        }
        let value = to_json(&def)?;
        if let Err(e) = self
            .persist(AGENT, &def.id, value, RegistryWrite::Upsert, caller)
            .await
        {
            self.remove_agent(&def.id).await;
            let _ = self.apply_agent(&old).await;
            self.remember_agent(old, source);
            return Err(e);
        }
        self.remember_agent(def, Source::Api);
        Ok(())
    }

    /// Unregisters an agent and removes it from the store.
    pub async fn delete_agent(&self, id: &str, caller: &Caller) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        let Some((old, _)) = self.agent_def(id) else {
            return Err(ApiError::not_found(format!("agent `{id}`")));
        };
        let in_use: Vec<String> = self
            .inner
            .rules
            .list()
            .iter()
            .filter(|r| r.agent.as_str() == id)
            .map(|r| r.id.to_string())
            .collect();
        if !in_use.is_empty() {
            return Err(ApiError::conflict(format!(
                "agent `{id}` is named by rules {}; delete or change them first",
                in_use.join(", ")
            )));
        }
        self.remove_agent(id).await;
        let record = change_record(caller, AGENT, id, "deleted", &to_json(&old)?);
        self.inner
            .store
            .registry_delete(AGENT, id, vec![record])
            .await?;
        self.mark_applied(AGENT, id, None);
        if let Ok(mut agents) = self.inner.agents.lock() {
            agents.remove(id);
        }
        Ok(())
    }

    fn remember_agent(&self, def: AgentDef, source: Source) {
        if let Ok(mut agents) = self.inner.agents.lock() {
            agents.insert(def.id.clone(), (def, source));
        }
    }

    /// An agent's definition and where it came from.
    pub fn agent_def(&self, id: &str) -> Option<(AgentDef, Source)> {
        self.inner.agents.lock().ok()?.get(id).cloned()
    }

    /// Every agent definition, by id.
    pub fn agent_defs(&self) -> Vec<(AgentDef, Source)> {
        self.inner
            .agents
            .lock()
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default()
    }

    // ---- rules -------------------------------------------------------------------------------

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
        let value = to_json(&rule)?;
        if let Err(e) = self
            .persist(RULE, rule.id.as_str(), value, RegistryWrite::Create, caller)
            .await
        {
            self.inner.rules.remove(&rule.id);
            return Err(e);
        }
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
        let value = to_json(&rule)?;
        if let Err(e) = self
            .persist(RULE, rule.id.as_str(), value, RegistryWrite::Upsert, caller)
            .await
        {
            let _ = self.inner.rules.upsert(old);
            return Err(e);
        }
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
        let record = change_record(caller, RULE, id, "deleted", &to_json(&old)?);
        self.inner
            .store
            .registry_delete(RULE, id, vec![record])
            .await?;
        self.mark_applied(RULE, id, None);
        self.inner.rules.remove(&rid);
        if let Ok(mut s) = self.inner.rule_sources.lock() {
            s.remove(id);
        }
        Ok(())
    }

    fn remember_rule(&self, id: &RuleId, source: Source) {
        if let Ok(mut s) = self.inner.rule_sources.lock() {
            s.insert(id.to_string(), source);
        }
    }

    /// A rule.
    pub fn rule(&self, id: &str) -> Option<Rule> {
        self.inner.rules.get(&RuleId::from(id))
    }

    /// Every rule, in evaluation order.
    pub fn rules(&self) -> Vec<Rule> {
        self.inner.rules.list()
    }

    /// Where a rule came from.
    pub fn rule_source(&self, id: &str) -> Option<Source> {
        self.inner.rule_sources.lock().ok()?.get(id).copied()
    }

    // ---- storing and loading -----------------------------------------------------------------

    async fn persist(
        &self,
        kind: &str,
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
            .store
            .registry_put(kind, id, body, mode, vec![record])
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

    fn mark_applied(&self, kind: &str, id: &str, revision: Option<u64>) {
        if let Ok(mut applied) = self.inner.applied.lock() {
            match revision {
                Some(r) => applied.insert((kind.to_owned(), id.to_owned()), r),
                None => applied.remove(&(kind.to_owned(), id.to_owned())),
            };
        }
    }

    fn applied_revision(&self, kind: &str, id: &str) -> Option<u64> {
        self.inner
            .applied
            .lock()
            .ok()?
            .get(&(kind.to_owned(), id.to_owned()))
            .copied()
    }

    /// Brings this node in line with the store: applies what other nodes added or changed
    /// since (by revision), and removes what they deleted. Changes made through this node are
    /// already applied and are skipped.
    pub async fn sync(&self) -> LoadReport {
        let _w = self.inner.write.lock().await;
        let mut report = LoadReport::default();
        let mut seen: std::collections::HashSet<(String, String)> = Default::default();
        for kind in [EVENT_TYPE, ACTION_TYPE, AGENT, RULE] {
            let entries = match self.inner.store.registry_list(kind).await {
                Ok(e) => e,
                Err(e) => {
                    report
                        .failed
                        .push(format!("{kind}s could not be read: {e}"));
                    // Without the list, nothing of this kind can be known to be deleted.
                    if let Ok(applied) = self.inner.applied.lock() {
                        seen.extend(applied.keys().filter(|(k, _)| k == kind).cloned());
                    }
                    continue;
                }
            };
            for e in entries {
                seen.insert((kind.to_owned(), e.id.clone()));
                if self.applied_revision(kind, &e.id) == Some(e.revision) {
                    continue;
                }
                let r = self.apply_entry(kind, &e.id, e.body).await;
                if r.is_ok() {
                    self.mark_applied(kind, &e.id, Some(e.revision));
                }
                self.note(&mut report, kind, &e.id, r);
            }
        }
        let gone: Vec<(String, String)> = self
            .inner
            .applied
            .lock()
            .map(|a| a.keys().filter(|k| !seen.contains(*k)).cloned().collect())
            .unwrap_or_default();
        // Rules first, so that no rule is left naming a removed agent.
        for (kind, id) in gone
            .iter()
            .filter(|(k, _)| k == RULE)
            .chain(gone.iter().filter(|(k, _)| k == AGENT))
        {
            if kind == RULE {
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
    async fn apply_entry(&self, kind: &str, id: &str, body: Value) -> Result<(), ApiError> {
        let bad = |e: serde_json::Error| ApiError::internal(format!("stored {kind} `{id}`: {e}"));
        match kind {
            EVENT_TYPE => {
                let t: EventTypeBody = serde_json::from_value(body).map_err(bad)?;
                let _ = self
                    .inner
                    .control
                    .unregister_event_type(&EventType::from(t.name.as_str()));
                self.apply_event_type(&t)
            }
            ACTION_TYPE => {
                let t: ActionTypeBody = serde_json::from_value(body).map_err(bad)?;
                let _ = self
                    .inner
                    .control
                    .unregister_action_type(&ActionType::from(t.name.as_str()));
                self.apply_action_type(&t)
            }
            AGENT => {
                let a: AgentDef = serde_json::from_value(body).map_err(bad)?;
                if self.agent_def(&a.id).is_some() {
                    self.remove_agent(&a.id).await;
                }
                self.apply_agent(&a).await?;
                self.remember_agent(a, Source::Api);
                Ok(())
            }
            _ => {
                let rule: Rule = serde_json::from_value(body).map_err(bad)?;
                self.inner.rules.upsert(rule.clone()).map_err(rules_error)?;
                self.remember_rule(&rule.id, Source::Api);
                Ok(())
            }
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

impl crate::api::error::Problem {
    /// The detail followed by every field problem, for logs.
    pub fn detail_with_fields(&self) -> String {
        if self.errors.is_empty() {
            return self.detail.clone();
        }
        let fields: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        fields.join("; ")
    }
}
