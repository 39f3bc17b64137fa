//! Health that tells the truth, over HTTP on 127.0.0.1: a service on a SQLite store whose
//! condition the test sets answers `/readyz`, `/healthz` and publishes with 503 and the reason
//! while the store is failed, shows it in its metrics, and takes work again once it recovers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use atamo_server::config::StoreConfig;
use atamo_server::serve::Service;
use atamo_server::store::ServiceStore;
use atamo_store_sqlite::{SqliteOptions, SqliteStore};
use atamo_tests::conditioned::Conditioned;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// `GET path`: the status and the body as JSON (or as text in a JSON string).
async fn get(http: &reqwest::Client, base: &str, path: &str) -> (StatusCode, Value, String) {
    let r = http.get(format!("{base}{path}")).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body, text)
}

/// The value of the metric line `series` (`name{labels}`), if it is there.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_failed_store_turns_readyz_healthz_and_publish_to_503_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::test_config(dir.path());
    let StoreConfig::Sqlite { path } = &cfg.store else {
        panic!("the test service runs on SQLite");
    };
    let sqlite = SqliteStore::open(path, SqliteOptions::default())
        .await
        .unwrap();
    let (store, condition) = Conditioned::new(sqlite);
    let service = Service::start_on(&cfg, ServiceStore::new(store))
        .await
        .unwrap();
    let admin = service.admin_token.clone().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(service.serve(listener, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    for (path, body) in [
        (
            "/v1/event-types",
            json!({"name": "order.created", "required": ["order.id"]}),
        ),
        (
            "/v1/agents",
            json!({"id": "hook", "kind": "http", "config": {"url": "http://127.0.0.1:9/unused"}}),
        ),
    ] {
        let r = http
            .post(format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{path}");
    }
    let publish = || async {
        let r = http
            .post(format!("{base}/v1/events"))
            .bearer_auth(&admin)
            .json(
                &json!({"type": "order.created", "user": "alice", "payload": {"order": {"id": 1}}}),
            )
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json::<Value>().await.unwrap())
    };

    // Healthy: every component listed, ready, and up in the metrics.
    let (status, ready, _) = get(&http, &base, "/readyz").await;
    assert_eq!(
        (status, &ready["status"]),
        (StatusCode::OK, &json!("ready"))
    );
    let (status, health, text) = get(&http, &base, "/healthz").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(health["status"], "ok", "{text}");
    let components = &health["components"];
    assert_eq!(components["hub"]["status"], "ok");
    assert_eq!(components["store"]["status"], "ok");
    assert_eq!(components["store"]["condition"]["state"], "ready");
    for name in [
        "agent_worker:hook",
        "alert_monitor",
        "claimer",
        "committer",
        "heartbeat",
        "pruner",
        "request_timers",
        "router",
        "settle_writer",
    ] {
        let c = &components[name];
        assert_eq!(c["status"], "ok", "{name}: {text}");
        assert_eq!(c["state"], "ready", "{name}: {text}");
        assert_eq!(c["restarts"], 0, "{name}: {text}");
        assert!(c["since"].is_string(), "{name}: {text}");
    }
    assert_eq!(components["router"]["essential"], true);
    assert_eq!(components["agent_worker:hook"]["essential"], false);
    let (_, _, metrics) = get(&http, &base, "/metrics").await;
    assert_eq!(metric(&metrics, "atamo_hub_ready"), Some(1.0), "{metrics}");
    for name in ["router", "settle_writer", "agent_worker:hook", "store"] {
        let series = format!("atamo_component_up{{component=\"{name}\"}}");
        assert_eq!(metric(&metrics, &series), Some(1.0), "{series}");
        let series = format!("atamo_component_restarts_total{{component=\"{name}\"}}");
        assert_eq!(metric(&metrics, &series), Some(0.0), "{series}");
    }
    let (status, _) = publish().await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The store fails: nothing is answered 202 that cannot be kept, and health says why.
    condition.fail("the disk is full");
    let (status, ready, _) = get(&http, &base, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready,
        json!({"status": "not_ready", "reasons": [{"component": "store", "reason": "the disk is full"}]})
    );
    let (status, problem) = publish().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["status"], 503);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("store: the disk is full"), "{detail}");
    let (status, health, text) = get(&http, &base, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(health["status"], "failing");
    assert_eq!(health["components"]["hub"]["status"], "failing");
    assert_eq!(health["components"]["store"]["status"], "failing");
    assert_eq!(health["components"]["store"]["error"], "the disk is full");
    assert_eq!(
        health["components"]["store"]["condition"]["state"],
        "failed"
    );
    assert_eq!(health["reasons"][0]["component"], "store");
    let (_, _, metrics) = get(&http, &base, "/metrics").await;
    assert_eq!(metric(&metrics, "atamo_hub_ready"), Some(0.0));
    assert_eq!(
        metric(&metrics, "atamo_component_up{component=\"store\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics, "atamo_component_up{component=\"router\"}"),
        Some(1.0)
    );

    // It recovers: ready again, and events are taken.
    condition.recover();
    let (status, _, _) = get(&http, &base, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, health, _) = get(&http, &base, "/healthz").await;
    assert_eq!((status, &health["status"]), (StatusCode::OK, &json!("ok")));
    let (status, _) = publish().await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, _, metrics) = get(&http, &base, "/metrics").await;
    assert_eq!(metric(&metrics, "atamo_hub_ready"), Some(1.0));

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
