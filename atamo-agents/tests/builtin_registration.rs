//! Built-in agents registered from their JSON description, with credentials.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use atamo_agents::builtin::ConfigCredentials;
use atamo_agents::native::PluginLoader;
use atamo_agents::registration::{AgentRegistration, PluginHost, RegistrationError};
use atamo_core::ids::RuleId;
use atamo_core::request::RequestState;
use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
use atamo_core::{ActionTypeDef, Event, EventTypeDef, Hub, Principal};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builtin_agent_registers_from_json_and_a_bad_one_names_every_problem() {
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("say"))
        .action_type(ActionTypeDef::new("run"))
        .provider(
            "route",
            |event: &Event, _: &Principal, out: &mut Vec<Proposal>| {
                out.push(Proposal::action(
                    RuleId::from("r"),
                    PlannedAction::new("echo", "run", json!({"args": [event.payload()["text"]]})),
                ))
            },
            ProviderScope::EventTypes(vec!["say".into()]),
        )
        .build()
        .unwrap();
    let dir = std::env::temp_dir();
    let host = PluginHost::new(hub.control(), PluginLoader::new(&dir))
        .credentials(Arc::new(ConfigCredentials::new()));
    let reg: AgentRegistration = serde_json::from_value(json!({
        "id": "echo",
        "source": {"builtin": {"kind": "command"}},
        "config": {"program": "echo", "args": ["said:"]},
        "handles": ["run"]
    }))
    .unwrap();
    host.register_agent(reg).await.unwrap();
    let h = hub.handle();
    let r = h
        .request(Event::new(
            "say",
            Principal::user("alice"),
            json!({"text": "hello world"}),
        ))
        .await
        .unwrap();
    let done = h.wait(r.request_id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(
        *done.answers[0].payload,
        json!({"line": "said: hello world"})
    );

    let bad: AgentRegistration = serde_json::from_value(json!({
        "id": "api",
        "source": {"builtin": {"kind": "http"}},
        "config": {"timeout_ms": "soon", "colour": 1},
        "handles": ["run"]
    }))
    .unwrap();
    let err = host.register_agent(bad).await.unwrap_err();
    assert!(matches!(err, RegistrationError::Builtin(_)), "{err}");
    let text = err.to_string();
    for part in ["base_url", "timeout_ms", "colour"] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
    let unknown: AgentRegistration = serde_json::from_value(json!({
        "id": "x", "source": {"builtin": {"kind": "ftp"}}, "handles": ["run"]
    }))
    .unwrap();
    let err = host.register_agent(unknown).await.unwrap_err().to_string();
    assert!(
        err.contains("no built-in agent kind `ftp`") && err.contains("http, sql, email, command"),
        "{err}"
    );
    hub.shutdown().await;
}
