//! Route tests through the router in-process (tower `oneshot`): authentication and roles over
//! every route, the OpenAPI document against the router, every error case, tenant isolation,
//! rate limits and keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::{Call, TestService};
use serde_json::{json, Value};

/// Every route the issue asks for, as `(method, path)`.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/events"),
    ("GET", "/v1/events"),
    ("POST", "/v1/events:batch"),
    ("GET", "/v1/events/{id}"),
    ("POST", "/v1/requests"),
    ("GET", "/v1/requests/{id}"),
    ("DELETE", "/v1/requests/{id}"),
    ("GET", "/v1/requests/{id}/feed"),
    ("POST", "/v1/agents"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/agents/{id}"),
    ("PUT", "/v1/agents/{id}"),
    ("DELETE", "/v1/agents/{id}"),
    ("PUT", "/v1/agents/{id}/status"),
    ("POST", "/v1/agents/{id}/control"),
    ("POST", "/v1/rules"),
    ("GET", "/v1/rules"),
    ("GET", "/v1/rules/{id}"),
    ("PUT", "/v1/rules/{id}"),
    ("DELETE", "/v1/rules/{id}"),
    ("POST", "/v1/rules:dry-run"),
    ("POST", "/v1/event-types"),
    ("GET", "/v1/event-types"),
    ("POST", "/v1/action-types"),
    ("GET", "/v1/action-types"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/dead-letters"),
    ("POST", "/v1/dead-letters/{id}/redrive"),
    ("GET", "/v1/telemetry"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/{id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// `(method, path, roles)` of every operation the document lists.
fn operations(doc: &Value) -> Vec<(Method, String, Vec<String>)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let roles = op["security"]
                .as_array()
                .map(|reqs| {
                    reqs.iter()
                        .flat_map(|r| r["api_key"].as_array().cloned().unwrap_or_default())
                        .map(|s| s.as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            out.push((method.to_uppercase().parse().unwrap(), path.clone(), roles));
        }
    }
    out
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "01890a5d-ac96-774b-bcce-b302099a8057")
}

#[tokio::test]
async fn the_document_lists_every_route_and_every_route_answers() {
    let svc = TestService::start().await;
    let doc = svc.call(Call::get("/openapi.json")).await;
    assert_eq!(doc.status, StatusCode::OK);
    let ops = operations(&doc.body);
    let listed: std::collections::BTreeSet<(String, String)> = ops
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.clone()))
        .collect();
    let wanted: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed, wanted, "the document and the route list differ");
    // Every documented operation is served: never the router's 404 or a 405.
    for (method, path, _) in &ops {
        let r = svc
            .call(Call::new(method.clone(), &concrete(path)).token(&svc.admin))
            .await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let unrouted = r.status == StatusCode::NOT_FOUND
            && r.body["detail"]
                .as_str()
                .unwrap_or("")
                .starts_with("no such route");
        assert!(!unrouted, "{method} {path} is documented but not routed");
    }
    let r = svc
        .call(Call::get("/v1/nothing-here").token(&svc.admin))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.content_type(), "application/problem+json");
    let docs = svc.call(Call::get("/docs/")).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(
        docs.text.contains("swagger"),
        "Swagger UI is served from the binary"
    );
}

#[tokio::test]
async fn every_v1_route_refuses_a_missing_or_bad_key_and_a_wrong_role() {
    let svc = TestService::start().await;
    let doc = svc.call(Call::get("/openapi.json")).await.body;
    let mut keys = std::collections::HashMap::new();
    for role in ["admin", "operator", "client", "reader"] {
        keys.insert(role, svc.key(role, None).await);
    }
    let mut checked = 0;
    for (method, path, roles) in operations(&doc) {
        let uri = concrete(&path);
        if !path.starts_with("/v1/") {
            assert!(roles.is_empty(), "{path} needs no key");
            continue;
        }
        assert!(!roles.is_empty(), "{method} {path} declares its roles");
        let r = svc.call(Call::new(method.clone(), &uri)).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a key"
        );
        assert_eq!(r.content_type(), "application/problem+json");
        assert!(r.headers.contains_key("www-authenticate"));
        let r = svc
            .call(Call::new(method.clone(), &uri).token("atk_0000_nottherightsecret"))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a bad key"
        );
        for (role, key) in &keys {
            let r = svc.call(Call::new(method.clone(), &uri).token(key)).await;
            if roles.iter().any(|r| r == role) {
                assert_ne!(r.status, StatusCode::FORBIDDEN, "{method} {path} as {role}");
                assert_ne!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} as {role}"
                );
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path} as {role}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} routes checked");
}

#[tokio::test]
async fn bad_input_is_a_400_naming_every_field_never_a_500() {
    let svc = TestService::start().await;
    svc.setup_hook("http://127.0.0.1:9/unused").await;
    let admin = svc.admin.clone();

    // Every bad field of an event at once.
    let r = svc
        .call(
            Call::post(
                "/v1/events",
                json!({"type": 5, "groups": [1], "payload": [], "colour": 1}),
            )
            .token(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.content_type(), "application/problem+json");
    let fields = r.fields();
    for f in ["type", "user", "groups[0]", "payload", "colour"] {
        assert!(fields.contains(&f.to_owned()), "{f} not in {fields:?}");
    }
    // The hub's own checks: an unregistered type, a missing required field.
    let r = svc
        .call(
            Call::post(
                "/v1/events",
                json!({"type": "nope", "user": "u", "payload": {}}),
            )
            .token(&admin),
        )
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["type".to_owned()])
    );
    let r = svc
        .call(
            Call::post(
                "/v1/events",
                json!({"type": "order.created", "user": "u", "payload": {}}),
            )
            .token(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fields(), vec!["payload.order.id".to_owned()]);
    // Not JSON, no content type, too big.
    let r = svc
        .call(Call::raw(Method::POST, "/v1/events", "{not json", "application/json").token(&admin))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["body".to_owned()])
    );
    let r = svc
        .call(Call::raw(Method::POST, "/v1/events", "{}", "text/plain").token(&admin))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["content-type".to_owned()])
    );
    let big =
        json!({"type": "order.created", "user": "u", "payload": {"pad": "x".repeat(2 << 20)}});
    let r = svc.call(Call::post("/v1/events", big).token(&admin)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A batch names the event of each bad field, and publishes nothing.
    let r = svc
        .call(
            Call::post(
                "/v1/events:batch",
                json!({"events": [
                    {"type": "order.created", "user": "u", "payload": {"order": {"id": 1}}},
                    {"type": "order.created", "user": "u"},
                    {"type": "order.created", "user": "u", "payload": {}}
                ]}),
            )
            .token(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.fields(),
        vec![
            "events[1].payload".to_owned(),
            "events[2].payload.order.id".to_owned()
        ]
    );
    // Agents: unknown kind, unknown field, every problem of a bad definition, duplicates.
    let r = svc
        .call(Call::post("/v1/agents", json!({"id": "a", "kind": "ftp"})).token(&admin))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["kind".to_owned()])
    );
    let r = svc
        .call(
            Call::post(
                "/v1/agents",
                json!({"id": "a", "kind": "http", "colour": 1}),
            )
            .token(&admin),
        )
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["colour".to_owned()])
    );
    let r = svc
        .call(
            Call::post(
                "/v1/agents",
                json!({"id": "bad id", "kind": "http", "config": {"url": 5}, "concurrency": 0}),
            )
            .token(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fields(), vec!["concurrency".to_owned(), "id".to_owned()]);
    let r = svc
        .call(
            Call::post(
                "/v1/agents",
                json!({"id": "hook2", "kind": "http", "config": {"url": 5}}),
            )
            .token(&admin),
        )
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["config".to_owned()])
    );
    let r = svc
        .call(
            Call::post(
                "/v1/agents",
                json!({"id": "hook", "kind": "http", "config": {"url": "http://127.0.0.1:9/"}}),
            )
            .token(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Rules: unknown agent and type named; bad template; duplicate.
    let r = svc
        .call(Call::post("/v1/rules", json!({"id": "r2", "event_type": "nope", "agent": "ghost", "action": "x", "template": {}})).token(&admin))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.fields(),
        vec!["agent".to_owned(), "event_type".to_owned()]
    );
    let r = svc
        .call(Call::post("/v1/rules", json!({"id": "r3", "event_type": "order.created", "agent": "hook", "action": "http.request", "template": {"a": "{{payload.x"}})).token(&admin))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["template".to_owned()])
    );
    let r = svc
        .call(Call::post("/v1/rules", json!({"id": "notify", "event_type": "order.created", "agent": "hook", "action": "http.request", "template": {}})).token(&admin))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = svc
        .call(Call::post("/v1/event-types", json!({"name": "order.created"})).token(&admin))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Unknown ids are 404, bad query parameters 400 with each named.
    for path in [
        "/v1/events/not-an-id",
        "/v1/events/01890a5d-ac96-774b-bcce-b302099a8057",
        "/v1/agents/ghost",
        "/v1/rules/ghost",
        "/v1/requests/01890a5d-ac96-774b-bcce-b302099a8057",
    ] {
        let r = svc.call(Call::get(path).token(&admin)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.content_type(), "application/problem+json");
    }
    let r = svc
        .call(Call::get("/v1/audit?limit=0&since=yesterday&colour=red").token(&admin))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let mut fields = r.fields();
    fields.sort();
    assert_eq!(
        fields,
        vec!["colour".to_owned(), "limit".to_owned(), "since".to_owned()]
    );
    let r = svc
        .call(Call::get("/v1/events?cursor=zzz").token(&admin))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["cursor".to_owned()])
    );
    let r = svc.call(Call::post("/v1/requests", json!({"type": "order.created", "user": "u", "payload": {"order": {"id": 1}}, "wait_ms": 10_000_000})).token(&admin)).await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["wait_ms".to_owned()])
    );
}

#[tokio::test]
async fn a_tenant_bound_key_sees_only_its_tenant() {
    let svc = TestService::start().await;
    svc.setup_hook("http://127.0.0.1:9/unused").await;
    let acme = svc.key("client", Some("acme")).await;
    let other = svc.key("client", Some("globex")).await;
    let unbound = svc.key("client", None).await;
    let event = json!({"type": "order.created", "user": "alice", "payload": {"order": {"id": 1}}});
    let r = svc
        .call(Call::post("/v1/events", event.clone()).token(&acme))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["event_id"].as_str().unwrap().to_owned();
    // Published into acme, seen by acme only.
    let mine = svc
        .call(Call::get(&format!("/v1/events/{id}")).token(&acme))
        .await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.body["event"]["principal"]["tenant"], "acme");
    for key in [&other, &unbound] {
        let r = svc
            .call(Call::get(&format!("/v1/events/{id}")).token(key))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let list = svc.call(Call::get("/v1/events").token(key)).await;
        assert_eq!(list.body["items"].as_array().unwrap().len(), 0);
        let audit = svc.call(Call::get("/v1/audit").token(key)).await;
        assert!(audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["tenant"] != "acme"));
    }
    // The order and, as the agent is unreachable, the hub's follow-up about it.
    let list = svc
        .call(Call::get("/v1/events?type=order.created").token(&acme))
        .await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
    // Asking for another tenant, or publishing into one, is refused.
    let r = svc
        .call(Call::get("/v1/events?tenant=globex").token(&acme))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["tenant".to_owned()])
    );
    let mut into_other = event.clone();
    into_other["tenant"] = json!("globex");
    let r = svc
        .call(Call::post("/v1/events", into_other).token(&acme))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["tenant".to_owned()])
    );
    // The admin sees everything.
    let r = svc
        .call(Call::get(&format!("/v1/events/{id}")).token(&svc.admin))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn keys_are_made_and_revoked_and_rates_are_limited() {
    let svc = TestService::start_with(|cfg| {
        cfg.http.rate_limit = 5;
        cfg.http.rate_burst = 5;
    })
    .await;
    let r = svc
        .call(
            Call::post("/v1/keys", json!({"role": "reader", "name": "dashboard"}))
                .token(&svc.admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();
    let list = svc.call(Call::get("/v1/keys").token(&svc.admin)).await;
    assert!(
        !list.text.contains(token.rsplit('_').next().unwrap()),
        "secrets are never listed"
    );
    // Five requests pass, the sixth is refused with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(svc.call(Call::get("/v1/event-types").token(&token)).await);
    }
    assert!(statuses[..5].iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(statuses[5].status, StatusCode::TOO_MANY_REQUESTS);
    assert!(statuses[5].headers.get("retry-after").is_some());
    let r = svc
        .call(Call::delete(&format!("/v1/keys/{id}")).token(&svc.admin))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = svc.call(Call::get("/v1/event-types").token(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = svc
        .call(Call::delete(&format!("/v1/keys/{id}")).token(&svc.admin))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = svc
        .call(Call::post("/v1/keys", json!({"role": "boss"})).token(&svc.admin))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["role".to_owned()])
    );
    // Key changes are audited with the key that made them (after the admin's own bucket
    // refills: the limit applies to every key).
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let audit = svc
        .call(Call::get("/v1/audit?state=key_changed").token(&svc.admin))
        .await;
    let items = audit.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", audit.text);
    assert!(
        items
            .iter()
            .all(|r| r["user"] == "key:environment"
                || r["user"].as_str().unwrap().starts_with("key:"))
    );
}

#[tokio::test]
async fn health_ready_and_metrics_need_no_key() {
    let svc = TestService::start().await;
    let h = svc.call(Call::get("/healthz")).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["components"]["store"]["status"], "ok");
    assert_eq!(h.body["components"]["hub"]["status"], "ok");
    assert_eq!(svc.call(Call::get("/readyz")).await.status, StatusCode::OK);
    let m = svc.call(Call::get("/metrics")).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.text.lines().any(|l| l == "atamo_hub_accepting 1"),
        "{}",
        m.text
    );
    // Stopping: not ready, and unhealthy once the hub no longer accepts events.
    svc.stop().await;
    assert_eq!(
        svc.call(Call::get("/readyz")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        svc.call(Call::get("/healthz")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn no_body_or_query_a_client_sends_makes_a_500() {
    let svc = TestService::start_with(|cfg| cfg.http.rate_limit = 0).await;
    svc.setup_hook("http://127.0.0.1:9/unused").await;
    let doc = svc.call(Call::get("/openapi.json")).await.body;
    let bodies = [
        "",
        "null",
        "[]",
        "\"text\"",
        "12345678901234567890123",
        "{}",
        "{\"id\": null}",
        "{\"type\": {}, \"user\": [], \"payload\": \"x\"}",
        "{\"id\": \"\\u0000\", \"kind\": \"http\"}",
        "{\"events\": [1, null, {}]}",
        "{\"role\": \"admin\", \"tenant\": \"a b\"}",
        "{\"status\": 1}",
        "{\"message\": null, \"timeout_ms\": -1}",
    ];
    let queries = [
        "",
        "?limit=-1",
        "?cursor=%FF",
        "?since=9999999999999999999999",
        "?payload.=x",
        "?type=%00",
    ];
    for (method, path, _) in operations(&doc) {
        // The controller's stream takes no input and never ends by itself.
        if path == "/v1/telemetry" {
            continue;
        }
        for id in ["x", "%00", "01890a5d-ac96-774b-bcce-b302099a8057"] {
            let uri = path.replace("{id}", id);
            let tries = queries
                .iter()
                .map(|q| (*q, ""))
                .chain(bodies.iter().map(|b| ("", *b)));
            for (q, b) in tries {
                {
                    let call =
                        Call::raw(method.clone(), &format!("{uri}{q}"), b, "application/json")
                            .token(&svc.admin);
                    let r = svc.call(call).await;
                    assert!(
                        r.status.as_u16() < 500
                            || (path == "/healthz" && r.status == StatusCode::SERVICE_UNAVAILABLE),
                        "{method} {uri}{q} with {b}: {} {}",
                        r.status,
                        r.text
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn agents_rules_types_and_dead_letters_through_the_api() {
    let svc = TestService::start_with(|cfg| cfg.http.rate_limit = 0).await;
    svc.setup_hook("http://127.0.0.1:9/unused").await;
    let admin = svc.admin.clone();
    let call = |c: Call| c.token(&admin);

    // Replace an agent; its status by hand; a control message it does not take.
    let r = svc
        .call(call(Call::put("/v1/agents/hook", json!({"id": "hook", "kind": "http", "config": {"url": "http://127.0.0.1:9/other"}, "owner": "ops@example.com", "version": "2"}))))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = svc.call(call(Call::get("/v1/agents/hook"))).await;
    assert_eq!(
        r.body["definition"]["config"]["url"],
        "http://127.0.0.1:9/other"
    );
    assert_eq!(r.body["status"]["owner"], "ops@example.com");
    let r = svc
        .call(call(Call::put(
            "/v1/agents/hook",
            json!({"id": "other", "kind": "http"}),
        )))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["id".to_owned()])
    );
    let r = svc
        .call(call(Call::put(
            "/v1/agents/hook/status",
            json!({"status": "offline", "reason": "maintenance"}),
        )))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["state"], "offline");
    let r = svc.call(call(Call::get("/v1/agents?status=offline"))).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = svc
        .call(call(Call::put(
            "/v1/agents/hook/status",
            json!({"status": "auto"}),
        )))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = svc.call(call(Call::get("/v1/agents?status=offline"))).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    let r = svc
        .call(call(Call::put(
            "/v1/agents/hook/status",
            json!({"status": "sleepy"}),
        )))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["status".to_owned()])
    );
    let r = svc
        .call(call(Call::post(
            "/v1/agents/hook/control",
            json!({"message": {"reload": true}, "timeout_ms": 1000}),
        )))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    // Only an admin may register code-running agents.
    let operator = svc.key("operator", None).await;
    let native = json!({"id": "inv", "kind": "native", "handles": ["check"], "config": {"library": "libx.so", "kind": "inventory"}});
    let r = svc
        .call(Call::post("/v1/agents", native).token(&operator))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Dry run: the rule and the action it would send, nothing sent.
    let r = svc
        .call(call(Call::post(
            "/v1/rules:dry-run",
            json!({"type": "order.created", "user": "u", "payload": {"order": {"id": 5}}}),
        )))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["accepted"], true);
    assert_eq!(r.body["actions"].as_array().unwrap().len(), 1, "{}", r.text);
    let r = svc
        .call(call(Call::post(
            "/v1/rules:dry-run",
            json!({"type": "order.created", "user": "u", "payload": {}}),
        )))
        .await;
    assert_eq!(r.body["accepted"], false);
    assert_eq!(r.body["problems"][0]["field"], "payload.order.id");

    // Rules: replace, read, refuse to delete an agent a rule names, delete.
    let r = svc
        .call(call(Call::put("/v1/rules/notify", json!({"id": "notify", "event_type": "order.created", "group": "sales", "agent": "hook", "action": "http.request", "template": {"body": {}}}))))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = svc.call(call(Call::get("/v1/rules/notify"))).await;
    assert_eq!(r.body["group"], "sales");
    let r = svc.call(call(Call::delete("/v1/agents/hook"))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        svc.call(call(Call::delete("/v1/rules/notify")))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        svc.call(call(Call::delete("/v1/rules/notify")))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        svc.call(call(Call::delete("/v1/agents/hook"))).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        svc.call(call(Call::get("/v1/agents/hook"))).await.status,
        StatusCode::NOT_FOUND
    );

    // Types are listed; an action type's retry policy makes a failing action dead at once.
    let r = svc
        .call(call(Call::post(
            "/v1/action-types",
            json!({"name": "fail.now", "retry": {"max_attempts": 1}}),
        )))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let types = svc.call(call(Call::get("/v1/action-types"))).await;
    assert!(types.text.contains("fail.now") && types.text.contains("http.request"));
    let types = svc.call(call(Call::get("/v1/event-types"))).await;
    assert!(types.text.contains("order.created"));
    for (path, body) in [
        (
            "/v1/agents",
            json!({"id": "dead-end", "kind": "http", "handles": ["fail.now"], "config": {"url": "http://127.0.0.1:9/"}}),
        ),
        (
            "/v1/rules",
            json!({"id": "doomed", "event_type": "order.created", "agent": "dead-end", "action": "fail.now", "template": {}}),
        ),
        (
            "/v1/events",
            json!({"type": "order.created", "user": "u", "payload": {"order": {"id": 6}}}),
        ),
    ] {
        let r = svc.call(call(Call::post(path, body))).await;
        assert!(r.status.is_success(), "{path}: {}", r.text);
    }
    let mut letters = Value::Null;
    for _ in 0..200 {
        letters = svc.call(call(Call::get("/v1/dead-letters"))).await.body;
        if !letters["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let items = letters["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{letters}");
    let action = items[0]["record"]["id"].as_str().unwrap().to_owned();
    let r = svc
        .call(call(Call::post(
            &format!("/v1/dead-letters/{action}/redrive"),
            json!({}),
        )))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = svc
        .call(call(Call::post(
            "/v1/dead-letters/01890a5d-ac96-774b-bcce-b302099a8057/redrive",
            json!({}),
        )))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Every change is in the audit log, with the key that made it.
    let audit = svc
        .call(call(Call::get(
            "/v1/audit?state=registry_changed&limit=100",
        )))
        .await;
    let changes = audit.body["items"].as_array().unwrap();
    assert!(changes.len() >= 8, "{}", audit.text);
    assert!(
        changes
            .iter()
            .all(|c| c["user"] == "key:environment"
                || c["user"].as_str().unwrap().starts_with("key:"))
    );
}
