//! A real plugin library, built by cargo from this crate, loaded through the C ABI and run in
//! a hub: answers, feeds with credits, panics, cancellation, deadlines, concurrency, big
//! payloads, real I/O, log forwarding, its own allocator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use atamo_agents::native::{LoadError, NativeAgent, PluginLoader};
use atamo_core::agent::AgentError;
use atamo_core::request::RequestState;
use atamo_core::{RequestOptions, TelemetryKind};
use serde_json::json;
use support::{ask, hub_with, library_file, plugins_dir};

const WAIT: Duration = Duration::from_secs(20);

fn agent(dir: &std::path::Path) -> NativeAgent {
    let loader = PluginLoader::new(dir);
    let plugin = loader.load(library_file("atamo_test_plugin")).unwrap();
    NativeAgent::new(plugin, "test", &json!({"label": "t"}), "agent").unwrap()
}

/// Waits until the plugin reports no call running.
async fn until_idle(agent: &NativeAgent) {
    let started = tokio::time::Instant::now();
    loop {
        let health = agent.health();
        if health["detail"]["running"] == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "calls still running in the plugin: {health}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_by_the_plugin() {
    let dir = plugins_dir();
    let agent = agent(dir.path());
    let info = agent.plugin().info().clone();
    assert_eq!(info.name, "atamo-test-plugin");
    assert_eq!(info.abi, "1.0");
    assert!(info.panic_unwind);
    assert_eq!(info.kinds[0].name, "test");
    assert_eq!(info.sha256.len(), 64);

    let hub = hub_with(Arc::new(agent));
    let h = hub.handle();
    let r = h.request(ask("echo", json!({"n": 42}))).await.unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(done.answers.len(), 1);
    assert_eq!(
        *done.answers[0].payload,
        json!({"label": "t", "payload": {"n": 42}})
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_metadata_is_checked_against_the_schema_and_init_errors_pass_through() {
    let dir = plugins_dir();
    let loader = PluginLoader::new(dir.path());
    let plugin = loader.load(library_file("atamo_test_plugin")).unwrap();

    let err = NativeAgent::new(
        plugin.clone(),
        "test",
        &json!({"delay_ms": "soon", "colour": 1}),
        "a",
    )
    .unwrap_err();
    let LoadError::BadConfig { problems, .. } = &err else {
        panic!("expected BadConfig, got {err}")
    };
    assert_eq!(
        problems,
        &vec![
            "field `colour`: unknown field (expected one of: delay_ms, label)".to_owned(),
            "field `delay_ms`: expected integer, got string".to_owned(),
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains("atamo-test-plugin") && text.contains("`colour`"),
        "{text}"
    );

    let err =
        NativeAgent::new(plugin.clone(), "test", &json!({"label": "fail-init"}), "a").unwrap_err();
    assert!(matches!(err, LoadError::InitFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("asks initialisation to fail"),
        "{err}"
    );

    let err = NativeAgent::new(plugin, "nope", &json!({}), "a").unwrap_err();
    assert!(matches!(err, LoadError::UnknownKind { .. }), "{err}");
    assert!(err.to_string().contains("offers: test (Agent)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_arrives_complete_and_in_order_through_few_credits() {
    let dir = plugins_dir();
    let agent = agent(dir.path()).credits(2);
    let hub = hub_with(Arc::new(agent));
    let h = hub.handle();
    const N: u64 = 500;
    let r = h.request(ask("feed", json!({"count": N}))).await.unwrap();
    assert_eq!(
        support::read_slowly(&h, r.request_id, 100).await,
        support::feed_answers(N)
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_only_that_call_and_the_hub_keeps_serving() {
    let dir = plugins_dir();
    let hub = hub_with(Arc::new(agent(dir.path())));
    let h = hub.handle();
    let control = hub.control();
    let mut telemetry = control.subscribe();
    for (action, expected) in [("panic", "boom in call"), ("panic_in_task", "boom in task")] {
        let r = h.request(ask(action, json!({}))).await.unwrap();
        let done = h.wait(r.request_id, WAIT).await.unwrap();
        assert_eq!(done.state, RequestState::Failed, "{action}");
        loop {
            let event = tokio::time::timeout(WAIT, telemetry.recv())
                .await
                .unwrap()
                .unwrap();
            if let TelemetryKind::ActionFailed { error, .. } = &event.kind {
                assert_eq!(
                    error,
                    &AgentError::Panicked {
                        message: expected.to_owned()
                    }
                );
                break;
            }
        }
    }
    let r = h.request(ask("detached_panic", json!({}))).await.unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(*done.answers[0].payload, json!("still here"));
    let r = h.request(ask("echo", json!(1))).await.unwrap();
    assert_eq!(
        h.wait(r.request_id, WAIT).await.unwrap().state,
        RequestState::Complete
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_request_cancels_the_call_inside_the_plugin() {
    let dir = plugins_dir();
    let agent = agent(dir.path());
    let hub = hub_with(Arc::new(agent.clone()));
    let h = hub.handle();
    let r = h
        .request(ask("sleep", json!({"ms": 60_000})))
        .await
        .unwrap();
    while agent.health()["detail"]["running"] == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(h.cancel(r.request_id));
    until_idle(&agent).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_cancels_it_inside_the_plugin() {
    // The hub's shutdown grace passes while the call runs: the hub drops the call's future,
    // and its guard cancels the call in the plugin.
    let dir = plugins_dir();
    let agent = agent(dir.path());
    let mut b = atamo_core::Hub::builder()
        .event_type(atamo_core::EventTypeDef::new("do"))
        .shutdown_grace(Duration::from_millis(100));
    for a in support::ACTIONS {
        b = b.action_type(atamo_core::ActionTypeDef::new(*a));
    }
    let hub = b
        .agent(
            atamo_core::AgentSpec::new("agent", agent.clone())
                .handles(support::ACTIONS.iter().copied())
                .retry(atamo_core::failure::RetryPolicy::none()),
        )
        .provider(
            "route",
            |event: &atamo_core::Event,
             _: &atamo_core::Principal,
             out: &mut Vec<atamo_core::rules::Proposal>| {
                out.push(atamo_core::rules::Proposal::action(
                    atamo_core::RuleId::from("r"),
                    atamo_core::rules::PlannedAction::new(
                        "agent",
                        "sleep",
                        event.payload()["args"].clone(),
                    ),
                ))
            },
            atamo_core::rules::ProviderScope::EventTypes(vec!["do".into()]),
        )
        .build()
        .unwrap();
    hub.handle()
        .publish(ask("sleep", json!({"ms": 60_000})))
        .await
        .unwrap();
    while agent.health()["detail"]["running"] == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = hub.shutdown().await;
    assert_eq!(report.actions_abandoned, 1);
    until_idle(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_stops_the_call_inside_the_plugin() {
    let dir = plugins_dir();
    let agent = agent(dir.path());
    let hub = hub_with(Arc::new(agent.clone()));
    let h = hub.handle();
    let started = std::time::Instant::now();
    let r = h
        .request_with(
            ask("sleep", json!({"ms": 60_000})),
            RequestOptions::new().deadline(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::DeadlinePassed);
    until_idle(&agent).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_calls_all_complete() {
    let dir = plugins_dir();
    let agent = agent(dir.path());
    let hub = support::hub_with_spec(
        atamo_core::AgentSpec::new("agent", agent.clone()).concurrency(2000),
    );
    let h = hub.handle();
    let mut ids = Vec::new();
    for i in 0..2000 {
        ids.push(
            h.request(ask("sleep", json!({"ms": 1500, "i": i})))
                .await
                .unwrap(),
        );
    }
    // All 2,000 are inside the plugin at the same moment.
    let started = tokio::time::Instant::now();
    let mut most = 0;
    while most < 2000 && started.elapsed() < Duration::from_secs(10) {
        most = most.max(agent.health()["detail"]["running"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(most, 2000, "calls running at once inside the plugin");
    let waits: Vec<_> = ids
        .iter()
        .map(|r| {
            let (h, id) = (h.clone(), r.request_id);
            tokio::spawn(async move { h.wait(id, WAIT).await })
        })
        .collect();
    assert_eq!(waits.len(), 2000);
    for wait in waits {
        let done = wait.await.unwrap().unwrap();
        assert_eq!(done.state, RequestState::Complete);
        assert_eq!(*done.answers[0].payload, json!({"slept_ms": 1500}));
    }
    until_idle(&agent).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mebibytes_cross_both_ways_through_separate_allocators() {
    let dir = plugins_dir();
    let hub = hub_with(Arc::new(agent(dir.path())));
    let h = hub.handle();
    const LEN: usize = 16 * 1024 * 1024;
    let big = "y".repeat(LEN);
    let r = h.request(ask("echo", json!({"big": big}))).await.unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(
        done.answers[0].payload["payload"]["big"]
            .as_str()
            .unwrap()
            .len(),
        LEN
    );

    let r = h.request(ask("bytes", json!({"len": LEN}))).await.unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(done.answers[0].payload.as_str().unwrap().len(), LEN);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_does_real_io_on_its_own_runtime() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"customer":42}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        String::from_utf8(request).unwrap()
    });
    let dir = plugins_dir();
    let hub = hub_with(Arc::new(agent(dir.path())));
    let h = hub.handle();
    let url = format!("http://{addr}/customers/42");
    let r = h
        .request(ask("http_get", json!({"url": url})))
        .await
        .unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(
        *done.answers[0].payload,
        json!({"status": 200, "body": "{\"customer\":42}"})
    );
    let seen = server.await.unwrap();
    assert!(seen.starts_with("GET /customers/42 HTTP/1.1\r\n"), "{seen}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_logs_reach_the_hosts_log_and_loads_reach_telemetry() {
    let lines = support::log_lines();

    let dir = plugins_dir();
    let hub = hub_with(Arc::new(atamo_agents::LogAgent));
    let mut telemetry = hub.control().subscribe();
    let loader = PluginLoader::new(dir.path()).telemetry(hub.control());
    let plugin = loader.load(library_file("atamo_test_plugin")).unwrap();
    let event = tokio::time::timeout(WAIT, telemetry.recv())
        .await
        .unwrap()
        .unwrap();
    let TelemetryKind::PluginLoaded {
        plugin: name,
        sha256,
        ..
    } = &event.kind
    else {
        panic!("expected plugin_loaded, got {event:?}")
    };
    assert_eq!(name, "atamo-test-plugin");
    assert_eq!(sha256, &plugin.info().sha256);
    assert!(loader.load("libmissing.so").is_err());
    let event = tokio::time::timeout(WAIT, telemetry.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(event.kind, TelemetryKind::PluginLoadFailed { .. }),
        "{event:?}"
    );
    hub.shutdown().await;

    let agent = NativeAgent::new(plugin, "test", &json!({}), "logger").unwrap();
    let hub = hub_with(Arc::new(agent));
    let h = hub.handle();
    let r = h
        .request(ask("log", json!({"message": "hello from the plugin"})))
        .await
        .unwrap();
    h.wait(r.request_id, WAIT).await.unwrap();
    hub.shutdown().await;
    let logged = lines.0.lock().unwrap().clone();
    assert!(
        logged.iter().any(|l| l.contains("hello from the plugin")),
        "{logged:?}"
    );
}
