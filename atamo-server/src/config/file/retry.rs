//! `[retry]`: the retry policy of actions that have none of their own.

use atamo_core::failure::RetryPolicy;

use super::checker::Checker;
use super::spans::{join, Value};
use crate::config::units::Dur;

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
                "max_attempts" => match self.get::<u32>(&p, cv) {
                    Some(0) => self.error(cv.span(), &p, "must be at least 1 (the first attempt)"),
                    Some(n) => policy.max_attempts = n,
                    None => {}
                },
                "initial_backoff" => {
                    if let Some(d) = self.get::<Dur>(&p, cv) {
                        policy.initial_backoff = d.0;
                    }
                }
                "max_backoff" => {
                    if let Some(d) = self.get::<Dur>(&p, cv) {
                        policy.max_backoff = d.0;
                        max_backoff_at = Some((cv.span(), p.clone()));
                    }
                }
                "max_elapsed" => {
                    if let Some(d) = self.get::<Dur>(&p, cv) {
                        policy.max_elapsed = Some(d.0);
                    }
                }
                "multiplier" => match self.get::<f64>(&p, cv) {
                    Some(m) if m.is_finite() && m >= 1.0 => policy.multiplier = m,
                    Some(_) => self.error(cv.span(), &p, "must be at least 1.0"),
                    None => {}
                },
                "jitter" => match self.get::<f64>(&p, cv) {
                    Some(j) if (0.0..=1.0).contains(&j) => policy.jitter = j,
                    Some(_) => self.error(cv.span(), &p, "must be from 0.0 to 1.0"),
                    None => {}
                },
                _ => {}
            }
        }
        if policy.max_backoff < policy.initial_backoff {
            let (span, p) = max_backoff_at.unwrap_or_else(|| (v.span(), join(path, "max_backoff")));
            self.error(
                span,
                &p,
                format!(
                    "must not be shorter than initial_backoff ({})",
                    humantime::format_duration(policy.initial_backoff)
                ),
            );
        }
        Some(policy)
    }
}
