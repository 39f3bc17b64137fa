//! Values out of range, through the real service on a loopback port: refused at their field
//! by the API as by `atamo.toml` and the environment, with the same message; the largest
//! values accepted leave the store working; and the default retry policy rides out a short
//! outage of an HTTP receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_core::bounded::KeepAlive;
use atamo_server::config::{self, Overrides};
use atamo_server::serve::Service;
use axum::routing::post;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Running {
    base: String,
    admin: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::test_config(dir.path());
    let service = Service::start(&cfg).await.unwrap();
    let admin = service.admin_token.clone().expect("a first admin key");
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
        _dir: dir,
    }
}

/// A status, the body, and the fields a problem report names (sorted).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn fields(&self) -> Vec<String> {
        let mut f: Vec<String> = self.body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|x| x["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        f.sort();
        f
    }

    fn message(&self, field: &str) -> String {
        self.body["errors"]
            .as_array()
            .and_then(|e| e.iter().find(|x| x["field"] == field))
            .map(|x| x["message"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no error at {field}: {}", self.body))
    }
}

impl Running {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        Answer {
            status,
            body: r.json().await.unwrap_or(Value::Null),
        }
    }

    /// Posts `body` as it is written (numbers beyond 64 bits included).
    async fn post(&self, path: &str, body: &str) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// A receiver on loopback answering `{"ok": true}` to every POST, counting them.
async fn receiver_on(listener: tokio::net::TcpListener) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"ok": true}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    seen
}

async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < until,
            "{what} did not happen in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sequence that stopped the SQLite writer: a keep-alive of 1e15 ms on an event type, a
/// rule to an agent, a request. Each value out of range is refused at its field; the longest
/// keep-alive allowed is accepted, and afterwards the store still takes every write and the
/// service stays ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_keep_alive_is_refused_and_the_longest_allowed_keeps_the_store_working() {
    let s = start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = receiver_on(listener).await;

    let r = s
        .post(
            "/v1/event-types",
            r#"{"name":"lookup","keep_alive_ms":1000000000000000}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (400, vec!["keep_alive_ms".to_owned()]),
        "{}",
        r.body
    );
    assert_eq!(
        r.message("keep_alive_ms"),
        "must be at most 30days (2592000000 ms)"
    );
    let r = s
        .post(
            "/v1/event-types",
            r#"{"name":"lookup","keep_alive_ms":18446744073709551616}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (400, vec!["keep_alive_ms".to_owned()]),
        "{}",
        r.body
    );

    let longest = KeepAlive::MAX.as_millis();
    let r = s
        .post(
            "/v1/event-types",
            &format!(r#"{{"name":"lookup","keep_alive_ms":{longest}}}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let agent = json!({"id": "hook", "kind": "http", "config": {"url": url}}).to_string();
    assert_eq!(s.post("/v1/agents", &agent).await.status, 201);

    let rule = |extra: &str| {
        format!(
            r#"{{"id":"look","event_type":"lookup","agent":"hook","action":"http.request",
                "template":{{"body":{{"q":"{{{{payload.q}}}}"}}}}{extra}}}"#
        )
    };
    let r = s
        .post("/v1/rules", &rule(r#","cache_ttl_ms":1000000000000000"#))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (400, vec!["cache_ttl_ms".to_owned()]),
        "{}",
        r.body
    );
    let r = s
        .post(
            "/v1/rules",
            &rule(r#","retry":{"max_elapsed_ms":1000000000000000}"#),
        )
        .await;
    assert_eq!(r.fields(), ["retry.max_elapsed_ms"], "{}", r.body);
    let r = s.post("/v1/rules", &rule("")).await;
    assert_eq!(r.status, 201, "{}", r.body);

    let r = s
        .post(
            "/v1/requests",
            r#"{"type":"lookup","user":"u","payload":{"q":1},"wait_ms":1000000000000000}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (400, vec!["wait_ms".to_owned()]),
        "{}",
        r.body
    );
    for i in 0..3 {
        let body =
            format!(r#"{{"type":"lookup","user":"u","payload":{{"q":{i}}},"wait_ms":10000}}"#);
        let r = s.post("/v1/requests", &body).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        assert_eq!(r.body["state"], "complete", "{}", r.body);
    }
    // The answers were stored with an expiry 30 days out; the writer took it and takes more.
    let r = s
        .post(
            "/v1/events",
            r#"{"type":"lookup","user":"u","payload":{"q":9}}"#,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("the event's delivery", Duration::from_secs(20), || {
        let seen = seen.clone();
        async move { seen.load(Ordering::SeqCst) >= 4 }
    })
    .await;
    assert_eq!(s.get("/readyz").await.status, 200);
    s.stop().await;
}

/// The values of the second sequence (jitter 1e300, backoffs of u64::MAX ms) are refused with
/// a 400 naming each field, as `atamo.toml` and `ATAMO_*` refuse them, with the same words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_values_out_of_range_are_refused_alike_by_the_api_the_file_and_the_environment() {
    let s = start().await;
    let rule = |retry: &str| {
        format!(
            r#"{{"id":"r","event_type":"e","agent":"a","action":"x","template":{{}},
                "retry":{retry}}}"#
        )
    };
    let r = s
        .post("/v1/rules", &rule(r#"{"max_attempts":3,"jitter":1e300}"#))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (400, vec!["retry.jitter".to_owned()]),
        "{}",
        r.body
    );
    let jitter = r.message("retry.jitter");
    let r = s
        .post(
            "/v1/rules",
            &rule(r#"{"initial_backoff_ms":18446744073709551615,"max_backoff_ms":18446744073709551615,"jitter":1e300,"max_attempts":0,"multiplier":1e300}"#),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.fields(),
        [
            "retry.initial_backoff_ms",
            "retry.jitter",
            "retry.max_attempts",
            "retry.max_backoff_ms",
            "retry.multiplier"
        ],
        "every bad part is named: {}",
        r.body
    );
    let backoff = r.message("retry.initial_backoff_ms");
    let attempts = r.message("retry.max_attempts");
    let r = s
        .post(
            "/v1/action-types",
            r#"{"name":"x","retry":{"max_backoff_ms":18446744073709551615}}"#,
        )
        .await;
    assert_eq!(r.fields(), ["retry.max_backoff_ms"], "{}", r.body);
    assert_eq!(r.message("retry.max_backoff_ms"), backoff);
    assert_eq!(s.get("/readyz").await.status, 200);
    s.stop().await;

    // The same values in atamo.toml: the same fields, the same messages.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("atamo.toml");
    std::fs::write(
        &file,
        "[retry]\njitter = 1e300\nmax_attempts = 0\ninitial_backoff = \"10000d\"\n\n\
         [[rules]]\nid = \"r\"\nevent_type = \"e\"\nagent = \"a\"\naction = \"x\"\ntemplate = {}\n\
         retry = { jitter = 1e300, initial_backoff_ms = 9223372036854775807 }\n",
    )
    .unwrap();
    let errors = config::load(Some(&file), &|_| None, &Overrides::default()).unwrap_err();
    let says = |path: &str| {
        errors
            .0
            .iter()
            .find(|i| i.path == path)
            .map(|i| i.message.clone())
            .unwrap_or_else(|| panic!("no error at {path}: {errors}"))
    };
    assert_eq!(says("retry.jitter"), jitter);
    assert_eq!(says("retry.max_attempts"), attempts);
    assert_eq!(says("rules[0].retry.jitter"), jitter);
    assert_eq!(says("rules[0].retry.initial_backoff_ms"), backoff);
    assert!(says("retry.initial_backoff").starts_with("must be at most 1day"));

    // And ATAMO_KEEP_ALIVE says what the API says of keep_alive_ms.
    let env = |var: &str| (var == "ATAMO_KEEP_ALIVE").then(|| "100000000d".to_owned());
    let errors = config::load(None, &env, &Overrides::default()).unwrap_err();
    assert_eq!(errors.0[0].path, "ATAMO_KEEP_ALIVE");
    assert_eq!(
        errors.0[0].message,
        "must be at most 30days (2592000000 ms)"
    );
}

/// An HTTP receiver refusing connections for 20 seconds, then accepting: with the default
/// retry policy every event is delivered and none is dead-lettered. This runs in real time
/// (about 35 s: the retries' pauses are 0.5, 1, 2, 4, 8, 16 s, each within 20% jitter), so
/// that the policy itself is what is proved, not a shortened one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_retry_policy_rides_out_a_twenty_second_outage() {
    const EVENTS: usize = 50;
    const OUTAGE: Duration = Duration::from_secs(20);
    // A port nobody listens on until the outage ends.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = start().await;
    let body = json!({"name": "order.created", "required": ["order.id"]}).to_string();
    assert_eq!(s.post("/v1/event-types", &body).await.status, 201);
    let agent = json!({"id": "hook", "kind": "http",
                       "config": {"url": format!("http://127.0.0.1:{port}/hook")}});
    assert_eq!(s.post("/v1/agents", &agent.to_string()).await.status, 201);
    let rule = json!({"id": "notify", "event_type": "order.created", "agent": "hook",
                      "action": "http.request", "template": {"body": {"order": "{{payload.order.id}}"}}});
    assert_eq!(s.post("/v1/rules", &rule.to_string()).await.status, 201);

    let down_since = tokio::time::Instant::now();
    for i in 0..EVENTS {
        let e = json!({"type": "order.created", "user": "alice", "payload": {"order": {"id": i}}});
        let r = s.post("/v1/events", &e.to_string()).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    tokio::time::sleep_until(down_since + OUTAGE).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let seen = receiver_on(listener).await;
    eventually("every event's delivery", Duration::from_secs(90), || {
        let seen = seen.clone();
        async move { seen.load(Ordering::SeqCst) >= EVENTS }
    })
    .await;
    let dead = s.get("/v1/dead-letters").await;
    assert_eq!(dead.status, 200);
    let items = dead.body["items"].as_array().map_or(0, Vec::len);
    assert_eq!(items, 0, "no dead letter: {}", dead.body);
    s.stop().await;
}

/// The bodies' schemas are the types that read them, with the ranges of their values: a client
/// generator or a fuzzer reads the same limits the service applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_each_body_with_its_ranges() {
    let s = start().await;
    let doc = s.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    let doc = doc.body;
    let body_of = |path: &str| {
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("no schema for POST {path}"))
            .to_owned()
    };
    assert_eq!(body_of("/v1/rules"), "#/components/schemas/Rule");
    assert_eq!(body_of("/v1/requests"), "#/components/schemas/RequestIn");
    assert_eq!(body_of("/v1/rules:dry-run"), "#/components/schemas/EventIn");
    assert_eq!(body_of("/v1/events"), "#/components/schemas/EventIn");
    let schemas = &doc["components"]["schemas"];
    let rule = &schemas["Rule"]["properties"];
    for key in [
        "id",
        "event_type",
        "agent",
        "action",
        "template",
        "retry",
        "cache_ttl_ms",
    ] {
        assert!(rule.get(key).is_some(), "Rule.{key}: {rule}");
    }
    let retry = &schemas["RetryPolicy"]["properties"];
    assert!(
        retry["jitter"]
            .to_string()
            .contains("#/components/schemas/Jitter"),
        "{retry}"
    );
    assert_eq!(schemas["Jitter"]["maximum"], 1.0);
    assert_eq!(schemas["Attempts"]["minimum"], 1);
    assert_eq!(schemas["Attempts"]["maximum"], 100);
    assert_eq!(schemas["Backoff"]["maximum"], 86_400_000);
    assert_eq!(schemas["KeepAlive"]["maximum"], 2_592_000_000u64);
    let keep_alive = &schemas["EventTypeBody"]["properties"]["keep_alive_ms"];
    assert!(keep_alive.to_string().contains("KeepAlive"), "{keep_alive}");
    // Every reference leads to a schema the document holds.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(schemas.get(name).is_some(), "{r} leads nowhere");
    }
    let example = &schemas["EventIn"]["example"];
    assert_eq!(example["payload"]["order"]["id"], 7, "{example}");
    s.stop().await;
}
