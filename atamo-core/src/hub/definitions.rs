//! What the hub is configured with: event and action type definitions, rule providers as
//! listed, and the error a registration or build fails with.

use serde::Serialize;

use crate::bounded::{KeepAlive, OutOfRange};
use crate::ids::{ActionType, AgentId, EventType, NameError, ProviderId};
use crate::message::{FieldPathError, MessageTemplate};
use crate::rules::ProviderScope;

/// An event type and the payload fields its events must carry.
///
/// ```
/// use atamo_core::EventTypeDef;
/// let def = EventTypeDef::new("order.created").requiring(["order.id", "customer.id"]).unwrap();
/// assert_eq!(def.template.required.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventTypeDef {
    /// The type's name.
    pub name: EventType,
    /// The fields its events must carry.
    pub template: MessageTemplate,
    /// What it means, for people.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// For requests of this type: how long their answers are kept once finished, unless the
    /// request sets its own. None: the provider's default.
    #[serde(skip_serializing_if = "Option::is_none", rename = "keep_alive_ms")]
    pub keep_alive: Option<KeepAlive>,
    /// In a stateful hub: whether events of this type and their actions are kept in the store
    /// (None: the hub's default, durable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<crate::store::Durability>,
}

impl EventTypeDef {
    /// An event type whose events may carry any payload object.
    pub fn new(name: impl Into<EventType>) -> Self {
        Self {
            name: name.into(),
            template: MessageTemplate::any(),
            description: String::new(),
            keep_alive: None,
            durability: None,
        }
    }

    /// In a stateful hub: whether events of this type are kept in the store (`Durable`, the
    /// default) or only in memory (`Memory`: faster, lost in a crash). A rule may choose
    /// otherwise for its own actions.
    #[must_use]
    pub fn durability(mut self, durability: crate::store::Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    /// How long answers to requests of this type are kept once finished (brought into
    /// [`KeepAlive`]'s range: at most 30 days).
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: std::time::Duration) -> Self {
        self.keep_alive = Some(KeepAlive::saturating(keep_alive));
        self
    }

    /// Requires the given dotted payload paths.
    pub fn requiring<I, S>(mut self, paths: I) -> Result<Self, FieldPathError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.template
            .required
            .extend(MessageTemplate::requiring(paths)?.required);
        Ok(self)
    }

    /// Sets the description.
    #[must_use]
    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}

/// An action type: something agents can do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionTypeDef {
    /// The type's name.
    pub name: ActionType,
    /// What it means, for people.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How failed actions of this type are tried again, whatever agent handles them (a rule's
    /// policy still wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<crate::policy::RetryPolicy>,
}

impl ActionTypeDef {
    /// An action type.
    pub fn new(name: impl Into<ActionType>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            retry: None,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets how failed actions of this type are tried again.
    #[must_use]
    pub fn retry(mut self, policy: crate::policy::RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
}

/// A registered rule provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderInfo {
    /// Its id.
    pub id: ProviderId,
    /// The events it is asked about.
    pub scope: ProviderScope,
}

/// A registration or build that did not happen, with every reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", join(.problems))]
pub struct ConfigError {
    /// Everything that was wrong.
    pub problems: Vec<ConfigProblem>,
}

fn join(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<ConfigProblem> for ConfigError {
    fn from(p: ConfigProblem) -> Self {
        Self { problems: vec![p] }
    }
}

/// One thing wrong with a registration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// A name is not valid.
    #[error(transparent)]
    BadName(#[from] NameError),
    /// Something of that kind and name is already registered.
    #[error("{kind} `{name}` is already registered")]
    Duplicate {
        /// What kind of thing.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// Nothing of that kind and name is registered.
    #[error("{kind} `{name}` is not registered")]
    NotFound {
        /// What kind of thing.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// An agent declares an action type that is not registered.
    #[error("agent `{agent}` handles action type `{action_type}`, which is not registered")]
    UnknownActionType {
        /// The agent.
        agent: AgentId,
        /// The action type.
        action_type: ActionType,
    },
    /// An agent declares no action type.
    #[error("agent `{agent}` handles no action type; add at least one with `handles`")]
    NoActionTypes {
        /// The agent.
        agent: AgentId,
    },
    /// A limit was set to zero.
    #[error("agent `{agent}`: {what} must be at least 1")]
    ZeroLimit {
        /// The agent.
        agent: AgentId,
        /// Which limit.
        what: &'static str,
    },
    /// An action type cannot be removed while an agent handles it.
    #[error(
        "action type `{action_type}` is handled by agent `{agent}`; unregister the agent first"
    )]
    ActionTypeInUse {
        /// The action type.
        action_type: ActionType,
        /// An agent handling it.
        agent: AgentId,
    },
    /// A provider is scoped to an event type that is not registered.
    #[error(
        "provider `{provider}` is scoped to event type `{event_type}`, which is not registered"
    )]
    UnknownScopeType {
        /// The provider.
        provider: ProviderId,
        /// The event type.
        event_type: EventType,
    },
    /// A hub setting is out of range.
    #[error("{0}")]
    Setting(String),
    /// A value of a registration is outside its range.
    #[error("{what}: {source}")]
    OutOfRange {
        /// Which value (`agent \`mailer\`: concurrency`).
        what: String,
        /// Its range.
        #[source]
        source: OutOfRange,
    },
    /// The hub is shutting down and takes no new registrations.
    #[error("the hub is shutting down")]
    ShuttingDown,
}

pub(crate) fn duplicate(kind: &'static str, name: &impl std::fmt::Display) -> ConfigProblem {
    ConfigProblem::Duplicate {
        kind,
        name: name.to_string(),
    }
}

pub(crate) fn not_found(kind: &'static str, name: &impl std::fmt::Display) -> ConfigProblem {
    ConfigProblem::NotFound {
        kind,
        name: name.to_string(),
    }
}
