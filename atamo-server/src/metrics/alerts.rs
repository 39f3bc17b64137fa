//! Alerts as metrics: `atamo_alerts_raised_total` and `atamo_alerts_firing`.
//!
//! Everything the metrics read of an alert's kind is here: which kinds are notifications
//! that nothing resolves, and which hub steps resolve which kinds.

use std::collections::BTreeSet;

use atamo_core::telemetry::{AlertKind, ProcessChange};
use atamo_core::AgentId;

use super::families::{AlertLabels, HubMetrics};

/// The alerts raised and not resolved yet: the series of `atamo_alerts_firing`.
#[derive(Default)]
pub(super) struct FiringAlerts {
    firing: BTreeSet<AlertLabels>,
}

impl FiringAlerts {
    /// An alert step: `raised` counts it and makes it fire (unless it is a notification),
    /// otherwise it is resolved.
    pub(super) fn alert(
        &mut self,
        m: &HubMetrics,
        alert: AlertKind,
        agent: Option<&AgentId>,
        raised: bool,
    ) {
        let labels = AlertLabels {
            alert: alert.to_string(),
            agent: agent.map(|a| a.to_string()).unwrap_or_default(),
        };
        if !raised {
            self.resolve(m, labels);
            return;
        }
        m.alerts_raised.get_or_create(&labels).inc();
        // A notification of a single failure: nothing resolves it.
        if !alert.is_notification() {
            m.alerts_firing.get_or_create(&labels).set(1);
            self.firing.insert(labels);
        }
    }

    /// An agent process changed: once it starts again, its `agent_offline` alert is over.
    pub(super) fn process_changed(
        &mut self,
        m: &HubMetrics,
        agent: &AgentId,
        change: &ProcessChange,
    ) {
        if matches!(change, ProcessChange::Started { .. }) {
            self.resolve(
                m,
                AlertLabels {
                    alert: AlertKind::AgentOffline.to_string(),
                    agent: agent.to_string(),
                },
            );
        }
    }

    /// An agent was unregistered: none of its alerts fires any more.
    pub(super) fn agent_unregistered(&mut self, m: &HubMetrics, agent: &AgentId) {
        let agent = agent.as_str();
        let gone: Vec<AlertLabels> = self
            .firing
            .iter()
            .filter(|l| l.agent == agent)
            .cloned()
            .collect();
        for labels in gone {
            self.resolve(m, labels);
        }
    }

    fn resolve(&mut self, m: &HubMetrics, labels: AlertLabels) {
        if self.firing.remove(&labels) {
            m.alerts_firing.remove(&labels);
        }
    }
}
