//! Intake: validation with every problem named, try_publish backpressure, dry runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use atamo_config::{Rule, RuleBook};
use atamo_core::agent::{agent_fn, Reply};
use atamo_core::message::Problem;
use atamo_core::rules::ProviderScope;
use atamo_core::telemetry::TelemetryKind;
use atamo_core::{
    ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, HubBuilder, Principal, PublishError,
    TryPublishError,
};
use atamo_tests::{monitored, Recorder, RecordingAgent};
use serde_json::json;
use tokio::sync::Semaphore;

fn builder() -> HubBuilder {
    Hub::builder()
        .event_type(
            EventTypeDef::new("order.created")
                .requiring(["order.id", "customer.id", "total"])
                .unwrap(),
        )
        .action_type(ActionTypeDef::new("notify"))
}

#[tokio::test]
async fn an_unknown_event_type_is_rejected_with_telemetry() {
    let hub = builder().build().unwrap();
    let rec = Recorder::start(&hub.control());
    let ev = Event::new("order.deleted", Principal::user("alice"), json!({}));
    let id = ev.id();
    let err = hub.handle().publish(ev).await.unwrap_err();
    match &err {
        PublishError::Rejected { problems, event } => {
            assert_eq!(event.id(), id, "the event comes back");
            assert_eq!(
                problems,
                &[Problem::UnknownEventType {
                    event_type: "order.deleted".into()
                }]
            );
        }
        other => panic!("expected rejection, got {other:?}"),
    }
    assert!(err
        .to_string()
        .contains("event type `order.deleted` is not registered"));
    rec.assert_path(id, &["rejected"]).await;
    hub.shutdown().await;
}

#[tokio::test]
async fn a_payload_missing_two_required_fields_names_both() {
    let hub = builder().build().unwrap();
    let rec = Recorder::start(&hub.control());
    let ev = Event::new(
        "order.created",
        Principal::user("alice"),
        json!({"order": {"id": 1}}),
    );
    let id = ev.id();
    let err = hub.handle().publish(ev).await.unwrap_err();
    let PublishError::Rejected { problems, .. } = &err else {
        panic!("expected rejection, got {err:?}")
    };
    let missing: Vec<_> = problems
        .iter()
        .map(|p| match p {
            Problem::MissingField { field } => field.to_string(),
            other => panic!("unexpected problem {other:?}"),
        })
        .collect();
    assert_eq!(missing, ["customer.id", "total"]);
    let text = err.to_string();
    assert!(
        text.contains("`customer.id`") && text.contains("`total`"),
        "{text}"
    );
    rec.assert_path(id, &["rejected"]).await;
    match &rec.steps(id)[0].kind {
        TelemetryKind::Rejected { problems, .. } => assert_eq!(problems.len(), 2),
        other => panic!("expected rejected, got {other:?}"),
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn a_payload_that_is_not_an_object_and_a_bad_user_are_both_named() {
    let hub = builder().build().unwrap();
    let ev = Event::new("order.created", Principal::user(""), json!([1, 2]));
    let err = hub.handle().publish(ev).await.unwrap_err();
    let PublishError::Rejected { problems, .. } = err else {
        panic!("expected rejection")
    };
    assert!(problems.contains(&Problem::PayloadNotObject));
    assert!(problems
        .iter()
        .any(|p| matches!(p, Problem::BadName(m) if m.contains("user id is empty"))));
    hub.shutdown().await;
}

#[tokio::test]
async fn try_publish_on_a_full_ingress_hands_the_event_back() {
    // The agent holds every call until the test releases it, so the agent's queue, then the
    // router, then the ingress fill up.
    let gate = Arc::new(Semaphore::new(0));
    let done = RecordingAgent::new();
    let agent = {
        let gate = gate.clone();
        let record = Arc::new(done.agent());
        agent_fn(move |action, ctx| {
            let (gate, record) = (gate.clone(), record.clone());
            async move {
                gate.acquire().await.expect("gate open").forget();
                atamo_core::Agent::call(&record, action, ctx).await
            }
        })
    };
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("tick"))
        .action_type(ActionTypeDef::new("notify"))
        .ingress_capacity(2)
        .agent(
            AgentSpec::new("slow", agent)
                .handles(["notify"])
                .concurrency(1)
                .queue_capacity(1),
        )
        .provider(
            "rules",
            RuleBook::with_rules(vec![Rule::new("r", "tick", "slow", "notify", json!({}))])
                .unwrap(),
            ProviderScope::AllEvents,
        )
        .build()
        .unwrap();
    let h = hub.handle();
    let mut accepted = 0;
    let mut bounced = None;
    for i in 0..1000 {
        let ev = Event::new("tick", Principal::user("alice"), json!({"i": i}));
        let id = ev.id();
        match h.try_publish(ev) {
            Ok(_) => accepted += 1,
            Err(TryPublishError::Full { event }) => {
                assert_eq!(event.id(), id, "the same event comes back");
                assert_eq!(event.payload()["i"], i);
                bounced = Some(event);
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
        tokio::task::yield_now().await;
    }
    let bounced = bounced.expect("the ingress filled up");
    assert!(accepted >= 2, "at least the ingress capacity was accepted");
    let health = hub.control().health();
    assert_eq!(health.ingress.len, health.ingress.capacity);

    // Release the agent: every accepted event is delivered, and the bounced one can be
    // published again (waiting for room this time).
    gate.add_permits(10_000);
    h.publish(bounced).await.unwrap();
    done.wait_for(accepted + 1).await;
    hub.shutdown().await;
    assert_eq!(done.count(), accepted + 1);
}

#[tokio::test]
async fn dry_run_reports_matches_and_sends_nothing() {
    let agent = RecordingAgent::new();
    let rules = RuleBook::with_rules(vec![
        Rule::new(
            "notify-sales",
            "order.created",
            "mailer",
            "notify",
            json!({"order": "{{payload.order.id}}"}),
        ),
        Rule::new(
            "needs-coupon",
            "order.created",
            "mailer",
            "notify",
            json!({"coupon": "{{payload.coupon}}"}),
        ),
    ])
    .unwrap();
    let hub = builder()
        .agent(AgentSpec::new("mailer", agent.agent()).handles(["notify"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let ev = Event::new(
        "order.created",
        Principal::user("alice"),
        json!({"order": {"id": 9}, "customer": {"id": 3}, "total": 10}),
    );
    let run = hub.handle().dry_run(&ev);
    assert!(run.accepted());
    assert_eq!(run.outcomes.len(), 2);
    let actions: Vec<_> = run.actions().collect();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].agent.as_str(), "mailer");
    assert_eq!(*actions[0].payload, json!({"order": 9}));
    assert!(matches!(
        &run.outcomes[1].verdict,
        atamo_core::hub::Verdict::Failed(atamo_core::rules::RuleError::MissingField { field, .. }) if field == "payload.coupon"
    ));
    // An invalid event's dry run lists its problems and plans nothing.
    let bad = hub.handle().dry_run(&Event::new(
        "order.created",
        Principal::user("bob"),
        json!({}),
    ));
    assert_eq!(bad.problems.len(), 3);
    assert!(bad.outcomes.is_empty());
    // It serializes for the REST API.
    let json = serde_json::to_value(&run).unwrap();
    assert_eq!(json["outcomes"][0]["verdict"]["verdict"], "dispatch");

    // Nothing was sent and nothing was reported: the next publish is the only traffic.
    let receipt = hub.handle().publish(ev).await.unwrap();
    agent.wait_for(1).await;
    rec.wait_for(receipt.event_id, "action_succeeded", 1).await;
    assert_eq!(agent.count(), 1);
    // (Besides the hub's own events: the agent's first success announces it online.)
    assert!(rec
        .events()
        .iter()
        .all(|e| e.event_id() == Some(receipt.event_id)
            || e.event_id().is_none()
            || e.event()
                .is_some_and(|m| m.event_type.as_str().starts_with("atamo."))));
    hub.shutdown().await;
}

#[tokio::test]
async fn publish_monitored_streams_the_events_steps_until_its_actions_end() {
    let agent = RecordingAgent::new();
    let failing = RecordingAgent::new();
    let rules = RuleBook::with_rules(vec![
        Rule::new("ok", "order.created", "ok", "notify", json!({})),
        Rule::new("bad", "order.created", "bad", "notify", json!({})),
    ])
    .unwrap();
    let hub = builder()
        .agent(AgentSpec::new("ok", agent.agent()).handles(["notify"]))
        .agent(
            AgentSpec::new(
                "bad",
                failing.agent_with(|_| Err(atamo_core::AgentError::permanent("no such mailbox"))),
            )
            .handles(["notify"]),
        )
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap();
    let ev = Event::new(
        "order.created",
        Principal::user("alice"),
        json!({"order": {"id": 9}, "customer": {"id": 3}, "total": 10}),
    );
    let (receipt, steps) = monitored(&hub.handle(), ev).await;
    assert!(steps.iter().all(|s| s.event_id() == Some(receipt.event_id)));
    let mut ends: Vec<_> = steps[5..].iter().map(|s| s.name()).collect();
    ends.sort();
    assert_eq!(
        ends,
        ["action_dead_lettered", "action_failed", "action_succeeded"]
    );
    let failure = steps
        .iter()
        .find_map(|s| match &s.kind {
            TelemetryKind::ActionFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        failure,
        atamo_core::AgentError::permanent("no such mailbox")
    );
    hub.shutdown().await;
    let _ = Reply::done();
}
