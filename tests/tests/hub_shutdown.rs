//! Shutdown: intake stops, accepted work finishes within the grace period, and every action
//! abandoned at the deadline is reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::agent::{agent_fn, Reply};
use atamo_core::rules::ProviderScope;
use atamo_core::telemetry::{AbandonReason, TelemetryKind};
use atamo_core::{
    ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, HubBuilder, Principal, PublishError,
};
use atamo_tests::{names, Recorder, RecordingAgent};
use serde_json::json;

fn hub_with(agent: AgentSpec) -> HubBuilder {
    Hub::builder()
        .event_type(EventTypeDef::new("job"))
        .action_type(ActionTypeDef::new("run"))
        .agent(agent)
        .provider(
            "rules",
            RuleBook::with_rules(vec![Rule::new("r", "job", "worker", "run", json!({}))]).unwrap(),
            ProviderScope::AllEvents,
        )
}

fn job(i: u32) -> Event {
    Event::new("job", Principal::user("alice"), json!({"i": i}))
}

#[tokio::test]
async fn shutdown_finishes_accepted_work_and_refuses_new_events() {
    let agent = RecordingAgent::new();
    let hub = hub_with(AgentSpec::new("worker", agent.agent()).handles(["run"]))
        .build()
        .unwrap();
    let h = hub.handle();
    for i in 0..500 {
        h.publish(job(i)).await.unwrap();
    }
    let report = hub.shutdown().await;
    assert_eq!(agent.count(), 500, "every accepted event was carried out");
    assert_eq!(report.actions_abandoned, 0);
    assert!(!report.deadline_passed);

    let late = job(999);
    let id = late.id();
    match h.publish(late).await {
        Err(PublishError::ShuttingDown { event }) => assert_eq!(event.id(), id),
        other => panic!("expected ShuttingDown, got {other:?}"),
    }
    assert!(!h.is_accepting());
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_every_action_it_abandoned() {
    // An agent that never finishes on its own (it ignores cancellation).
    let stuck = agent_fn(|_action, _ctx| async {
        std::future::pending::<()>().await;
        Ok(Reply::done())
    });
    let hub = hub_with(
        AgentSpec::new("worker", stuck)
            .handles(["run"])
            .concurrency(2),
    )
    .shutdown_grace(Duration::from_secs(5))
    .build()
    .unwrap();
    let rec = Recorder::start(&hub.control());
    let h = hub.handle();
    let mut ids = HashSet::new();
    for i in 0..5 {
        ids.insert(h.publish(job(i)).await.unwrap().event_id);
    }
    // Let all five be dispatched: two run, three wait in the agent's queue.
    rec.wait_until("five dispatches", |evs| {
        evs.iter()
            .filter(|e| e.name() == "action_dispatched")
            .count()
            == 5
    })
    .await;
    let report = hub.shutdown().await;
    assert!(report.deadline_passed);
    assert_eq!(report.actions_abandoned, 5);
    assert!(report.elapsed >= Duration::from_secs(5));

    rec.wait_until("stopped", |evs| evs.iter().any(|e| e.name() == "stopped"))
        .await;
    let abandoned: HashSet<_> = rec
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            TelemetryKind::ActionAbandoned { action, reason } => {
                assert_eq!(*reason, AbandonReason::ShutdownDeadline);
                Some(action.event.id)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        abandoned, ids,
        "each abandoned action is reported once per event"
    );
    let names = rec.names();
    assert!(names.contains(&"shutdown_started"));
    assert_eq!(*names.last().unwrap(), "stopped");
}

#[tokio::test(start_paused = true)]
async fn agents_see_cancellation_at_the_deadline() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let polite = agent_fn(move |_action, ctx| {
        let tx = tx.clone();
        async move {
            ctx.cancelled().await;
            tx.send("cancelled").unwrap();
            Err(atamo_core::AgentError::Cancelled)
        }
    });
    let hub = hub_with(AgentSpec::new("worker", polite).handles(["run"]))
        .shutdown_grace(Duration::from_millis(100))
        .build()
        .unwrap();
    let (_, monitor) = hub.handle().publish_monitored(job(1)).await.unwrap();
    let report = hub
        .run_until(tokio::time::sleep(Duration::from_millis(10)))
        .await;
    assert_eq!(report.actions_abandoned, 1);
    assert_eq!(rx.recv().await, Some("cancelled"));
    let names = names(&monitor.collect().await);
    assert_eq!(
        names,
        [
            "accepted",
            "rule_matched",
            "action_dispatched",
            "action_abandoned"
        ]
    );
}
