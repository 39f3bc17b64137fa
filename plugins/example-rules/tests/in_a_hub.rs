//! The example rule provider, built as a real shared library, loaded and deciding routes in a
//! hub whose agents record what they receive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atamo_agents::native::{NativeRuleProvider, PluginLoader};
use atamo_core::rules::{ProviderScope, RuleError};
use atamo_core::{
    agent_fn, ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply, TelemetryKind,
};
use serde_json::{json, Value};

fn library() -> PathBuf {
    atamo_tests::plugins::built_library("atamo_example_rules")
}

type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

fn recorder(name: &'static str, seen: Seen) -> AgentSpec {
    AgentSpec::new(
        name,
        agent_fn(move |action, _| {
            seen.lock().unwrap().push((
                name.to_owned(),
                action.action_type().to_string(),
                action.payload().clone(),
            ));
            std::future::ready(Ok(Reply::done()))
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_routed_by_tier_amount_and_region() {
    let lib = library();
    let plugin = PluginLoader::new(lib.parent().unwrap())
        .load(lib.file_name().unwrap())
        .unwrap();
    let config = json!({
        "notify_agent": "mailer",
        "review_agent": "review",
        "review_threshold": 1000,
        "vip_users": ["alice"],
        "rates": {"USD": 0.5},
        "blocked_regions": ["XX"]
    });
    let provider =
        NativeRuleProvider::new(plugin.clone(), "order-routing", &config, "orders").unwrap();
    let err = NativeRuleProvider::new(plugin, "order-routing", &json!({"notify_agent": 1}), "o")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("field `notify_agent`: expected string, got integer"),
        "{err}"
    );
    assert!(
        err.contains("field `review_agent`: required but missing"),
        "{err}"
    );

    let seen: Seen = Arc::default();
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("order.created"))
        .action_type(ActionTypeDef::new("notify"))
        .action_type(ActionTypeDef::new("review"))
        .action_type(ActionTypeDef::new("hold"))
        .agent(recorder("mailer", seen.clone()).handles(["notify"]))
        .agent(recorder("review", seen.clone()).handles(["review", "hold"]))
        .provider("orders", provider, ProviderScope::AllEvents)
        .build()
        .unwrap();
    let mut telemetry = hub.control().subscribe();
    let h = hub.handle();
    let order = |user: &str, groups: &[&str], payload: Value| {
        let mut p = Principal::user(user);
        for g in groups {
            p = p.in_group(*g);
        }
        Event::new("order.created", p, payload)
    };
    let wait = Duration::from_secs(10);
    let run = |e: Event| {
        let h = h.clone();
        async move {
            let r = h.request(e).await.unwrap();
            h.wait(r.request_id, wait).await.unwrap();
        }
    };
    // A VIP by name with a small order: notified only.
    run(order("alice", &[], json!({"id": 1, "amount": 20}))).await;
    // A VIP by group with a large order in USD (1500 USD = 750 base): notified, not reviewed.
    run(order(
        "bob",
        &["vip"],
        json!({"id": 2, "amount": 1500, "currency": "USD"}),
    ))
    .await;
    // Not a VIP, large order: reviewed only.
    run(order("carol", &[], json!({"id": 3, "amount": 1000}))).await;
    // A VIP shipping to a blocked region: held, and nothing else.
    run(order(
        "alice",
        &[],
        json!({"id": 4, "amount": 5000, "region": "XX"}),
    ))
    .await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            (
                "mailer".into(),
                "notify".into(),
                json!({"to": "alice", "text": "Thank you, alice: order 1 is on its way."})
            ),
            (
                "mailer".into(),
                "notify".into(),
                json!({"to": "bob", "text": "Thank you, bob: order 2 is on its way."})
            ),
            (
                "review".into(),
                "review".into(),
                json!({"order": 3, "amount": 1000.0, "currency": "EUR", "base_amount": 1000.0, "vip": false})
            ),
            (
                "review".into(),
                "hold".into(),
                json!({"order": 4, "region": "XX", "user": "alice"})
            ),
        ]
    );

    // An order without an amount is a failed rule, visible in telemetry.
    h.publish(order("dave", &[], json!({"id": 5})))
        .await
        .unwrap();
    loop {
        let event = tokio::time::timeout(wait, telemetry.recv())
            .await
            .unwrap()
            .unwrap();
        if let TelemetryKind::RuleFailed { error, .. } = &event.kind {
            assert!(
                matches!(error, RuleError::Provider { message, .. } if message.contains("positive `amount`")),
                "{error:?}"
            );
            break;
        }
    }
    hub.shutdown().await;
}
