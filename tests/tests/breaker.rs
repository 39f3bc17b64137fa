//! Circuit breakers, agent status and backpressure, on a paused clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_config::Rule;
use atamo_core::agent::{AgentError, Reply};
use atamo_core::failure::{AgentState, BreakerPolicy, STATUS_CHANGED_EVENT};
use atamo_core::{AgentSpec, HubBuilder, TelemetryKind, TryPublishError};
use atamo_tests::{Recorder, RecordingAgent};
use serde_json::json;

/// An agent that fails (retryably) until `healthy` is set.
fn switchable(calls: &RecordingAgent, healthy: Arc<AtomicBool>) -> impl atamo_core::Agent {
    calls.agent_with(move |_| {
        if healthy.load(Ordering::SeqCst) {
            Ok(Reply::done())
        } else {
            Err(AgentError::retry("connection refused"))
        }
    })
}

fn breaker() -> BreakerPolicy {
    BreakerPolicy {
        window: 10,
        min_calls: 10,
        failure_ratio: 0.5,
        consecutive_failures: 3,
        cool_down: atamo_core::bounded::CoolDown::saturating(Duration::from_secs(10)),
    }
}

fn builder(rules: Vec<Rule>) -> HubBuilder {
    atamo_tests::orders::builder(&["notify", "page"], rules)
}

fn notify_rule() -> Rule {
    atamo_tests::orders::notify_rule("mailer")
}

use atamo_tests::orders::order;

fn states(rec: &Recorder) -> Vec<(AgentState, AgentState, bool)> {
    states_of(&rec.events())
}

fn states_of(events: &[atamo_core::TelemetryEvent]) -> Vec<(AgentState, AgentState, bool)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            TelemetryKind::AgentStatusChanged { from, status }
                if status.agent.as_str() == "mailer" =>
            {
                Some((*from, status.state, status.manual))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_stops_calls_one_probe_follows_the_cool_down_and_recovery_closes_it() {
    let healthy = Arc::new(AtomicBool::new(false));
    let calls = RecordingAgent::new();
    let owner_inbox = RecordingAgent::new();
    let rules = vec![
        notify_rule(),
        // Status changes go to whoever owns the agent.
        Rule::new(
            "tell-owner",
            STATUS_CHANGED_EVENT,
            "pager",
            "page",
            json!({"to": "{{payload.owner}}", "agent": "{{payload.agent}}", "state": "{{payload.to}}"}),
        ),
    ];
    let hub = builder(rules)
        .agent(
            AgentSpec::new("mailer", switchable(&calls, healthy.clone()))
                .handles(["notify"])
                .retry(atamo_core::failure::RetryPolicy::none())
                .breaker(breaker())
                .owner("ops@example.com")
                .version("2.1.0"),
        )
        .agent(AgentSpec::new("pager", owner_inbox.agent()).handles(["page"]))
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let control = hub.control();
    let h = hub.handle();

    // Three failures in a row open the circuit.
    for n in 0..3 {
        h.publish(order(n)).await.unwrap();
    }
    calls.wait_for(3).await;
    rec.wait_until("the circuit opened", |_| {
        control.agent_status(&"mailer".into()).unwrap().state == AgentState::Offline
    })
    .await;
    let status = control.agent_status(&"mailer".into()).unwrap();
    assert!(
        status.reason.contains("3 failures in a row"),
        "{}",
        status.reason
    );
    assert_eq!(status.owner.as_deref(), Some("ops@example.com"));
    assert_eq!(status.version.as_deref(), Some("2.1.0"));
    owner_inbox.wait_for(1).await;
    assert_eq!(
        owner_inbox.received()[0].payload(),
        &json!({"to": "ops@example.com", "agent": "mailer", "state": "offline"})
    );

    // While open, nothing reaches the agent; the actions wait.
    for n in 3..8 {
        h.publish(order(n)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(calls.count(), 3, "no call while the circuit is open");

    // After the cool-down exactly one probe goes through; it fails, so the circuit reopens.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(calls.count(), 4, "one probe");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(calls.count(), 4, "reopened: still one probe only");

    // The agent recovers: the next probe succeeds, the circuit closes, the waiting actions go.
    // (The agent has no retry policy: the four actions that failed are dead letters.)
    healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    calls.wait_for(8).await;
    assert_eq!(control.dead_letters().len(), 4);
    assert_eq!(
        control.agent_status(&"mailer".into()).unwrap().state,
        AgentState::Online
    );
    let delivered: std::collections::BTreeSet<_> = calls
        .received()
        .iter()
        .filter(|a| a.attempt() == 1)
        .map(|a| a.payload()["n"].to_string())
        .collect();
    assert_eq!(
        delivered.len(),
        8,
        "every order reached the agent once recovered"
    );
    assert_eq!(
        states(&rec),
        vec![
            (AgentState::Unknown, AgentState::Offline, false),
            (AgentState::Offline, AgentState::Degraded, false),
            (AgentState::Degraded, AgentState::Offline, false),
            (AgentState::Offline, AgentState::Degraded, false),
            (AgentState::Degraded, AgentState::Online, false),
        ]
    );
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn manual_offline_stops_traffic_manual_online_restores_it_and_a_fallback_takes_over() {
    let calls = RecordingAgent::new();
    let backup = RecordingAgent::new();
    let hub = builder(vec![notify_rule().fallback("backup")])
        .agent(AgentSpec::new("mailer", calls.agent()).handles(["notify"]))
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let control = hub.control();
    let h = hub.handle();
    h.publish(order(1)).await.unwrap();
    calls.wait_for(1).await;

    control
        .set_agent_status(&"mailer".into(), AgentState::Offline, "maintenance")
        .unwrap();
    let status = control.agent_status(&"mailer".into()).unwrap();
    assert_eq!((status.state, status.manual), (AgentState::Offline, true));
    // No fallback registered yet: the action waits.
    h.publish(order(2)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(calls.count(), 1, "offline: no traffic");

    // With the fallback registered, new actions go there while the agent is offline.
    control
        .register_agent(AgentSpec::new("backup", backup.agent()).handles(["notify"]))
        .unwrap();
    h.publish(order(3)).await.unwrap();
    backup.wait_for(1).await;
    assert_eq!(backup.received()[0].payload(), &json!({"n": 3}));
    assert!(rec.events().iter().any(|e| matches!(
        &e.kind,
        TelemetryKind::ActionRerouted { from, .. } if from.as_str() == "mailer"
    )));

    // Manual online restores traffic: the waiting action is delivered.
    control
        .set_agent_status(&"mailer".into(), AgentState::Online, "maintenance over")
        .unwrap();
    calls.wait_for(2).await;
    assert_eq!(calls.received()[1].payload(), &json!({"n": 2}));
    control.clear_agent_status(&"mailer".into()).unwrap();
    assert!(!control.agent_status(&"mailer".into()).unwrap().manual);
    rec.wait_until("the status was cleared", |evs| states_of(evs).len() == 4)
        .await;
    assert_eq!(
        states(&rec),
        vec![
            (AgentState::Unknown, AgentState::Online, false),
            (AgentState::Online, AgentState::Offline, true),
            (AgentState::Offline, AgentState::Online, true),
            (AgentState::Online, AgentState::Online, false),
        ]
    );
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_manual_status_wins_over_the_breaker_until_cleared() {
    let healthy = Arc::new(AtomicBool::new(false));
    let calls = RecordingAgent::new();
    let hub = builder(vec![notify_rule()])
        .agent(
            AgentSpec::new("mailer", switchable(&calls, healthy.clone()))
                .handles(["notify"])
                .retry(atamo_core::failure::RetryPolicy::none())
                .breaker(breaker()),
        )
        .build()
        .unwrap();
    let control = hub.control();
    let h = hub.handle();
    for n in 0..3 {
        h.publish(order(n)).await.unwrap();
    }
    calls.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        control.agent_status(&"mailer".into()).unwrap().state,
        AgentState::Offline
    );
    // An operator forces it online: calls go through although the circuit is open.
    healthy.store(true, Ordering::SeqCst);
    control
        .set_agent_status(&"mailer".into(), AgentState::Online, "fixed by hand")
        .unwrap();
    h.publish(order(9)).await.unwrap();
    calls.wait_for(4).await;
    let status = control.agent_status(&"mailer".into()).unwrap();
    assert_eq!((status.state, status.manual), (AgentState::Online, true));
    // Cleared: the breaker's own state shows again (still open until its probe).
    control.clear_agent_status(&"mailer".into()).unwrap();
    assert_eq!(
        control.agent_status(&"mailer".into()).unwrap().state,
        AgentState::Offline
    );
    tokio::time::sleep(Duration::from_secs(11)).await;
    h.publish(order(10)).await.unwrap();
    calls.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        control.agent_status(&"mailer".into()).unwrap().state,
        AgentState::Online
    );
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_agents_full_queue_pushes_back_on_publish_without_losing_events() {
    let calls = RecordingAgent::new();
    let slow = {
        let inner = std::sync::Arc::new(calls.agent());
        atamo_core::agent_fn(move |action, ctx| {
            let inner = inner.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                atamo_core::Agent::call(&inner, action, ctx).await
            }
        })
    };
    let hub = builder(vec![notify_rule()])
        .ingress_capacity(4)
        .agent(
            AgentSpec::new("mailer", slow)
                .handles(["notify"])
                .concurrency(1)
                .queue_capacity(2),
        )
        .build()
        .unwrap();
    let h = hub.handle();
    // try_publish hands the event back once everything downstream is full...
    let mut refused = None;
    for n in 0..100 {
        match h.try_publish(order(n)) {
            Ok(_) => {}
            Err(TryPublishError::Full { event }) => {
                refused = Some(event);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let refused = refused.expect("the hub pushed back");
    let accepted = refused.payload()["n"].as_u64().unwrap();
    assert!(
        accepted < 20,
        "backpressure came early: {accepted} accepted"
    );
    // ...and publish waits for room instead of dropping anything.
    let started = tokio::time::Instant::now();
    for n in accepted..accepted + 20 {
        h.publish(order(n)).await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "publish waited"
    );
    let total = (accepted + 20) as usize;
    calls.wait_for(total).await;
    let mut seen: Vec<u64> = calls
        .received()
        .iter()
        .map(|a| a.payload()["n"].as_u64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..accepted + 20).collect::<Vec<_>>(), "nothing lost");
    hub.shutdown().await;
}
