//! Small helpers on times and numbers.

use std::sync::Mutex;
use std::time::Duration;

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Whole seconds of a window, rounded up, at least 1.
pub(super) fn window_secs(w: Duration) -> u64 {
    (w.as_secs() + u64::from(w.subsec_nanos() > 0)).max(1)
}

pub(super) fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Milliseconds, exact for whole milliseconds.
pub(super) fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

/// A number for people: at most three decimals, no trailing zeros.
pub(super) fn short(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
