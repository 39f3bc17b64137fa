//! The example agent, built as a real shared library, loaded and run in a hub.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use atamo_agents::native::{NativeAgent, PluginLoader};
use atamo_core::ids::RuleId;
use atamo_core::request::RequestState;
use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
use atamo_core::{ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal};
use serde_json::json;

fn library() -> PathBuf {
    atamo_tests::plugins::built_library("atamo_example_agent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stock_questions_and_lists_the_stock_as_a_feed() {
    let lib = library();
    let loader = PluginLoader::new(lib.parent().unwrap());
    let plugin = loader.load(lib.file_name().unwrap()).unwrap();
    let config = json!({"warehouse": "berlin", "stock": {"A-100": 5, "B-200": 0}});
    let agent = NativeAgent::new(plugin.clone(), "inventory", &config, "inventory").unwrap();

    // A registration with a wrong config is refused, naming the field.
    let err = NativeAgent::new(plugin, "inventory", &json!({"stock": {"A": -1}}), "x").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("field `warehouse`: required but missing"),
        "{text}"
    );
    assert!(
        text.contains("field `stock.A`: -1 is below the minimum 0"),
        "{text}"
    );

    let hub = Hub::builder()
        .event_type(EventTypeDef::new("stock.asked"))
        .action_type(ActionTypeDef::new("check"))
        .action_type(ActionTypeDef::new("list"))
        .agent(AgentSpec::new("inventory", agent).handles(["check", "list"]))
        .provider(
            "route",
            |event: &Event, _: &Principal, out: &mut Vec<Proposal>| {
                let p = event.payload();
                let action = if p.get("sku").is_some() {
                    "check"
                } else {
                    "list"
                };
                out.push(Proposal::action(
                    RuleId::from("stock"),
                    PlannedAction::new("inventory", action, p.clone()),
                ));
            },
            ProviderScope::EventTypes(vec!["stock.asked".into()]),
        )
        .build()
        .unwrap();
    let h = hub.handle();
    let ask = |payload| Event::new("stock.asked", Principal::user("alice"), payload);
    let wait = Duration::from_secs(10);

    let r = h.request(ask(json!({"sku": "A-100"}))).await.unwrap();
    let done = h.wait(r.request_id, wait).await.unwrap();
    assert_eq!(
        *done.answers[0].payload,
        json!({"sku": "A-100", "available": 5, "in_stock": true, "warehouse": "berlin"})
    );

    let r = h.request(ask(json!({}))).await.unwrap();
    let done = h.wait(r.request_id, wait).await.unwrap();
    let answers: Vec<_> = done
        .answers
        .iter()
        .map(|a| a.payload.as_ref().clone())
        .collect();
    assert_eq!(
        answers,
        vec![
            json!({"sku": "A-100", "available": 5}),
            json!({"sku": "B-200", "available": 0}),
            json!({"skus": 2}),
        ]
    );

    let r = h.request(ask(json!({"sku": "Z-9"}))).await.unwrap();
    assert_eq!(
        h.wait(r.request_id, wait).await.unwrap().state,
        RequestState::Failed
    );
    hub.shutdown().await;
}
