//! Registering plugin agents and rule providers from their JSON description, into a running
//! hub: a native rule provider routing to a native agent, config errors naming the field, and
//! a provider's failures and panics reported as failed rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use atamo_agents::native::{LoadError, PluginLoader};
use atamo_agents::registration::{
    AgentRegistration, PluginHost, ProviderRegistration, RegistrationError,
};
use atamo_core::request::RequestState;
use atamo_core::rules::RuleError;
use atamo_core::{ActionTypeDef, Event, EventTypeDef, Hub, Principal, TelemetryKind};
use serde_json::json;
use support::{library_file, plugins_dir, ACTIONS};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_provider_routes_to_a_native_agent_registered_from_json() {
    let dir = plugins_dir();
    let mut b = Hub::builder().event_type(EventTypeDef::new("do"));
    for a in ACTIONS {
        b = b.action_type(ActionTypeDef::new(*a));
    }
    let hub = b.build().unwrap();
    let mut telemetry = hub.control().subscribe();
    let host = PluginHost::new(hub.control(), PluginLoader::new(dir.path()));
    let lib = library_file("atamo_test_plugin");

    let agent: AgentRegistration = serde_json::from_value(json!({
        "id": "worker",
        "source": {"native": {"library": lib, "kind": "test"}},
        "config": {"label": "from-json"},
        "handles": ACTIONS,
        "action_template": {"required": []},
        "concurrency": 8
    }))
    .unwrap();
    host.register_agent(agent).await.unwrap();
    let provider: ProviderRegistration = serde_json::from_value(json!({
        "id": "router", "library": lib, "kind": "route",
        "config": {"agent": "worker"}, "event_types": ["do"]
    }))
    .unwrap();
    host.register_provider(provider).unwrap();

    let info = hub.control().agents();
    let worker = info.iter().find(|a| a.id.as_str() == "worker").unwrap();
    assert_eq!(worker.metadata, json!({"label": "from-json"}));

    let h = hub.handle();
    let ask = |payload| Event::new("do", Principal::user("alice"), payload);
    let r = h
        .request(ask(json!({"action": "echo", "args": {"x": 1}})))
        .await
        .unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(
        *done.answers[0].payload,
        json!({"label": "from-json", "payload": {"x": 1}})
    );

    // The provider's own failure and its panic are failed rules; the hub goes on.
    for (action, check) in [
        ("fail_in_rules", "asked to fail"),
        ("panic_in_rules", "boom in rules"),
    ] {
        h.publish(ask(json!({"action": action}))).await.unwrap();
        loop {
            let event = tokio::time::timeout(WAIT, telemetry.recv())
                .await
                .unwrap()
                .unwrap();
            if let TelemetryKind::RuleFailed { error, .. } = &event.kind {
                match error {
                    RuleError::Provider { message, .. } => assert_eq!(message, check),
                    RuleError::ProviderPanicked { message, .. } => {
                        assert!(message.contains(check), "{message}")
                    }
                    other => panic!("unexpected {other:?}"),
                }
                break;
            }
        }
    }
    let r = h
        .request(ask(json!({"action": "echo", "args": 2})))
        .await
        .unwrap();
    assert_eq!(
        h.wait(r.request_id, WAIT).await.unwrap().state,
        RequestState::Complete
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_checked_before_anything_runs() {
    let dir = plugins_dir();
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("do"))
        .action_type(ActionTypeDef::new("echo"))
        .build()
        .unwrap();
    let host = PluginHost::new(hub.control(), PluginLoader::new(dir.path()));
    let lib = library_file("atamo_test_plugin");

    // A misspelt key in the registration itself.
    let err = serde_json::from_value::<AgentRegistration>(json!({
        "id": "a", "source": {"native": {"library": lib, "kind": "test"}},
        "handles": ["echo"], "confg": {}
    }))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `confg`"), "{err}");

    // Init metadata that does not match the schema: the field is named.
    let reg: AgentRegistration = serde_json::from_value(json!({
        "id": "a", "source": {"native": {"library": lib, "kind": "test"}},
        "handles": ["echo"], "config": {"label": 7}
    }))
    .unwrap();
    let err = host.register_agent(reg).await.unwrap_err();
    let RegistrationError::Load { error, .. } = &err else {
        panic!("expected a load error, got {err}")
    };
    assert!(matches!(**error, LoadError::BadConfig { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("field `label`: expected string, got integer"),
        "{err}"
    );

    // An action type the hub does not know.
    let reg: AgentRegistration = serde_json::from_value(json!({
        "id": "a", "source": {"native": {"library": lib, "kind": "test"}},
        "handles": ["echo", "teleport"]
    }))
    .unwrap();
    let err = host.register_agent(reg).await.unwrap_err();
    assert!(matches!(err, RegistrationError::Hub { .. }), "{err}");
    assert!(err.to_string().contains("teleport"), "{err}");

    // A provider kind asked for as an agent.
    let reg: AgentRegistration = serde_json::from_value(json!({
        "id": "a", "source": {"native": {"library": lib, "kind": "route"}},
        "handles": ["echo"]
    }))
    .unwrap();
    let err = host.register_agent(reg).await.unwrap_err();
    assert!(
        err.to_string().contains("offers no agent kind `route`"),
        "{err}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_agent_registered_from_json_runs_and_stops_gracefully() {
    use atamo_core::telemetry::ProcessChange;
    let dir = plugins_dir();
    let mut b = Hub::builder().event_type(EventTypeDef::new("do"));
    for a in ACTIONS {
        b = b.action_type(ActionTypeDef::new(*a));
    }
    let hub = b.build().unwrap();
    let mut telemetry = hub.control().subscribe();
    let host = PluginHost::new(hub.control(), PluginLoader::new(dir.path()));
    let program = env!("CARGO_BIN_EXE_atamo-test-process-agent");

    // Init metadata belongs on the registration, not twice.
    let twice: AgentRegistration = serde_json::from_value(json!({
        "id": "proc", "handles": ["echo"],
        "source": {"process": {"program": program, "kind": "test", "config": {"label": "a"}}},
        "config": {"label": "b"}
    }))
    .unwrap();
    let err = host.register_agent(twice).await.unwrap_err();
    assert!(
        matches!(err, RegistrationError::ConfigTwice { .. }),
        "{err}"
    );

    let reg: AgentRegistration = serde_json::from_value(json!({
        "id": "proc", "handles": ACTIONS,
        "source": {"process": {"program": program, "kind": "test", "ping_interval_ms": 200}},
        "config": {"label": "child"},
        "action_template": {"required": []}
    }))
    .unwrap();
    host.register_agent(reg).await.unwrap();
    host.register_provider(
        serde_json::from_value(json!({
            "id": "router", "library": library_file("atamo_test_plugin"), "kind": "route",
            "config": {"agent": "proc"}
        }))
        .unwrap(),
    )
    .unwrap();
    let h = hub.handle();
    let r = h
        .request(Event::new(
            "do",
            Principal::user("alice"),
            json!({"action": "echo", "args": 5}),
        ))
        .await
        .unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(
        *done.answers[0].payload,
        json!({"label": "child", "payload": 5})
    );

    host.unregister_agent("proc").await.unwrap();
    assert!(hub
        .control()
        .agents()
        .iter()
        .all(|a| a.id.as_str() != "proc"));
    loop {
        let event = tokio::time::timeout(WAIT, telemetry.recv())
            .await
            .unwrap()
            .unwrap();
        if let TelemetryKind::AgentProcess {
            change: ProcessChange::Stopped { how },
            ..
        } = &event.kind
        {
            assert_eq!(how, "goodbye");
            break;
        }
    }
    let err = host.unregister_agent("proc").await.unwrap_err();
    assert!(matches!(err, RegistrationError::Hub { .. }), "{err}");
    host.shutdown().await;
    hub.shutdown().await;
}
