//! Generated definitions through a live service: event types, action types, agents of each
//! built-in kind, rules with retry, keep-alive, durability and sharing, events and requests,
//! with numbers in range, at the edges and far outside (u64::MAX, 2^64 and beyond, 1e300,
//! negatives, fractions). Each one is either refused with a 400 naming the field at fault, or
//! accepted and run: the hub keeps answering, the store keeps writing, `/readyz` stays 200.
//! The same values in `atamo.toml` are refused naming the setting, or load. Case counts are
//! bounded so that the suite stays fast.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use common::{Call, TestService};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// A number as a JSON token, with whether every bounded field takes it.
#[derive(Debug, Clone)]
struct Num(String);

/// Numbers in range, at the edges, and outside every range.
fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| Num(n.to_string())),
        Just(Num("0".into())),
        Just(Num("1".into())),
        Just(Num("86400000".into())),
        Just(Num("2592000000".into())),
        Just(Num("2592000001".into())),
        Just(Num("1000000000000000".into())),
        Just(Num("18446744073709551615".into())),
        Just(Num("18446744073709551616".into())),
        Just(Num("340282366920938463463374607431768211456".into())),
        Just(Num("-1".into())),
        Just(Num("2.5".into())),
        Just(Num("1e300".into())),
        any::<u64>().prop_map(|n| Num(n.to_string())),
        any::<i64>().prop_map(|n| Num(n.to_string())),
        (0.0f64..2.0).prop_map(|x| Num(format!("{x:?}"))),
    ]
}

/// A fraction or factor: in range, at the edges, outside.
fn fraction() -> impl Strategy<Value = Num> {
    prop_oneof![
        (0.0f64..=1.0).prop_map(|x| Num(format!("{x:?}"))),
        (1.0f64..=10.0).prop_map(|x| Num(format!("{x:?}"))),
        num(),
    ]
}

/// JSON text with `"@0@"`, `"@1@"`, ... replaced by the raw number tokens.
fn render(template: &Value, nums: &[Num]) -> String {
    let mut text = template.to_string();
    for (i, n) in nums.iter().enumerate() {
        text = text.replace(&format!("\"@{i}@\""), &n.0);
    }
    text
}

/// A retry policy with some of its parts set, as a template; the numbers are appended to
/// `nums`.
fn retry(parts: &[(bool, Num)], nums: &mut Vec<Num>) -> Value {
    let keys = [
        "max_attempts",
        "initial_backoff_ms",
        "max_backoff_ms",
        "multiplier",
        "jitter",
        "max_elapsed_ms",
    ];
    let mut obj = serde_json::Map::new();
    for (key, (set, n)) in keys.iter().zip(parts) {
        if *set {
            obj.insert((*key).into(), json!(format!("@{}@", nums.len())));
            nums.push(n.clone());
        }
    }
    Value::Object(obj)
}

fn retry_parts() -> impl Strategy<Value = Vec<(bool, Num)>> {
    proptest::collection::vec((any::<bool>(), fraction()), 6)
}

/// What an answer must be: accepted, or a 400 naming fields (among them every field in
/// `blamed` that was refused); never anything else.
fn check(r: &common::Answer, what: &str) -> bool {
    assert!(
        r.status.is_success() || r.status == StatusCode::BAD_REQUEST,
        "{what}: {} {}",
        r.status,
        r.text
    );
    if r.status == StatusCode::BAD_REQUEST {
        let fields = r.fields();
        assert!(
            !fields.is_empty(),
            "{what}: a 400 names its fields: {}",
            r.text
        );
        assert!(fields.iter().all(|f| !f.is_empty()), "{what}: {}", r.text);
        assert!(
            r.content_type().starts_with("application/problem+json"),
            "{what}"
        );
        return false;
    }
    true
}

struct World {
    rt: tokio::runtime::Runtime,
    svc: TestService,
    n: AtomicUsize,
    /// Definitions accepted and run, and refused: both kinds of case must come up.
    accepted: AtomicUsize,
    refused: AtomicUsize,
}

impl World {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let svc = rt.block_on(async {
            let svc = TestService::start().await;
            // A receiver that answers every call, behind the agent `hook`.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/hook", listener.local_addr().unwrap());
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(|| async { axum::Json(json!({"ok": true})) }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
            let r = svc
                .call(
                    Call::post(
                        "/v1/agents",
                        json!({"id": "hook", "kind": "http", "config": {"url": url}}),
                    )
                    .token(&svc.admin),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            svc
        });
        Self {
            rt,
            svc,
            n: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        }
    }

    fn count(&self, accepted: bool) -> bool {
        let counter = if accepted {
            &self.accepted
        } else {
            &self.refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        accepted
    }

    /// Both accepted and refused definitions came up.
    fn both_kinds_came_up(&self) {
        let (a, r) = (
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        );
        assert!(a > 0 && r > 0, "accepted {a}, refused {r}");
    }

    fn next(&self) -> usize {
        self.n.fetch_add(1, Ordering::Relaxed)
    }

    fn post(&self, path: &str, body: &str) -> common::Answer {
        self.rt.block_on(
            self.svc.call(
                Call::raw(axum::http::Method::POST, path, body, "application/json")
                    .token(&self.svc.admin),
            ),
        )
    }

    /// The hub still takes events and the service is ready.
    fn still_working(&self) {
        self.rt.block_on(async {
            let ready = self.svc.call(Call::get("/readyz")).await;
            assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
        });
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn event_types_rules_events_and_requests() {
    let world = World::new();
    let strategy = (
        proptest::option::of(num()),
        prop_oneof![Just("durable"), Just("memory"), Just("forever")],
        proptest::option::of(num()),
        retry_parts(),
        prop_oneof![
            Just("off"),
            Just("user"),
            Just("tenant"),
            Just("global"),
            Just("all")
        ],
        proptest::option::of(num()),
        num(),
        any::<bool>(),
    );
    runner(64)
        .run(
            &strategy,
            |(keep_alive, durability, cache_ttl, parts, coalesce, wait, payload_n, with_retry)| {
                let i = world.next();
                let ty = format!("t{i}");
                let mut nums = Vec::new();
                let mut body = json!({"name": ty, "required": ["n"], "durability": durability});
                if let Some(k) = keep_alive {
                    body["keep_alive_ms"] = json!("@0@");
                    nums.push(k);
                }
                let r = world.post("/v1/event-types", &render(&body, &nums));
                if !check(&r, "event type") {
                    return Ok(());
                }
                let mut nums = Vec::new();
                let mut rule = json!({"id": format!("r{i}"), "event_type": ty, "agent": "hook",
                    "action": "http.request", "coalesce": coalesce,
                    "template": {"body": {"n": "{{payload.n}}"}}});
                if with_retry {
                    rule["retry"] = retry(&parts, &mut nums);
                }
                if let Some(t) = cache_ttl {
                    rule["cache_ttl_ms"] = json!(format!("@{}@", nums.len()));
                    nums.push(t);
                }
                let r = world.post("/v1/rules", &render(&rule, &nums));
                world.count(check(&r, "rule"));
                let event = json!({"type": ty, "user": "u", "payload": {"n": "@0@"}});
                let r = world.post(
                    "/v1/events",
                    &render(&event, std::slice::from_ref(&payload_n)),
                );
                check(&r, "event");
                let mut request = json!({"type": ty, "user": "u", "payload": {"n": "@0@"}});
                let mut nums = vec![payload_n];
                if let Some(w) = wait {
                    request["wait_ms"] = json!("@1@");
                    // Waiting is bounded by `[http] request_wait_max` (30 s); the answer comes
                    // in milliseconds.
                    nums.push(w);
                }
                let r = world.post("/v1/requests", &render(&request, &nums));
                check(&r, "request");
                world.still_working();
                Ok(())
            },
        )
        .unwrap();
    world.both_kinds_came_up();
    world.rt.block_on(world.svc.stop());
}

#[test]
fn action_types_and_agents_of_each_kind() {
    let world = World::new();
    let dir = world.svc.dir.path().to_path_buf();
    let config = prop_oneof![
        Just(json!({"url": "http://127.0.0.1:9/x"})),
        Just(json!({"base_url": 5})),
        Just(json!({"url": "http://127.0.0.1:9/x", "timeout_ms": "@0@"})),
        Just(json!({"sqlite": {"path": dir.join("agent.db"), "statements": {"q": "select 1"}}})),
        Just(json!({"sqlite": {"path": 3}})),
        Just(json!({"host": "127.0.0.1", "port": "@0@", "sender": "hub@example.com"})),
        Just(json!({"program": "/bin/echo", "args": ["hi"], "timeout_ms": "@0@"})),
        Just(json!({"program": ""})),
        Just(json!({"program": "/nonexistent/agent", "ping_interval_ms": "@0@"})),
        Just(json!({})),
    ];
    let strategy = (
        prop_oneof![
            Just("http"),
            Just("sql"),
            Just("email"),
            Just("command"),
            Just("process"),
            Just("ftp")
        ],
        config,
        num(),
        proptest::option::of(num()),
        retry_parts(),
    );
    runner(48)
        .run(&strategy, |(kind, config, n, concurrency, parts)| {
            let i = world.next();
            let mut nums = Vec::new();
            let action = json!({"name": format!("a{i}"), "retry": retry(&parts, &mut nums)});
            let action_ok = check(&world.post("/v1/action-types", &render(&action, &nums)), "action type");
            let mut nums = vec![n];
            let mut agent = json!({"id": format!("g{i}"), "kind": kind, "config": config,
                                   "handles": [format!("a{i}")]});
            if let Some(c) = concurrency {
                agent["concurrency"] = json!("@1@");
                nums.push(c);
            }
            let r = world.post("/v1/agents", &render(&agent, &nums));
            let agent_ok = world.count(check(&r, "agent"));
            if action_ok && agent_ok {
                // Route an event to it: whatever the agent does with it, the hub goes on.
                let ty = format!("e{i}");
                let r = world.post("/v1/event-types", &json!({"name": ty}).to_string());
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
                let rule = json!({"id": format!("ar{i}"), "event_type": ty, "agent": format!("g{i}"),
                                  "action": format!("a{i}"), "template": {}});
                let r = world.post("/v1/rules", &rule.to_string());
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
                let r = world.post("/v1/events", &json!({"type": ty, "user": "u", "payload": {}}).to_string());
                assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
            }
            world.still_working();
            Ok(())
        })
        .unwrap();
    world.both_kinds_came_up();
    world.rt.block_on(world.svc.stop());
}

#[test]
fn the_same_values_in_atamo_toml_are_refused_by_setting_or_load() {
    let strategy = (num(), fraction(), num(), num(), num());
    runner(128)
        .run(&strategy, |(keep_alive, jitter, backoff, attempts, ttl)| {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("atamo.toml");
            // TOML integers are 64-bit signed: larger ones are a syntax error, reported too.
            let text = format!(
                "[hub]\nkeep_alive = \"{}ms\"\n\n[retry]\njitter = {}\nmax_attempts = {}\n\n\
                 [[event_types]]\nname = \"t\"\nkeep_alive_ms = {}\n\n\
                 [[rules]]\nid = \"r\"\nevent_type = \"t\"\nagent = \"a\"\naction = \"x\"\n\
                 template = {{}}\ncache_ttl_ms = {}\nretry = {{ initial_backoff_ms = {} }}\n",
                keep_alive.0.trim_start_matches('-'),
                jitter.0,
                attempts.0,
                keep_alive.0,
                ttl.0,
                backoff.0
            );
            std::fs::write(&file, &text).unwrap();
            let flags = atamo_server::config::Overrides::default();
            if let Err(errors) = atamo_server::config::load(Some(&file), &|_| None, &flags) {
                for issue in &errors.0 {
                    assert!(issue.line.is_some(), "{issue} in\n{text}");
                    // A syntax error has no setting; every other error names its setting.
                    let syntax = issue.path.is_empty();
                    assert!(
                        syntax || issue.path.contains(['.', '[']) || issue.path == "retry",
                        "{issue}"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}
