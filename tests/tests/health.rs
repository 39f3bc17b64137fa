//! Health probes and control messages, on a paused clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::failure::{AgentState, BreakerPolicy};
use atamo_core::{Action, ActionTypeDef, AgentSpec, Hub, TelemetryKind};
use atamo_tests::Recorder;
use serde_json::{json, Value};

/// An agent whose health the test sets: 0 healthy, 1 failing, 2 hanging. It also takes
/// control messages: `{"reload": true}` is acknowledged, anything else refused.
#[derive(Clone, Default)]
struct Probed {
    health: Arc<AtomicU8>,
    probes: Arc<AtomicU32>,
    messages: Arc<Mutex<Vec<Value>>>,
}

#[async_trait]
impl Agent for Probed {
    async fn call(&self, _: Action, _: CallContext) -> Result<Reply, AgentError> {
        Ok(Reply::done())
    }

    async fn health(&self) -> Option<Result<Value, AgentError>> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        Some(match self.health.load(Ordering::SeqCst) {
            0 => Ok(json!({"db": "up"})),
            1 => Err(AgentError::retry("database unreachable")),
            _ => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(json!({}))
            }
        })
    }

    async fn control(&self, message: Value) -> Result<Value, AgentError> {
        self.messages.lock().unwrap().push(message.clone());
        if message["reload"] == true {
            Ok(json!({"reloaded": 3}))
        } else {
            Err(AgentError::permanent("unknown control message"))
        }
    }
}

fn hub(agent: Probed, breaker: bool) -> Hub {
    let mut spec = AgentSpec::new("db", agent)
        .handles(["query"])
        .health_check(Duration::from_secs(10), Duration::from_secs(2));
    if breaker {
        spec = spec.breaker(BreakerPolicy {
            consecutive_failures: 3,
            cool_down: atamo_core::bounded::CoolDown::saturating(Duration::from_secs(60)),
            ..BreakerPolicy::default()
        });
    }
    Hub::builder()
        .action_type(ActionTypeDef::new("query"))
        .agent(spec)
        .build()
        .unwrap()
}

fn checks(rec: &Recorder) -> Vec<bool> {
    rec.events()
        .iter()
        .filter_map(|e| match &e.kind {
            TelemetryKind::AgentHealthChecked { outcome, .. } => Some(outcome.is_ok()),
            _ => None,
        })
        .collect()
}

fn state(hub: &Hub) -> AgentState {
    hub.control().agent_status(&"db".into()).unwrap().state
}

#[tokio::test(start_paused = true)]
async fn health_probes_run_at_their_interval_and_drive_the_status() {
    let agent = Probed::default();
    let hub = hub(agent.clone(), false);
    let rec = Recorder::start(&hub.control());
    assert_eq!(state(&hub), AgentState::Unknown);

    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(agent.probes.load(Ordering::SeqCst), 2, "at 10 s and 20 s");
    assert_eq!(checks(&rec), vec![true, true]);
    assert_eq!(state(&hub), AgentState::Online);

    agent.health.store(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let status = hub.control().agent_status(&"db".into()).unwrap();
    assert_eq!(status.state, AgentState::Degraded);
    assert!(
        status.reason.contains("database unreachable"),
        "{}",
        status.reason
    );

    // A probe that hangs fails at its timeout.
    agent.health.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let last = rec
        .events()
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            TelemetryKind::AgentHealthChecked {
                outcome, elapsed, ..
            } => Some((outcome.clone(), *elapsed)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        last.0,
        Err(AgentError::Timeout {
            after: Duration::from_secs(2)
        })
    );
    assert_eq!(last.1, Duration::from_secs(2));

    agent.health.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(state(&hub), AgentState::Online);
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failing_probes_count_like_calls_and_open_the_circuit() {
    let agent = Probed::default();
    agent.health.store(1, Ordering::SeqCst);
    let hub = hub(agent.clone(), true);
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(state(&hub), AgentState::Degraded, "two failures so far");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let status = hub.control().agent_status(&"db".into()).unwrap();
    assert_eq!(status.state, AgentState::Offline);
    assert!(
        status.reason.contains("circuit open: 3 failures in a row"),
        "{}",
        status.reason
    );
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn control_messages_are_acknowledged_or_refused_and_recorded() {
    let agent = Probed::default();
    let hub = hub(agent.clone(), false);
    let rec = Recorder::start(&hub.control());
    let control = hub.control();
    let wait = Duration::from_secs(5);

    let ack = control
        .send_control(&"db".into(), json!({"reload": true}), wait)
        .await
        .unwrap();
    assert_eq!(ack, json!({"reloaded": 3}));
    let err = control
        .send_control(&"db".into(), json!({"update_to": "2.0"}), wait)
        .await
        .unwrap_err();
    assert_eq!(err, AgentError::permanent("unknown control message"));
    assert!(control
        .send_control(&"nobody".into(), json!({}), wait)
        .await
        .is_err());
    assert_eq!(agent.messages.lock().unwrap().len(), 2);

    rec.wait_until("both recorded", |evs| {
        evs.iter()
            .filter(|e| matches!(e.kind, TelemetryKind::AgentControlled { .. }))
            .count()
            == 2
    })
    .await;
    let json = serde_json::to_value(rec.events()).unwrap();
    let recorded: Vec<&Value> = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "agent_controlled")
        .collect();
    assert_eq!(recorded[0]["outcome"], json!({"ok": {"reloaded": 3}}));
    assert_eq!(recorded[1]["outcome"]["error"]["kind"], "permanent");
    hub.shutdown().await;
}
