//! What an alert is about.

use serde::{Deserialize, Serialize};

/// What an alert is about: the kind carried by [`TelemetryKind::Alert`](super::TelemetryKind),
/// by the alert monitor's active alerts and by the `alert` label of the service's metrics.
/// In JSON it is its snake_case name (`"error_rate"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// An agent fails too large a share of its calls (raised and resolved by the alert
    /// monitor, [`crate::alerts`]).
    ErrorRate,
    /// An agent's 95th percentile call duration is too long (alert monitor).
    LatencyP95,
    /// An agent does too few calls per second (alert monitor).
    ThroughputLow,
    /// An agent's queue stays too long for too long (alert monitor).
    QueueDepth,
    /// An action failed for good: a notification, raised once and never resolved.
    RetriesExhausted,
    /// A process agent's restarts keep failing; resolved when its process starts again.
    AgentOffline,
}

impl AlertKind {
    /// Every kind, in the order above.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::ErrorRate,
        AlertKind::LatencyP95,
        AlertKind::ThroughputLow,
        AlertKind::QueueDepth,
        AlertKind::RetriesExhausted,
        AlertKind::AgentOffline,
    ];

    /// Its name, as in JSON and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::ErrorRate => "error_rate",
            AlertKind::LatencyP95 => "latency_p95",
            AlertKind::ThroughputLow => "throughput_low",
            AlertKind::QueueDepth => "queue_depth",
            AlertKind::RetriesExhausted => "retries_exhausted",
            AlertKind::AgentOffline => "agent_offline",
        }
    }

    /// Whether it is a one-shot notification that nothing resolves (so it never "fires").
    pub const fn is_notification(self) -> bool {
        matches!(self, AlertKind::RetriesExhausted)
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AlertKind {
    type Err = UnknownAlertKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownAlertKind(s.to_owned()))
    }
}

/// A name that is no [`AlertKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown alert kind `{0}`")]
pub struct UnknownAlertKind(pub String);

#[cfg(test)]
mod tests {
    use super::AlertKind;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for kind in AlertKind::ALL {
            assert_eq!(kind.as_str().parse::<AlertKind>(), Ok(kind));
            let json = serde_json::to_value(kind).unwrap_or_default();
            assert_eq!(json, serde_json::json!(kind.as_str()));
            assert_eq!(serde_json::from_value::<AlertKind>(json).ok(), Some(kind));
        }
        assert!("agent_on_fire".parse::<AlertKind>().is_err());
    }
}
