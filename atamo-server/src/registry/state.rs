//! The [`Registry`]: the definitions this node applied, where each came from, and the revision
//! of each stored entry it applied.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use atamo_agents::registration::PluginHost;
use atamo_config::{Rule, RuleBook};
use atamo_core::ids::RuleId;
use atamo_core::store::{DefinitionRegistry, RegistryKind};
use atamo_core::Control;
use serde::Serialize;

use crate::model::AgentDef;

/// The registry kind of agents.
pub const AGENT: RegistryKind = RegistryKind::AGENT;
/// Rules.
pub const RULE: RegistryKind = RegistryKind::RULE;
/// Event types.
pub const EVENT_TYPE: RegistryKind = RegistryKind::EVENT_TYPE;
/// Action types.
pub const ACTION_TYPE: RegistryKind = RegistryKind::ACTION_TYPE;

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
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// Where definitions added through the API are kept.
    pub(super) definitions: Arc<dyn DefinitionRegistry>,
    pub(super) control: Control,
    pub(super) host: PluginHost,
    pub(super) rules: RuleBook,
    pub(super) agents: Mutex<BTreeMap<String, (AgentDef, Source)>>,
    pub(super) rule_sources: Mutex<BTreeMap<String, Source>>,
    /// Changes run one at a time, so that the hub and the store change in the same order.
    pub(super) write: tokio::sync::Mutex<()>,
    pub(super) plugins_dir: PathBuf,
    /// The retry policy of action types registered without one (`[retry]` in `atamo.toml`).
    pub(super) default_retry: Option<atamo_core::failure::RetryPolicy>,
    /// The revision of each stored entry this node has applied, by (kind, id).
    pub(super) applied: Mutex<HashMap<(RegistryKind, String), u64>>,
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

impl Registry {
    /// A registry applying to the hub behind `control`, with agents loaded through `host`, and
    /// keeping what the API adds in `definitions`.
    pub fn new(
        definitions: Arc<dyn DefinitionRegistry>,
        control: Control,
        host: PluginHost,
        rules: RuleBook,
        plugins_dir: PathBuf,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                definitions,
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

    pub(super) fn remember_agent(&self, def: AgentDef, source: Source) {
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

    pub(super) fn remember_rule(&self, id: &RuleId, source: Source) {
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

    pub(super) fn mark_applied(&self, kind: &RegistryKind, id: &str, revision: Option<u64>) {
        if let Ok(mut applied) = self.inner.applied.lock() {
            match revision {
                Some(r) => applied.insert((kind.clone(), id.to_owned()), r),
                None => applied.remove(&(kind.clone(), id.to_owned())),
            };
        }
    }

    pub(super) fn applied_revision(&self, kind: &RegistryKind, id: &str) -> Option<u64> {
        self.inner
            .applied
            .lock()
            .ok()?
            .get(&(kind.clone(), id.to_owned()))
            .copied()
    }
}
