//! The controller's side: runtime registration, atomic rule-set swaps, listings, health, and
//! configuration errors that name every problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use atamo_config::{Rule, RuleBook};
use atamo_core::hub::ConfigProblem;
use atamo_core::rules::ProviderScope;
use atamo_core::{ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal};
use atamo_tests::{Recorder, RecordingAgent};
use serde_json::json;

fn set(label: &str) -> Vec<Rule> {
    ["x", "y"]
        .iter()
        .map(|agent| {
            Rule::new(
                format!("{label}-{agent}").as_str(),
                "tick",
                *agent,
                "mark",
                json!({"set": label}),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_set_swap_is_atomic_under_concurrent_publishing() {
    let x = RecordingAgent::new();
    let y = RecordingAgent::new();
    let rules = RuleBook::with_rules(set("A")).unwrap();
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("tick"))
        .action_type(ActionTypeDef::new("mark"))
        .agent(AgentSpec::new("x", x.agent()).handles(["mark"]))
        .agent(AgentSpec::new("y", y.agent()).handles(["mark"]))
        .provider("rules", rules.clone(), ProviderScope::AllEvents)
        .build()
        .unwrap();

    // One thread swaps between two complete rule sets as fast as it can while events flow.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let rules = rules.clone();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let label = if swaps % 2 == 0 { "B" } else { "A" };
                rules.replace_all(set(label)).unwrap();
                swaps += 1;
                std::thread::yield_now();
            }
            swaps
        })
    };
    const EVENTS: usize = 5_000;
    let h = hub.handle();
    for i in 0..EVENTS {
        h.publish(Event::new("tick", Principal::user("u"), json!({"i": i})))
            .await
            .unwrap();
        if i % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    x.wait_for(EVENTS).await;
    y.wait_for(EVENTS).await;
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 10, "the rule set was swapped {swaps} times");

    let mut by_event: HashMap<_, Vec<String>> = HashMap::new();
    for a in x.received().into_iter().chain(y.received()) {
        by_event
            .entry(a.event().id)
            .or_default()
            .push(a.payload()["set"].as_str().unwrap().to_owned());
    }
    assert_eq!(by_event.len(), EVENTS);
    let mut seen = HashMap::new();
    for (event, sets) in &by_event {
        assert_eq!(sets.len(), 2, "event {event} got {sets:?}");
        assert_eq!(sets[0], sets[1], "event {event} saw a mix of rule sets");
        *seen.entry(sets[0].clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both rule sets routed events: {seen:?}");
    hub.shutdown().await;
}

#[tokio::test]
async fn agents_providers_and_types_register_and_unregister_at_runtime() {
    let hub = Hub::builder().build().unwrap();
    let control = hub.control();
    let rec = Recorder::start(&control);
    let h = hub.handle();
    let ev = || Event::new("order.created", Principal::user("alice"), json!({"id": 1}));

    // Nothing registered: rejected.
    assert!(h.publish(ev()).await.is_err());

    control
        .register_event_type(
            EventTypeDef::new("order.created")
                .requiring(["id"])
                .unwrap(),
        )
        .unwrap();
    control
        .register_action_type(ActionTypeDef::new("notify"))
        .unwrap();
    let agent = RecordingAgent::new();
    control
        .register_agent(AgentSpec::new("a", agent.agent()).handles(["notify"]))
        .unwrap();
    let rules = RuleBook::with_rules(vec![Rule::new(
        "r1",
        "order.created",
        "a",
        "notify",
        json!({"id": "{{payload.id}}"}),
    )])
    .unwrap();
    control
        .register_provider(
            "rules",
            rules.clone(),
            ProviderScope::EventTypes(vec!["order.created".into()]),
        )
        .unwrap();

    let r = h.publish(ev()).await.unwrap();
    agent.wait_for(1).await;
    rec.wait_for(r.event_id, "action_succeeded", 1).await;

    // Listings.
    // Besides the hub's own (`atamo.*`) event types.
    let own: Vec<_> = control
        .event_types()
        .into_iter()
        .filter(|t| !t.name.as_str().starts_with("atamo."))
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].name.as_str(), "order.created");
    assert_eq!(control.action_types()[0].name.as_str(), "notify");
    assert_eq!(control.agents()[0].id.as_str(), "a");
    assert_eq!(control.providers()[0].id.as_str(), "rules");
    let listed = control.rules();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.as_str(), "rules");
    assert_eq!(listed[0].1.id.as_str(), "r1");
    assert!(control.rule(&"r1".into()).is_some());
    rules.remove(&"r1".into()).unwrap();
    assert!(control.rules().is_empty());
    rules
        .insert(Rule::new("r2", "order.created", "a", "notify", json!({})))
        .unwrap();

    // Health.
    let health = control.health();
    assert!(health.accepting);
    assert_eq!(health.agents[0].succeeded, 1);
    assert_eq!(health.agents[0].queue.capacity, 4096);
    assert_eq!(health.in_flight_actions, 0);
    assert!(health.telemetry_subscribers >= 1);

    // An action type in use cannot go; the agent can, then the type.
    let in_use = control
        .unregister_action_type(&"notify".into())
        .unwrap_err();
    assert!(matches!(
        &in_use.problems[0],
        ConfigProblem::ActionTypeInUse { .. }
    ));
    control.unregister_agent(&"a".into()).unwrap();
    let r = h.publish(ev()).await.unwrap();
    rec.wait_for(r.event_id, "no_route", 1).await;
    assert!(rec.path(r.event_id).contains(&"rule_failed"));
    control.unregister_action_type(&"notify".into()).unwrap();
    control.unregister_provider(&"rules".into()).unwrap();
    control
        .unregister_event_type(&"order.created".into())
        .unwrap();
    assert!(h.publish(ev()).await.is_err());

    rec.wait_until("provider_unregistered", |evs| {
        evs.iter().any(|e| e.name() == "provider_unregistered")
    })
    .await;
    let names = rec.names();
    for step in [
        "agent_registered",
        "provider_registered",
        "agent_unregistered",
    ] {
        assert!(names.contains(&step), "{step} recorded");
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn a_bad_configuration_names_every_problem() {
    let agent = RecordingAgent::new();
    let invalid = |b: atamo_core::HubBuilder| {
        let b = b
            .event_type(EventTypeDef::new("tick"))
            .event_type(EventTypeDef::new("tick"))
            .agent(AgentSpec::new("no types", agent.agent()))
            .agent(
                AgentSpec::new("a", agent.agent())
                    .handles(["undeclared"])
                    .concurrency(0),
            )
            .provider(
                "p",
                RuleBook::new(),
                ProviderScope::EventTypes(vec!["nope".into()]),
            );
        match b.build() {
            Ok(_) => panic!("the configuration is invalid"),
            Err(e) => e,
        }
    };
    // A bad hub setting is found before anything is registered.
    let err = invalid(Hub::builder().ingress_capacity(0));
    assert_eq!(err.problems.len(), 1, "{err}");
    let err = invalid(Hub::builder());
    let text = err.to_string();
    for needle in [
        "event type `tick` is already registered",
        "agent id \"no types\" contains whitespace",
        "agent `no types` handles no action type",
        "agent `a` handles action type `undeclared`, which is not registered",
        "agent `a`: concurrency must be at least 1",
        "provider `p` is scoped to event type `nope`, which is not registered",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    assert_eq!(err.problems.len(), 6, "{err}");
}
