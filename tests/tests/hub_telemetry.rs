//! Telemetry: a slow subscriber never stalls routing and is told how much it missed; agent
//! panics are failures, not crashes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use atamo_config::{Rule, RuleBook};
use atamo_core::rules::ProviderScope;
use atamo_core::telemetry::{TelemetryKind, TelemetryRecvError, TelemetrySubscriber};
use atamo_core::{ActionTypeDef, AgentError, AgentSpec, Event, EventTypeDef, Hub, Principal};
use atamo_tests::{monitored, RecordingAgent};
use serde_json::json;

fn hub(
    agent: impl atamo_core::Agent,
    telemetry_capacity: usize,
    template: serde_json::Value,
) -> Hub {
    Hub::builder()
        .telemetry_capacity(telemetry_capacity)
        .event_type(EventTypeDef::new("tick"))
        .action_type(ActionTypeDef::new("run"))
        .agent(AgentSpec::new("a", agent).handles(["run"]))
        .provider(
            "rules",
            RuleBook::with_rules(vec![Rule::new("r", "tick", "a", "run", template)]).unwrap(),
            ProviderScope::AllEvents,
        )
        .build()
        .unwrap()
}

const N: usize = 20_000;

/// Publishes N events through a hub whose subscribers may fall 2 batches behind, with a
/// subscriber that has read nothing yet; returns it once the hub has stopped.
async fn flood_a_hub_with_a_tiny_telemetry_buffer() -> TelemetrySubscriber {
    let agent = RecordingAgent::new();
    let hub = hub(agent.agent(), 2, json!({}));
    let slow = hub.control().subscribe();
    let h = hub.handle();
    for i in 0..N {
        h.publish(Event::new("tick", Principal::user("u"), json!({"i": i})))
            .await
            .unwrap();
    }
    agent.wait_for(N).await;
    hub.shutdown().await;
    slow
}

#[tokio::test]
async fn a_slow_subscriber_does_not_stall_routing_and_counts_what_it_missed() {
    // Subscribed, but reads nothing until all the work is done.
    let mut slow = flood_a_hub_with_a_tiny_telemetry_buffer().await;

    let (mut seen, mut missed) = (0u64, 0u64);
    loop {
        match slow.recv().await {
            Ok(ev) => {
                seen += 1;
                if ev.name() == "stopped" {
                    break;
                }
            }
            Err(TelemetryRecvError::Lagged { missed: m }) => missed += m,
            Err(TelemetryRecvError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(missed > 0, "the subscriber fell behind");
    // Four steps per event, plus the hub's own: agent_status_changed when the agent first
    // succeeds, the accepted and no_route of the status event it publishes, shutdown_started
    // and stopped. Every step is either seen or counted as missed.
    let hub_steps = 5;
    assert_eq!(
        seen + missed,
        (N as u64) * 4 + hub_steps,
        "seen {seen} missed {missed}"
    );
}

#[tokio::test]
async fn a_lagging_batch_reader_loses_nothing_silently() {
    let mut slow = flood_a_hub_with_a_tiny_telemetry_buffer().await;
    let (mut seen, mut missed, mut lags) = (0u64, 0u64, 0);
    loop {
        match slow.recv_batch().await {
            Ok(batch) => {
                seen += batch.events.len() as u64;
                if batch.events.iter().any(|e| e.name() == "stopped") {
                    break;
                }
            }
            Err(TelemetryRecvError::Lagged { missed: m }) => {
                missed += m;
                lags += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(lags > 0, "the reader fell behind");
    assert_eq!(
        seen + missed,
        (N as u64) * 4 + 5,
        "seen {seen} missed {missed}"
    );
}

#[tokio::test]
async fn a_panicking_agent_fails_its_call_and_the_hub_keeps_serving() {
    let agent = RecordingAgent::new();
    let panicky = agent.agent_with(|action| {
        if action.payload()["boom"] == true {
            panic!("kaboom");
        }
        Ok(atamo_core::Reply::done())
    });
    let hub = hub(panicky, 64, json!({"boom": "{{payload.boom}}"}));
    let h = hub.handle();
    let (_, boom) = h
        .publish_monitored(Event::new(
            "tick",
            Principal::user("u"),
            json!({"boom": true}),
        ))
        .await
        .unwrap();
    let steps = boom.collect().await;
    match &steps.last().unwrap().kind {
        TelemetryKind::ActionFailed { error, .. } => {
            assert_eq!(
                error,
                &AgentError::Panicked {
                    message: "kaboom".into()
                }
            )
        }
        other => panic!("expected action_failed, got {other:?}"),
    }
    let (_, fine) = h
        .publish_monitored(Event::new(
            "tick",
            Principal::user("u"),
            json!({"boom": false}),
        ))
        .await
        .unwrap();
    assert_eq!(
        fine.collect().await.last().unwrap().name(),
        "action_succeeded"
    );
    assert_eq!(hub.control().health().agents[0].failed, 1);
    hub.shutdown().await;
}

#[tokio::test]
async fn telemetry_serializes_with_ids_principal_and_time() {
    let agent = RecordingAgent::new();
    let hub = hub(agent.agent(), 64, json!({}));
    let (receipt, steps) = monitored(
        &hub.handle(),
        Event::new(
            "tick",
            Principal::user("alice").in_group("ops").in_tenant("acme"),
            json!({}),
        ),
    )
    .await;
    let accepted = serde_json::to_value(&steps[0]).unwrap();
    assert_eq!(accepted["kind"], "accepted");
    assert_eq!(accepted["event"]["id"], receipt.event_id.to_string());
    assert_eq!(accepted["event"]["principal"]["user"], "alice");
    assert_eq!(accepted["event"]["principal"]["tenant"], "acme");
    assert!(accepted["at"].as_str().unwrap().ends_with('Z'));
    let done = serde_json::to_value(steps.last().unwrap()).unwrap();
    assert_eq!(done["kind"], "action_succeeded");
    assert_eq!(done["action"]["agent"], "a");
    assert!(done["elapsed_ms"].is_number());
    hub.shutdown().await;
}
