//! Guide 05: log an event. A rule sends every `order.created` event to the built-in log agent,
//! which writes it to the `tracing` log; a telemetry subscriber prints the path each event
//! takes through the hub, including an event that no rule routes.
//!
//! Run it: `cargo run -p atamo-examples --example log_event`

use std::time::Duration;

use atamo_agents::LogAgent;
use atamo_config::{Rule, RuleBook};
use atamo_core::rules::ProviderScope;
use atamo_core::{
    ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, TelemetryEvent, TelemetryKind,
};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. Where the log goes: the log agent writes to `tracing`; the program picks the output,
    //    here stdout, showing the agents' lines only (the hub logs under `atamo_core`).
    //    (`try_init`: the example's test may run it twice in one process.)
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("atamo_agents=info"))
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .try_init();

    // 2. One rule: every order, from anyone, is logged with what matters about it.
    let rules = RuleBook::with_rules(vec![Rule::new(
        "log-orders",
        "order.created",
        "audit-log",
        "log",
        json!({"order": "{{payload.order.id}}", "total": "{{payload.total}}", "by": "{{user}}"}),
    )])?;

    // 3. The hub: the log agent handles the `log` action type.
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("order.created").requiring(["order.id"])?)
        .event_type(EventTypeDef::new("order.viewed"))
        .action_type(ActionTypeDef::new("log"))
        .agent(AgentSpec::new("audit-log", LogAgent).handles(["log"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()?;
    let handle = hub.handle();

    // 4. Watch the hub's telemetry: every step of every message. Subscribe before publishing.
    let mut telemetry = hub.control().subscribe();

    // 5. Publish: one event a rule routes, one no rule routes.
    let order = Event::new(
        "order.created",
        Principal::user("alice"),
        json!({"order": {"id": 7}, "total": 129.5}),
    );
    let viewed = Event::new(
        "order.viewed",
        Principal::user("bob"),
        json!({"order": {"id": 7}}),
    );
    for event in [order, viewed] {
        let receipt = handle.publish(event).await?;
        println!("event {}:", receipt.event_id);
        // Print this event's steps until its path ends.
        loop {
            let step = tokio::time::timeout(Duration::from_secs(5), telemetry.recv()).await??;
            if step.event_id() != Some(receipt.event_id) {
                continue;
            }
            println!("  {:<18} {}", step.name(), detail(&step));
            if matches!(
                step.kind,
                TelemetryKind::ActionSucceeded { .. }
                    | TelemetryKind::ActionFailed { .. }
                    | TelemetryKind::NoRoute { .. }
                    | TelemetryKind::Rejected { .. }
            ) {
                break;
            }
        }
    }

    hub.shutdown().await;
    Ok(())
}

/// The part of a step worth printing.
fn detail(step: &TelemetryEvent) -> String {
    match &step.kind {
        TelemetryKind::Accepted { event } => {
            format!("{} by {}", event.event_type, event.principal.user)
        }
        TelemetryKind::RuleMatched { rule, agent, .. } => format!("rule {rule} -> {agent}"),
        TelemetryKind::ActionDispatched { action } => {
            format!("{} to {}", action.action_type, action.agent)
        }
        TelemetryKind::ActionSucceeded { elapsed, .. } => format!("in {elapsed:?}"),
        TelemetryKind::ActionFailed { error, .. } => error.to_string(),
        TelemetryKind::NoRoute { .. } => "no rule sends it anywhere".to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}
