//! Durations in telemetry JSON, as fractional milliseconds (settings are whole milliseconds,
//! through the types of [`crate::bounded`]).

use std::time::Duration;

/// A duration as fractional milliseconds.
pub(crate) fn ser_duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// An optional duration as fractional milliseconds.
pub(crate) fn ser_opt_duration_ms<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration_ms(d, s),
        None => s.serialize_none(),
    }
}
