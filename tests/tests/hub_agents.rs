//! Agents: registration metadata and action templates, the channel agent, handle traits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use atamo_agents::ChannelAgent;
use atamo_config::{Rule, RuleBook};
use atamo_core::agent::{agent_fn, Reply};
use atamo_core::message::{FieldPath, MessageTemplate};
use atamo_core::rules::{ProviderScope, RuleError};
use atamo_core::telemetry::TelemetryKind;
use atamo_core::{
    ActionTypeDef, AgentError, AgentSpec, Control, Event, EventTypeDef, Hub, HubBuilder, HubHandle,
    Principal,
};
use atamo_tests::monitored;
use serde_json::json;

fn builder(rules: Vec<Rule>) -> HubBuilder {
    Hub::builder()
        .event_type(EventTypeDef::new("order.created"))
        .action_type(ActionTypeDef::new("email.send"))
        .provider(
            "rules",
            RuleBook::with_rules(rules).unwrap(),
            ProviderScope::AllEvents,
        )
}

#[test]
fn handles_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<HubHandle>();
    assert_send_sync_clone::<Control>();
}

#[tokio::test]
async fn an_agent_sees_its_metadata_and_its_action_template_is_enforced() {
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let mailer = agent_fn(move |action, ctx| {
        let seen_tx = seen_tx.clone();
        async move {
            seen_tx
                .send((
                    ctx.agent_id().clone(),
                    ctx.metadata().clone(),
                    action.payload().clone(),
                ))
                .unwrap();
            Ok(Reply::done())
        }
    });
    let hub = builder(vec![
        Rule::new(
            "complete",
            "order.created",
            "mailer",
            "email.send",
            json!({"to": "{{payload.email}}", "subject": "hi"}),
        ),
        Rule::new(
            "no-recipient",
            "order.created",
            "mailer",
            "email.send",
            json!({"body": "hello"}),
        ),
    ])
    .agent(
        AgentSpec::new("mailer", mailer)
            .handles(["email.send"])
            .metadata(json!({"smtp": "127.0.0.1:2525", "from": "hub@example.com"}))
            .action_template(MessageTemplate::requiring(["to", "subject"]).unwrap()),
    )
    .build()
    .unwrap();
    let (_, steps) = monitored(
        &hub.handle(),
        Event::new(
            "order.created",
            Principal::user("alice"),
            json!({"email": "alice@example.com"}),
        ),
    )
    .await;
    let failed = steps
        .iter()
        .find_map(|s| match &s.kind {
            TelemetryKind::RuleFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .expect("the incomplete action was refused");
    assert_eq!(
        failed,
        RuleError::ActionTemplate {
            rule: "no-recipient".into(),
            agent: "mailer".into(),
            missing: vec![
                FieldPath::parse("to").unwrap(),
                FieldPath::parse("subject").unwrap()
            ],
        }
    );
    let (id, metadata, payload) = seen_rx.recv().await.unwrap();
    assert_eq!(id.as_str(), "mailer");
    assert_eq!(metadata["smtp"], "127.0.0.1:2525");
    assert_eq!(payload, json!({"to": "alice@example.com", "subject": "hi"}));
    assert!(
        seen_rx.try_recv().is_err(),
        "only the complete action was sent"
    );
    assert_eq!(
        hub.control().agents()[0].metadata["from"],
        "hub@example.com"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn the_channel_agent_hands_actions_to_application_code() {
    let (agent, mut deliveries) = ChannelAgent::new(4);
    let hub = builder(vec![Rule::new(
        "r",
        "order.created",
        "app",
        "email.send",
        json!({"n": "{{payload.n}}"}),
    )])
    .agent(
        AgentSpec::new("app", agent)
            .handles(["email.send"])
            .retry(atamo_core::failure::RetryPolicy::none()),
    )
    .build()
    .unwrap();
    let h = hub.handle();
    let publish = |n: i32| {
        let h = h.clone();
        async move {
            h.publish_monitored(Event::new(
                "order.created",
                Principal::user("u"),
                json!({"n": n}),
            ))
            .await
            .unwrap()
            .1
        }
    };
    // The application completes one, fails one, and drops one unanswered.
    let first = publish(1).await;
    let d = deliveries.recv().await.unwrap();
    assert_eq!(d.action.payload()["n"], 1);
    d.complete(Reply::with(json!({"ok": true})));
    assert_eq!(
        first.collect().await.last().unwrap().name(),
        "action_succeeded"
    );

    let second = publish(2).await;
    deliveries
        .recv()
        .await
        .unwrap()
        .fail(AgentError::permanent("refused"));
    let last = second.collect().await.pop().unwrap();
    assert!(matches!(
        last.kind,
        TelemetryKind::ActionFailed {
            error: AgentError::Permanent { .. },
            ..
        }
    ));

    let third = publish(3).await;
    drop(deliveries.recv().await.unwrap());
    let last = third.collect().await.pop().unwrap();
    match last.kind {
        TelemetryKind::ActionFailed { error, .. } => assert!(error.is_retryable(), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    hub.shutdown().await;
}
