//! `atamo config check FILE [--json]`, run as the real binary: the example file passes; a
//! file with mistakes in several sections has each reported at its line, as text and as JSON,
//! with exit status 1; the environment does not change the verdict.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `atamo config check` on `file`, with `ATAMO_*` variables that would be errors if
/// the checker read them.
fn check(file: &Path, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atamo"));
    cmd.args(["config", "check"]).arg(file);
    if json {
        cmd.arg("--json");
    }
    cmd.env("ATAMO_LISTEN", "not an address")
        .env("ATAMO_STORE", "nowhere")
        .output()
        .unwrap()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/atamo.toml")
}

const BROKEN: &str = r#"# one mistake in each of several sections
listen = "localhost:7700"

[hub]
keep_alive = "5 parsecs"

[http]
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
template = { order = "{{payload.order.id" }
"#;

/// The `(line, path)` of each error expected in [`BROKEN`].
const EXPECTED: [(u64, &str); 6] = [
    (2, "listen"),
    (5, "hub.keep_alive"),
    (8, "http.colour"),
    (17, "agents[1].kind"),
    (20, "agents[2].id"),
    (29, "rules[0].template.order"),
];

#[test]
fn the_example_file_passes() {
    let out = check(&example(), false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.trim_end().ends_with(": ok"), "{stdout}");

    let out = check(&example(), true);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["errors"], serde_json::json!([]));
    assert_eq!(report["warnings"], serde_json::json!([]));
}

#[test]
fn every_mistake_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("atamo.toml");
    std::fs::write(&file, BROKEN).unwrap();

    let out = check(&file, true);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let errors: Vec<(u64, &str)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, EXPECTED, "{report:#}");
    assert!(report["errors"][3]["message"]
        .as_str()
        .unwrap()
        .contains("unknown variant `ftp`"));
    // The rule's event type is not declared: a warning, not an error.
    assert_eq!(report["warnings"][0]["path"], "rules[0].event_type");

    let out = check(&file, false);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    for ((line, path), text) in EXPECTED.iter().zip(&lines) {
        let place = format!("error: {}:{line}:", file.display());
        assert!(text.starts_with(&place), "{text}");
        assert!(text.contains(&format!(": {path}: ")), "{text}");
    }
    assert_eq!(
        lines.last().copied(),
        Some(format!("{}: 6 errors, 1 warning", file.display()).as_str())
    );
}

#[test]
fn a_syntax_error_is_one_error_and_a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("atamo.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:7700\"\n[hub\nlease = \"1s\"\n").unwrap();
    let out = check(&file, true);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(report["errors"][0]["line"], 2);

    let out = check(&dir.path().join("missing.toml"), true);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"][0]["line"], Value::Null);
    assert!(report["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("cannot read the file"));
}
