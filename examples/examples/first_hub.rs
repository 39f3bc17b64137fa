//! Guide 01: a first hub. Two event types, one rule file's worth of rules, two agents, and the
//! telemetry of every step printed as it happens.
//!
//! Run it: `cargo run -p atamo-examples --example first_hub`

use atamo_agents::LogAgent;
use atamo_config::{Rule, RuleBook, Subject};
use atamo_core::rules::ProviderScope;
use atamo_core::{
    agent_fn, ActionTypeDef, AgentError, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply,
};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Libraries only emit `tracing`; the program chooses where it goes (the log agent writes
    // there). `try_init`: the example's test may install it twice.
    let _ = tracing_subscriber::fmt().with_target(false).try_init();
    // 1. Rules: who gets told what, for which events.
    let rules = RuleBook::with_rules(vec![
        // Anyone's new order: send a confirmation mail to the customer.
        Rule::new(
            "confirm-order",
            "order.created",
            "mailer",
            "email.send",
            json!({
                "to": "{{payload.customer.email}}",
                "subject": "Order {{payload.order.id}} received",
            }),
        ),
        // Orders placed by the sales group are also logged for the sales dashboard.
        Rule::new(
            "log-sales-orders",
            "order.created",
            "audit-log",
            "log",
            json!({"order": "{{payload.order.id}}", "by": "{{user}}"}),
        )
        .for_subject(Subject::Group("sales".into())),
    ])?;

    // 2. The hub: event types (with the fields they must carry), action types, agents, rules.
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("order.created").requiring(["order.id", "customer.email"])?)
        .action_type(ActionTypeDef::new("email.send"))
        .action_type(ActionTypeDef::new("log"))
        .agent(
            AgentSpec::new(
                "mailer",
                agent_fn(|action, _ctx| async move {
                    let to = action.payload()["to"]
                        .as_str()
                        .ok_or_else(|| AgentError::permanent("no recipient"))?;
                    println!("  [mailer] to {to}: {}", action.payload()["subject"]);
                    Ok(Reply::done())
                }),
            )
            .handles(["email.send"]),
        )
        .agent(AgentSpec::new("audit-log", LogAgent).handles(["log"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()?;
    let handle = hub.handle();

    // 3. Fire and monitor: publish, then follow the event's own steps.
    let alice = Principal::user("alice").in_group("sales");
    let order = Event::new(
        "order.created",
        alice,
        json!({"order": {"id": 7}, "customer": {"email": "carol@example.com"}}),
    );
    for planned in handle.dry_run(&order).actions() {
        println!(
            "dry run: would send `{}` to `{}` with {}",
            planned.action_type, planned.agent, planned.payload
        );
    }
    let (receipt, mut steps) = handle.publish_monitored(order).await?;
    println!("accepted event {}", receipt.event_id);
    while let Some(step) = steps.next().await {
        println!("  step: {}", step.name());
    }

    // 4. A bad event is refused with every problem named, and handed back.
    let bad = Event::new(
        "order.created",
        Principal::user("bob"),
        json!({"order": {}}),
    );
    if let Err(e) = handle.publish(bad).await {
        println!("rejected: {e}");
    }

    // 5. Stop: intake closes, in-flight work finishes, anything abandoned is reported.
    let report = hub.shutdown().await;
    println!(
        "stopped: {} actions abandoned, took {:?}",
        report.actions_abandoned, report.elapsed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}
