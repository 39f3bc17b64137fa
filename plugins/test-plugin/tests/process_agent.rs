//! Process agents with real child processes: the test plugin served over stdio by this crate's
//! `atamo-test-process-agent` binary (and its misbehaving modes), a shell script, and the
//! Python agent of `plugins/python-agent`. Answers, feeds paced by credits, cancellation,
//! deadlines, crashes, hangs, garbage, version refusal, the restart limit, graceful stops,
//! reconciliation and 2,000 concurrent calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atamo_agents::process::{
    DesiredAgent, ProcessAgent, ProcessError, ProcessSpec, ProcessState, ProcessSupervisor, StopHow,
};
use atamo_core::agent::AgentError;
use atamo_core::ids::RuleId;
use atamo_core::request::{PartStatus, RequestSnapshot, RequestState};
use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
use atamo_core::telemetry::{ProcessChange, TelemetrySubscriber};
use atamo_core::{
    ActionTypeDef, AgentId, AgentSpec, Event, EventTypeDef, Hub, Principal, RequestOptions,
    RequestUpdate, TelemetryKind,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// Every action type the test plugin and the Python agent understand.
const ACTIONS: &[&str] = &[
    "echo",
    "noop",
    "feed",
    "sleep",
    "fail",
    "bytes",
    "log",
    "exit",
    "word_count",
    "upper",
    "whoami",
];

/// The test plugin served over stdio, with intervals short enough for tests.
fn test_program() -> ProcessSpec {
    ProcessSpec::new(env!("CARGO_BIN_EXE_atamo-test-process-agent"))
        .kind("test")
        .config(json!({"label": "p"}))
        .ping_interval(Duration::from_millis(100))
        .ping_timeout(Duration::from_secs(1))
        .restart_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .handshake_timeout(Duration::from_secs(5))
        .stop_grace(Duration::from_secs(2))
}

fn python_agent() -> ProcessSpec {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../python-agent/agent.py");
    ProcessSpec::new("python3")
        .kind("words")
        .arg(script.to_string_lossy())
        .ping_interval(Duration::from_millis(100))
}

/// A hub where every `do` event becomes action `payload.action` with payload `payload.args`
/// for agent `payload.agent` (default `agent`). Agents are registered later, at run time,
/// since a process agent records its telemetry through the hub's `Control`.
fn hub() -> Hub {
    hub_builder().build().unwrap()
}

fn hub_builder() -> atamo_core::HubBuilder {
    // The hub's log (with the programs' stderr) is shown for a failing test.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let mut b = Hub::builder().event_type(EventTypeDef::new("do"));
    for a in ACTIONS {
        b = b.action_type(ActionTypeDef::new(*a));
    }
    b.provider(
        "route",
        |event: &Event, _: &Principal, out: &mut Vec<Proposal>| {
            let p = event.payload();
            out.push(Proposal::action(
                RuleId::from("route"),
                PlannedAction::new(
                    p["agent"].as_str().unwrap_or("agent"),
                    p["action"].as_str().unwrap_or("noop"),
                    p["args"].clone(),
                ),
            ));
        },
        ProviderScope::EventTypes(vec!["do".into()]),
    )
}

/// A `do` event asking agent `agent` for `action` with `args`.
fn ask(action: &str, args: Value) -> Event {
    ask_agent("agent", action, args)
}

fn ask_agent(agent: &str, action: &str, args: Value) -> Event {
    Event::new(
        "do",
        Principal::user("alice").in_group("staff"),
        json!({"agent": agent, "action": action, "args": args}),
    )
}

/// Starts `spec` as agent `agent` and registers it, handling every action type.
async fn start(hub: &Hub, spec: ProcessSpec) -> ProcessAgent {
    let agent = ProcessAgent::start("agent".into(), spec, hub.control())
        .await
        .unwrap();
    hub.control()
        .register_agent(
            AgentSpec::from_arc("agent", Arc::new(agent.clone()))
                .handles(ACTIONS.iter().copied())
                .retry(atamo_core::failure::RetryPolicy::none())
                .concurrency(512),
        )
        .unwrap();
    agent
}

async fn request(hub: &Hub, event: Event) -> RequestSnapshot {
    let h = hub.handle();
    let r = h.request(event).await.unwrap();
    h.wait(r.request_id, WAIT).await.unwrap()
}

fn failure(done: &RequestSnapshot) -> AgentError {
    match &done.parts[0].status {
        PartStatus::Failed { error } => error.clone(),
        other => panic!("expected a failed part, got {other:?} in {done:?}"),
    }
}

/// The next process change recorded for `agent`.
async fn next_change(telemetry: &mut TelemetrySubscriber, agent: &str) -> ProcessChange {
    loop {
        let event = tokio::time::timeout(WAIT, telemetry.recv())
            .await
            .expect("no process change within the wait")
            .unwrap();
        if let TelemetryKind::AgentProcess { agent: a, change } = event.kind {
            if a.as_str() == agent {
                return change;
            }
        }
    }
}

/// The agent's next process changes are its first restart: `Restarting` attempt 1, then
/// `Started` with one restart; returns the new pid.
async fn restarted_once(telemetry: &mut TelemetrySubscriber) -> u32 {
    assert!(matches!(
        next_change(telemetry, "agent").await,
        ProcessChange::Restarting { attempt: 1, .. }
    ));
    let change = next_change(telemetry, "agent").await;
    let ProcessChange::Started { pid, restarts: 1 } = change else {
        panic!("expected Started with one restart, got {change:?}")
    };
    pid
}

/// The next failed action's error.
async fn next_failure(telemetry: &mut TelemetrySubscriber) -> AgentError {
    loop {
        let event = tokio::time::timeout(WAIT, telemetry.recv())
            .await
            .expect("no failed action within the wait")
            .unwrap();
        if let TelemetryKind::ActionFailed { error, .. } = event.kind {
            return error;
        }
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < WAIT, "waited in vain for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_and_a_feed_is_paced_by_credits() {
    let hub = hub();
    let mut telemetry = hub.control().subscribe();
    let agent = start(&hub, test_program().credits(8)).await;
    let ProcessChange::Started { pid, restarts: 0 } = next_change(&mut telemetry, "agent").await
    else {
        panic!("expected Started")
    };
    assert_eq!(agent.pid(), Some(pid));
    assert_eq!(agent.state(), ProcessState::Running { pid });

    let done = request(&hub, ask("echo", json!({"n": 42}))).await;
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(
        *done.answers[0].payload,
        json!({"label": "p", "payload": {"n": 42}})
    );

    // 200 answers through 8 credits, read slowly: complete and in order.
    let h = hub.handle();
    const N: u64 = 200;
    let r = h.request(ask("feed", json!({"count": N}))).await.unwrap();
    assert_eq!(
        support::read_slowly(&h, r.request_id, 50).await,
        support::feed_answers(N)
    );

    // An error from the program keeps its kind.
    let done = request(
        &hub,
        ask(
            "fail",
            json!({"kind": "retry", "reason": "busy", "after_ms": 50}),
        ),
    )
    .await;
    assert_eq!(
        failure(&done),
        AgentError::Retry {
            reason: "busy".into(),
            after: Some(Duration::from_millis(50))
        }
    );
    assert_eq!(agent.calls_in_flight(), 0);
    assert_eq!(agent.stop().await, StopHow::Goodbye);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_request_cancels_the_call_in_the_process() {
    let hub = hub();
    // A long cancel grace: the call can only end quickly if the program saw the cancel.
    let agent = start(&hub, test_program().stop_grace(Duration::from_secs(30))).await;
    let mut telemetry = hub.control().subscribe();
    let h = hub.handle();
    let r = h
        .request(ask("sleep", json!({"ms": 60_000})))
        .await
        .unwrap();
    until("the call reaches the process", || {
        agent.calls_in_flight() == 1
    })
    .await;
    let started = Instant::now();
    assert!(h.cancel(r.request_id));
    assert_eq!(next_failure(&mut telemetry).await, AgentError::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(agent.calls_in_flight(), 0);
    assert_eq!(agent.stop().await, StopHow::Goodbye);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_cuts_a_call_short_in_the_process() {
    let hub = hub();
    let agent = start(&hub, test_program().stop_grace(Duration::from_secs(30))).await;
    let mut telemetry = hub.control().subscribe();
    let h = hub.handle();
    let started = Instant::now();
    let r = h
        .request_with(
            ask("sleep", json!({"ms": 60_000})),
            RequestOptions::new().deadline(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::DeadlinePassed);
    assert_eq!(next_failure(&mut telemetry).await, AgentError::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(agent.calls_in_flight(), 0);
    agent.stop().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_cancels_it_in_the_process() {
    // The hub's shutdown grace passes while a call runs: the hub drops the call's future,
    // whose guard sends `cancel`. The program then has nothing in flight, so `goodbye` ends it
    // at once; had the cancel not reached it, its 60 s sleep would outlast the stop's grace.
    let hub = hub_builder()
        .shutdown_grace(Duration::from_millis(100))
        .build()
        .unwrap();
    let agent = start(&hub, test_program().stop_grace(Duration::from_secs(20))).await;
    let h = hub.handle();
    h.request(ask("sleep", json!({"ms": 60_000})))
        .await
        .unwrap();
    until("the call reaches the process", || {
        agent.calls_in_flight() == 1
    })
    .await;
    hub.shutdown().await;
    assert_eq!(agent.calls_in_flight(), 0);
    let started = Instant::now();
    assert_eq!(agent.stop().await, StopHow::Goodbye);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_call_fails_it_as_crashed_and_the_process_restarts() {
    let hub = hub();
    let mut telemetry = hub.control().subscribe();
    let agent = start(&hub, test_program()).await;
    let ProcessChange::Started { pid: first, .. } = next_change(&mut telemetry, "agent").await
    else {
        panic!()
    };

    let done = request(&hub, ask("exit", json!({"code": 3}))).await;
    assert_eq!(done.state, RequestState::Failed);
    let error = failure(&done);
    let AgentError::Crashed { reason } = &error else {
        panic!("expected Crashed, got {error:?}")
    };
    assert!(reason.contains("exit status: 3"), "{reason}");
    assert!(error.is_retryable());

    let ProcessChange::Exited { reason } = next_change(&mut telemetry, "agent").await else {
        panic!()
    };
    assert!(reason.contains("exit status: 3"), "{reason}");
    let pid = restarted_once(&mut telemetry).await;
    assert_ne!(pid, first);
    assert_eq!(agent.restarts(), 1);

    let done = request(&hub, ask("echo", json!("after the crash"))).await;
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(
        *done.answers[0].payload,
        json!({"label": "p", "payload": "after the crash"})
    );
    agent.stop().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_while_the_process_restarts_wait_for_it_up_to_call_wait() {
    let hub = hub();
    let control = hub.control();
    let pause = Duration::from_millis(400);
    for (call_wait, waits) in [
        (Duration::from_secs(5), true),
        (Duration::from_millis(50), false),
    ] {
        let mut telemetry = control.subscribe();
        let agent = start(
            &hub,
            test_program()
                .restart_backoff(pause, pause)
                .call_wait(call_wait),
        )
        .await;
        request(&hub, ask("exit", json!({"code": 3}))).await;
        loop {
            if let ProcessChange::Restarting { .. } = next_change(&mut telemetry, "agent").await {
                break;
            }
        }
        assert_eq!(agent.state(), ProcessState::Restarting);
        let started = Instant::now();
        let done = request(&hub, ask("echo", json!({"waits": waits}))).await;
        if waits {
            assert_eq!(done.state, RequestState::Complete);
            assert_eq!(agent.restarts(), 1);
            // It waited for the restart, which came after the pause (less its jitter).
            assert!(started.elapsed() >= pause / 2, "{:?}", started.elapsed());
        } else {
            let AgentError::Crashed { reason } = failure(&done) else {
                panic!("{done:?}")
            };
            assert!(
                reason.contains("restarting and was not back within 50ms"),
                "{reason}"
            );
            assert!(started.elapsed() < pause, "{:?}", started.elapsed());
        }
        agent.stop().await;
        control.unregister_agent(&AgentId::from("agent")).unwrap();
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_process_is_killed_when_a_ping_goes_unanswered_and_restarted() {
    let hub = hub();
    let mut telemetry = hub.control().subscribe();
    let agent = start(
        &hub,
        test_program()
            .arg("--hang")
            .ping_timeout(Duration::from_millis(200))
            .stop_grace(Duration::from_millis(200)),
    )
    .await;
    assert!(matches!(
        next_change(&mut telemetry, "agent").await,
        ProcessChange::Started { restarts: 0, .. }
    ));
    let started = Instant::now();
    let ProcessChange::Exited { reason } = next_change(&mut telemetry, "agent").await else {
        panic!()
    };
    assert!(
        reason.contains("did not answer ping") && reason.contains("hung"),
        "{reason}"
    );
    // One ping interval, then the ping's timeout.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    restarted_once(&mut telemetry).await;
    agent.stop().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_stdout_kills_and_restarts_the_process() {
    let hub = hub();
    let mut telemetry = hub.control().subscribe();
    let agent = start(&hub, test_program().arg("--garbage")).await;
    assert!(matches!(
        next_change(&mut telemetry, "agent").await,
        ProcessChange::Started { restarts: 0, .. }
    ));
    let done = request(&hub, ask("echo", json!(1))).await;
    let error = failure(&done);
    let AgentError::Crashed { reason } = &error else {
        panic!("expected Crashed, got {error:?}")
    };
    assert!(reason.contains("not protocol JSON"), "{reason}");
    let ProcessChange::Exited { reason } = next_change(&mut telemetry, "agent").await else {
        panic!()
    };
    assert!(
        reason.contains("not protocol JSON") && reason.contains("this is not JSON {"),
        "{reason}"
    );
    restarted_once(&mut telemetry).await;
    agent.stop().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_are_reported_by_start() {
    let hub = hub();
    let control = hub.control();
    let start = |spec: ProcessSpec| ProcessAgent::start("agent".into(), spec, control.clone());

    let err = start(test_program().arg("--wrong-version"))
        .await
        .unwrap_err();
    let ProcessError::WrongVersion {
        program_version,
        host_version,
        ..
    } = &err
    else {
        panic!("expected WrongVersion, got {err}")
    };
    assert_eq!((*program_version, *host_version), (999, 1));
    let text = err.to_string();
    assert!(
        text.contains("speaks process protocol 999, this hub speaks 1") && text.contains("rebuild"),
        "{text}"
    );

    let err = start(test_program().config(json!({"label": "fail-init"})))
        .await
        .unwrap_err();
    assert!(matches!(err, ProcessError::InitFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("asks initialisation to fail"),
        "{err}"
    );

    let err = start(ProcessSpec::new("/no/such/program"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProcessError::NotFound { .. }), "{err}");

    let sh = |script: &str| ProcessSpec::new("sh").args(["-c", script]);
    let err = start(sh("sleep 5").handshake_timeout(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProcessError::HandshakeTimeout { .. }),
        "{err}"
    );

    let err = start(sh("read l; echo hello there; sleep 5"))
        .await
        .unwrap_err();
    let ProcessError::BadHandshake { found, .. } = &err else {
        panic!("expected BadHandshake, got {err}")
    };
    assert_eq!(found, "\"hello there\"");

    let err = start(sh("exit 4")).await.unwrap_err();
    let ProcessError::ExitedEarly { status, .. } = &err else {
        panic!("expected ExitedEarly, got {err}")
    };
    assert!(status.contains('4'), "{status}");

    let err = start(test_program().credits(0)).await.unwrap_err();
    assert!(matches!(err, ProcessError::BadSpec { .. }), "{err}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_too_many_failed_restarts_the_agent_goes_offline_and_calls_fail_fast() {
    let hub = hub();
    let mut telemetry = hub.control().subscribe();
    let agent = start(
        &hub,
        test_program()
            .arg("--exit-after-hello")
            .max_failed_restarts(3)
            .restart_backoff(Duration::from_millis(10), Duration::from_millis(40)),
    )
    .await;
    let mut changes = Vec::new();
    loop {
        let change = next_change(&mut telemetry, "agent").await;
        let offline = matches!(change, ProcessChange::Offline { .. });
        changes.push(change);
        if offline {
            break;
        }
    }
    let names: Vec<String> = changes
        .iter()
        .map(|c| match c {
            ProcessChange::Started { restarts, .. } => format!("started {restarts}"),
            ProcessChange::Exited { .. } => "exited".into(),
            ProcessChange::Restarting { attempt, after } => {
                assert!(*after <= Duration::from_millis(40), "{after:?}");
                format!("restarting {attempt}")
            }
            ProcessChange::Offline { .. } => "offline".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "started 0",
            "exited",
            "restarting 1",
            "started 1",
            "exited",
            "restarting 2",
            "started 2",
            "exited",
            "restarting 3",
            "started 3",
            "exited",
            "offline"
        ]
    );
    // The alert follows.
    loop {
        let event = tokio::time::timeout(WAIT, telemetry.recv())
            .await
            .unwrap()
            .unwrap();
        if let TelemetryKind::Alert {
            alert,
            agent: Some(a),
            raised,
            detail,
        } = event.kind
        {
            assert_eq!(alert, atamo_core::telemetry::AlertKind::AgentOffline);
            assert_eq!(a.as_str(), "agent");
            assert!(raised);
            assert!(detail.contains("3 restarts in a row failed"), "{detail}");
            break;
        }
    }
    assert!(matches!(agent.state(), ProcessState::Offline { .. }));

    let started = Instant::now();
    let done = request(&hub, ask("echo", json!(1))).await;
    let AgentError::Crashed { reason } = failure(&done) else {
        panic!()
    };
    assert!(reason.contains("offline"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(agent.stop().await, StopHow::NotRunning);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_says_goodbye_then_sends_sigterm_then_sigkill() {
    let hub = hub();
    let control = hub.control();
    let mut telemetry = control.subscribe();
    let grace = Duration::from_millis(300);

    // A well-behaved program exits on goodbye.
    let agent = start(&hub, test_program()).await;
    let started = Instant::now();
    assert_eq!(agent.stop().await, StopHow::Goodbye);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(agent.state(), ProcessState::Stopped);
    loop {
        if let ProcessChange::Stopped { how } = next_change(&mut telemetry, "agent").await {
            assert_eq!(how, "goodbye");
            break;
        }
    }
    // Calls fail at once afterwards.
    let done = request(&hub, ask("echo", json!(1))).await;
    assert!(matches!(failure(&done), AgentError::Crashed { .. }));
    control.unregister_agent(&AgentId::from("agent")).unwrap();

    // One that never reads its stdin again ends on SIGTERM, after one grace period.
    let hung = ProcessAgent::start(
        "hung".into(),
        test_program().arg("--hang").stop_grace(grace),
        control.clone(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(hung.stop().await, StopHow::Sigterm);
    assert!(started.elapsed() >= grace);
    loop {
        if let ProcessChange::Stopped { how } = next_change(&mut telemetry, "hung").await {
            assert_eq!(how, "sigterm");
            break;
        }
    }

    // One that ignores SIGTERM too is killed after a second grace period.
    let stubborn = ProcessAgent::start(
        "stubborn".into(),
        ProcessSpec::new("sh")
            .args([
                "-c",
                r#"trap '' TERM; read hello; echo '{"type":"hello","protocol":1,"name":"sh","version":"0"}'; while read line; do :; done"#,
            ])
            .stop_grace(grace),
        control.clone(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(stubborn.stop().await, StopHow::Sigkill);
    assert!(started.elapsed() >= grace * 2);
    loop {
        if let ProcessChange::Stopped { how } = next_change(&mut telemetry, "stubborn").await {
            assert_eq!(how, "sigkill");
            break;
        }
    }

    // Dropping the last handle kills the process at once.
    let dropped = ProcessAgent::start("dropped".into(), test_program(), control.clone())
        .await
        .unwrap();
    let pid = dropped.pid().unwrap();
    drop(dropped);
    loop {
        if let ProcessChange::Stopped { how } = next_change(&mut telemetry, "dropped").await {
            assert_eq!(how, "sigkill");
            break;
        }
    }
    #[cfg(target_os = "linux")]
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let _ = pid;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_starts_stops_restarts_and_follows_the_hub() {
    let hub = hub();
    let control = hub.control();
    let supervisor = ProcessSupervisor::new(control.clone());
    let desired = |id: &str, label: &str| {
        DesiredAgent::new(id, test_program().config(json!({"label": label})))
            .handles(["echo", "sleep"])
    };
    let registered = || {
        let mut ids: Vec<String> = control
            .agents()
            .into_iter()
            .map(|a| a.id.to_string())
            .collect();
        ids.sort();
        ids
    };

    // Desired {a, b}: both run and are registered.
    let report = supervisor
        .reconcile(vec![desired("a", "a1"), desired("b", "b1")])
        .await;
    assert_eq!(report.started, [AgentId::from("a"), AgentId::from("b")]);
    assert!(report.is_ok());
    assert_eq!(registered(), ["a", "b"]);
    for (id, label) in [("a", "a1"), ("b", "b1")] {
        let done = request(&hub, ask_agent(id, "echo", json!(id))).await;
        assert_eq!(
            *done.answers[0].payload,
            json!({"label": label, "payload": id})
        );
    }
    let a = supervisor.agent(&"a".into()).await.unwrap();

    // Desired {b}: a is unregistered and stopped gracefully; b is left alone.
    let report = supervisor.reconcile(vec![desired("b", "b1")]).await;
    assert_eq!(report.stopped, [(AgentId::from("a"), StopHow::Goodbye)]);
    assert_eq!(report.unchanged, [AgentId::from("b")]);
    assert_eq!(registered(), ["b"]);
    assert_eq!(a.state(), ProcessState::Stopped);
    assert_eq!(supervisor.running().await, [AgentId::from("b")]);

    // A changed entry: b restarts with its new config.
    let old_b = supervisor.agent(&"b".into()).await.unwrap();
    let report = supervisor.reconcile(vec![desired("b", "b2")]).await;
    assert_eq!(report.restarted, [AgentId::from("b")]);
    assert_eq!(old_b.state(), ProcessState::Stopped);
    let done = request(&hub, ask_agent("b", "echo", json!(2))).await;
    assert_eq!(
        *done.answers[0].payload,
        json!({"label": "b2", "payload": 2})
    );

    // Somebody removes b from the hub: its process is stopped.
    let b = supervisor.agent(&"b".into()).await.unwrap();
    control.unregister_agent(&AgentId::from("b")).unwrap();
    until("b is stopped", || b.state() == ProcessState::Stopped).await;
    assert!(supervisor.running().await.is_empty());

    // Reconciling again brings it back; shutting down stops everything.
    let report = supervisor.reconcile(vec![desired("b", "b2")]).await;
    assert_eq!(report.started, [AgentId::from("b")]);
    assert_eq!(registered(), ["b"]);
    let report = supervisor.shutdown().await;
    assert_eq!(report.stopped, [(AgentId::from("b"), StopHow::Goodbye)]);
    assert!(registered().is_empty());

    // An entry that cannot start is reported, and the others still start.
    let report = supervisor
        .reconcile(vec![
            DesiredAgent::new("broken", ProcessSpec::new("/no/such/program")),
            desired("c", "c1"),
        ])
        .await;
    assert_eq!(report.started, [AgentId::from("c")]);
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].1.contains("program not found"),
        "{report:?}"
    );
    supervisor.shutdown().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_agent_speaks_the_protocol() {
    let hub = hub();
    let mut telemetry = hub.control().subscribe();
    let agent = start(&hub, python_agent().credits(2)).await;

    let done = request(
        &hub,
        ask("word_count", json!({"text": "the cat and the hat"})),
    )
    .await;
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(
        *done.answers[0].payload,
        json!({"words": 5, "counts": {"the": 2, "cat": 1, "and": 1, "hat": 1}})
    );

    // The program sees who the call is for, and which request it answers.
    let h = hub.handle();
    let r = h.request(ask("whoami", json!({}))).await.unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(
        *done.answers[0].payload,
        json!({"user": "alice", "groups": ["staff"], "tenant": null, "event_type": "do",
               "request_id": r.request_id.to_string(), "attempt": 1})
    );

    // A feed through 2 credits, read slowly: every word, in order.
    let text: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
    let r = h
        .request(ask("upper", json!({"text": text.join(" ")})))
        .await
        .unwrap();
    let mut sub = h.subscribe(r.request_id).unwrap();
    let mut seen = Vec::new();
    while let Some(update) = tokio::time::timeout(WAIT, sub.next()).await.unwrap() {
        if let RequestUpdate::Answer(a) = update {
            seen.push(a.payload.as_ref().clone());
            if seen.len() % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let expected: Vec<Value> = text
        .iter()
        .enumerate()
        .map(|(seq, w)| json!({"seq": seq, "word": w.to_uppercase()}))
        .chain([json!({"words": 60})])
        .collect();
    assert_eq!(seen, expected);

    // Cancellation reaches it, and its errors keep their kind.
    let r = h
        .request(ask("sleep", json!({"ms": 60_000})))
        .await
        .unwrap();
    until("the call reaches the process", || {
        agent.calls_in_flight() == 1
    })
    .await;
    h.cancel(r.request_id);
    assert_eq!(next_failure(&mut telemetry).await, AgentError::Cancelled);
    let done = request(&hub, ask("echo", json!(1))).await;
    assert_eq!(
        failure(&done),
        AgentError::Permanent {
            reason: "unknown action type `echo`".into()
        }
    );

    // Pings are answered: after a few intervals it has not been restarted.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(agent.restarts(), 0);
    assert_eq!(agent.stop().await, StopHow::Goodbye);

    // Its config is checked, and the refusal passed through.
    let err = ProcessAgent::start(
        "bad".into(),
        python_agent().config(json!({"colour": 1})),
        hub.control(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ProcessError::InitFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("field `colour`: unknown field"),
        "{err}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_calls_through_one_process() {
    let hub = hub();
    let agent = start(&hub, test_program()).await;
    let h = hub.handle();
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..2000 {
        ids.push(
            h.request(ask("sleep", json!({"ms": 20, "i": i})))
                .await
                .unwrap()
                .request_id,
        );
    }
    let waits: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let h = h.clone();
            tokio::spawn(async move { h.wait(id, WAIT).await })
        })
        .collect();
    for wait in waits {
        let done = wait.await.unwrap().unwrap();
        assert_eq!(done.state, RequestState::Complete);
        assert_eq!(*done.answers[0].payload, json!({"slept_ms": 20}));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(agent.restarts(), 0);
    assert_eq!(agent.stop().await, StopHow::Goodbye);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mebibytes_cross_both_ways_and_a_line_over_the_limit_is_garbage() {
    let hub = hub();
    // The program's main loop cannot answer a ping while it parses a 16 MiB line (a second or
    // more in a debug build on a busy machine): give the pong time.
    let agent = start(&hub, test_program().ping_timeout(Duration::from_secs(30))).await;
    const LEN: usize = 16 * 1024 * 1024;
    let big = "y".repeat(LEN);
    let done = request(&hub, ask("echo", json!({"big": big}))).await;
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(
        done.answers[0].payload["payload"]["big"]
            .as_str()
            .unwrap()
            .len(),
        LEN
    );
    let done = request(&hub, ask("bytes", json!({"len": LEN}))).await;
    assert_eq!(done.answers[0].payload.as_str().unwrap().len(), LEN);
    agent.stop().await;
    hub.control()
        .unregister_agent(&AgentId::from("agent"))
        .unwrap();

    // With a 4 KiB limit, a 10 KB answer is a protocol violation: killed and restarted.
    let mut telemetry = hub.control().subscribe();
    let agent = start(&hub, test_program().max_line_bytes(4096)).await;
    let done = request(&hub, ask("bytes", json!({"len": 10_000}))).await;
    let AgentError::Crashed { reason } = failure(&done) else {
        panic!("{done:?}")
    };
    assert!(reason.contains("longer than 4096 bytes"), "{reason}");
    loop {
        if let ProcessChange::Exited { reason } = next_change(&mut telemetry, "agent").await {
            assert!(reason.contains("longer than 4096 bytes"), "{reason}");
            break;
        }
    }
    assert!(matches!(
        next_change(&mut telemetry, "agent").await,
        ProcessChange::Restarting { attempt: 1, .. }
    ));
    agent.stop().await;
    hub.shutdown().await;
}

/// Collects the log lines copied from the programs' stderr: (level, agent, message).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<(tracing::Level, String, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != atamo_agents::process::STDERR_TARGET {
            return;
        }
        #[derive(Default)]
        struct Fields {
            agent: String,
            message: String,
        }
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                if f.name() == "agent" {
                    self.agent = v.to_owned();
                }
            }
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.message = format!("{v:?}");
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.agent, fields.message));
    }
}

// One thread: the log collector is this thread's default, and every task (the stderr
// reader among them) runs here.
#[tokio::test(flavor = "current_thread")]
async fn the_programs_stderr_reaches_the_hubs_log_with_the_agent_id_and_level() {
    use tracing_subscriber::layer::SubscriberExt;
    let lines = Lines::default();
    let _log = tracing::subscriber::set_default(tracing_subscriber::registry().with(lines.clone()));
    let hub = hub();
    let agent = start(&hub, test_program()).await;
    let done = request(
        &hub,
        ask("log", json!({"message": "hello from the process"})),
    )
    .await;
    assert_eq!(done.state, RequestState::Complete);
    let garbage = ProcessAgent::start("noisy".into(), test_program().arg("--garbage"), None)
        .await
        .unwrap();
    let find = |needle: &str| {
        lines
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, _, m)| m.contains(needle))
            .cloned()
    };
    until("both lines are logged", || {
        find("hello from the process").is_some() && find("INFO got").is_some()
    })
    .await;
    let (level, agent_id, message) = find("hello from the process").unwrap();
    assert_eq!((level, agent_id.as_str()), (tracing::Level::INFO, "agent"));
    assert!(message.contains("atamo_test_plugin"), "{message}");
    let (_, agent_id, _) = find("INFO got").unwrap();
    assert_eq!(agent_id, "noisy");
    agent.stop().await;
    garbage.stop().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_running_at_goodbye_still_gets_its_credits_and_finishes() {
    let hub = hub();
    let agent = start(&hub, test_program().credits(2)).await;
    let h = hub.handle();
    const N: u64 = 100;
    let r = h.request(ask("feed", json!({"count": N}))).await.unwrap();
    let mut sub = h.subscribe(r.request_id).unwrap();
    // Read a few answers, then ask the program to stop while the feed waits for credits.
    let mut seen = 0u64;
    while seen < 5 {
        if let Some(RequestUpdate::Answer(_)) =
            tokio::time::timeout(WAIT, sub.next()).await.unwrap()
        {
            seen += 1;
        }
    }
    let stopping = {
        let agent = agent.clone();
        tokio::spawn(async move { agent.stop().await })
    };
    while let Some(update) = tokio::time::timeout(WAIT, sub.next()).await.unwrap() {
        if let RequestUpdate::Answer(_) = update {
            seen += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(seen, N + 1, "every answer and the final reply arrived");
    assert_eq!(stopping.await.unwrap(), StopHow::Goodbye);
    hub.shutdown().await;
}
