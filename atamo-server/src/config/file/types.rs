//! `[[event_types]]` and `[[action_types]]`: the types registered at start.

use std::collections::HashMap;

use super::checker::Checker;
use super::spans::{child_span, join, Value};
use crate::model::{ActionTypeBody, EventTypeBody};

impl<'i> Checker<'_> {
    pub(super) fn event_types(&mut self, path: &str, v: &Value<'i>) -> Vec<EventTypeBody> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (p, entry) in self.array(path, v) {
            let (body, reported) = self.get_all::<EventTypeBody>(&p, entry);
            let Some(body) = body else {
                continue;
            };
            if let Err(problems) = body.to_def() {
                self.problems(&p, entry, problems, &reported);
            }
            if !reported.is_empty() {
                continue;
            }
            let at = child_span(entry, "name");
            self.unique(&mut seen, "event type", &body.name, &at, &join(&p, "name"));
            out.push(body);
        }
        out
    }

    pub(super) fn action_types(&mut self, path: &str, v: &Value<'i>) -> Vec<ActionTypeBody> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (p, entry) in self.array(path, v) {
            let (body, reported) = self.get_all::<ActionTypeBody>(&p, entry);
            let Some(body) = body else {
                continue;
            };
            if let Err(problems) = body.to_def() {
                self.problems(&p, entry, problems, &reported);
            }
            if !reported.is_empty() {
                continue;
            }
            let at = child_span(entry, "name");
            self.unique(&mut seen, "action type", &body.name, &at, &join(&p, "name"));
            out.push(body);
        }
        out
    }
}
