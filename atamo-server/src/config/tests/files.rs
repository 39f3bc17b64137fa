//! Whole files: many mistakes at their lines, syntax errors, the check command's reports,
//! the example file and the reference.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use super::support::{errors, line_of, no_env, one_error, write};
use crate::config::check::check_file;
use crate::config::{check_command, env, load, Overrides};

/// A file with six mistakes: a bad duration, an unknown key, an agent with an unknown kind, a
/// rule with a bad template, two agents with one id and a bad listen address, each reported
/// at its line, with nothing else.
const MANY_ERRORS: &str = r#"# a file with six mistakes
listen = "localhost:7700"

[hub]
keep_alive = "5 parsecs"
lease = "30s"

[http]
rate_limit = 100
colour = "blue"

[[agents]]
id = "hook"
kind = "http"
config = { base_url = "http://127.0.0.1:9000/hook" }

[[agents]]
id = "mailer"
kind = "ftp"

[[agents]]
id = "hook"
kind = "http"
config = { base_url = "http://127.0.0.1:9001/hook" }

[[rules]]
id = "notify"
event_type = "order.created"
agent = "hook"
action = "http.request"

[rules.template]
path = "/orders"
order = "{{payload.order.id"
"#;

#[test]
fn every_error_of_a_file_is_reported_at_its_line() {
    let text = MANY_ERRORS;
    let all = errors(text);
    let got: Vec<_> = all
        .iter()
        .map(|e| (e.path.as_str(), e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("listen", line_of(text, "localhost")),
            ("hub.keep_alive", line_of(text, "parsecs")),
            ("http.colour", line_of(text, "colour")),
            ("agents[1].kind", line_of(text, "ftp")),
            ("agents[2].id", line_of(text, "9001") - 2),
            (
                "rules[0].template.order",
                line_of(text, "{{payload.order.id\"")
            ),
        ],
        "{all:#?}"
    );
    assert_eq!(got[0].1, 2);
    assert_eq!(got[5].1, 34);
    let by_path = |p: &str| all.iter().find(|e| e.path == p).unwrap();
    assert!(by_path("listen").message.contains("not a socket address"));
    assert!(by_path("hub.keep_alive").message.contains("not a duration"));
    assert!(by_path("http.colour")
        .message
        .starts_with("unknown key `colour`"));
    assert!(by_path("agents[1].kind")
        .message
        .starts_with("unknown variant `ftp`, expected one of `http`"));
    assert_eq!(
        by_path("agents[2].id").message,
        "agent `hook` is declared more than once (first at line 13)"
    );
    assert!(by_path("rules[0].template.order")
        .message
        .contains("is not closed"));
    // The display names file, line, column and setting.
    assert_eq!(
        all[3].to_string(),
        format!(
            "atamo.toml:{}:8: agents[1].kind: {}",
            line_of(text, "ftp"),
            all[3].message
        )
    );
}

#[test]
fn duplicate_rule_ids_and_bad_rules() {
    let text = r#"
[[rules]]
id = "r"
event_type = "atamo.alert"
agent = "a"
action = "x"
template = {}

[[rules]]
id = "r"
event_type = "atamo.alert"
agent = "a"
action = "x"
template = {}

[[rules]]
id = "two-subjects"
event_type = "atamo.alert"
user = "alice"
group = "sales"
agent = "a"
action = "x"
template = {}

[[rules]]
id = "unknown-root"
event_type = "atamo.alert"
agent = "a"
action = "x"
template = { items = ["{{payload.a}}", "{{nobody}}"] }
"#;
    let all = errors(text);
    let got: Vec<_> = all
        .iter()
        .map(|e| (e.path.as_str(), e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("rules[1].id", 10),
            ("rules[2]", 16),
            ("rules[3].template.items.1", 30),
        ],
        "{all:#?}"
    );
    assert!(
        all[0].message.contains("first at line 3"),
        "{}",
        all[0].message
    );
    assert!(
        all[1].message.contains("`user` and `group`"),
        "{}",
        all[1].message
    );
    assert!(
        all[2].message.contains("unknown root `nobody`"),
        "{}",
        all[2].message
    );
}

#[test]
fn syntax_errors_and_datetimes() {
    let e = one_error("listen = \"127.0.0.1:7700\"\nhub = [1,\nlease = 3\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.path, "");
    let e = one_error("a = 1\na = 2\n");
    assert_eq!((e.line, e.message.as_str()), (Some(2), "duplicate key"));
    let e = one_error(
        "[[agents]]\nid = \"a\"\nkind = \"http\"\nconfig = { base_url = \"http://127.0.0.1/\", since = 1979-05-27 }\n",
    );
    assert_eq!(
        (e.path.as_str(), e.line),
        ("agents[0].config.since", Some(4))
    );
    assert!(e.message.contains("dates and times"));
}

#[test]
fn check_reports_text_json_and_exit_codes() {
    let f = write(MANY_ERRORS);
    let report = check_file(&f.path);
    assert!(!report.ok());
    assert_eq!(report.errors.len(), 6);
    let text = report.text(&f.path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    assert!(lines[0].starts_with(&format!("error: {}:2:10: listen: ", f.path.display())));
    assert!(lines[6].starts_with("warning: "), "{text}");
    assert_eq!(
        lines[7],
        format!("{}: 6 errors, 1 warning", f.path.display())
    );
    let json = report.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["errors"].as_array().unwrap().len(), 6);
    assert_eq!(
        json["errors"][0],
        serde_json::json!({
            "line": 2, "column": 10, "path": "listen",
            "message": report.errors[0].message,
        })
    );
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1);
    let code = |c: std::process::ExitCode| format!("{c:?}");
    assert_eq!(
        code(check_command(&f.path, true)),
        code(std::process::ExitCode::FAILURE)
    );

    let good = write(
        "[[rules]]\nid = \"r\"\nevent_type = \"e\"\nagent = \"a\"\naction = \"x\"\ntemplate = {}\n",
    );
    let report = check_file(&good.path);
    assert!(report.ok());
    assert_eq!(report.warnings.len(), 2);
    assert!(report.text(&good.path).ends_with("ok, 2 warnings\n"));
    assert_eq!(report.json()["ok"], true);
    assert_eq!(
        code(check_command(&good.path, false)),
        code(std::process::ExitCode::SUCCESS)
    );

    // A file that cannot be read is one error, without a line.
    let missing = good.path.with_file_name("missing.toml");
    let report = check_file(&missing);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.json()["errors"][0]["line"], serde_json::Value::Null);
}

fn workspace_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn the_example_file_passes_the_check() {
    let path = workspace_file("examples/atamo.toml");
    let report = check_file(&path);
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{}",
        report.text(&path)
    );
    let (config, _) = load(Some(&path), &no_env, &Overrides::default()).unwrap();
    assert_eq!(config.agents.len(), 3);
    assert_eq!(config.rules.len(), 3);
    assert_eq!(config.http.rate_burst, 400);
    assert_eq!(config.node.as_deref(), Some("shop-1"));
}

#[test]
fn the_reference_names_every_key_and_variable() {
    let doc = std::fs::read_to_string(workspace_file("docs/config.md")).unwrap();
    for var in env::ALL {
        assert!(doc.contains(var), "docs/config.md does not name {var}");
    }
    for key in [
        "listen",
        "data_dir",
        "log_format",
        "plugins_dir",
        "[store]",
        "kind",
        "path",
        "url",
        "schema",
        "node",
        "[hub]",
        "keep_alive",
        "shutdown_grace",
        "dedupe_window",
        "lease",
        "[retry]",
        "max_attempts",
        "initial_backoff",
        "max_backoff",
        "multiplier",
        "jitter",
        "max_elapsed",
        "[alerts]",
        "sample_interval",
        "error_rate",
        "max_rate",
        "window",
        "min_calls",
        "latency_p95",
        "max_p95",
        "throughput",
        "min_per_sec",
        "queue_depth",
        "max_len",
        "per_agent",
        "[retention]",
        "audit",
        "tenants",
        "[http]",
        "body_limit",
        "rate_limit",
        "rate_burst",
        "request_wait_max",
        "[[event_types]]",
        "[[action_types]]",
        "[[agents]]",
        "[[rules]]",
    ] {
        assert!(
            doc.contains(&format!("`{key}")),
            "docs/config.md does not name `{key}`"
        );
    }
}
