//! The rule book: the default [`RuleProvider`], holding rules in a swappable snapshot.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use atamo_core::ids::{EventType, NameError, RuleId};
use atamo_core::message::{Event, Principal};
use atamo_core::rules::{PlannedAction, Proposal, RuleError, RuleInfo, RuleProvider};
use serde_json::Value;

use crate::rule::{Rule, Subject};
use crate::template::{ActionTemplate, TemplateError};

/// One thing wrong with a rule set. [`RuleSetError`] lists every one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleProblem {
    /// Two rules share an id.
    #[error("rule `{rule}` is defined more than once")]
    DuplicateId {
        /// The id.
        rule: RuleId,
    },
    /// A rule's template does not compile.
    #[error("rule `{rule}`: {source}")]
    Template {
        /// The rule.
        rule: RuleId,
        /// Where in the template and what is wrong.
        #[source]
        source: TemplateError,
    },
    /// A rule holds a name (its id, event type, agent, action or subject) that is not valid.
    #[error("rule `{rule}`: {source}")]
    InvalidName {
        /// The rule.
        rule: RuleId,
        /// Which name and what is wrong with it.
        #[source]
        source: NameError,
    },
}

/// Why rules were not accepted. Nothing changes when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join(.problems))]
pub struct RuleSetError {
    /// Every problem found, in rule order.
    pub problems: Vec<RuleProblem>,
}

fn join(problems: &[RuleProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A rule with its template compiled.
#[derive(Debug)]
pub struct CompiledRule {
    rule: Rule,
    template: ActionTemplate,
}

impl CompiledRule {
    /// Checks the rule's names and compiles its template, pushing every problem onto `problems`.
    fn compile(rule: Rule, problems: &mut Vec<RuleProblem>) -> Option<Self> {
        let before = problems.len();
        for name in names(&rule) {
            if let Err(source) = name {
                problems.push(RuleProblem::InvalidName {
                    rule: rule.id.clone(),
                    source,
                });
            }
        }
        let template = match ActionTemplate::compile(&rule.template) {
            Ok(template) => Some(template),
            Err(source) => {
                problems.push(RuleProblem::Template {
                    rule: rule.id.clone(),
                    source,
                });
                None
            }
        };
        match template {
            Some(template) if problems.len() == before => Some(Self { rule, template }),
            _ => None,
        }
    }

    /// The rule as written.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// Its compiled template.
    pub fn template(&self) -> &ActionTemplate {
        &self.template
    }

    /// The rule's proposal for `event`, or `None` when the subject does not match `principal`.
    /// The event type is not checked.
    fn propose(&self, event: &Event, principal: &Principal) -> Option<Proposal> {
        if !self.rule.subject.matches(principal) {
            return None;
        }
        let id = self.rule.id.clone();
        Some(match self.template.render_for(event, principal) {
            Ok(payload) => Proposal::action(
                id,
                PlannedAction {
                    agent: self.rule.agent.clone(),
                    action_type: self.rule.action.clone(),
                    payload,
                    sharing: self.rule.sharing,
                    retry: self.rule.retry,
                    fallback: self.rule.fallback.clone(),
                    durability: self.rule.durability,
                },
            ),
            Err(missing) => Proposal::failed(
                id.clone(),
                RuleError::MissingField {
                    rule: id,
                    field: missing.field,
                },
            ),
        })
    }
}

fn names(rule: &Rule) -> [Result<(), NameError>; 5] {
    [
        rule.id.validate(),
        rule.event_type.validate(),
        rule.agent.validate(),
        rule.action.validate(),
        match &rule.subject {
            Subject::Anyone => Ok(()),
            Subject::User(id) => id.validate(),
            Subject::Group(id) => id.validate(),
            Subject::Tenant(id) => id.validate(),
        },
    ]
}

/// An immutable set of compiled rules, indexed by event type. A [`RuleBook`] swaps whole sets.
#[derive(Debug, Default)]
pub struct RuleSet {
    /// Every rule, in insertion order.
    rules: Vec<Arc<CompiledRule>>,
    /// The same rules by event type, each list in insertion order.
    by_type: HashMap<EventType, Vec<Arc<CompiledRule>>>,
}

impl RuleSet {
    /// Checks and compiles `rules`, reporting every problem: duplicate ids, invalid names,
    /// templates that do not compile.
    pub fn new(rules: Vec<Rule>) -> Result<Self, RuleSetError> {
        let mut problems = Vec::new();
        let mut seen = HashSet::with_capacity(rules.len());
        let mut reported = HashSet::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            if !seen.insert(rule.id.clone()) {
                if reported.insert(rule.id.clone()) {
                    problems.push(RuleProblem::DuplicateId { rule: rule.id });
                }
                continue;
            }
            if let Some(rule) = CompiledRule::compile(rule, &mut problems) {
                compiled.push(Arc::new(rule));
            }
        }
        if problems.is_empty() {
            Ok(Self::from_compiled(compiled))
        } else {
            Err(RuleSetError { problems })
        }
    }

    fn from_compiled(rules: Vec<Arc<CompiledRule>>) -> Self {
        let mut by_type: HashMap<EventType, Vec<Arc<CompiledRule>>> = HashMap::new();
        for rule in &rules {
            by_type
                .entry(rule.rule.event_type.clone())
                .or_default()
                .push(Arc::clone(rule));
        }
        Self { rules, by_type }
    }

    /// How many rules the set holds.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set holds no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule with this id.
    pub fn get(&self, id: &RuleId) -> Option<&Rule> {
        self.position(id).map(|i| &self.rules[i].rule)
    }

    /// Every rule, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|rule| &rule.rule)
    }

    /// The rules for one event type, in insertion order.
    pub fn for_event_type(&self, event_type: &EventType) -> &[Arc<CompiledRule>] {
        self.by_type.get(event_type).map_or(&[], Vec::as_slice)
    }

    /// Pushes a proposal for each rule of the event's type whose subject matches `principal`.
    pub fn evaluate(&self, event: &Event, principal: &Principal, out: &mut Vec<Proposal>) {
        out.extend(
            self.for_event_type(event.event_type())
                .iter()
                .filter_map(|rule| rule.propose(event, principal)),
        );
    }

    fn position(&self, id: &RuleId) -> Option<usize> {
        self.rules.iter().position(|rule| rule.rule.id == *id)
    }

    /// Compiles one rule on its own.
    fn compile_one(rule: Rule) -> Result<Arc<CompiledRule>, RuleSetError> {
        let mut problems = Vec::new();
        match CompiledRule::compile(rule, &mut problems) {
            Some(rule) => Ok(Arc::new(rule)),
            None => Err(RuleSetError { problems }),
        }
    }
}

/// The default rule provider: rules linking (event type, user | group | tenant | anyone) to
/// (agent, action type, template).
///
/// A cheap-to-clone handle: every clone sees and changes the same rules. Reads never wait: each
/// [`evaluate`](RuleProvider::evaluate) loads the current [`RuleSet`] once, so an event sees
/// either the rules before a change or after it, never a mix. Changes build a new set and swap it
/// in; they are applied one at a time.
#[derive(Clone, Default)]
pub struct RuleBook {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    current: ArcSwap<RuleSet>,
    /// Serializes changes so that none is lost between load and swap.
    write: Mutex<()>,
}

impl RuleBook {
    /// An empty rule book.
    pub fn new() -> Self {
        Self::default()
    }

    /// A rule book holding `rules`, or every problem with them.
    pub fn with_rules(rules: Vec<Rule>) -> Result<Self, RuleSetError> {
        let set = RuleSet::new(rules)?;
        Ok(Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(set),
                write: Mutex::new(()),
            }),
        })
    }

    /// The current rules, as one consistent snapshot.
    pub fn snapshot(&self) -> Arc<RuleSet> {
        self.inner.current.load_full()
    }

    /// Adds a rule at the end. Fails if its id is taken or it does not compile.
    pub fn insert(&self, rule: Rule) -> Result<(), RuleSetError> {
        let _guard = self.lock();
        let current = self.inner.current.load();
        if current.position(&rule.id).is_some() {
            return Err(RuleSetError {
                problems: vec![RuleProblem::DuplicateId { rule: rule.id }],
            });
        }
        let compiled = RuleSet::compile_one(rule)?;
        let mut rules = current.rules.clone();
        rules.push(compiled);
        self.inner
            .current
            .store(Arc::new(RuleSet::from_compiled(rules)));
        Ok(())
    }

    /// Adds a rule, or replaces the one with the same id in its place. Returns the rule it
    /// replaced.
    pub fn upsert(&self, rule: Rule) -> Result<Option<Rule>, RuleSetError> {
        let _guard = self.lock();
        let current = self.inner.current.load();
        let position = current.position(&rule.id);
        let compiled = RuleSet::compile_one(rule)?;
        let mut rules = current.rules.clone();
        let old = match position {
            Some(i) => Some(std::mem::replace(&mut rules[i], compiled).rule.clone()),
            None => {
                rules.push(compiled);
                None
            }
        };
        self.inner
            .current
            .store(Arc::new(RuleSet::from_compiled(rules)));
        Ok(old)
    }

    /// Removes the rule with this id and returns it.
    pub fn remove(&self, id: &RuleId) -> Option<Rule> {
        let _guard = self.lock();
        let current = self.inner.current.load();
        let position = current.position(id)?;
        let mut rules = current.rules.clone();
        let removed = rules.remove(position);
        self.inner
            .current
            .store(Arc::new(RuleSet::from_compiled(rules)));
        Some(removed.rule.clone())
    }

    /// Replaces every rule at once. All of `rules` are checked first; on any problem nothing
    /// changes and every problem is reported.
    pub fn replace_all(&self, rules: Vec<Rule>) -> Result<(), RuleSetError> {
        let set = RuleSet::new(rules)?;
        let _guard = self.lock();
        self.inner.current.store(Arc::new(set));
        Ok(())
    }

    /// The rule with this id.
    pub fn get(&self, id: &RuleId) -> Option<Rule> {
        self.inner.current.load().get(id).cloned()
    }

    /// Every rule, in insertion order.
    pub fn list(&self) -> Vec<Rule> {
        self.inner.current.load().iter().cloned().collect()
    }

    /// How many rules the book holds.
    pub fn len(&self) -> usize {
        self.inner.current.load().len()
    }

    /// Whether the book holds no rules.
    pub fn is_empty(&self) -> bool {
        self.inner.current.load().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic while it was held cannot leave anything broken.
        self.inner
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl RuleProvider for RuleBook {
    fn evaluate(&self, event: &Event, principal: &Principal, out: &mut Vec<Proposal>) {
        self.inner.current.load().evaluate(event, principal, out);
    }

    fn rules(&self) -> Vec<RuleInfo> {
        self.inner
            .current
            .load()
            .iter()
            .map(|rule| RuleInfo {
                id: rule.id.clone(),
                event_type: Some(rule.event_type.clone()),
                definition: serde_json::to_value(rule).unwrap_or(Value::Null),
            })
            .collect()
    }
}

impl fmt::Debug for RuleBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleBook")
            .field("rules", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
