//! One conformance suite, run against the three ways of providing an agent: in-process (a Rust
//! closure), native (the test plugin loaded through the C ABI) and process (the same plugin
//! code served by a child process over JSON lines). Each must behave the same way as seen
//! from the hub: answers, feeds in order, each error kind, cancellation, deadlines, panics,
//! and many calls at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use atamo_agents::native::{NativeAgent, PluginLoader};
use atamo_agents::process::{ProcessAgent, ProcessSpec};
use atamo_core::agent::{agent_fn, Agent, AgentError, Reply};
use atamo_core::request::RequestState;
use atamo_core::{RequestOptions, TelemetryKind};
use serde_json::{json, Value};
use support::{ask, hub_with, library_file, plugins_dir};

const WAIT: Duration = Duration::from_secs(20);

/// The in-process agent: the test plugin's semantics, written as a closure.
fn in_process() -> Arc<dyn Agent> {
    Arc::new(agent_fn(|action, ctx| async move {
        let p = action.payload().clone();
        match action.action_type().as_str() {
            "echo" => Ok(Reply::with(json!({"label": "c", "payload": p}))),
            "feed" => {
                let count = p["count"].as_u64().unwrap_or(0);
                for seq in 0..count {
                    if ctx.answer(json!({"seq": seq})).await.is_err() {
                        return Err(AgentError::Cancelled);
                    }
                }
                Ok(Reply::with(json!({"sent": count})))
            }
            "sleep" => {
                let ms = p["ms"].as_u64().unwrap_or(0);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(Reply::with(json!({"slept_ms": ms}))),
                    _ = ctx.cancelled() => Err(AgentError::Cancelled),
                }
            }
            "fail" => {
                let reason = p["reason"].as_str().unwrap_or("asked to fail").to_owned();
                if p["kind"] == "permanent" {
                    Err(AgentError::permanent(reason))
                } else {
                    Err(AgentError::Retry {
                        reason,
                        after: p["after_ms"].as_u64().map(Duration::from_millis),
                    })
                }
            }
            "panic" => panic!("boom in call"),
            other => Err(AgentError::permanent(format!(
                "unknown action type `{other}`"
            ))),
        }
    }))
}

fn native(dir: &std::path::Path) -> Arc<dyn Agent> {
    let plugin = PluginLoader::new(dir)
        .load(library_file("atamo_test_plugin"))
        .unwrap();
    Arc::new(NativeAgent::new(plugin, "test", &json!({"label": "c"}), "agent").unwrap())
}

async fn process() -> Arc<dyn Agent> {
    let spec = ProcessSpec::new(env!("CARGO_BIN_EXE_atamo-test-process-agent"))
        .kind("test")
        .config(json!({"label": "c"}));
    Arc::new(
        ProcessAgent::start("agent".into(), spec, None)
            .await
            .unwrap(),
    )
}

/// The failure the hub recorded for the next failed action.
async fn next_failure(telemetry: &mut atamo_core::telemetry::TelemetrySubscriber) -> AgentError {
    loop {
        let event = tokio::time::timeout(WAIT, telemetry.recv())
            .await
            .unwrap()
            .unwrap();
        if let TelemetryKind::ActionFailed { error, .. } = event.kind {
            return error;
        }
    }
}

async fn suite(agent: Arc<dyn Agent>) {
    let hub = hub_with(agent);
    let h = hub.handle();
    let mut telemetry = hub.control().subscribe();

    // An answer.
    let r = h.request(ask("echo", json!({"n": 1}))).await.unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(
        *done.answers[0].payload,
        json!({"label": "c", "payload": {"n": 1}})
    );

    // A feed, complete and in order.
    let r = h.request(ask("feed", json!({"count": 300}))).await.unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    let got: Vec<Value> = done
        .answers
        .iter()
        .map(|a| a.payload.as_ref().clone())
        .collect();
    assert_eq!(got, support::feed_answers(300));

    // Each error kind arrives as itself.
    let r = h
        .request(ask(
            "fail",
            json!({"kind": "permanent", "reason": "no such customer"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        h.wait(r.request_id, WAIT).await.unwrap().state,
        RequestState::Failed
    );
    assert_eq!(
        next_failure(&mut telemetry).await,
        AgentError::permanent("no such customer")
    );
    let r = h
        .request(ask(
            "fail",
            json!({"kind": "retry", "reason": "busy", "after_ms": 250}),
        ))
        .await
        .unwrap();
    h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(
        next_failure(&mut telemetry).await,
        AgentError::retry_after("busy", Duration::from_millis(250))
    );

    // A panic fails that call only.
    let r = h.request(ask("panic", json!({}))).await.unwrap();
    assert_eq!(
        h.wait(r.request_id, WAIT).await.unwrap().state,
        RequestState::Failed
    );
    assert!(matches!(
        next_failure(&mut telemetry).await,
        AgentError::Panicked { message } if message == "boom in call"
    ));

    // Cancellation ends a long call quickly.
    let started = std::time::Instant::now();
    let r = h
        .request(ask("sleep", json!({"ms": 60_000, "case": "cancel"})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.cancel(r.request_id));
    assert_eq!(
        h.wait(r.request_id, WAIT).await.unwrap().state,
        RequestState::Cancelled
    );

    // A deadline ends a long call.
    let r = h
        .request_with(
            // Another payload: an identical request would share the call just cancelled.
            ask("sleep", json!({"ms": 60_000, "case": "deadline"})),
            RequestOptions::new().deadline(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    assert_eq!(
        h.wait(r.request_id, WAIT).await.unwrap().state,
        RequestState::DeadlinePassed
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Many calls at once.
    let mut waits = Vec::new();
    for i in 0..500 {
        let r = h
            .request(ask("sleep", json!({"ms": 10, "i": i})))
            .await
            .unwrap();
        let h = h.clone();
        waits.push(tokio::spawn(
            async move { h.wait(r.request_id, WAIT).await },
        ));
    }
    for w in waits {
        assert_eq!(w.await.unwrap().unwrap().state, RequestState::Complete);
    }

    // After all that, it still answers.
    let r = h.request(ask("echo", json!("last"))).await.unwrap();
    assert_eq!(
        h.wait(r.request_id, WAIT).await.unwrap().state,
        RequestState::Complete
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_agent_conforms() {
    suite(in_process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_agent_conforms() {
    let dir = plugins_dir();
    suite(native(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_agent_conforms() {
    suite(process().await).await;
}
