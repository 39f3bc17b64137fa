//! Supervision with faults injected where no input reaches today: a worker that panics on its
//! retry path is restarted with its queue and its calls in flight; a router that panics fails
//! the hub's intake, and the hub still shuts down in order. Also: a restarted component is
//! ready again after a quiet minute, a task restarted with its queue goes on with it, and an
//! essential component that is not working refuses intake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;

use super::supervise::faults;
use crate::agent::{agent_fn, AgentError, AgentSpec, Reply};
use crate::hub::{ActionTypeDef, EventTypeDef, Hub, PublishError};
use crate::ids::RuleId;
use crate::message::{Event, Principal};
use crate::policy::RetryPolicy;
use crate::rules::{PlannedAction, Proposal, ProviderScope};
use crate::status::{ComponentState, ComponentStatus};
use crate::Control;

/// Waits (up to 10 s) until `pred` holds.
async fn until(what: &str, pred: impl Fn() -> bool) {
    let wait = async {
        while !pred() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .is_err()
    {
        panic!("timed out waiting until {what}");
    }
}

fn component(control: &Control, name: &str) -> Option<ComponentStatus> {
    control.components().into_iter().find(|c| c.name == name)
}

/// Every `order.created` (and the router's fault) goes to `agent` as an action of `action_type`, with the event's
/// payload.
fn hub_with(agent: AgentSpec, action_type: &str) -> Hub {
    let (agent_id, action) = (agent.info.id.clone(), action_type.to_owned());
    let rules = move |event: &Event, _: &Principal, out: &mut Vec<Proposal>| {
        out.push(Proposal::action(
            RuleId::from("to-agent"),
            PlannedAction::new(agent_id.clone(), action.as_str(), event.payload().clone()),
        ));
    };
    Hub::builder()
        .event_type(EventTypeDef::new("order.created"))
        .event_type(EventTypeDef::new(faults::ROUTER))
        .action_type(ActionTypeDef::new(action_type))
        .agent(agent)
        .provider(
            "rules",
            rules,
            ProviderScope::EventTypes(vec!["order.created".into(), faults::ROUTER.into()]),
        )
        .shutdown_grace(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn order(payload: serde_json::Value) -> Event {
    Event::new("order.created", Principal::user("alice"), payload)
}

#[tokio::test]
async fn a_worker_that_panics_on_its_retry_path_is_restarted_with_its_calls_in_flight() {
    let calls = Arc::new(AtomicU32::new(0));
    let release = Arc::new(Notify::new());
    let (c, r) = (calls.clone(), release.clone());
    // `slow` waits to be released, `fail` fails with a retryable error (its retry panics the
    // worker), anything else succeeds.
    let agent = agent_fn(move |action, _| {
        c.fetch_add(1, Ordering::SeqCst);
        let r = r.clone();
        async move {
            if action.payload()["slow"] == true {
                r.notified().await;
            }
            if action.payload()["fail"] == true {
                return Err(AgentError::retry("the first call fails"));
            }
            Ok(Reply::done())
        }
    });
    let spec = AgentSpec::new("flaky", agent)
        .handles([faults::WORKER_RETRY])
        .concurrency(4)
        .retry(RetryPolicy::default());
    let hub = hub_with(spec, faults::WORKER_RETRY);
    let control = hub.control();
    let h = hub.handle();
    assert!(control.readiness().ready);
    let worker = "agent_worker:flaky";
    assert_eq!(
        component(&control, worker).map(|c| c.state),
        Some(ComponentState::Ready)
    );

    // A call in flight, then one whose failure panics the worker on its way to a retry.
    h.publish(order(json!({"slow": true}))).await.unwrap();
    until("the slow call runs", || calls.load(Ordering::SeqCst) == 1).await;
    h.publish(order(json!({"fail": true}))).await.unwrap();
    until("the worker is restarted", || {
        component(&control, worker).is_some_and(|c| c.restarts == 1)
    })
    .await;
    let status = component(&control, worker).unwrap();
    match &status.state {
        ComponentState::Degraded { reason } => {
            assert!(reason.contains("injected worker fault"), "{reason}");
        }
        other => panic!("expected degraded, got {other:?}"),
    }
    assert!(!status.essential);
    // An agent's worker is not the hub's intake.
    assert!(control.readiness().ready);

    // The call in flight goes on across the restart, and the agent is called again.
    release.notify_one();
    h.publish(order(json!({"n": 3}))).await.unwrap();
    until("both calls succeed", || {
        control.health().agents[0].succeeded == 2 && calls.load(Ordering::SeqCst) == 3
    })
    .await;
    let report = hub.shutdown().await;
    assert!(!report.deadline_passed, "{report:?}");
}

#[tokio::test]
async fn a_router_that_panics_stops_intake_with_the_reason_and_the_hub_still_stops() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let agent = agent_fn(move |_, _| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok(Reply::done()) }
    });
    let hub = hub_with(AgentSpec::new("logger", agent).handles(["log"]), "log");
    let control = hub.control();
    let h = hub.handle();
    h.publish(order(json!({}))).await.unwrap();
    until("the first event is handled", || {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;

    // Accepted (a stateless hub answers once the event is queued), then the router panics.
    let poison = Event::new(faults::ROUTER, Principal::user("alice"), json!({}));
    h.publish(poison).await.unwrap();
    until("the hub is not ready", || !control.readiness().ready).await;
    let readiness = control.readiness();
    assert_eq!(readiness.reasons.len(), 1, "{readiness:?}");
    assert_eq!(readiness.reasons[0].component, "router");
    assert!(
        readiness.reasons[0]
            .reason
            .contains("injected router fault"),
        "{readiness:?}"
    );
    assert!(matches!(
        component(&control, "router").map(|c| c.state),
        Some(ComponentState::Failed { .. })
    ));
    assert!(!h.is_accepting());

    // Nothing more is taken: the publisher is told why, and gets its event back.
    let event = order(json!({"n": 2}));
    let id = event.id();
    match h.publish(event).await {
        Err(PublishError::Unavailable { event, reason }) => {
            assert_eq!(event.id(), id);
            assert!(reason.starts_with("router: panicked"), "{reason}");
        }
        other => panic!("expected the hub to refuse, got {other:?}"),
    }
    assert!(h.try_publish(order(json!({}))).is_err());

    // The workers still stop once the hub shuts down.
    let report = hub.shutdown().await;
    assert!(!report.deadline_passed, "{report:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Panics in its first life, then serves until the hub stops.
struct Flaky {
    lives: AtomicU32,
}

#[async_trait::async_trait]
impl crate::hub::EventProvider for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    async fn run(self: Arc<Self>, link: crate::hub::ProviderLink) {
        if self.lives.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("flaky lost its socket");
        }
        link.stopped().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_component_is_ready_again_after_a_quiet_minute() {
    let agent = agent_fn(|_, _| async { Ok(Reply::done()) });
    let hub = hub_with(AgentSpec::new("logger", agent).handles(["log"]), "log");
    let control = hub.control();
    let started = tokio::time::Instant::now();
    control
        .attach(Flaky {
            lives: AtomicU32::new(0),
        })
        .unwrap();
    let name = "event_provider:flaky";
    until("the provider is restarted", || {
        component(&control, name).is_some_and(|c| c.restarts == 1)
    })
    .await;
    assert!(matches!(
        component(&control, name).unwrap().state,
        ComponentState::Degraded { .. }
    ));
    // On the paused clock, waiting lets the quiet minute pass.
    for _ in 0..120 {
        if component(&control, name).is_some_and(|c| c.state == ComponentState::Ready) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        component(&control, name).map(|c| c.state),
        Some(ComponentState::Ready)
    );
    assert!(started.elapsed() >= super::supervise::QUIET);
    assert_eq!(component(&control, name).unwrap().restarts, 1);
    assert!(!hub.shutdown().await.deadline_passed);
}

#[tokio::test]
async fn a_task_restarted_with_its_queue_goes_on_with_what_is_queued() {
    use super::components::Components;
    let components = Components::new(None);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for i in 1..=4 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let component = components.register("writer", true);
    super::supervise::with_queue(rx, component, "the item in hand", move |rx| {
        let s = s.clone();
        Box::pin(async move {
            while let Some(i) = rx.recv().await {
                assert_ne!(i, 2, "a bad item");
                s.lock().unwrap().push(i);
            }
        })
    })
    .await;
    // The item in hand is lost; the queue behind it is not.
    assert_eq!(*seen.lock().unwrap(), [1, 3, 4]);
    // Its life over, the component is unlisted.
    assert!(components.list().is_empty());
}

#[test]
fn an_essential_component_that_is_not_working_refuses_intake_until_it_works() {
    use super::components::Components;
    let components = Components::new(None);
    let writer = components.register("settle_writer", true);
    let worker = components.register("agent_worker:a", false);
    assert_eq!(components.refusal(), None);
    worker.restarted(ComponentState::Failed {
        reason: "panicked".into(),
    });
    assert_eq!(components.refusal(), None, "a worker is not intake");
    writer.restarted(ComponentState::Failed {
        reason: "panicked 5 times in a row".into(),
    });
    assert_eq!(
        components.refusal().as_deref(),
        Some("settle_writer: panicked 5 times in a row")
    );
    writer.ready();
    assert_eq!(components.refusal(), None);
    writer.failed_for_good("gone");
    // Failed for good, it stays listed and keeps refusing.
    assert_eq!(components.refusal().as_deref(), Some("settle_writer: gone"));
    let listed: Vec<_> = components.list().into_iter().map(|c| c.name).collect();
    assert_eq!(listed, ["agent_worker:a", "settle_writer"]);
    drop(worker);
    assert_eq!(components.list().len(), 1);
}
