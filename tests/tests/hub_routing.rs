//! Routing scenarios: fan-out, subject matching, no route, template errors, merging, follow-ups.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use atamo_config::{Rule, RuleBook, Subject};
use atamo_core::agent::{agent_fn, Agent, Reply};
use atamo_core::rules::{ProviderScope, RuleError};
use atamo_core::telemetry::{SuppressReason, TelemetryKind};
use atamo_core::{ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, HubBuilder, Principal};
use atamo_tests::{monitored, names, tally, Recorder, RecordingAgent};
use serde_json::json;

fn base() -> HubBuilder {
    Hub::builder()
        .event_type(EventTypeDef::new("order.created"))
        .action_type(ActionTypeDef::new("notify"))
}

fn rule(id: &str, agent: &str) -> Rule {
    Rule::new(
        id,
        "order.created",
        agent,
        "notify",
        json!({"order": "{{payload.order.id}}", "for": "{{user}}"}),
    )
}

fn order(principal: Principal) -> Event {
    Event::new("order.created", principal, json!({"order": {"id": 7}}))
}

#[tokio::test]
async fn one_event_fans_out_to_three_agents() {
    let agents = [
        RecordingAgent::new(),
        RecordingAgent::new(),
        RecordingAgent::new(),
    ];
    let rules =
        RuleBook::with_rules(vec![rule("r-a", "a"), rule("r-b", "b"), rule("r-c", "c")]).unwrap();
    let mut b = base().provider("rules", rules, ProviderScope::AllEvents);
    for (name, agent) in ["a", "b", "c"].iter().zip(&agents) {
        b = b.agent(AgentSpec::new(*name, agent.agent()).handles(["notify"]));
    }
    let hub = b.build().unwrap();
    let rec = Recorder::start(&hub.control());

    let receipt = hub
        .handle()
        .publish(order(Principal::user("alice")))
        .await
        .unwrap();
    rec.wait_for(receipt.event_id, "action_succeeded", 3).await;

    let steps = rec.steps(receipt.event_id);
    let t = tally(&steps);
    assert_eq!(t["accepted"], 1);
    assert_eq!(t["rule_matched"], 3);
    assert_eq!(t["action_dispatched"], 3);
    assert_eq!(t["action_succeeded"], 3);
    assert_eq!(steps[0].name(), "accepted");
    for agent in &agents {
        let got = agent.received();
        assert_eq!(got.len(), 1);
        assert_eq!(*got[0].payload(), json!({"order": 7, "for": "alice"}));
        assert_eq!(got[0].event().id, receipt.event_id);
        assert_eq!(got[0].principal().user.as_str(), "alice");
    }
    // Each action id is distinct, and dispatched before it succeeded.
    let dispatched: Vec<_> = steps
        .iter()
        .filter(|s| s.name() == "action_dispatched")
        .map(|s| s.action().unwrap().id)
        .collect();
    for id in &dispatched {
        let pos = |name| {
            steps
                .iter()
                .position(|s| s.name() == name && s.action().map(|a| a.id) == Some(*id))
                .unwrap()
        };
        assert!(pos("action_dispatched") < pos("action_succeeded"));
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn a_user_rule_and_a_group_rule_both_match() {
    let by_user = RecordingAgent::new();
    let by_group = RecordingAgent::new();
    let by_other_group = RecordingAgent::new();
    let rules = RuleBook::with_rules(vec![
        rule("alice-rule", "by-user").for_subject(Subject::User("alice".into())),
        rule("sales-rule", "by-group").for_subject(Subject::Group("sales".into())),
        rule("ops-rule", "by-other-group").for_subject(Subject::Group("ops".into())),
    ])
    .unwrap();
    let hub = base()
        .agent(AgentSpec::new("by-user", by_user.agent()).handles(["notify"]))
        .agent(AgentSpec::new("by-group", by_group.agent()).handles(["notify"]))
        .agent(AgentSpec::new("by-other-group", by_other_group.agent()).handles(["notify"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());

    let alice = Principal::user("alice").in_group("sales");
    let receipt = hub.handle().publish(order(alice)).await.unwrap();
    rec.assert_path(
        receipt.event_id,
        &[
            "accepted",
            "rule_matched",
            "action_dispatched",
            "rule_matched",
            "action_dispatched",
            "action_succeeded",
            "action_succeeded",
        ],
    )
    .await;
    let matched: Vec<_> = rec
        .steps(receipt.event_id)
        .into_iter()
        .filter_map(|s| match s.kind {
            TelemetryKind::RuleMatched { rule, .. } => Some(rule.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(matched, ["alice-rule", "sales-rule"]);
    assert_eq!(by_user.count(), 1);
    assert_eq!(by_group.count(), 1);
    assert_eq!(by_other_group.count(), 0);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_tenant_rule_does_not_match_another_tenant() {
    let acme_agent = RecordingAgent::new();
    let rules = RuleBook::with_rules(vec![
        rule("acme-only", "acme-agent").for_subject(Subject::Tenant("acme".into()))
    ])
    .unwrap();
    let hub = base()
        .agent(AgentSpec::new("acme-agent", acme_agent.agent()).handles(["notify"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let h = hub.handle();

    let other = h
        .publish(order(Principal::user("bob").in_tenant("globex")))
        .await
        .unwrap();
    rec.assert_path(other.event_id, &["accepted", "no_route"])
        .await;
    let acme = h
        .publish(order(Principal::user("carol").in_tenant("acme")))
        .await
        .unwrap();
    rec.assert_path(
        acme.event_id,
        &[
            "accepted",
            "rule_matched",
            "action_dispatched",
            "action_succeeded",
        ],
    )
    .await;
    let got = acme_agent.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].principal().user.as_str(), "carol");
    hub.shutdown().await;
}

#[tokio::test]
async fn an_event_no_rule_matches_reports_no_route() {
    let hub = base()
        .event_type(EventTypeDef::new("order.cancelled"))
        .agent(AgentSpec::new("a", RecordingAgent::new().agent()).handles(["notify"]))
        .provider(
            "rules",
            RuleBook::with_rules(vec![rule("r", "a")]).unwrap(),
            ProviderScope::AllEvents,
        )
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let ev = Event::new("order.cancelled", Principal::user("alice"), json!({}));
    let (receipt, monitor) = hub.handle().publish_monitored(ev).await.unwrap();
    let names: Vec<_> = monitor.collect().await.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["accepted", "no_route"]);
    rec.assert_path(receipt.event_id, &["accepted", "no_route"])
        .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn a_template_missing_a_field_fails_the_rule_by_name() {
    let agent = RecordingAgent::new();
    let rules = RuleBook::with_rules(vec![
        Rule::new(
            "needs-customer",
            "order.created",
            "a",
            "notify",
            json!({"customer": "{{payload.customer.id}}"}),
        ),
        rule("fine", "a"),
    ])
    .unwrap();
    let hub = base()
        .agent(AgentSpec::new("a", agent.agent()).handles(["notify"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap();
    let (receipt, steps) = monitored(&hub.handle(), order(Principal::user("alice"))).await;
    let names = names(&steps);
    assert_eq!(
        names,
        [
            "accepted",
            "rule_failed",
            "rule_matched",
            "action_dispatched",
            "action_succeeded"
        ]
    );
    match &steps[1].kind {
        TelemetryKind::RuleFailed { error, .. } => {
            assert_eq!(
                error,
                &RuleError::MissingField {
                    rule: "needs-customer".into(),
                    field: "payload.customer.id".into()
                }
            );
            assert!(error.to_string().contains("payload.customer.id"));
            assert!(error.to_string().contains("needs-customer"));
        }
        other => panic!("expected rule_failed, got {other:?}"),
    }
    // No empty string went anywhere: only the valid rule's action was sent.
    assert_eq!(agent.count(), 1);
    assert_eq!(agent.received()[0].event().id, receipt.event_id);
    hub.shutdown().await;
}

#[tokio::test]
async fn two_providers_nominating_the_same_action_make_one_call() {
    let agent = RecordingAgent::new();
    let first = RuleBook::with_rules(vec![rule("from-first", "a")]).unwrap();
    let second = RuleBook::with_rules(vec![rule("from-second", "a")]).unwrap();
    let hub = base()
        .agent(AgentSpec::new("a", agent.agent()).handles(["notify"]))
        .provider("first", first, ProviderScope::AllEvents)
        .provider(
            "second",
            second,
            ProviderScope::EventTypes(vec!["order.created".into()]),
        )
        .build()
        .unwrap();
    let (_, steps) = monitored(&hub.handle(), order(Principal::user("alice"))).await;
    let names = names(&steps);
    assert_eq!(
        names,
        [
            "accepted",
            "rule_matched",
            "action_dispatched",
            "rule_matched",
            "action_merged",
            "action_succeeded"
        ]
    );
    let dispatched = steps[2].action().unwrap().id;
    match &steps[4].kind {
        TelemetryKind::ActionMerged { into, rule, .. } => {
            assert_eq!(*into, dispatched);
            assert_eq!(rule.as_str(), "from-second");
        }
        other => panic!("expected action_merged, got {other:?}"),
    }
    assert_eq!(agent.count(), 1);
    hub.shutdown().await;
}

#[tokio::test]
async fn an_agents_follow_up_event_is_not_routed_back_to_it() {
    let notifier = RecordingAgent::new();
    let enricher_calls = RecordingAgent::new();
    let enricher = {
        let calls = enricher_calls.clone();
        let record = std::sync::Arc::new(calls.agent());
        agent_fn(move |action, ctx| {
            let record = record.clone();
            async move {
                record.call(action.clone(), ctx.clone()).await?;
                let follow_up = Event::new(
                    "order.enriched",
                    action.principal().clone(),
                    json!({"order": action.payload()["order"].clone()}),
                );
                ctx.publish(follow_up)
                    .await
                    .map_err(|e| atamo_core::AgentError::retry(e.to_string()))?;
                Ok(Reply::done())
            }
        })
    };
    let rules = RuleBook::with_rules(vec![
        rule("enrich-orders", "enricher"),
        // Both rules for the follow-up name the enricher too: it must not get its own event back.
        Rule::new(
            "enriched-to-enricher",
            "order.enriched",
            "enricher",
            "notify",
            json!({"order": "{{payload.order}}"}),
        ),
        Rule::new(
            "enriched-to-notifier",
            "order.enriched",
            "notifier",
            "notify",
            json!({"order": "{{payload.order}}"}),
        ),
    ])
    .unwrap();
    let hub = base()
        .event_type(EventTypeDef::new("order.enriched"))
        .agent(AgentSpec::new("enricher", enricher).handles(["notify"]))
        .agent(AgentSpec::new("notifier", notifier.agent()).handles(["notify"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let receipt = hub
        .handle()
        .publish(order(Principal::user("alice")))
        .await
        .unwrap();

    notifier.wait_for(1).await;
    let follow_up = notifier.received()[0].event().clone();
    assert_eq!(follow_up.event_type.as_str(), "order.enriched");
    assert_eq!(follow_up.correlation_id, receipt.correlation_id);
    let origin = follow_up
        .origin
        .clone()
        .expect("follow-up records its origin");
    assert_eq!(origin.agent.as_str(), "enricher");
    rec.assert_path(
        follow_up.id,
        &[
            "accepted",
            "route_suppressed",
            "rule_matched",
            "action_dispatched",
            "action_succeeded",
        ],
    )
    .await;
    let suppressed = rec
        .steps(follow_up.id)
        .into_iter()
        .find_map(|s| match s.kind {
            TelemetryKind::RouteSuppressed { agent, reason, .. } => Some((agent, reason)),
            _ => None,
        })
        .unwrap();
    assert_eq!(suppressed.0.as_str(), "enricher");
    assert_eq!(suppressed.1, SuppressReason::OwnFollowUp);
    assert_eq!(
        enricher_calls.count(),
        1,
        "the enricher ran only for the original event"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_rule_naming_an_unknown_agent_or_unsupported_action_fails_with_telemetry() {
    let agent = RecordingAgent::new();
    let rules = RuleBook::with_rules(vec![
        rule("to-nobody", "nobody"),
        Rule::new("wrong-action", "order.created", "a", "archive", json!({})),
    ])
    .unwrap();
    let hub = base()
        .action_type(ActionTypeDef::new("archive"))
        .agent(AgentSpec::new("a", agent.agent()).handles(["notify"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap();
    let (_, monitor) = hub
        .handle()
        .publish_monitored(order(Principal::user("alice")))
        .await
        .unwrap();
    let errors: Vec<_> = monitor
        .collect()
        .await
        .into_iter()
        .filter_map(|s| match s.kind {
            TelemetryKind::RuleFailed { error, .. } => Some(error),
            _ => None,
        })
        .collect();
    assert!(
        matches!(&errors[0], RuleError::UnknownAgent { agent, .. } if agent.as_str() == "nobody")
    );
    assert!(
        matches!(&errors[1], RuleError::UnsupportedAction { action_type, .. } if action_type.as_str() == "archive")
    );
    assert_eq!(agent.count(), 0);
    hub.shutdown().await;
}
