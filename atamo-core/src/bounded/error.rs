//! The one error every bounded value gives.

use std::time::Duration;

/// A value outside the range of its setting.
///
/// Its message says the range (`must be from 100ms to 1h (100 to 3600000 ms)`); whoever reads
/// the value names the field or the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OutOfRange {
    message: String,
}

impl OutOfRange {
    /// An error with this message (`must be ...`).
    pub(crate) fn new(message: String) -> Self {
        Self { message }
    }

    /// The range of a duration, in humantime form and in milliseconds.
    pub(crate) fn duration(min: Duration, max: Duration) -> Self {
        let (min_ms, max_ms) = (min.as_millis(), max.as_millis());
        let message = if min.is_zero() {
            format!(
                "must be at most {} ({max_ms} ms)",
                humantime::format_duration(max)
            )
        } else {
            format!(
                "must be from {} to {} ({min_ms} to {max_ms} ms)",
                humantime::format_duration(min),
                humantime::format_duration(max)
            )
        };
        Self::new(message)
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}
