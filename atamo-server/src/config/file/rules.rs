//! `[[rules]]`: the rules loaded at start, and how they fit the agents and event types of
//! the same file.

use std::collections::HashMap;

use atamo_config::{RuleProblem, RuleSet};
use atamo_core::failure::{EXHAUSTED_EVENT, STATUS_CHANGED_EVENT};

use super::checker::Checker;
use super::spans::{child_span, descend, join, list, Value};
use crate::model::{AgentDef, EventTypeBody};

/// Event types the hub registers itself; rules may name them without declaring them.
const BUILTIN_EVENT_TYPES: [&str; 3] = [
    EXHAUSTED_EVENT,
    STATUS_CHANGED_EVENT,
    atamo_core::alerts::ALERT_EVENT_TYPE,
];

/// A rule as read, with where it was written.
pub(super) struct RuleEntry<'v, 'i> {
    pub(super) path: String,
    pub(super) value: &'v Value<'i>,
    pub(super) rule: atamo_config::Rule,
}

impl<'i> Checker<'_> {
    pub(super) fn rules<'v>(&mut self, path: &str, v: &'v Value<'i>) -> Vec<RuleEntry<'v, 'i>> {
        let mut out = Vec::new();
        for (p, entry) in self.array(path, v) {
            let (rule, reported) = self.get_all::<atamo_config::Rule>(&p, entry);
            if let (Some(rule), true) = (rule, reported.is_empty()) {
                out.push(RuleEntry {
                    path: p,
                    value: entry,
                    rule,
                });
            }
        }
        let Err(e) = RuleSet::new(out.iter().map(|r| r.rule.clone()).collect()) else {
            return out;
        };
        for problem in e.problems {
            let id = match &problem {
                RuleProblem::DuplicateId { rule }
                | RuleProblem::Template { rule, .. }
                | RuleProblem::InvalidName { rule, .. } => rule.clone(),
                _ => {
                    let span = v.span();
                    self.error(span, path, problem.to_string());
                    continue;
                }
            };
            let mut same = out.iter().filter(|r| r.rule.id == id);
            let Some(first) = same.next() else {
                continue;
            };
            match &problem {
                RuleProblem::DuplicateId { .. } => {
                    let first_line = self.line_of(&child_span(first.value, "id"));
                    let later: Vec<_> = same
                        .map(|r| (child_span(r.value, "id"), join(&r.path, "id")))
                        .collect();
                    for (span, p) in later {
                        self.error(
                            span,
                            &p,
                            format!("rule `{id}` is defined more than once (first at line {first_line})"),
                        );
                    }
                }
                RuleProblem::Template { source, .. } => {
                    let template = first
                        .value
                        .get_ref()
                        .as_table()
                        .and_then(|t| t.get("template"));
                    let (span, p) = match template {
                        Some(t) => {
                            let (at, inner) = descend(t, source.path());
                            (at.span(), format!("{}.template{inner}", first.path))
                        }
                        None => (first.value.span(), first.path.clone()),
                    };
                    self.error(span, &p, source.to_string());
                }
                RuleProblem::InvalidName { source, .. } => {
                    let message = source.to_string();
                    let key = [
                        ("rule id", "id"),
                        ("event type", "event_type"),
                        ("agent id", "agent"),
                        ("action type", "action"),
                        ("user id", "user"),
                        ("group id", "group"),
                        ("tenant id", "tenant"),
                    ]
                    .into_iter()
                    .find_map(|(kind, key)| message.starts_with(kind).then_some(key));
                    let (span, p) = match key {
                        Some(key) => (child_span(first.value, key), join(&first.path, key)),
                        None => (first.value.span(), first.path.clone()),
                    };
                    self.error(span, &p, message);
                }
                _ => {}
            }
        }
        out
    }

    /// Rules against the agents and event types of the file. A name the file does not
    /// declare may be registered through the API later: a warning. An agent the file
    /// declares that does not handle the rule's action: an error.
    pub(super) fn cross_check(
        &mut self,
        event_types: &[EventTypeBody],
        agents: &[(String, &Value<'i>, AgentDef)],
        rules: &[RuleEntry<'_, 'i>],
    ) {
        let declared: HashMap<&str, &AgentDef> =
            agents.iter().map(|(_, _, a)| (a.id.as_str(), a)).collect();
        for r in rules {
            let rule = &r.rule;
            match declared.get(rule.agent.as_str()) {
                None => self.warn(
                    child_span(r.value, "agent"),
                    &join(&r.path, "agent"),
                    format!(
                        "agent `{}` is not declared in this file; the rule acts once it is \
                         registered through the API",
                        rule.agent
                    ),
                ),
                Some(agent) => {
                    let handles = agent.handled_types();
                    if !handles.iter().any(|h| h == rule.action.as_str()) {
                        self.error(
                            child_span(r.value, "action"),
                            &join(&r.path, "action"),
                            format!(
                                "agent `{}` does not handle `{}` (it handles {})",
                                agent.id,
                                rule.action,
                                list(&handles.iter().map(String::as_str).collect::<Vec<_>>())
                            ),
                        );
                    }
                }
            }
            if let Some(fallback) = &rule.fallback {
                if !declared.contains_key(fallback.as_str()) {
                    self.warn(
                        child_span(r.value, "fallback"),
                        &join(&r.path, "fallback"),
                        format!(
                            "agent `{fallback}` is not declared in this file; it must be \
                             registered through the API"
                        ),
                    );
                }
            }
            let event_type = rule.event_type.as_str();
            if !BUILTIN_EVENT_TYPES.contains(&event_type)
                && !event_types.iter().any(|t| t.name == event_type)
            {
                self.warn(
                    child_span(r.value, "event_type"),
                    &join(&r.path, "event_type"),
                    format!(
                        "event type `{event_type}` is not declared in this file; the rule \
                         matches once it is registered through the API"
                    ),
                );
            }
        }
    }
}
