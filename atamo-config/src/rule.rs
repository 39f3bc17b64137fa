//! Rules: (event type, subject) → (agent, action type, template).

use atamo_core::bounded::CacheTtl;
use atamo_core::failure::RetryPolicy;
use atamo_core::ids::{ActionType, AgentId, EventType, GroupId, RuleId, TenantId, UserId};
use atamo_core::message::Principal;
use atamo_core::rules::{ShareScope, Sharing};
use atamo_core::store::Durability;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One rule: when an event of `event_type` is published for a principal matching `subject`,
/// send `agent` an action of type `action` whose payload is `template` rendered for the event.
///
/// In JSON (the REST shape) the subject is at most one of `user`, `group` or `tenant`; none means
/// anyone. Unknown fields are rejected.
///
/// ```
/// use atamo_config::{Rule, Subject};
/// use serde_json::json;
///
/// let rule: Rule = serde_json::from_value(json!({
///     "id": "welcome-sales",
///     "event_type": "user.joined",
///     "group": "sales",
///     "agent": "mailer",
///     "action": "email.send",
///     "template": {"to": "{{payload.email}}", "subject": "Welcome, {{user}}"},
/// }))?;
/// assert!(matches!(rule.subject, Subject::Group(ref g) if g.as_str() == "sales"));
///
/// let two = serde_json::from_value::<Rule>(json!({
///     "id": "r", "event_type": "e", "user": "alice", "tenant": "acme",
///     "agent": "a", "action": "x", "template": {},
/// }));
/// assert!(two.unwrap_err().to_string().contains("`user` and `tenant`"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RuleRepr", into = "RuleRepr")]
pub struct Rule {
    /// The rule's id, unique within a rule book.
    pub id: RuleId,
    /// The event type it reacts to.
    pub event_type: EventType,
    /// Whose events it reacts to.
    pub subject: Subject,
    /// The agent to send the action to.
    pub agent: AgentId,
    /// The action type to ask for.
    pub action: ActionType,
    /// The action payload, with field references (see [`ActionTemplate`](crate::ActionTemplate)).
    pub template: Value,
    /// For requests: who may share one agent call when identical requests are in flight, and
    /// how long a result may be reused (JSON: `"coalesce": "off" | "user" | "tenant" |
    /// "global"`, default `user`; `"cache_ttl_ms"`, default none).
    pub sharing: Sharing,
    /// How its actions are tried again when they fail (JSON `"retry": {"max_attempts": 5,
    /// "initial_backoff_ms": 100, ...}`); overrides the action type's and the agent's policy.
    pub retry: Option<RetryPolicy>,
    /// Where its actions go while the agent is unavailable (JSON `"fallback": "agent-id"`).
    pub fallback: Option<AgentId>,
    /// In a stateful hub, whether its actions are kept in the store (JSON `"durability":
    /// "durable" | "memory"`); the event type's choice when unset.
    pub durability: Option<Durability>,
}

impl Rule {
    /// A rule for anyone's events; narrow it with [`Rule::for_subject`].
    pub fn new(
        id: impl Into<RuleId>,
        event_type: impl Into<EventType>,
        agent: impl Into<AgentId>,
        action: impl Into<ActionType>,
        template: Value,
    ) -> Self {
        Self {
            id: id.into(),
            event_type: event_type.into(),
            subject: Subject::Anyone,
            agent: agent.into(),
            action: action.into(),
            template,
            sharing: Sharing::default(),
            retry: None,
            fallback: None,
            durability: None,
        }
    }

    /// The same rule with its own durability: `Memory` keeps its actions out of the store of
    /// a stateful hub, `Durable` keeps them in it.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    /// The same rule with its own retry policy.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The same rule with a fallback agent for when its agent is unavailable.
    #[must_use]
    pub fn fallback(mut self, agent: impl Into<AgentId>) -> Self {
        self.fallback = Some(agent.into());
        self
    }

    /// The same rule with another sharing policy for requests.
    #[must_use]
    pub fn shared(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }

    /// The same rule, for `subject` only.
    #[must_use]
    pub fn for_subject(mut self, subject: Subject) -> Self {
        self.subject = subject;
        self
    }
}

/// Whose events a rule reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Subject {
    /// Everyone's.
    #[default]
    Anyone,
    /// One user's.
    User(UserId),
    /// Those of the members of a group.
    Group(GroupId),
    /// Those of the users of a tenant.
    Tenant(TenantId),
}

impl Subject {
    /// Whether the rule applies to events published for `principal`.
    pub fn matches(&self, principal: &Principal) -> bool {
        match self {
            Self::Anyone => true,
            Self::User(user) => principal.user == *user,
            Self::Group(group) => principal.is_in(group),
            Self::Tenant(tenant) => principal.tenant.as_ref() == Some(tenant),
        }
    }
}

/// The REST shape of a rule: what `POST /v1/rules` and `[[rules]]` in `atamo.toml` read, and
/// (with the `openapi` feature) the OpenAPI schema of that body.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Rule))]
#[serde(deny_unknown_fields)]
struct RuleRepr {
    /// The rule's id, unique among rules: letters, digits, `.`, `-`, `_`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    id: RuleId,
    /// The event type it reacts to.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    event_type: EventType,
    /// Only this user's events (at most one of `user`, `group`, `tenant`; none: anyone's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    user: Option<UserId>,
    /// Only the events of this group's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    group: Option<GroupId>,
    /// Only the events of this tenant's users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    tenant: Option<TenantId>,
    /// The agent to send the action to.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    agent: AgentId,
    /// The action type to ask for; the agent must handle it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    action: ActionType,
    /// The action's payload: any JSON, with field references such as
    /// `"{{payload.order.id}}"` or `"{{user}}"`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    template: Value,
    /// For requests: who may share one agent call (default `user`).
    #[serde(default, skip_serializing_if = "is_default_scope")]
    coalesce: ShareScope,
    /// For requests: how long a result may answer identical requests, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_ttl_ms: Option<CacheTtl>,
    /// How its actions are tried again (overrides the action type's and the agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<RetryPolicy>,
    /// Where its actions go while the agent is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    fallback: Option<AgentId>,
    /// Whether its actions are kept in the store (default: the event type's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    durability: Option<Durability>,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Rule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <RuleRepr as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Rule {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <RuleRepr as utoipa::ToSchema>::schemas(schemas);
    }
}

fn is_default_scope(scope: &ShareScope) -> bool {
    *scope == ShareScope::default()
}

/// Why a rule's JSON names more than one subject.
#[derive(Debug, thiserror::Error)]
#[error("rule `{rule}` names {}; a rule has at most one of `user`, `group` and `tenant`", names.join(" and "))]
struct SubjectConflict {
    rule: RuleId,
    names: Vec<&'static str>,
}

impl TryFrom<RuleRepr> for Rule {
    type Error = SubjectConflict;

    fn try_from(repr: RuleRepr) -> Result<Self, Self::Error> {
        let subject = match (repr.user, repr.group, repr.tenant) {
            (None, None, None) => Subject::Anyone,
            (Some(user), None, None) => Subject::User(user),
            (None, Some(group), None) => Subject::Group(group),
            (None, None, Some(tenant)) => Subject::Tenant(tenant),
            (user, group, tenant) => {
                let names = [
                    (user.is_some(), "`user`"),
                    (group.is_some(), "`group`"),
                    (tenant.is_some(), "`tenant`"),
                ]
                .into_iter()
                .filter_map(|(set, name)| set.then_some(name))
                .collect();
                return Err(SubjectConflict {
                    rule: repr.id,
                    names,
                });
            }
        };
        Ok(Self {
            id: repr.id,
            event_type: repr.event_type,
            subject,
            agent: repr.agent,
            action: repr.action,
            template: repr.template,
            sharing: Sharing {
                scope: repr.coalesce,
                result_ttl: repr.cache_ttl_ms,
            },
            retry: repr.retry,
            fallback: repr.fallback,
            durability: repr.durability,
        })
    }
}

impl From<Rule> for RuleRepr {
    fn from(rule: Rule) -> Self {
        let (mut user, mut group, mut tenant) = (None, None, None);
        match rule.subject {
            Subject::Anyone => {}
            Subject::User(id) => user = Some(id),
            Subject::Group(id) => group = Some(id),
            Subject::Tenant(id) => tenant = Some(id),
        }
        Self {
            id: rule.id,
            event_type: rule.event_type,
            user,
            group,
            tenant,
            agent: rule.agent,
            action: rule.action,
            template: rule.template,
            coalesce: rule.sharing.scope,
            cache_ttl_ms: rule.sharing.result_ttl,
            retry: rule.retry,
            fallback: rule.fallback,
            durability: rule.durability,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> Principal {
        Principal::user("alice").in_group("sales").in_tenant("acme")
    }

    #[test]
    fn subjects_match_user_group_tenant_and_anyone() {
        let p = alice();
        assert!(Subject::Anyone.matches(&p));
        assert!(Subject::User("alice".into()).matches(&p));
        assert!(!Subject::User("bob".into()).matches(&p));
        assert!(Subject::Group("sales".into()).matches(&p));
        assert!(!Subject::Group("ops".into()).matches(&p));
        assert!(Subject::Tenant("acme".into()).matches(&p));
    }

    #[test]
    fn tenant_rule_does_not_match_another_tenant_or_none() {
        let rule = Subject::Tenant("acme".into());
        assert!(!rule.matches(&Principal::user("carol").in_tenant("globex")));
        assert!(!rule.matches(&Principal::user("carol")));
    }

    #[test]
    fn rule_json_round_trips() {
        let value = json!({
            "id": "r1",
            "event_type": "order.created",
            "tenant": "acme",
            "agent": "mailer",
            "action": "email.send",
            "template": {"to": "{{payload.email}}"},
        });
        let rule: Rule = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(
            rule,
            Rule::new(
                "r1",
                "order.created",
                "mailer",
                "email.send",
                json!({"to": "{{payload.email}}"})
            )
            .for_subject(Subject::Tenant("acme".into()))
        );
        assert_eq!(serde_json::to_value(&rule).unwrap(), value);

        let anyone = Rule::new("r2", "e", "a", "x", json!({}));
        let out = serde_json::to_value(&anyone).unwrap();
        assert_eq!(
            out,
            json!({"id": "r2", "event_type": "e", "agent": "a", "action": "x", "template": {}})
        );
        assert_eq!(serde_json::from_value::<Rule>(out).unwrap(), anyone);
    }

    #[test]
    fn two_subjects_are_rejected_by_name() {
        let err = serde_json::from_value::<Rule>(json!({
            "id": "r1", "event_type": "e", "user": "alice", "group": "sales", "tenant": "acme",
            "agent": "a", "action": "x", "template": {},
        }))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rule `r1` names `user` and `group` and `tenant`"),
            "{err}"
        );

        let err = serde_json::from_value::<Rule>(json!({
            "id": "r1", "event_type": "e", "group": "sales", "tenant": "acme",
            "agent": "a", "action": "x", "template": {},
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("names `group` and `tenant`"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_names_are_rejected() {
        let err = serde_json::from_value::<Rule>(json!({
            "id": "r1", "event_type": "e", "agent": "a", "action": "x", "template": {},
            "priority": 3,
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `priority`"), "{err}");

        let err = serde_json::from_value::<Rule>(json!({
            "id": "r1", "event_type": "e", "agent": "", "action": "x", "template": {},
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("agent id is empty"), "{err}");

        let err = serde_json::from_value::<Rule>(json!({
            "id": "r1", "event_type": "e", "agent": "a", "action": "x",
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing field `template`"), "{err}");
    }
}
