//! The gauges read from the hub when `/metrics` is rendered: its readiness and each
//! component's state and restarts, the hub's queues, each agent's queue, in-flight calls and
//! status, telemetry subscribers, requests, lost leases.

use atamo_core::failure::AgentState;
use atamo_core::Control;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

pub(super) fn agent_state_label(s: AgentState) -> &'static str {
    match s {
        AgentState::Unknown => "unknown",
        AgentState::Online => "online",
        AgentState::Degraded => "degraded",
        AgentState::Offline => "offline",
    }
}

pub(super) const AGENT_STATES: [AgentState; 4] = [
    AgentState::Unknown,
    AgentState::Online,
    AgentState::Degraded,
    AgentState::Offline,
];

/// The gauges read from the hub when the metrics are rendered.
#[derive(Debug)]
pub(super) struct HubGauges {
    pub(super) control: Control,
}

/// Encodes one gauge without labels.
fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeGaugeValue,
) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(m)
}

/// Encodes one gauge per agent, labelled `agent`.
fn agent_gauge<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl ExactSizeIterator<Item = (&'a str, usize)>,
) -> std::fmt::Result {
    if values.len() == 0 {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (agent, value) in values {
        let labels = [("agent", agent)];
        ConstGauge::new(value).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for HubGauges {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let health = self.control.health();
        gauge(
            &mut enc,
            "hub_accepting",
            "Whether the hub takes new events (1) or is shutting down (0).",
            i64::from(health.accepting),
        )?;
        let readiness = self.control.readiness();
        gauge(
            &mut enc,
            "hub_ready",
            "Whether the hub can accept and keep work (1), or not (0): shutting down, or an \
             essential component is not working (see atamo_component_up).",
            i64::from(readiness.ready),
        )?;
        let components = self.control.components();
        // A family with no series is not written (a stopped hub lists no component).
        if !components.is_empty() {
            let mut m = enc.encode_descriptor(
                "component_up",
                "Each long-lived component of the hub: 1 while it works (ready or degraded), \
                 0 while it does not.",
                None,
                MetricType::Gauge,
            )?;
            for c in &components {
                let labels = [("component", c.name.as_str())];
                ConstGauge::new(i64::from(c.state.is_working()))
                    .encode(m.encode_family(&labels)?)?;
            }
            let mut m = enc.encode_descriptor(
                "component_restarts",
                "Restarts of each long-lived component of the hub after a panic.",
                None,
                MetricType::Counter,
            )?;
            for c in &components {
                let labels = [("component", c.name.as_str())];
                ConstCounter::new(c.restarts).encode(m.encode_family(&labels)?)?;
            }
        }
        gauge(
            &mut enc,
            "ingress_queue_length",
            "Events accepted and not yet routed.",
            health.ingress.len,
        )?;
        gauge(
            &mut enc,
            "ingress_queue_capacity",
            "The most events that can wait to be routed.",
            health.ingress.capacity,
        )?;
        agent_gauge(
            &mut enc,
            "agent_queue_length",
            "Actions waiting for each agent.",
            health.agents.iter().map(|a| (a.id.as_str(), a.queue.len)),
        )?;
        agent_gauge(
            &mut enc,
            "agent_queue_capacity",
            "The most actions that can wait for each agent.",
            health
                .agents
                .iter()
                .map(|a| (a.id.as_str(), a.queue.capacity)),
        )?;
        agent_gauge(
            &mut enc,
            "agent_in_flight",
            "Calls each agent is running now.",
            health.agents.iter().map(|a| (a.id.as_str(), a.in_flight)),
        )?;
        let mut statuses = self.control.agent_statuses();
        if !statuses.is_empty() {
            statuses.sort_by(|a, b| a.agent.cmp(&b.agent));
            let mut m = enc.encode_descriptor(
                "agent_status",
                "Each agent's state: 1 for the state it is in, 0 for the others.",
                None,
                MetricType::Gauge,
            )?;
            for s in &statuses {
                for state in AGENT_STATES {
                    let labels = [
                        ("agent", s.agent.as_str()),
                        ("state", agent_state_label(state)),
                    ];
                    ConstGauge::new(i64::from(s.state == state))
                        .encode(m.encode_family(&labels)?)?;
                }
            }
        }
        gauge(
            &mut enc,
            "telemetry_subscribers",
            "Telemetry subscribers connected, the metrics' own included.",
            health.telemetry_subscribers,
        )?;
        gauge(
            &mut enc,
            "requests_running",
            "Requests still running.",
            health.requests_running,
        )?;
        gauge(
            &mut enc,
            "requests_kept",
            "Finished requests whose answers are kept for their clients.",
            health.requests_kept,
        )?;
        if self.control.node().is_some() {
            let m = enc.encode_descriptor(
                "store_lost_leases",
                "Settles the store refused because another node had taken the action over.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(self.control.lost_leases()).encode(m)?;
        }
        Ok(())
    }
}
