//! Supervision and readiness on real parts: every long-lived component is listed with its
//! state; a SQLite store whose condition fails stops intake and readiness until it recovers;
//! an event provider that panics is restarted, and one that gives up is listed as failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_core::alerts::{AlertConfig, AlertMonitor};
use atamo_core::async_trait;
use atamo_core::hub::{EventProvider, ProviderLink, StoreSettings};
use atamo_core::status::{ComponentState, NotReady};
use atamo_core::{AgentSpec, Control, Hub, PublishError};
use atamo_store_sqlite::{SqliteOptions, SqliteStore};
use atamo_tests::conditioned::{Condition, Conditioned};
use atamo_tests::orders::{notify_rule, order};
use atamo_tests::RecordingAgent;

/// A stateful hub on a SQLite file in `dir` whose condition the test sets, sending every
/// order to `agent` as `mailer`.
async fn sqlite_hub(dir: &tempfile::TempDir, agent: &RecordingAgent) -> (Hub, Condition) {
    let sqlite = SqliteStore::open(dir.path().join("atamo.db"), SqliteOptions::default())
        .await
        .unwrap();
    let (store, condition) = Conditioned::new(sqlite);
    let hub = atamo_tests::orders::builder(&["notify"], vec![notify_rule("mailer")])
        .store_with(
            Arc::new(store),
            StoreSettings::default().claim_interval(Duration::from_millis(20)),
        )
        .agent(AgentSpec::new("mailer", agent.agent()).handles(["notify"]))
        .build()
        .unwrap();
    (hub, condition)
}

/// Each component's state, by name.
fn states(control: &Control) -> BTreeMap<String, ComponentState> {
    control
        .components()
        .into_iter()
        .map(|c| (c.name, c.state))
        .collect()
}

/// Waits (up to 10 s) until `pred` holds.
async fn until(what: &str, pred: impl Fn() -> bool) {
    for _ in 0..2000 {
        if pred() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Runs until the hub stops; the first `panics` lives panic before serving.
struct Edge {
    name: &'static str,
    lives: AtomicU32,
    panics: u32,
    /// Returns at once, as a provider whose input ended would.
    gives_up: bool,
}

#[async_trait]
impl EventProvider for Edge {
    fn name(&self) -> &str {
        self.name
    }

    async fn run(self: Arc<Self>, link: ProviderLink) {
        let life = self.lives.fetch_add(1, Ordering::SeqCst);
        if life < self.panics {
            panic!("edge lost its socket");
        }
        if self.gives_up {
            return;
        }
        // Serving: one order from its client, then wait for the hub to stop.
        link.hub()
            .publish(order(100 + u64::from(life)))
            .await
            .unwrap();
        link.stopped().await;
    }
}

#[tokio::test]
async fn every_long_lived_part_is_listed_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let agent = RecordingAgent::new();
    let (hub, _condition) = sqlite_hub(&dir, &agent).await;
    let control = hub.control();
    control
        .attach(Edge {
            name: "edge",
            lives: AtomicU32::new(0),
            panics: 0,
            gives_up: false,
        })
        .unwrap();
    let alerts = AlertMonitor::watch(&control, AlertConfig::default());
    agent.wait_for(1).await;

    let components = control.components();
    let names: Vec<&str> = components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "agent_worker:mailer",
            "alert_monitor",
            "claimer",
            "committer",
            "event_provider:edge",
            "heartbeat",
            "pruner",
            "request_timers",
            "request_timers:edge",
            "router",
            "settle_writer",
            "store",
        ]
    );
    for c in &components {
        assert_eq!(c.state, ComponentState::Ready, "{c:?}");
        assert_eq!(c.restarts, 0, "{c:?}");
        let essential = ["committer", "router", "settle_writer", "store"].contains(&&*c.name);
        assert_eq!(c.essential, essential, "{c:?}");
    }
    let readiness = control.readiness();
    assert!(
        readiness.ready && readiness.reasons.is_empty(),
        "{readiness:?}"
    );

    // A component that ends leaves the list; shutting down is a reason not to be ready.
    control.unregister_agent(&"mailer".into()).unwrap();
    until("the worker has stopped", || {
        !states(&control).contains_key("agent_worker:mailer")
    })
    .await;
    alerts.stop();
    let handle = hub.handle();
    let stopping = tokio::spawn(hub.shutdown());
    until("the hub is stopping", || !handle.is_accepting()).await;
    assert_eq!(
        control.readiness().reasons.first(),
        Some(&NotReady {
            component: "hub".into(),
            reason: "shutting down".into(),
        })
    );
    assert!(!stopping.await.unwrap().deadline_passed);
}

#[tokio::test]
async fn a_store_whose_condition_fails_stops_intake_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let agent = RecordingAgent::new();
    let (hub, condition) = sqlite_hub(&dir, &agent).await;
    let (control, h) = (hub.control(), hub.handle());
    h.publish(order(1)).await.unwrap();
    agent.wait_for(1).await;

    condition.fail("the disk is full");
    let readiness = control.readiness();
    assert!(!readiness.ready);
    assert_eq!(
        readiness.reasons,
        [NotReady {
            component: "store".into(),
            reason: "the disk is full".into(),
        }]
    );
    assert_eq!(
        states(&control)["store"],
        ComponentState::Failed {
            reason: "the disk is full".into()
        }
    );
    assert!(!h.is_accepting());
    let event = order(2);
    let id = event.id();
    match h.publish(event).await {
        Err(PublishError::Unavailable { event, reason }) => {
            assert_eq!(event.id(), id);
            assert_eq!(reason, "store: the disk is full");
        }
        other => panic!("expected the hub to refuse, got {other:?}"),
    }
    assert!(h.try_publish(order(2)).is_err());

    condition.recover();
    assert!(control.readiness().ready);
    h.publish(order(3)).await.unwrap();
    agent.wait_for(2).await;
    let delivered: Vec<u64> = agent
        .received()
        .iter()
        .map(|a| a.payload()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(delivered, [1, 3], "nothing of the refused order was kept");
    assert!(!hub.shutdown().await.deadline_passed);
}

#[tokio::test]
async fn an_event_provider_that_panics_is_restarted_and_one_that_gives_up_is_failed() {
    let agent = RecordingAgent::new();
    let hub = atamo_tests::orders::builder(&["notify"], vec![notify_rule("mailer")])
        .agent(AgentSpec::new("mailer", agent.agent()).handles(["notify"]))
        .build()
        .unwrap();
    let control = hub.control();
    let edge = Arc::new(Edge {
        name: "edge",
        lives: AtomicU32::new(0),
        panics: 2,
        gives_up: false,
    });
    control.attach_arc(edge.clone()).unwrap();
    // Two lives panic; the third serves its client.
    agent.wait_for(1).await;
    assert_eq!(edge.lives.load(Ordering::SeqCst), 3);
    assert_eq!(agent.received()[0].payload()["n"], 102);
    let status = control
        .components()
        .into_iter()
        .find(|c| c.name == "event_provider:edge")
        .unwrap();
    assert_eq!(status.restarts, 2);
    match &status.state {
        ComponentState::Degraded { reason } => {
            assert!(reason.contains("edge lost its socket"), "{reason}")
        }
        other => panic!("expected degraded, got {other:?}"),
    }
    // Not essential: the hub still takes events.
    assert!(control.readiness().ready);

    control
        .attach(Edge {
            name: "quitter",
            lives: AtomicU32::new(0),
            panics: 0,
            gives_up: true,
        })
        .unwrap();
    until("the quitter is failed", || {
        states(&control).get("event_provider:quitter")
            == Some(&ComponentState::Failed {
                reason: "returned before the hub stopped".into(),
            })
    })
    .await;
    assert!(control.readiness().ready);
    assert!(!hub.shutdown().await.deadline_passed);
}
