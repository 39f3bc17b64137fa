//! The circuit breaker: opens when too many of the agent's recent calls fail, lets one probe
//! through after a cool-down, and closes again when the probe succeeds (see [`BreakerPolicy`]).

use tokio::time::Instant;

use crate::ids::ActionId;
use crate::policy::BreakerPolicy;

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Circuit {
    Closed,
    Open { until: Instant },
    HalfOpen { probe: Option<ActionId> },
}

/// A circuit breaker over the agent's recent calls (see [`BreakerPolicy`]).
pub(super) struct Breaker {
    policy: BreakerPolicy,
    /// The last `window` outcomes, true for a failure.
    window: std::collections::VecDeque<bool>,
    failures: usize,
    consecutive: u32,
    circuit: Circuit,
}

impl Breaker {
    pub(super) fn new(policy: BreakerPolicy) -> Self {
        Self {
            window: std::collections::VecDeque::with_capacity(policy.window.max(1)),
            policy,
            failures: 0,
            consecutive: 0,
            circuit: Circuit::Closed,
        }
    }

    /// Records an outcome; returns why the circuit should open, if it should.
    fn record(&mut self, failed: bool) -> Option<String> {
        if self.window.len() >= self.policy.window.max(1) && self.window.pop_front() == Some(true) {
            self.failures -= 1;
        }
        self.window.push_back(failed);
        if failed {
            self.failures += 1;
            self.consecutive += 1;
        } else {
            self.consecutive = 0;
        }
        if !failed {
            return None;
        }
        if self.policy.consecutive_failures > 0
            && self.consecutive >= self.policy.consecutive_failures
        {
            return Some(format!("{} failures in a row", self.consecutive));
        }
        let n = self.window.len();
        if n >= self.policy.min_calls.max(1)
            && self.failures as f64 / n as f64 >= self.policy.failure_ratio
        {
            return Some(format!("{} of the last {n} calls failed", self.failures));
        }
        None
    }

    fn reset(&mut self) {
        self.window.clear();
        self.failures = 0;
        self.consecutive = 0;
    }

    /// Whether a call may start now. In half-open state the first call asking becomes the
    /// probe, and no other is let through until it has ended.
    pub(super) fn admits(&mut self, action: ActionId) -> bool {
        match self.circuit {
            Circuit::Closed => true,
            Circuit::Open { .. } | Circuit::HalfOpen { probe: Some(_) } => false,
            Circuit::HalfOpen { probe: None } => {
                self.circuit = Circuit::HalfOpen {
                    probe: Some(action),
                };
                true
            }
        }
    }

    /// Until when the circuit stays open, if it is open.
    pub(super) fn open_until(&self) -> Option<Instant> {
        match self.circuit {
            Circuit::Open { until } => Some(until),
            _ => None,
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.circuit == Circuit::Closed
    }

    /// Opens the circuit for the cool-down.
    pub(super) fn open(&mut self) {
        let now = Instant::now();
        self.circuit = Circuit::Open {
            until: now.checked_add(self.policy.cool_down.get()).unwrap_or(now),
        };
    }

    /// The cool-down has passed: the next call probes.
    pub(super) fn half_open(&mut self) {
        self.circuit = Circuit::HalfOpen { probe: None };
    }

    /// Whether `action` is the half-open circuit's probe call.
    pub(super) fn is_probe(&self, action: ActionId) -> bool {
        self.circuit
            == (Circuit::HalfOpen {
                probe: Some(action),
            })
    }

    /// The probe call was cancelled: it told nothing, so the next call probes.
    pub(super) fn probe_cancelled(&mut self, action: ActionId) {
        if self.is_probe(action) {
            self.circuit = Circuit::HalfOpen { probe: None };
        }
    }

    /// Counts a health probe's outcome while the circuit is closed; returns why the circuit
    /// should open, if it should.
    pub(super) fn record_probe(&mut self, failed: bool) -> Option<String> {
        self.record(failed)
    }

    /// Judges a call's outcome: returns why the circuit should open, if it should. A
    /// successful probe call closes it; calls started before it opened decide nothing.
    pub(super) fn judge(&mut self, action: ActionId, failed: bool) -> Option<String> {
        match self.circuit {
            Circuit::HalfOpen { probe: Some(p) } if p == action => {
                if failed {
                    Some("the probe call failed".to_owned())
                } else {
                    self.circuit = Circuit::Closed;
                    self.reset();
                    None
                }
            }
            Circuit::Closed => self.record(failed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Breaker, BreakerPolicy};

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            window: 10,
            min_calls: 6,
            failure_ratio: 0.5,
            consecutive_failures: 0,
            ..BreakerPolicy::default()
        }
    }

    #[test]
    fn the_failure_ratio_counts_only_once_the_window_has_enough_calls() {
        let mut b = Breaker::new(policy());
        // 3 failures in 5 calls: over the ratio, but fewer calls than the minimum.
        for failed in [true, false, true, false, true] {
            assert_eq!(b.record(failed), None);
        }
        // The sixth call makes 3 of 6: the ratio is reached.
        assert_eq!(
            b.record(false),
            None,
            "3 of 6 failed, but this call succeeded"
        );
        assert_eq!(
            b.record(true).as_deref(),
            Some("4 of the last 7 calls failed")
        );
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let mut b = Breaker::new(policy());
        for _ in 0..4 {
            assert_eq!(b.record(true), None, "too few calls yet");
        }
        for _ in 0..10 {
            assert_eq!(b.record(false), None);
        }
        // The four failures have left the 10-call window: one new failure is 1 in 10.
        assert_eq!(b.record(true), None);
        assert_eq!((b.failures, b.window.len()), (1, 10));
    }

    #[test]
    fn consecutive_failures_open_it_whatever_the_window_says() {
        let mut b = Breaker::new(BreakerPolicy {
            consecutive_failures: 3,
            ..policy()
        });
        assert_eq!(b.record(true), None);
        assert_eq!(b.record(true), None);
        assert_eq!(b.record(true).as_deref(), Some("3 failures in a row"));
    }
}
