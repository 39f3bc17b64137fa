//! The built-in command agent running real programs in a hub, through rules with real
//! templates: stdout lines as answers, exit codes, arguments passed intact (no shell), working
//! directory, environment and stdin, the timeout and cancellation killing the processes, and a
//! bad configuration naming every problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atamo_agents::builtin::command::CommandAgent;
use atamo_config::{Rule, RuleBook};
use atamo_core::request::{PartStatus, RequestSnapshot};
use atamo_core::rules::ProviderScope;
use atamo_core::{
    ActionTypeDef, AgentError, AgentSpec, Event, EventTypeDef, Hub, Principal, RequestState,
    RequestUpdate,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// A hub where each `run` event becomes a `command.run` action for the command agent `cmd`
/// (built from `config`), its payload filled from the event by `template`.
fn hub(config: Value, template: Value) -> Hub {
    let agent = CommandAgent::from_config("cmd", &config).unwrap();
    let rules = RuleBook::with_rules(vec![Rule::new(
        "run-it",
        "run",
        "cmd",
        "command.run",
        template,
    )])
    .unwrap();
    Hub::builder()
        .event_type(EventTypeDef::new("run"))
        .action_type(ActionTypeDef::new("command.run"))
        .agent(
            AgentSpec::new("cmd", agent)
                .handles(["command.run"])
                .retry(atamo_core::failure::RetryPolicy::none()),
        )
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap()
}

fn event(payload: Value) -> Event {
    Event::new("run", Principal::user("alice"), payload)
}

/// Sends `payload` as a request and waits for it to end.
async fn request(hub: &Hub, payload: Value) -> RequestSnapshot {
    let h = hub.handle();
    let r = h.request(event(payload)).await.unwrap();
    h.wait(r.request_id, WAIT).await.unwrap()
}

fn lines(done: &RequestSnapshot) -> Vec<String> {
    done.answers
        .iter()
        .filter_map(|a| a.payload.get("line").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

fn failure(done: &RequestSnapshot) -> AgentError {
    match &done.parts[0].status {
        PartStatus::Failed { error } => error.clone(),
        other => panic!("expected a failed part, got {other:?}; {done:?}"),
    }
}

/// Whether process `pid` has ended (gone, or a zombie waiting for a parent that is not ours).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

async fn wait_gone(pid: u32) {
    let until = Instant::now() + Duration::from_secs(5);
    while !is_gone(pid) {
        assert!(Instant::now() < until, "process {pid} is still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "atamo-command-{name}-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The python interpreter itself (not a shim script), for runs with an empty environment.
fn real_python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn stdout_lines_become_answers_in_order_through_a_rule_template() {
    let hub = hub(
        json!({"program": "python3", "args": ["-c",
            "import sys\nfor i in range(int(sys.argv[1])): print(f'{sys.argv[2]} {i}')"]}),
        json!({"args": ["{{payload.count}}", "{{payload.word}}"]}),
    );
    let done = request(&hub, json!({"count": 300, "word": "tick"})).await;
    assert_eq!(done.state, RequestState::Complete, "{done:?}");
    assert_eq!(done.parts[0].status, PartStatus::Done);
    let expected: Vec<String> = (0..300).map(|i| format!("tick {i}")).collect();
    assert_eq!(lines(&done), expected, "every line, in order");
    let last = done.answers.last().unwrap();
    assert!(last.last);
    assert_eq!(*last.payload, json!({"exit": 0, "lines": 300}));
    hub.shutdown().await;
}

#[tokio::test]
async fn arguments_arrive_intact_without_a_shell() {
    let hub = hub(
        json!({"program": "python3", "args": ["-c",
            "import sys, json; print(json.dumps(sys.argv[1:]))", "fixed one"]}),
        json!({"args": ["{{payload.a}}", "{{payload.b}}", "{{payload.c}}", "{{payload.d}}",
            "{{payload.e}}", "{{payload.f}}", "{{payload.g}}", "{{payload.n}}", "literal {{payload.a}}"]}),
    );
    let args = json!({
        "a": "two words",
        "b": "it's \"quoted\"",
        "c": "$HOME",
        "d": "*",
        "e": "héllo wörld ✓ 日本",
        "f": "; rm -rf / && echo pwned `id` $(id)",
        "g": "",
        "n": 42,
    });
    let done = request(&hub, args).await;
    assert_eq!(done.state, RequestState::Complete, "{done:?}");
    let got: Vec<String> = serde_json::from_str(&lines(&done)[0]).unwrap();
    assert_eq!(
        got,
        [
            "fixed one",
            "two words",
            "it's \"quoted\"",
            "$HOME",
            "*",
            "héllo wörld ✓ 日本",
            "; rm -rf / && echo pwned `id` $(id)",
            "",
            "42",
            "literal two words",
        ]
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn exit_codes_decide_success_permanent_and_retryable_failures() {
    let config = json!({"program": "sh", "args": ["-c"], "retry_exit_codes": [75]});
    let hub = hub(config, json!({"args": ["{{payload.script}}"]}));

    let ok = request(&hub, json!({"script": "echo fine; exit 0"})).await;
    assert_eq!(ok.state, RequestState::Complete);
    assert_eq!(lines(&ok), ["fine"]);
    assert_eq!(
        *ok.answers.last().unwrap().payload,
        json!({"exit": 0, "lines": 1})
    );

    let bad = request(
        &hub,
        json!({"script": "echo partial; echo 'disk on fire' >&2; exit 3"}),
    )
    .await;
    assert_eq!(
        lines(&bad),
        ["partial"],
        "lines before the failure still arrive"
    );
    match failure(&bad) {
        AgentError::Permanent { reason } => {
            assert!(reason.contains("exited with status 3"), "{reason}");
            assert!(reason.contains("stderr: disk on fire"), "{reason}");
            assert!(
                reason.contains("`cmd`") && reason.contains("`sh`"),
                "{reason}"
            );
        }
        other => panic!("expected permanent, got {other:?}"),
    }

    let later = request(&hub, json!({"script": "echo busy >&2; exit 75"})).await;
    match failure(&later) {
        AgentError::Retry { reason, .. } => {
            assert!(
                reason.contains("status 75") && reason.contains("busy"),
                "{reason}"
            )
        }
        other => panic!("expected retryable, got {other:?}"),
    }

    let killed = request(&hub, json!({"script": "kill -9 $$"})).await;
    assert!(
        matches!(failure(&killed), AgentError::Crashed { ref reason } if reason.contains("signal 9")),
        "{killed:?}"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn stderr_kept_is_only_its_end() {
    let hub = hub(
        json!({"program": "python3", "args": ["-c",
            "import sys; sys.stderr.write('x' * 100000 + 'THE END'); sys.exit(1)"],
            "max_stderr_bytes": 100}),
        json!({}),
    );
    let done = request(&hub, json!({})).await;
    match failure(&done) {
        AgentError::Permanent { reason } => {
            assert!(reason.ends_with("THE END"), "{reason}");
            assert!(reason.len() < 300, "bounded: {} bytes", reason.len());
        }
        other => panic!("{other:?}"),
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn a_timeout_kills_the_program_and_what_it_started() {
    // The shell prints the pid of a background `sleep` and its own, then waits for it.
    let hub = hub(
        json!({"program": "sh", "args": ["-c", "sleep 30 & echo $!; echo $$; wait"],
            "timeout_ms": 200}),
        json!({}),
    );
    let started = Instant::now();
    let done = request(&hub, json!({})).await;
    let elapsed = started.elapsed();
    assert_eq!(
        failure(&done),
        AgentError::Timeout {
            after: Duration::from_millis(200)
        }
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    let pids: Vec<u32> = lines(&done).iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{done:?}");
    for pid in pids {
        wait_gone(pid).await;
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn the_hubs_own_call_timeout_kills_the_program_too() {
    // The hub drops the call's future when its call timeout passes: the processes go with it.
    let agent = CommandAgent::from_config(
        "cmd",
        &json!({"program": "sh", "args": ["-c", "sleep 30 & echo $!; echo $$; wait"]}),
    )
    .unwrap();
    let rules = RuleBook::with_rules(vec![Rule::new(
        "run-it",
        "run",
        "cmd",
        "command.run",
        json!({}),
    )])
    .unwrap();
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("run"))
        .action_type(ActionTypeDef::new("command.run"))
        .agent(
            AgentSpec::new("cmd", agent)
                .handles(["command.run"])
                .retry(atamo_core::failure::RetryPolicy::none())
                .call_timeout(Duration::from_millis(300)),
        )
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap();
    let done = request(&hub, json!({})).await;
    assert!(
        matches!(failure(&done), AgentError::Timeout { .. }),
        "{done:?}"
    );
    let pids: Vec<u32> = lines(&done).iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{done:?}");
    for pid in pids {
        wait_gone(pid).await;
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn cancelling_the_request_kills_the_program() {
    let hub = hub(
        json!({"program": "sh", "args": ["-c", "echo $$; exec sleep 30"]}),
        json!({}),
    );
    let h = hub.handle();
    let r = h.request(event(json!({}))).await.unwrap();
    let mut updates = h.subscribe(r.request_id).unwrap();
    let pid: u32 = match tokio::time::timeout(WAIT, updates.next()).await.unwrap() {
        Some(RequestUpdate::Answer(a)) => a.payload["line"].as_str().unwrap().parse().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(!is_gone(pid), "the program is running");
    assert!(h.cancel(r.request_id));
    wait_gone(pid).await;
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::Cancelled);
    hub.shutdown().await;
}

#[tokio::test]
async fn working_dir_environment_and_stdin_are_applied() {
    let dir = temp_dir("cwd");
    let script = "import os, sys, json\n\
        names = ['FIXED', 'OVERRIDE', 'FROM_ACTION', 'HOME', 'ATAMO_USER', 'ATAMO_ATTEMPT']\n\
        print(json.dumps({'cwd': os.getcwd(), 'stdin': sys.stdin.read(),\n\
            'env': {k: os.environ.get(k) for k in names}}))";
    let config = |clear: bool| {
        json!({"program": real_python(), "args": ["-c", script],
            "working_dir": dir.to_str().unwrap(), "clear_env": clear,
            "env": {"FIXED": "from config", "OVERRIDE": "config"}})
    };
    let template = json!({"stdin": "{{payload.note}}",
        "env": {"FROM_ACTION": "order {{payload.id}}", "OVERRIDE": "action"}});
    let payload = json!({"note": "line one\nline 'two' $HOME\n", "id": 7});

    let hub_clear = hub(config(true), template.clone());
    let done = request(&hub_clear, payload.clone()).await;
    assert_eq!(done.state, RequestState::Complete, "{done:?}");
    let seen: Value = serde_json::from_str(&lines(&done)[0]).unwrap();
    assert_eq!(
        Path::new(seen["cwd"].as_str().unwrap())
            .canonicalize()
            .unwrap(),
        dir.canonicalize().unwrap()
    );
    assert_eq!(seen["stdin"], "line one\nline 'two' $HOME\n");
    assert_eq!(
        seen["env"],
        json!({"FIXED": "from config", "OVERRIDE": "action", "FROM_ACTION": "order 7",
            "HOME": null, "ATAMO_USER": "alice", "ATAMO_ATTEMPT": "1"})
    );
    hub_clear.shutdown().await;

    // Without clear_env the hub's environment is inherited.
    let hub_inherit = hub(config(false), template);
    let done = request(&hub_inherit, payload).await;
    let seen: Value = serde_json::from_str(&lines(&done)[0]).unwrap();
    assert_eq!(
        seen["env"]["HOME"].as_str(),
        std::env::var("HOME").ok().as_deref()
    );
    hub_inherit.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_event_runs_the_program_with_nobody_to_answer() {
    // The guide's case: each event appends a line to a log through `tee -a`.
    let dir = temp_dir("log");
    let log = dir.join("orders.log");
    let hub = hub(
        json!({"program": "tee", "args": ["-a", log.to_str().unwrap()]}),
        json!({"stdin": "order {{payload.id}} by {{user}}\n"}),
    );
    for id in [1, 2] {
        let (_, steps) = hub
            .handle()
            .publish_monitored(event(json!({"id": id})))
            .await
            .unwrap();
        let names: Vec<_> = steps.collect().await.iter().map(|s| s.name()).collect();
        assert!(names.contains(&"action_succeeded"), "{names:?}");
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "order 1 by alice\norder 2 by alice\n"
    );
    hub.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_missing_program_and_a_bad_action_fail_permanently_by_name() {
    let missing = hub(json!({"program": "atamo-no-such-program"}), json!({}));
    let done = request(&missing, json!({})).await;
    match failure(&done) {
        AgentError::Permanent { reason } => {
            assert!(reason.contains("`atamo-no-such-program`"), "{reason}");
            assert!(reason.contains("cannot start"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    missing.shutdown().await;

    let bad = hub(
        json!({"program": "true"}),
        json!({"args": ["ok", {"nested": 1}], "stdin": 5, "colour": "red",
            "env": {"A=B": "x"}}),
    );
    let done = request(&bad, json!({})).await;
    match failure(&done) {
        AgentError::Permanent { reason } => {
            for field in ["`args[1]`", "`stdin`", "`colour`"] {
                assert!(reason.contains(field), "{field} in {reason}");
            }
        }
        other => panic!("{other:?}"),
    }
    bad.shutdown().await;
}

#[tokio::test]
async fn a_line_over_the_limit_fails_the_call() {
    let hub = hub(
        json!({"program": "python3", "args": ["-c", "print('short'); print('y' * 5000)"],
            "max_line_bytes": 100}),
        json!({}),
    );
    let done = request(&hub, json!({})).await;
    assert_eq!(lines(&done), ["short"]);
    assert!(
        matches!(failure(&done), AgentError::Permanent { ref reason } if reason.contains("max_line_bytes (100)")),
        "{done:?}"
    );
    hub.shutdown().await;
}

#[test]
fn a_bad_config_names_every_problem() {
    let dir = temp_dir("config");
    let not_executable = dir.join("script.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let err = CommandAgent::from_config(
        "runner",
        &json!({
            "program": "/nonexistent/atamo-prog",
            "args": "not a list",
            "working_dir": dir.join("missing").to_str().unwrap(),
            "env": {"A=B": "x", "OK": 5},
            "timeout_ms": 0,
            "retry_exit_codes": [0, 75],
            "colour": "red"
        }),
    )
    .unwrap_err();
    assert_eq!((err.agent.as_str(), err.kind), ("runner", "command"));
    let text = err.to_string();
    for field in [
        "`program`",
        "`args`",
        "`working_dir`",
        "`env.OK`",
        "`A=B`",
        "`timeout_ms`",
        "`retry_exit_codes[0]`",
        "`colour`",
    ] {
        assert!(text.contains(field), "{field} missing from: {text}");
    }
    assert_eq!(err.problems.len(), 8, "{:#?}", err.problems);

    let err = CommandAgent::from_config(
        "runner",
        &json!({"program": not_executable.to_str().unwrap()}),
    )
    .unwrap_err();
    assert!(err.problems[0].contains("not executable"), "{err}");

    let err = CommandAgent::from_config("runner", &json!({"program": "./run.sh"})).unwrap_err();
    assert!(err.problems[0].contains("relative path"), "{err}");

    let err = CommandAgent::from_config("runner", &json!({"args": []})).unwrap_err();
    assert!(err.problems[0].contains("`program`: required"), "{err}");

    let ok = CommandAgent::from_config(
        "runner",
        &json!({"program": "/bin/sh", "working_dir": dir.to_str().unwrap()}),
    )
    .unwrap();
    assert_eq!(ok.config().timeout_ms, 60_000);
    std::fs::remove_dir_all(dir).unwrap();
}
