//! `[retry]`: the retry policy of actions that have none of their own.

use atamo_core::bounded::{Attempts, Backoff, Jitter, Multiplier, RetryWindow};
use atamo_core::failure::RetryPolicy;

use super::checker::Checker;
use super::spans::{join, Value};

impl<'i> Checker<'_> {
    pub(super) fn retry(&mut self, path: &str, v: &Value<'i>) -> Option<RetryPolicy> {
        let keys = [
            "max_attempts",
            "initial_backoff",
            "max_backoff",
            "multiplier",
            "jitter",
            "max_elapsed",
        ];
        let mut policy = RetryPolicy::default();
        let mut max_backoff_at = None;
        for (key, cv, p) in self.table(path, v, &keys) {
            match key {
                "max_attempts" => {
                    if let Some(n) = self.get::<Attempts>(&p, cv) {
                        policy.max_attempts = n;
                    }
                }
                "initial_backoff" => {
                    if let Some(d) = self.duration(&p, cv, Backoff::new) {
                        policy.initial_backoff = d;
                    }
                }
                "max_backoff" => {
                    if let Some(d) = self.duration(&p, cv, Backoff::new) {
                        policy.max_backoff = d;
                        max_backoff_at = Some((cv.span(), p.clone()));
                    }
                }
                "max_elapsed" => {
                    if let Some(d) = self.duration(&p, cv, RetryWindow::new) {
                        policy.max_elapsed = Some(d);
                    }
                }
                "multiplier" => {
                    if let Some(m) = self.get::<Multiplier>(&p, cv) {
                        policy.multiplier = m;
                    }
                }
                "jitter" => {
                    if let Some(j) = self.get::<Jitter>(&p, cv) {
                        policy.jitter = j;
                    }
                }
                _ => {}
            }
        }
        if let Err(e) = policy.check() {
            let (span, p) = max_backoff_at.unwrap_or_else(|| (v.span(), join(path, "max_backoff")));
            self.error(span, &p, e.to_string());
        }
        Some(policy)
    }
}
