//! Types, agents and rules: read with the model's validators and checked against each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use atamo_core::failure::RetryPolicy;

use super::support::{errors, line_of, load_text, ok, one_error};
use crate::model::AgentKind;

#[test]
fn types_agents_and_rules() {
    let c = ok(r#"
[[event_types]]
name = "order.created"
required = ["order.id"]
durability = "memory"

[[action_types]]
name = "email.send"
retry = { max_attempts = 3 }

[[agents]]
id = "hook"
kind = "http"
config = { base_url = "http://127.0.0.1:9000/hook", headers = { Accept = "application/json" } }

[[agents]]
id = "words"
kind = "process"
handles = ["count"]
config = { program = "python3", args = ["agent.py"], config = { lang = "en" } }

[[rules]]
id = "notify"
event_type = "order.created"
agent = "hook"
action = "http.request"
template = { order = "{{payload.order.id}}", path = "/orders" }
"#);
    assert_eq!(c.event_types.len(), 1);
    assert_eq!(c.event_types[0].required, ["order.id"]);
    assert_eq!(c.action_types[0].retry, Some(RetryPolicy::attempts(3)));
    assert_eq!(c.agents.len(), 2);
    assert_eq!(c.agents[0].kind, AgentKind::Http);
    assert_eq!(
        c.agents[0].config,
        serde_json::json!({"base_url": "http://127.0.0.1:9000/hook", "headers": {"Accept": "application/json"}})
    );
    assert_eq!(c.agents[1].handled_types(), ["count"]);
    assert_eq!(c.rules.len(), 1);
    assert_eq!(c.rules[0].id.as_str(), "notify");
    assert_eq!(
        c.rules[0].template,
        serde_json::json!({"order": "{{payload.order.id}}", "path": "/orders"})
    );
    // `url` stands for an HTTP agent's `base_url`.
    let aliased = ok("[[agents]]\nid = \"hook\"\nkind = \"http\"\nconfig = { url = \"http://127.0.0.1:9000/\" }\n");
    assert_eq!(aliased.agents[0].config["url"], "http://127.0.0.1:9000/");
    let e = one_error("[[agents]]\nid = \"hook\"\nkind = \"http\"\n");
    assert_eq!((e.path.as_str(), e.line), ("agents[0].config", Some(1)));
    assert!(
        e.message.contains("missing field `base_url`"),
        "{}",
        e.message
    );
}

#[test]
fn rules_naming_what_the_file_does_not_declare_are_warnings() {
    let text = r#"
[[agents]]
id = "hook"
kind = "http"
config = { base_url = "http://127.0.0.1:9000/hook" }

[[rules]]
id = "later"
event_type = "order.created"
agent = "added-later"
action = "http.request"
fallback = "also-later"
template = {}

[[rules]]
id = "exhausted"
event_type = "atamo.action.exhausted"
agent = "hook"
action = "http.request"
template = {}
"#;
    let (config, warnings) = load_text(text).unwrap();
    assert_eq!(config.rules.len(), 2);
    let got: Vec<_> = warnings
        .iter()
        .map(|w| (w.path.as_str(), w.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("rules[0].event_type", line_of(text, "order.created")),
            ("rules[0].agent", line_of(text, "added-later")),
            ("rules[0].fallback", line_of(text, "also-later")),
        ]
    );
    assert!(warnings[1].message.contains("registered through the API"));

    // An agent the file declares must handle the rule's action.
    let e = one_error(
        "[[agents]]\nid = \"hook\"\nkind = \"http\"\nconfig = { base_url = \"http://127.0.0.1:1/\" }\n\
         [[rules]]\nid = \"r\"\nevent_type = \"atamo.alert\"\nagent = \"hook\"\naction = \"email.send\"\n\
         template = {}\n",
    );
    assert_eq!((e.path.as_str(), e.line), ("rules[0].action", Some(9)));
    assert!(
        e.message.contains("does not handle `email.send`"),
        "{}",
        e.message
    );
}

#[test]
fn entries_are_checked_with_the_model_validators() {
    let text = r#"
[[agents]]
id = "inv"
kind = "native"
concurrency = 0
config = { library = 3 }

[[agents]]
id = "hook"
kind = "http"
config = { base_ulr = "http://127.0.0.1:9000/hook" }

[[agents]]
id = "cmd"
kind = "command"
handles = ["run", "bad name"]

[[event_types]]
name = "a b"

[[action_types]]
name = "ok.type"

[[action_types]]
name = "ok.type"
"#;
    let got: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.path, e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "agents[0].handles".to_owned(),
                line_of(text, "id = \"inv\"") - 1
            ),
            (
                "agents[0].concurrency".to_owned(),
                line_of(text, "concurrency")
            ),
            ("agents[0].config".to_owned(), line_of(text, "library = 3")),
            (
                "agents[1].config.base_ulr".to_owned(),
                line_of(text, "base_ulr")
            ),
            (
                "agents[2].config".to_owned(),
                line_of(text, "id = \"cmd\"") - 1
            ),
            ("agents[2].handles[1]".to_owned(), line_of(text, "bad name")),
            ("event_types[0].name".to_owned(), line_of(text, "a b")),
            ("action_types[1].name".to_owned(), text.lines().count()),
        ]
    );
}
