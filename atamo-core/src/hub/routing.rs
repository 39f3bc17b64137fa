//! The routing snapshot (what is registered) and the planning step shared by the router and
//! dry runs.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use super::definitions::{ActionTypeDef, EventTypeDef};
use super::dispatch::Dispatch;
use crate::agent::AgentInfo;
use crate::ids::{ActionType, AgentId, EventType, ProviderId, RuleId};
use crate::message::{Event, Problem};
use crate::outcome::panic_message;
use crate::rules::{PlannedAction, Proposal, ProviderScope, RuleError, RuleProvider};
use crate::telemetry::SuppressReason;

/// A registered agent as the router sees it.
pub(crate) struct AgentEntry {
    pub(crate) info: Arc<AgentInfo>,
    pub(crate) agent: Arc<dyn crate::agent::Agent>,
    pub(crate) tx: mpsc::Sender<Dispatch>,
    pub(crate) stats: Arc<AgentStats>,
}

/// Counters a worker keeps for the health snapshot.
#[derive(Default)]
pub(crate) struct AgentStats {
    pub(crate) in_flight: AtomicUsize,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) status: crate::failure::StatusCell,
}

pub(crate) struct ProviderEntry {
    pub(crate) id: ProviderId,
    pub(crate) provider: Arc<dyn RuleProvider>,
    pub(crate) scope: ProviderScope,
}

/// Everything registered, swapped atomically as a whole: an event is routed against one
/// snapshot, never a mix of two.
#[derive(Clone, Default)]
pub(crate) struct Routing {
    pub(crate) event_types: HashMap<EventType, Arc<EventTypeDef>>,
    pub(crate) action_types: BTreeMap<ActionType, ActionTypeDef>,
    pub(crate) agents: HashMap<AgentId, Arc<AgentEntry>>,
    /// In registration order.
    pub(crate) providers: Vec<Arc<ProviderEntry>>,
    // Derived by `reindex`: providers for each event type named by a scope, and for all others.
    by_type: HashMap<EventType, Vec<Arc<ProviderEntry>>>,
    global: Vec<Arc<ProviderEntry>>,
}

impl Routing {
    pub(crate) fn reindex(&mut self) {
        self.global = self
            .providers
            .iter()
            .filter(|p| p.scope == ProviderScope::AllEvents)
            .cloned()
            .collect();
        let mut by_type: HashMap<EventType, Vec<Arc<ProviderEntry>>> = HashMap::new();
        for p in &self.providers {
            if let ProviderScope::EventTypes(types) = &p.scope {
                for t in types {
                    by_type.entry(t.clone()).or_default();
                }
            }
        }
        for (t, list) in by_type.iter_mut() {
            *list = self
                .providers
                .iter()
                .filter(|p| match &p.scope {
                    ProviderScope::AllEvents => true,
                    ProviderScope::EventTypes(types) => types.contains(t),
                })
                .cloned()
                .collect();
        }
        self.by_type = by_type;
    }

    pub(crate) fn providers_for(&self, t: &EventType) -> &[Arc<ProviderEntry>] {
        self.by_type.get(t).unwrap_or(&self.global)
    }

    /// Every problem that would make the hub reject `event` (none: it is accepted).
    pub(crate) fn check(&self, event: &Event) -> Vec<Problem> {
        let mut problems = Vec::new();
        let p = event.principal();
        let names = std::iter::once(p.user.validate())
            .chain(p.groups.iter().map(|g| g.validate()))
            .chain(p.tenant.iter().map(|t| t.validate()));
        for r in names {
            if let Err(e) = r {
                problems.push(Problem::BadName(e.to_string()));
            }
        }
        if !event.payload().is_object() {
            problems.push(Problem::PayloadNotObject);
        }
        match self.event_types.get(event.event_type()) {
            None => problems.push(Problem::UnknownEventType {
                event_type: event.event_type().clone(),
            }),
            Some(def) => {
                for field in def.template.missing(event.payload()) {
                    problems.push(Problem::MissingField {
                        field: field.clone(),
                    });
                }
            }
        }
        problems
    }

    /// Asks every applicable provider about `event` and checks each proposal. The result is
    /// one outcome per proposal, in provider then rule order.
    pub(crate) fn plan(&self, event: &Event, scratch: &mut Vec<Proposal>, out: &mut Vec<Planned>) {
        for p in self.providers_for(event.event_type()) {
            scratch.clear();
            let evaluated = std::panic::catch_unwind(AssertUnwindSafe(|| {
                p.provider.evaluate(event, event.principal(), scratch)
            }));
            if let Err(panic) = evaluated {
                out.push(Planned {
                    outcome: RuleOutcome {
                        provider: p.id.clone(),
                        rule: None,
                        verdict: Verdict::Failed(RuleError::ProviderPanicked {
                            provider: p.id.clone(),
                            message: panic_message(&*panic),
                        }),
                    },
                    entry: None,
                });
                continue;
            }
            for proposal in scratch.drain(..) {
                let planned = self.check_proposal(event, &p.id, proposal, out);
                out.push(planned);
            }
        }
    }

    fn check_proposal(
        &self,
        event: &Event,
        provider: &ProviderId,
        proposal: Proposal,
        earlier: &[Planned],
    ) -> Planned {
        let rule = proposal.rule;
        let planned = |verdict, entry| Planned {
            outcome: RuleOutcome {
                provider: provider.clone(),
                rule: Some(rule.clone()),
                verdict,
            },
            entry,
        };
        let action = match proposal.outcome {
            Ok(action) => action,
            Err(e) => return planned(Verdict::Failed(e), None),
        };
        let Some(entry) = self.agents.get(&action.agent) else {
            let e = RuleError::UnknownAgent {
                rule: rule.clone(),
                agent: action.agent,
            };
            return planned(Verdict::Failed(e), None);
        };
        if !entry.info.handles.contains(&action.action_type) {
            let e = RuleError::UnsupportedAction {
                rule: rule.clone(),
                agent: action.agent,
                action_type: action.action_type,
            };
            return planned(Verdict::Failed(e), None);
        }
        let missing: Vec<_> = entry
            .info
            .action_template
            .missing(&action.payload)
            .cloned()
            .collect();
        if !missing.is_empty() {
            let e = RuleError::ActionTemplate {
                rule: rule.clone(),
                agent: action.agent,
                missing,
            };
            return planned(Verdict::Failed(e), None);
        }
        if event.origin().is_some_and(|o| o.agent == action.agent) {
            let v = Verdict::Suppressed {
                agent: action.agent,
                reason: SuppressReason::OwnFollowUp,
            };
            return planned(v, None);
        }
        let same = earlier.iter().position(|p| match &p.outcome.verdict {
            Verdict::Dispatch(a) => {
                a.agent == action.agent
                    && a.action_type == action.action_type
                    && (Arc::ptr_eq(&a.payload, &action.payload) || a.payload == action.payload)
            }
            _ => false,
        });
        if let Some(into) = same {
            let v = Verdict::Merged {
                agent: action.agent,
                action_type: action.action_type,
                into,
            };
            return planned(v, None);
        }
        let entry = Some(entry.clone());
        planned(Verdict::Dispatch(action), entry)
    }
}

/// A planned outcome with the agent it goes to (for dispatches).
pub(crate) struct Planned {
    pub(crate) outcome: RuleOutcome,
    pub(crate) entry: Option<Arc<AgentEntry>>,
}

/// What became of one rule's proposal for an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    /// The provider that was asked.
    pub provider: ProviderId,
    /// The rule, when the provider got as far as naming one.
    pub rule: Option<RuleId>,
    /// What the hub does with it.
    pub verdict: Verdict,
}

/// What the hub does with a rule's proposal.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// A new action is sent to the agent.
    Dispatch(PlannedAction),
    /// Identical to an earlier outcome's action (by index in the same list): one call serves both.
    Merged {
        /// The agent.
        agent: AgentId,
        /// The action type.
        action_type: ActionType,
        /// Index of the outcome whose action this one joins.
        into: usize,
    },
    /// Dropped on purpose.
    Suppressed {
        /// The agent it named.
        agent: AgentId,
        /// Why.
        reason: SuppressReason,
    },
    /// The rule matched but produced no action.
    Failed(RuleError),
}
