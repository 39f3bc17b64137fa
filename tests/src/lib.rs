//! Helpers shared by the scenario tests: a telemetry recorder that asserts the recorded path
//! of a message, a recording agent, a store whose condition a test sets, and a few builders,
//! so tests read like scenarios.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The README's code runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod conditioned;
#[cfg(feature = "structure")]
pub mod structure;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atamo_core::agent::{agent_fn, Agent, AgentError, Reply};
use atamo_core::telemetry::{TelemetryRecvError, TelemetrySubscriber};
use atamo_core::{Action, Control, Event, EventId, HubHandle, Receipt, TelemetryEvent};
use tokio::sync::Notify;

/// Records every telemetry event the hub emits, in order, from the moment it is started.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    events: Mutex<Vec<TelemetryEvent>>,
    missed: Mutex<u64>,
    changed: Notify,
}

impl Recorder {
    /// Subscribes to `control`'s telemetry and records it in a background task.
    pub fn start(control: &Control) -> Self {
        Self::from_subscriber(control.subscribe())
    }

    /// Records from an existing subscriber.
    pub fn from_subscriber(mut sub: TelemetrySubscriber) -> Self {
        let inner = Arc::new(RecorderInner {
            events: Mutex::new(Vec::new()),
            missed: Mutex::new(0),
            changed: Notify::new(),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                let r = sub.recv().await;
                let Some(inner) = weak.upgrade() else { return };
                match r {
                    Ok(ev) => inner.events.lock().unwrap().push(ev),
                    Err(TelemetryRecvError::Lagged { missed }) => {
                        *inner.missed.lock().unwrap() += missed
                    }
                    Err(_) => return,
                }
                inner.changed.notify_waiters();
            }
        });
        Self { inner }
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<TelemetryEvent> {
        self.inner.events.lock().unwrap().clone()
    }

    /// How many events the recorder missed by lagging.
    pub fn missed(&self) -> u64 {
        *self.inner.missed.lock().unwrap()
    }

    /// Waits (up to 10 s) until `pred` holds for the recorded events.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&[TelemetryEvent]) -> bool) {
        let wait = async {
            loop {
                let notified = self.inner.changed.notified();
                if pred(&self.inner.events.lock().unwrap()) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .is_err()
        {
            panic!(
                "timed out waiting for {what}; recorded: {:#?}",
                self.names()
            );
        }
    }

    /// Waits until a step named `name` has been recorded for `event`, `count` times.
    pub async fn wait_for(&self, event: EventId, name: &str, count: usize) {
        self.wait_until(&format!("{count} x {name} for {event}"), |evs| {
            evs.iter()
                .filter(|e| e.event_id() == Some(event) && e.name() == name)
                .count()
                >= count
        })
        .await
    }

    /// The steps recorded for one event.
    pub fn steps(&self, event: EventId) -> Vec<TelemetryEvent> {
        self.inner
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.event_id() == Some(event))
            .cloned()
            .collect()
    }

    /// The step names recorded for one event, in order.
    pub fn path(&self, event: EventId) -> Vec<&'static str> {
        self.steps(event).iter().map(|e| e.name()).collect()
    }

    /// Every step name recorded, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.inner
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.name())
            .collect()
    }

    /// Asserts the exact path of an event (waiting until its last step has been recorded).
    pub async fn assert_path(&self, event: EventId, expected: &[&str]) {
        let last = *expected.last().expect("an expected path is not empty");
        let count = expected.iter().filter(|n| **n == last).count();
        self.wait_for(event, last, count).await;
        assert_eq!(self.path(event), expected, "path of event {event}");
    }
}

/// An agent that records every action it receives and answers with a script.
#[derive(Clone)]
pub struct RecordingAgent {
    received: Arc<Mutex<Vec<Action>>>,
    changed: Arc<Notify>,
}

impl Default for RecordingAgent {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingAgent {
    /// An agent that succeeds every call.
    pub fn new() -> Self {
        Self {
            received: Arc::default(),
            changed: Arc::new(Notify::new()),
        }
    }

    /// The agent to register; each call is recorded, then `answer` decides the outcome.
    pub fn agent_with(
        &self,
        answer: impl Fn(&Action) -> Result<Reply, AgentError> + Send + Sync + 'static,
    ) -> impl Agent {
        let me = self.clone();
        let answer = Arc::new(answer);
        agent_fn(move |action, _ctx| {
            let result = answer(&action);
            me.received.lock().unwrap().push(action);
            me.changed.notify_waiters();
            std::future::ready(result)
        })
    }

    /// The agent to register, succeeding every call.
    pub fn agent(&self) -> impl Agent {
        self.agent_with(|_| Ok(Reply::done()))
    }

    /// The actions received so far.
    pub fn received(&self) -> Vec<Action> {
        self.received.lock().unwrap().clone()
    }

    /// How many actions were received.
    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Waits (up to 10 s) until at least `n` actions have been received.
    pub async fn wait_for(&self, n: usize) {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                if self.count() >= n {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .is_err()
        {
            panic!("timed out waiting for {n} actions; got {}", self.count());
        }
    }
}

/// Publishes `event` monitored and collects its steps until all its actions have ended.
pub async fn monitored(handle: &HubHandle, event: Event) -> (Receipt, Vec<TelemetryEvent>) {
    let (receipt, monitor) = handle.publish_monitored(event).await.unwrap();
    (receipt, monitor.collect().await)
}

/// The names of some steps.
pub fn names(steps: &[TelemetryEvent]) -> Vec<&'static str> {
    steps.iter().map(|s| s.name()).collect()
}

/// Counts recorded steps by name, for compact assertions.
pub fn tally(events: &[TelemetryEvent]) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        *out.entry(e.name()).or_default() += 1;
    }
    out
}

/// An order hub for the failure scenarios: `order.created` events, the action types given,
/// and a rule book.
pub mod orders {
    use atamo_config::{Rule, RuleBook};
    use atamo_core::rules::ProviderScope;
    use atamo_core::{ActionTypeDef, Event, EventTypeDef, Hub, HubBuilder, Principal};
    use serde_json::json;

    /// A hub builder with `order.created`, the action types `actions` and the rules `rules`.
    pub fn builder(actions: &[&str], rules: Vec<Rule>) -> HubBuilder {
        let mut b = Hub::builder().event_type(EventTypeDef::new("order.created"));
        for a in actions {
            b = b.action_type(ActionTypeDef::new(*a));
        }
        b.provider(
            "rules",
            RuleBook::with_rules(rules).unwrap(),
            ProviderScope::AllEvents,
        )
    }

    /// Every order becomes a `notify` action `{"n": n}` for `agent`.
    pub fn notify_rule(agent: &str) -> Rule {
        Rule::new(
            "notify",
            "order.created",
            agent,
            "notify",
            json!({"n": "{{payload.n}}"}),
        )
    }

    /// Order `n` from alice.
    pub fn order(n: u64) -> Event {
        Event::new("order.created", Principal::user("alice"), json!({"n": n}))
    }
}

/// Building and finding plugin libraries in tests.
pub mod plugins {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The file name of library `name` on this platform: `libname.so`, `name.dll`, ...
    pub fn library_file(name: &str) -> String {
        format!(
            "{}{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    }

    /// A file of the repository, by its path from the repository's root.
    pub fn repo_file(relative: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(relative)
    }

    /// The workspace library `name` as cargo built it for the running test: `cargo test`
    /// leaves a cdylib in `target/<profile>/deps`, `cargo build` copies it up to
    /// `target/<profile>`; the newer wins.
    pub fn built_library(name: &str) -> PathBuf {
        let file = library_file(name);
        let exe = std::env::current_exe().unwrap();
        let deps = exe.parent().unwrap();
        [deps.join(&file), deps.parent().unwrap().join(&file)]
            .into_iter()
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .max()
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("{file} is missing: build it with `cargo build --workspace`"))
    }

    /// Compiles the C file `source` against `atamo_plugin.h` into the shared library `out`
    /// with the system C compiler (`$CC`, or `cc`), warnings as errors, declaring `target`
    /// and the extra `defines`.
    pub fn compile_c(source: &Path, out: &Path, target: &str, defines: &[&str]) {
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
        let mut words = cc.split_whitespace();
        let program = words.next().unwrap_or("cc");
        let output = Command::new(program)
            .args(words)
            .args([
                "-shared", "-fPIC", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I",
            ])
            .arg(repo_file("atamo-plugin-abi/include"))
            .arg(format!("-DATAMO_TARGET=\"{target}\""))
            .args(defines)
            .arg("-o")
            .arg(out)
            .arg(source)
            .output()
            .unwrap_or_else(|e| panic!("running the C compiler `{cc}`: {e}"));
        assert!(
            output.status.success(),
            "{} does not compile with {defines:?}:\n{}",
            source.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
