//! What the plugin tests share: locating the built plugin, a plugins directory, and a hub
//! whose `do` events (and requests) are routed to one agent by a rule-provider closure.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atamo_core::agent::Agent;
use atamo_core::ids::RuleId;
use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
use atamo_core::{ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal};
use serde_json::{json, Value};

/// Every action type the test plugin understands.
pub const ACTIONS: &[&str] = &[
    "echo",
    "noop",
    "feed",
    "sleep",
    "panic",
    "panic_in_task",
    "detached_panic",
    "bytes",
    "fail",
    "http_get",
    "log",
    "exit",
];

pub use atamo_tests::plugins::{built_library, library_file};

/// The test plugin as cargo built it.
pub fn built_test_plugin() -> PathBuf {
    built_library("atamo_test_plugin")
}

/// A fresh plugins directory holding a copy of the test plugin, as `libatamo_test_plugin.so`.
pub fn plugins_dir() -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    std::fs::copy(
        built_test_plugin(),
        dir.path().join(library_file("atamo_test_plugin")),
    )
    .unwrap();
    dir
}

pub mod tempdir {
    use std::path::{Path, PathBuf};

    /// A directory under the system temp dir, removed when dropped.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "atamo-plugin-test-{}-{:016x}",
                std::process::id(),
                rand()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn rand() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        h.finish()
    }
}

/// A hub where every `do` event becomes action `payload.action` with payload `payload.args`
/// for agent `agent`, which handles every test action type.
pub fn hub_with(agent: Arc<dyn Agent>) -> Hub {
    // One attempt: the suite checks how each failure arrives, not how it is retried.
    hub_with_spec(
        AgentSpec::from_arc("agent", agent).retry(atamo_core::failure::RetryPolicy::none()),
    )
}

pub fn hub_with_spec(spec: AgentSpec) -> Hub {
    let mut b = Hub::builder().event_type(EventTypeDef::new("do"));
    for a in ACTIONS {
        b = b.action_type(ActionTypeDef::new(*a));
    }
    let id = spec.info().id.clone();
    b.agent(spec.handles(ACTIONS.iter().copied()))
        .provider(
            "route",
            move |event: &Event, _: &Principal, out: &mut Vec<Proposal>| {
                let p = event.payload();
                out.push(Proposal::action(
                    RuleId::from("route"),
                    PlannedAction::new(
                        id.clone(),
                        p["action"].as_str().unwrap_or("noop"),
                        p["args"].clone(),
                    ),
                ));
            },
            ProviderScope::EventTypes(vec!["do".into()]),
        )
        .build()
        .unwrap()
}

/// A `do` event asking for `action` with `args`.
pub fn ask(action: &str, args: Value) -> Event {
    Event::new(
        "do",
        Principal::user("alice"),
        json!({"action": action, "args": args}),
    )
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Collects the host's `atamo::plugin` log lines, from every thread.
#[derive(Clone, Default)]
pub struct Lines(pub std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "atamo::plugin" {
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    self.0 += &format!("{}={:?} ", f.name(), v);
                }
            }
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

/// The process-wide collector (global, not per thread: plugins log from their own threads).
pub fn log_lines() -> Lines {
    use tracing_subscriber::layer::SubscriberExt;
    static LINES: std::sync::OnceLock<Lines> = std::sync::OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Lines::default();
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(lines.clone()),
            )
            .unwrap();
            lines
        })
        .clone()
}

/// What the test plugin's `feed` action with `count: n` answers: `{"seq": i}` for each i,
/// then `{"sent": n}`.
pub fn feed_answers(n: u64) -> Vec<Value> {
    (0..n)
        .map(|seq| json!({"seq": seq}))
        .chain([json!({"sent": n})])
        .collect()
}

/// Reads request `request`'s answers as they come, pausing 20 ms every `pause_every` answers
/// (a slow reader: the agent must wait for credits rather than pile answers up).
pub async fn read_slowly(
    h: &atamo_core::HubHandle,
    request: atamo_core::RequestId,
    pause_every: usize,
) -> Vec<Value> {
    let mut sub = h.subscribe(request).unwrap();
    let mut seen = Vec::new();
    let wait = std::time::Duration::from_secs(20);
    while let Some(update) = tokio::time::timeout(wait, sub.next()).await.unwrap() {
        if let atamo_core::RequestUpdate::Answer(a) = update {
            seen.push(a.payload.as_ref().clone());
            if seen.len() % pause_every == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    seen
}
