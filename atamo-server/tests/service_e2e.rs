//! The service on a real loopback port, driven by a real HTTP client: event -> rule -> HTTP
//! agent -> a receiver; request -> answers by polling and by SSE; graceful shutdown loses no
//! accepted event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atamo_core::store::{EventLog, Maintenance};
use atamo_server::serve::Service;
use axum::routing::post;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// A receiver on loopback: records every body it gets and answers `{"seen": <order>}`.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                let order = body.get("order").cloned().unwrap_or(Value::Null);
                log.lock().unwrap().push(body);
                axum::Json(json!({ "seen": order }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

struct Running {
    base: String,
    admin: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

async fn start(dir: tempfile::TempDir) -> Running {
    start_with(dir, |_| {}).await
}

async fn start_with(
    dir: tempfile::TempDir,
    change: impl FnOnce(&mut atamo_server::config::ServeConfig),
) -> Running {
    let mut cfg = common::test_config(dir.path());
    change(&mut cfg);
    let service = Service::start(&cfg).await.unwrap();
    let admin = match service.admin_token.clone() {
        Some(t) => t,
        None => std::fs::read_to_string(dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let task = tokio::spawn(service.serve(listener, async move { signal.cancelled().await }));
    Running {
        base: format!("http://{addr}"),
        admin,
        stop,
        task,
        http: reqwest::Client::new(),
        dir,
    }
}

impl Running {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn setup(&self, url: &str) {
        for (path, body) in [
            (
                "/v1/event-types",
                json!({"name": "order.created", "required": ["order.id"]}),
            ),
            (
                "/v1/agents",
                json!({"id": "hook", "kind": "http", "config": {"url": url}}),
            ),
            (
                "/v1/rules",
                json!({"id": "notify", "event_type": "order.created", "agent": "hook",
                       "action": "http.request", "template": {"body": {"order": "{{payload.order.id}}"}}}),
            ),
        ] {
            let (status, body) = self.post(path, body).await;
            assert_eq!(status, 201, "{path}: {body}");
        }
    }

    async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
        self.dir
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let limit = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < limit,
            "{what} did not happen in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_reaches_the_agent_and_its_path_is_recorded() {
    let (url, seen) = receiver().await;
    let svc = start(tempfile::tempdir().unwrap()).await;
    svc.setup(&url).await;
    let (status, receipt) = svc
        .post(
            "/v1/events",
            json!({"type": "order.created", "user": "alice", "payload": {"order": {"id": 42}}}),
        )
        .await;
    assert_eq!(status, 202, "{receipt}");
    let id = receipt["event_id"].as_str().unwrap().to_owned();
    eventually("delivery", || async { seen.lock().unwrap().len() == 1 }).await;
    assert_eq!(seen.lock().unwrap()[0], json!({"order": 42}));
    let path = format!("/v1/events/{id}");
    eventually("the event's path to end", || async {
        svc.get(&path).await.1["state"] == "done"
    })
    .await;
    let (_, view) = svc.get(&path).await;
    let steps: Vec<&str> = view["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for step in [
        "accepted",
        "rule_matched",
        "action_dispatched",
        "action_succeeded",
    ] {
        assert!(steps.contains(&step), "{step} missing from {steps:?}");
    }
    // Listed, with a payload filter.
    let (_, list) = svc
        .get("/v1/events?type=order.created&payload.order.id=42")
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = svc.get("/v1/events?payload.order.id=43").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // Metrics count it.
    let metrics = svc
        .http
        .get(format!("{}/metrics", svc.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    assert_eq!(
        line("atamo_events_accepted_total{event_type=\"order.created\"}"),
        1.0
    );
    assert_eq!(
        line("atamo_actions_total{agent=\"hook\",outcome=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        line("atamo_action_duration_seconds_count{agent=\"hook\"}"),
        1.0
    );
    assert!(
        line("atamo_http_requests_total{method=\"POST\",route=\"/v1/events\",status=\"202\"}")
            >= 1.0
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_by_wait_by_poll_and_by_feed() {
    let (url, _) = receiver().await;
    let svc = start(tempfile::tempdir().unwrap()).await;
    svc.setup(&url).await;
    let order =
        |n: u64| json!({"type": "order.created", "user": "bob", "payload": {"order": {"id": n}}});

    // Waiting: 200 with the answer.
    let mut waited = order(1);
    waited["wait_ms"] = json!(10_000);
    let (status, done) = svc.post("/v1/requests", waited).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "complete");
    assert_eq!(
        done["answers"][0]["payload"]["body"]["seen"],
        json!(1),
        "{done}"
    );

    // Polling: 202, then the state until it completes.
    let (status, accepted) = svc.post("/v1/requests", order(2)).await;
    assert_eq!(status, 202);
    let id = accepted["request_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/requests/{id}");
    eventually("the request to complete", || async {
        svc.get(&path).await.1["state"] == "complete"
    })
    .await;
    let (_, polled) = svc.get(&path).await;
    assert_eq!(
        polled["answers"][0]["payload"]["body"]["seen"],
        json!(2),
        "{polled}"
    );

    // The feed: history then live, ending with the request.
    let (_, accepted) = svc.post("/v1/requests", order(3)).await;
    let id = accepted["request_id"].as_str().unwrap().to_owned();
    let feed = svc
        .http
        .get(format!("{}/v1/requests/{id}/feed", svc.base))
        .bearer_auth(&svc.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = tokio::time::timeout(Duration::from_secs(20), feed.text())
        .await
        .expect("the feed ends when the request does")
        .unwrap();
    assert!(text.contains("event: answer"), "{text}");
    assert!(text.contains("\"seen\":3"), "{text}");

    // Cancelling an ended request is a conflict; an unknown one is not found.
    let r = svc
        .http
        .delete(format!("{}/v1/requests/{id}", svc.base))
        .bearer_auth(&svc.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_loses_no_accepted_event() {
    let (url, seen) = receiver().await;
    let svc = start(tempfile::tempdir().unwrap()).await;
    svc.setup(&url).await;
    let base = svc.base.clone();
    let admin = svc.admin.clone();
    let http = svc.http.clone();
    // Publishers keep sending while the service is told to stop.
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut publishers = Vec::new();
    for p in 0..8u64 {
        let (base, admin, http, accepted) =
            (base.clone(), admin.clone(), http.clone(), accepted.clone());
        publishers.push(tokio::spawn(async move {
            for i in 0..10_000u64 {
                let body = json!({"type": "order.created", "user": "carol",
                                  "payload": {"order": {"id": p * 100_000 + i}}});
                let r = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&admin)
                    .json(&body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 202 => {
                        let v: Value = r.json().await.unwrap();
                        accepted
                            .lock()
                            .unwrap()
                            .push(v["event_id"].as_str().unwrap().to_owned());
                    }
                    // Refused while stopping, or the connection closed: not accepted.
                    _ => break,
                }
            }
        }));
    }
    eventually("some events to be accepted", || async {
        accepted.lock().unwrap().len() >= 200
    })
    .await;
    let dir = svc.stop().await;
    for p in publishers {
        p.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 200);
    // Every acknowledged event is in the store, and was delivered or waits there as an action.
    let store = atamo_store_sqlite::SqliteStore::open(
        dir.path().join("atamo.db"),
        atamo_store_sqlite::SqliteOptions::default(),
    )
    .await
    .unwrap();
    for id in &accepted {
        let event = store.event(id.parse().unwrap()).await.unwrap();
        assert!(event.is_some(), "accepted event {id} is not in the store");
    }
    let stats = store.stats().await.unwrap();
    let delivered = seen.lock().unwrap().len() as u64;
    let waiting: u64 = stats
        .actions
        .iter()
        .filter(|(s, _)| **s != atamo_core::store::ActionState::Done)
        .map(|(_, n)| *n)
        .sum();
    assert!(
        delivered + waiting >= accepted.len() as u64,
        "{} accepted, {delivered} delivered, {waiting} waiting in the store",
        accepted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_rules_and_types_added_through_the_api_survive_a_restart() {
    let (url, seen) = receiver().await;
    let svc = start(tempfile::tempdir().unwrap()).await;
    svc.setup(&url).await;
    let admin = svc.admin.clone();
    let dir = svc.stop().await;
    // The same data directory: same admin key (no new one is made), same definitions.
    let svc = start(dir).await;
    assert_eq!(svc.admin, admin);
    let (_, agents) = svc.get("/v1/agents").await;
    assert_eq!(agents["items"][0]["definition"]["id"], "hook", "{agents}");
    let (_, rules) = svc.get("/v1/rules").await;
    assert_eq!(rules["items"][0]["id"], "notify");
    let (status, _) = svc
        .post(
            "/v1/events",
            json!({"type": "order.created", "user": "dan", "payload": {"order": {"id": 7}}}),
        )
        .await;
    assert_eq!(status, 202);
    eventually("delivery after the restart", || async {
        seen.lock().unwrap().len() == 1
    })
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_rules_and_types_declared_in_atamo_toml_are_applied_at_start() {
    let (url, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("atamo.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[event_types]]
name = "order.created"
required = ["order.id"]

[[agents]]
id = "hook"
kind = "http"
config = {{ url = "{url}" }}

[[rules]]
id = "notify"
event_type = "order.created"
agent = "hook"
action = "http.request"
template = {{ body = {{ order = "{{{{payload.order.id}}}}" }} }}
"#
        ),
    )
    .unwrap();
    let flags = atamo_server::config::Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(dir.path().to_path_buf()),
        log_format: None,
    };
    let (cfg, warnings) = atamo_server::config::load(Some(&file), &|_| None, &flags).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let service = Service::start(&cfg).await.unwrap();
    let admin = service.admin_token.clone().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let task = tokio::spawn(service.serve(listener, async move { signal.cancelled().await }));
    let http = reqwest::Client::new();
    let agents: Value = http
        .get(format!("{base}/v1/agents"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(agents["items"][0]["source"], "file", "{agents}");
    let r = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(&admin)
        .json(&json!({"type": "order.created", "user": "erin", "payload": {"order": {"id": 9}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    eventually("delivery", || async { seen.lock().unwrap().len() == 1 }).await;
    assert_eq!(seen.lock().unwrap()[0], json!({"order": 9}));
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_service_keeps_only_monitored_events() {
    let (url, seen) = receiver().await;
    let svc = start_with(tempfile::tempdir().unwrap(), |cfg| {
        cfg.store = atamo_server::config::StoreConfig::Memory;
    })
    .await;
    svc.setup(&url).await;
    let order = |n: u64, monitor: bool| {
        json!({"type": "order.created", "user": "fay", "payload": {"order": {"id": n}},
               "monitor": monitor})
    };
    let (status, plain) = svc.post("/v1/events", order(1, false)).await;
    assert_eq!(status, 202);
    let (status, watched) = svc.post("/v1/events", order(2, true)).await;
    assert_eq!(status, 202);
    let watched_id = watched["event_id"].as_str().unwrap().to_owned();
    assert_eq!(watched["monitor"], format!("/v1/events/{watched_id}"));
    eventually("both deliveries", || async {
        seen.lock().unwrap().len() == 2
    })
    .await;
    // The monitored event's path is kept; the other one is not kept at all.
    let path = format!("/v1/events/{watched_id}");
    eventually("the monitored path to end", || async {
        svc.get(&path).await.1["state"] == "done"
    })
    .await;
    let (status, missing) = svc
        .get(&format!(
            "/v1/events/{}",
            plain["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 404);
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("keeps no events"),
        "{missing}"
    );
    // Requests still answer, and a tenant-bound key sees only its own.
    let (status, key) = svc
        .post("/v1/keys", json!({"role": "client", "tenant": "acme"}))
        .await;
    assert_eq!(status, 201);
    let acme = key["token"].as_str().unwrap().to_owned();
    let (_, accepted) = svc.post("/v1/requests", order(3, false)).await;
    let id = accepted["request_id"].as_str().unwrap().to_owned();
    let r = svc
        .http
        .get(format!("{}/v1/requests/{id}", svc.base))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a request of no tenant is not acme's");
    eventually("the request to complete", || async {
        svc.get(&format!("/v1/requests/{id}")).await.1["state"] == "complete"
    })
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_telemetry_stream_shows_every_step_live() {
    use futures_util::StreamExt;
    let (url, _) = receiver().await;
    let svc = start(tempfile::tempdir().unwrap()).await;
    svc.setup(&url).await;
    let resp = svc
        .http
        .get(format!("{}/v1/telemetry", svc.base))
        .bearer_auth(&svc.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let (status, _) = svc
        .post(
            "/v1/events",
            json!({"type": "order.created", "user": "gil", "payload": {"order": {"id": 8}}}),
        )
        .await;
    assert_eq!(status, 202);
    let mut seen = String::new();
    let wanted = [
        "event: accepted",
        "event: rule_matched",
        "event: action_dispatched",
        "event: action_succeeded",
    ];
    let read = async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if wanted.iter().all(|w| seen.contains(w)) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("every step streamed");
    // The stream ends when the service stops.
    drop(body);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_made_on_one_node_reach_another_on_the_same_store() {
    let (url, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir).await;
    // A second service on the same SQLite file, as a second node would share PostgreSQL.
    let cfg = common::test_config(a.dir.path());
    let b = Service::start(&cfg).await.unwrap();
    let b_registry = b.state().registry.clone();
    let b_base = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let signal = stop.clone();
        tokio::spawn(b.serve(listener, async move { signal.cancelled().await }));
        (format!("http://{addr}"), stop)
    };
    a.setup(&url).await;
    b_registry.sync().await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", b_base.0))
            .bearer_auth(&a.admin)
            .send()
    };
    let rules: Value = get("/v1/rules").await.unwrap().json().await.unwrap();
    assert_eq!(rules["items"][0]["id"], "notify", "{rules}");
    let r = http
        .post(format!("{}/v1/events", b_base.0))
        .bearer_auth(&a.admin)
        .json(&json!({"type": "order.created", "user": "hal", "payload": {"order": {"id": 11}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "the other node routes with the new rule");
    eventually("delivery through the other node", || async {
        seen.lock().unwrap().len() == 1
    })
    .await;
    // A rule deleted on one node is gone from the other after a sync.
    let r = a
        .http
        .delete(format!("{}/v1/rules/notify", a.base))
        .bearer_auth(&a.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    b_registry.sync().await;
    let rules: Value = get("/v1/rules").await.unwrap().json().await.unwrap();
    assert_eq!(rules["items"].as_array().unwrap().len(), 0, "{rules}");
    b_base.1.cancel();
    a.stop().await;
}
