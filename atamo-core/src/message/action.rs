use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::{EventMeta, Principal};
use crate::ids::{ActionId, ActionType, AgentId, ProviderId, RuleId};

/// Work for one agent, made by a rule from an event.
///
/// Cheap to clone: the header and the payload are shared.
#[derive(Clone)]
pub struct Action {
    pub(crate) meta: Arc<ActionMeta>,
    pub(crate) payload: Arc<Value>,
}

/// Everything about an action but its payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionMeta {
    /// The action's id; it stays the same across retries.
    pub id: ActionId,
    /// The agent that performs it.
    pub agent: AgentId,
    /// What the agent is asked to do.
    pub action_type: ActionType,
    /// The rule that made it, if a rule did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleId>,
    /// The provider whose rule made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderId>,
    /// 1 for the first try, 2 for the first retry, ...
    pub attempt: u32,
    /// The event that caused it.
    pub event: Arc<EventMeta>,
}

impl Action {
    pub(crate) fn new(meta: ActionMeta, payload: Arc<Value>) -> Self {
        Self {
            meta: Arc::new(meta),
            payload,
        }
    }

    /// The action's id.
    pub fn id(&self) -> ActionId {
        self.meta.id
    }

    /// The key an agent uses to recognise a repeated delivery of the same action, so that its
    /// side effect happens once. It is the action id: the same for every attempt, because a retry
    /// after a timeout may follow a first attempt whose side effect did happen.
    pub fn idempotency_key(&self) -> ActionId {
        self.meta.id
    }

    /// The agent that performs it.
    pub fn agent(&self) -> &AgentId {
        &self.meta.agent
    }

    /// What the agent is asked to do.
    pub fn action_type(&self) -> &ActionType {
        &self.meta.action_type
    }

    /// The rule that made it.
    pub fn rule(&self) -> Option<&RuleId> {
        self.meta.rule.as_ref()
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.meta.attempt
    }

    /// The event that caused it.
    pub fn event(&self) -> &Arc<EventMeta> {
        &self.meta.event
    }

    /// The user (with groups and tenant) the action is performed for.
    pub fn principal(&self) -> &Principal {
        &self.meta.event.principal
    }

    /// The header shared with telemetry.
    pub fn meta(&self) -> &Arc<ActionMeta> {
        &self.meta
    }

    /// The JSON payload built by the rule's template.
    pub fn payload(&self) -> &Value {
        &self.payload
    }
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action")
            .field("id", &self.meta.id)
            .field("agent", &self.meta.agent)
            .field("type", &self.meta.action_type)
            .field("attempt", &self.meta.attempt)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            #[serde(flatten)]
            meta: &'a ActionMeta,
            payload: &'a Value,
        }
        Repr {
            meta: &self.meta,
            payload: &self.payload,
        }
        .serialize(s)
    }
}
