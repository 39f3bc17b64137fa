//! The built-in HTTP agent against a real axum server on loopback, run in a hub through rules:
//! status classes, Retry-After, timeouts, gzip, a templated body arriving intact, each user's
//! own credential, secrets kept out of errors, answers and logs, and bad configurations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atamo_agents::builtin::http::HttpAgent;
use atamo_agents::builtin::{
    ConfigCredentials, Credential, CredentialProvider, NoCredentials, Secret,
};
use atamo_config::{Rule, RuleBook};
use atamo_core::agent::AgentError;
use atamo_core::request::PartStatus;
use atamo_core::rules::ProviderScope;
use atamo_core::{ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The server.

/// One request as the server received it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Received>>>);

impl Log {
    fn all(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }

    fn last(&self) -> Received {
        self.all().pop().expect("the server received nothing")
    }
}

struct Server {
    base: String,
    log: Log,
}

/// An axum server on 127.0.0.1, port chosen by the system. Every request is recorded; the path
/// decides the answer.
async fn server() -> Server {
    let log = Log::default();
    let app = Router::new().fallback(answer).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base: format!("http://{addr}"),
        log,
    }
}

async fn answer(State(log): State<Log>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap()
        .to_vec();
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body,
    };
    log.0.lock().unwrap().push(received.clone());
    let authorization = received.header("authorization").unwrap_or("").to_owned();
    let json_type = [(header::CONTENT_TYPE, "application/json")];
    match received.path.as_str() {
        "/json" => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::ETAG, "\"v1\""),
            ],
            r#"{"ok": true, "items": [1, 2]}"#,
        )
            .into_response(),
        "/text" => (
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "text/plain"),
                (header::LOCATION, "/orders/7"),
            ],
            "created order 7",
        )
            .into_response(),
        "/moved" => (
            StatusCode::FOUND,
            [(header::LOCATION, "http://elsewhere.invalid/steal")],
        )
            .into_response(),
        "/missing" => (StatusCode::NOT_FOUND, "no such order:\n  7").into_response(),
        "/down" => (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response(),
        "/busy" => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "7")],
            "slow down",
        )
            .into_response(),
        "/busy-until" => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "Fri, 01 Jan 2100 00:00:00 GMT")],
        )
            .into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "too late").into_response()
        }
        "/gzip" => {
            let accepts = received
                .header("accept-encoding")
                .is_some_and(|v| v.contains("gzip"));
            if !accepts {
                return (StatusCode::BAD_REQUEST, "gzip not accepted").into_response();
            }
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder
                .write_all(
                    json!({"compressed": true, "text": "ünïcode ".repeat(50)})
                        .to_string()
                        .as_bytes(),
                )
                .unwrap();
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                Body::from(encoder.finish().unwrap()),
            )
                .into_response()
        }
        // A careless server that echoes the credential back, in an error and in an answer.
        "/echo-auth-error" => (
            StatusCode::UNAUTHORIZED,
            format!("bad credential: {authorization}"),
        )
            .into_response(),
        "/echo-auth-down" => (
            StatusCode::BAD_GATEWAY,
            format!("upstream refused {authorization}"),
        )
            .into_response(),
        "/echo-auth" => (
            StatusCode::OK,
            json_type,
            json!({"you_sent": authorization, "nested": [{"again": authorization}]}).to_string(),
        )
            .into_response(),
        _ => (StatusCode::OK, json_type, r#"{"received": true}"#).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// The hub.

/// A hub with `agent` registered as `api` (handling `http.request`) and the given rules on
/// `http.call` events.
fn hub(agent: HttpAgent, rules: Vec<Rule>) -> Hub {
    Hub::builder()
        .event_type(EventTypeDef::new("http.call"))
        .action_type(ActionTypeDef::new("http.request"))
        .agent(
            AgentSpec::new("api", agent)
                .handles(["http.request"])
                .retry(atamo_core::failure::RetryPolicy::none()),
        )
        .provider(
            "rules",
            RuleBook::with_rules(rules).unwrap(),
            ProviderScope::AllEvents,
        )
        .build()
        .unwrap()
}

/// The rule that makes the event's whole payload the action's.
fn pass_through() -> Rule {
    Rule::new(
        "call",
        "http.call",
        "api",
        "http.request",
        json!("{{payload}}"),
    )
}

fn agent(config: Value, credentials: impl CredentialProvider) -> HttpAgent {
    HttpAgent::from_config("api", &config, Arc::new(credentials)).unwrap()
}

/// A hub with one agent at `base` and the pass-through rule.
fn simple(base: &str, extra: Value, credentials: impl CredentialProvider) -> Hub {
    let mut config = json!({"base_url": base});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    hub(agent(config, credentials), vec![pass_through()])
}

/// Publishes an `http.call` request for `user` and returns the agent's answer or its error.
async fn call(hub: &Hub, user: &str, payload: Value) -> Result<Value, AgentError> {
    let handle = hub.handle();
    let receipt = handle
        .request(Event::new("http.call", Principal::user(user), payload))
        .await
        .unwrap();
    let done = handle.wait(receipt.request_id, WAIT).await.unwrap();
    assert_eq!(done.parts.len(), 1, "{done:?}");
    match &done.parts[0].status {
        PartStatus::Done => {
            assert_eq!(done.answers.len(), 1, "one answer per call: {done:?}");
            Ok(Value::clone(&done.answers[0].payload))
        }
        PartStatus::Failed { error } => Err(error.clone()),
        other => panic!("unexpected part status {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn status_classes_become_answers_or_the_right_failures() {
    let server = server().await;
    let hub = simple(&server.base, json!({}), NoCredentials);

    // 200 with JSON: parsed, with the headers that matter.
    let ok = call(&hub, "alice", json!({"method": "GET", "path": "/json"}))
        .await
        .unwrap();
    assert_eq!(
        ok,
        json!({
            "status": 200,
            "headers": {"content-type": "application/json", "etag": "\"v1\""},
            "body": {"ok": true, "items": [1, 2]}
        })
    );
    // 201 with text (the default method, POST): the text, and where the new thing is.
    let created = call(&hub, "alice", json!({"path": "text"})).await.unwrap();
    assert_eq!(
        created,
        json!({
            "status": 201,
            "headers": {"content-type": "text/plain", "location": "/orders/7"},
            "body": "created order 7"
        })
    );
    assert_eq!(server.log.last().method, "POST");
    // A redirect is an answer, not followed (the credential stays with this host).
    let moved = call(&hub, "alice", json!({"method": "GET", "path": "/moved"}))
        .await
        .unwrap();
    assert_eq!(moved["status"], 302);
    assert_eq!(
        moved["headers"]["location"],
        "http://elsewhere.invalid/steal"
    );
    assert_eq!(moved["body"], Value::Null);

    // 404: permanent, with the status and the start of the body.
    let missing = call(&hub, "alice", json!({"method": "GET", "path": "/missing"})).await;
    match missing {
        Err(AgentError::Permanent { reason }) => {
            assert!(reason.contains("404 Not Found"), "{reason}");
            assert!(reason.contains("no such order: 7"), "{reason}");
            assert!(reason.contains("GET /missing"), "{reason}");
        }
        other => panic!("404 should be permanent: {other:?}"),
    }
    // 503: retryable, no hint.
    match call(&hub, "alice", json!({"path": "/down"})).await {
        Err(AgentError::Retry { reason, after }) => {
            assert!(reason.contains("503 Service Unavailable"), "{reason}");
            assert!(reason.contains("down for maintenance"), "{reason}");
            assert_eq!(after, None);
        }
        other => panic!("503 should be retryable: {other:?}"),
    }
    // 429 with Retry-After in seconds.
    match call(&hub, "alice", json!({"path": "/busy"})).await {
        Err(AgentError::Retry { reason, after }) => {
            assert!(reason.contains("429 Too Many Requests"), "{reason}");
            assert_eq!(after, Some(Duration::from_secs(7)));
        }
        other => panic!("429 should be retryable: {other:?}"),
    }
    // 429 with Retry-After as an HTTP date.
    match call(&hub, "alice", json!({"path": "/busy-until"})).await {
        Err(AgentError::Retry {
            after: Some(after), ..
        }) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let expected = 4_102_444_800 - now; // 2100-01-01T00:00:00Z
            assert!(
                after.as_secs().abs_diff(expected) <= 5,
                "{after:?} vs {expected}s"
            );
        }
        other => panic!("429 should be retryable with a date: {other:?}"),
    }
    // The classification is the hub's too: only the permanent failure is not retryable.
    assert!(!AgentError::permanent("x").is_retryable());
}

#[tokio::test]
async fn the_request_timeout_is_a_timeout() {
    let server = server().await;
    let hub = simple(&server.base, json!({"timeout_ms": 300}), NoCredentials);
    let started = Instant::now();
    let result = call(&hub, "alice", json!({"method": "GET", "path": "/slow"})).await;
    assert_eq!(
        result,
        Err(AgentError::Timeout {
            after: Duration::from_millis(300)
        })
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(AgentError::Timeout {
        after: Duration::ZERO
    }
    .is_retryable());
}

#[tokio::test]
async fn connection_errors_are_retryable() {
    // A port nobody listens on any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let hub = simple(
        &format!("http://{addr}"),
        json!({"timeout_ms": 5000}),
        NoCredentials,
    );
    match call(&hub, "alice", json!({"path": "/orders"})).await {
        Err(AgentError::Retry {
            reason,
            after: None,
        }) => {
            assert!(reason.starts_with("POST /orders: "), "{reason}");
        }
        other => panic!("a refused connection should be retryable: {other:?}"),
    }
}

#[tokio::test]
async fn gzip_responses_are_decoded() {
    let server = server().await;
    let hub = simple(&server.base, json!({"method": "GET"}), NoCredentials);
    let answer = call(&hub, "alice", json!({"path": "/gzip"})).await.unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["compressed"], true);
    assert_eq!(answer["body"]["text"], "ünïcode ".repeat(50));
    assert!(server
        .log
        .last()
        .header("accept-encoding")
        .unwrap()
        .contains("gzip"));
}

#[tokio::test]
async fn a_templated_body_arrives_intact() {
    let server = server().await;
    let credentials = ConfigCredentials::new().with(
        "api",
        "alice",
        Credential::Token(Secret::new("alice-token")),
    );
    let rule = Rule::new(
        "create-order",
        "http.call",
        "api",
        "http.request",
        json!({"path": "/orders", "body": {"id": "{{payload.order.id}}", "note": "{{payload.note}}"}}),
    );
    let hub = hub(
        agent(
            json!({"base_url": format!("{}/", server.base)}),
            credentials,
        ),
        vec![rule],
    );
    let note = "She said \"hi\" — naïve café ✓ 日本語 🚀\nline two\r\n\ttab \\ backslash {{not a field}} </script>";
    let answer = call(&hub, "alice", json!({"order": {"id": 7}, "note": note}))
        .await
        .unwrap();
    assert_eq!(answer["status"], 200);

    let got = server.log.last();
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/orders");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("authorization"), Some("Bearer alice-token"));
    // The id keeps its type; the note arrives byte for byte.
    assert_eq!(got.json(), json!({"id": 7, "note": note}));
    assert_eq!(
        got.json()["note"].as_str().unwrap().as_bytes(),
        note.as_bytes()
    );
}

#[tokio::test]
async fn method_query_and_headers_come_from_the_action() {
    let server = server().await;
    let hub = simple(
        &format!("{}/api", server.base),
        json!({"headers": {"Accept": "application/json", "X-Client": "atamo"}}),
        NoCredentials,
    );
    let action = json!({
        "method": "GET",
        "path": "/customers/42",
        "query": {"include": "orders & notes", "limit": 10, "tag": ["a", "b"], "skip": null},
        "headers": {"X-Client": "atamo-test", "X-Trace": "t-1"}
    });
    call(&hub, "alice", action).await.unwrap();
    let got = server.log.last();
    assert_eq!(got.method, "GET");
    assert_eq!(got.path, "/api/customers/42");
    assert_eq!(
        got.query.as_deref(),
        Some("include=orders+%26+notes&limit=10&tag=a&tag=b")
    );
    assert_eq!(got.header("accept"), Some("application/json"));
    assert_eq!(got.header("x-client"), Some("atamo-test"));
    assert_eq!(got.header("x-trace"), Some("t-1"));
    assert!(got.body.is_empty());
    assert_eq!(got.header("authorization"), None);
    // The action id, so that the endpoint can recognise a repeated delivery.
    let key = got.header("idempotency-key").expect("an idempotency key");
    assert_eq!(key.len(), 36, "{key}");
    call(&hub, "alice", json!({"path": "/again"}))
        .await
        .unwrap();
    assert_ne!(
        server.log.last().header("idempotency-key"),
        Some(key),
        "one per action"
    );
}

#[tokio::test]
async fn each_user_sends_their_own_credential() {
    let server = server().await;
    let credentials = ConfigCredentials::new()
        .with(
            "api",
            "alice",
            Credential::Token(Secret::new("alice-token")),
        )
        .with("api", "bob", Credential::Token(Secret::new("bob-token")))
        .with(
            "api",
            "dave",
            Credential::Password {
                user: "Aladdin".into(),
                password: Secret::new("open sesame"),
            },
        )
        .with(
            "api",
            "erin",
            Credential::ApiKey {
                header: "X-Api-Key".into(),
                key: Secret::new("erin-key"),
            },
        );
    let hub = simple(&server.base, json!({}), credentials);
    for user in ["alice", "bob", "carol", "dave", "erin", "bob", "alice"] {
        call(&hub, user, json!({"path": format!("/whoami/{user}")}))
            .await
            .unwrap();
    }
    let seen: Vec<(String, Option<String>, Option<String>)> = server
        .log
        .all()
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.header("authorization").map(str::to_owned),
                r.header("x-api-key").map(str::to_owned),
            )
        })
        .collect();
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        seen,
        vec![
            ("/whoami/alice".into(), s("Bearer alice-token"), None),
            ("/whoami/bob".into(), s("Bearer bob-token"), None),
            ("/whoami/carol".into(), None, None),
            (
                "/whoami/dave".into(),
                s("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
                None
            ),
            ("/whoami/erin".into(), None, s("erin-key")),
            ("/whoami/bob".into(), s("Bearer bob-token"), None),
            ("/whoami/alice".into(), s("Bearer alice-token"), None),
        ]
    );
}

/// Records every tracing event and span field, as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::always()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let mut text = self.0.lock().unwrap();
        let _ = write!(text, "\nspan {} ", span.metadata().name());
        span.record(&mut Fields(&mut text));
        tracing::span::Id::from_u64(NEXT.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        let _ = write!(
            text,
            "\n{} {} ",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Fields(&mut text));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// A current-thread runtime: the hub's tasks run on this thread, under the capture.
#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_errors_answers_or_logs() {
    const TOKEN: &str = "tok-9f8e7d6c5b4a";
    const PASSWORD: &str = "pw-1a2b3c4d5e";
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    let server = server().await;
    let credentials = ConfigCredentials::new()
        .with("api", "alice", Credential::Token(Secret::new(TOKEN)))
        .with(
            "api",
            "bob",
            Credential::Password {
                user: "bob".into(),
                password: Secret::new(PASSWORD),
            },
        );
    let hub = simple(&server.base, json!({"timeout_ms": 300}), credentials);
    // The basic-auth header carries base64("bob:" + PASSWORD).
    let encoded = server_basic_token(&hub, &server).await;

    let mut texts = Vec::new();
    for user in ["alice", "bob"] {
        for path in ["/echo-auth-error", "/echo-auth-down", "/slow", "/echo-auth"] {
            let result = call(&hub, user, json!({"path": path})).await;
            match (&result, path) {
                (Err(AgentError::Permanent { reason }), "/echo-auth-error") => {
                    assert!(reason.contains("401") && reason.contains("***"), "{reason}")
                }
                (Err(AgentError::Retry { reason, .. }), "/echo-auth-down") => {
                    assert!(reason.contains("502") && reason.contains("***"), "{reason}")
                }
                (Err(AgentError::Timeout { .. }), "/slow") => {}
                (Ok(answer), "/echo-auth") => {
                    assert!(answer["body"]["you_sent"].as_str().unwrap().contains("***"))
                }
                _ => panic!("{path} as {user}: unexpected {result:?}"),
            }
            texts.push(format!(
                "{result:?} {}",
                serde_json::to_string(&result.as_ref().ok()).unwrap()
            ));
        }
    }
    // A refused connection too.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let refused = simple(
        &closed,
        json!({}),
        ConfigCredentials::new().with("api", "alice", Credential::Token(Secret::new(TOKEN))),
    );
    let result = call(&refused, "alice", json!({"path": "/x"})).await;
    assert!(
        matches!(result, Err(AgentError::Retry { .. })),
        "{result:?}"
    );
    texts.push(format!("{result:?}"));
    hub.shutdown().await;
    refused.shutdown().await;

    // The server did get the secrets...
    let sent: Vec<String> = server
        .log
        .all()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert!(sent.contains(&format!("Bearer {TOKEN}")));
    assert!(sent.contains(&format!("Basic {encoded}")));
    // ...and nothing else did.
    let logs = capture.0.lock().unwrap().clone();
    assert!(
        logs.contains("http request"),
        "the capture saw nothing: {logs}"
    );
    assert!(logs.contains("/echo-auth-error"), "{logs}");
    for secret in [TOKEN, PASSWORD, encoded.as_str()] {
        for text in &texts {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs: {logs}"
        );
    }
}

/// Asks the server what bob's basic-auth header was (the test computes nothing itself).
async fn server_basic_token(hub: &Hub, server: &Server) -> String {
    call(hub, "bob", json!({"path": "/learn-basic"}))
        .await
        .unwrap();
    let got = server.log.last();
    let header = got.header("authorization").unwrap();
    header.strip_prefix("Basic ").unwrap().to_owned()
}

#[tokio::test]
async fn a_bad_action_payload_is_permanent_and_names_the_field() {
    let server = server().await;
    let api = simple(&format!("{}/api", server.base), json!({}), NoCredentials);
    let cases = [
        (json!({"path": 5, "verb": "GET"}), vec!["`path`", "`verb`"]),
        (json!({"path": 5, "body": {}}), vec!["`path`"]),
        (
            json!({"path": "/x", "method": "NOT A METHOD"}),
            vec!["`method`"],
        ),
        (
            json!({"path": "/x", "query": {"q": {"deep": 1}}}),
            vec!["`query.q`"],
        ),
        (
            json!({"path": "/x", "headers": {"Bad Header": "v"}}),
            vec!["`headers.Bad Header`"],
        ),
        (json!({"path": "/../admin"}), vec!["`path`", "outside"]),
    ];
    for (payload, expected) in cases {
        match call(&api, "alice", payload.clone()).await {
            Err(AgentError::Permanent { reason }) => {
                for word in expected {
                    assert!(reason.contains(word), "{payload}: {reason} lacks {word}");
                }
            }
            other => panic!("{payload}: expected a permanent failure, got {other:?}"),
        }
    }
    // A payload that is not an object at all.
    let to_text = Rule::new(
        "text",
        "http.call",
        "api",
        "http.request",
        json!("{{payload.text}}"),
    );
    let texts = hub(
        agent(json!({"base_url": server.base}), NoCredentials),
        vec![to_text],
    );
    match call(&texts, "alice", json!({"text": "GET /"})).await {
        Err(AgentError::Permanent { reason }) => assert!(reason.contains("(root)"), "{reason}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(server.log.all().is_empty(), "nothing should have been sent");
}

#[test]
fn a_bad_config_names_every_problem() {
    let problems = HttpAgent::from_config(
        "api",
        &json!({"timeout_ms": "soon", "colour": "red", "method": "GET ME", "tls": {"ca_file": "/nonexistent/ca.pem", "verify": false}}),
        Arc::new(NoCredentials),
    )
    .unwrap_err();
    assert_eq!(problems.agent, "api");
    assert_eq!(problems.kind, "http");
    let text = problems.to_string();
    for word in [
        "`base_url`",
        "`timeout_ms`",
        "`colour`",
        "`method`",
        "`tls.verify`",
        "`tls.ca_file`",
    ] {
        assert!(
            problems.problems.iter().any(|p| p.contains(word)),
            "{word} not named in {text}"
        );
    }
    assert_eq!(problems.problems.len(), 6, "{text}");

    // What only a URL parser sees, and a secret in the URL that is not repeated.
    let problems = HttpAgent::from_config(
        "api",
        &json!({"base_url": "ftp://files.example.com", "headers": {"X-Ok": "1", "Bad Name": "x"}}),
        Arc::new(NoCredentials),
    )
    .unwrap_err();
    assert!(problems.problems[0].contains("`base_url`") && problems.problems[0].contains("ftp"));
    assert!(
        problems.problems[1].contains("`headers.Bad Name`"),
        "{problems}"
    );
    let problems = HttpAgent::from_config(
        "api",
        &json!({"base_url": "https://user:hunter2@api.example.com"}),
        Arc::new(NoCredentials),
    )
    .unwrap_err();
    assert!(problems.to_string().contains("`base_url`"), "{problems}");
    assert!(!problems.to_string().contains("hunter2"), "{problems}");

    // A CA file that is not PEM.
    let dir = std::env::temp_dir().join(format!("atamo-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let problems = HttpAgent::from_config(
        "api",
        &json!({"base_url": "https://api.example.com", "tls": {"ca_file": not_pem}}),
        Arc::new(NoCredentials),
    )
    .unwrap_err();
    assert!(problems.to_string().contains("`tls.ca_file`"), "{problems}");
    std::fs::remove_dir_all(&dir).unwrap();

    // The defaults.
    let agent = HttpAgent::from_config(
        "api",
        &json!({"base_url": "https://api.example.com/v1"}),
        Arc::new(NoCredentials),
    )
    .unwrap();
    assert_eq!(agent.config().method, "POST");
    assert_eq!(agent.config().timeout_ms, 30_000);
    assert!(!agent.config().tls.accept_invalid_certs);
}
