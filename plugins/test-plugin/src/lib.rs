//! A plugin for the host's tests and benchmarks. Its one agent kind, `test`, does what the
//! action type says:
//!
//! - `echo`: returns the payload.
//! - `noop`: returns nothing (the benchmark's action).
//! - `feed`: sends `payload.count` answers `{"seq": i}` in order, then ends.
//! - `sleep`: waits `payload.ms` milliseconds, or ends as cancelled when the host cancels.
//! - `panic`: panics in the call.
//! - `panic_in_task`: awaits a spawned task that panics.
//! - `detached_panic`: spawns a task that panics and nobody awaits, then succeeds.
//! - `bytes`: returns a string of `payload.len` bytes.
//! - `fail`: fails with `payload.kind` (`retry` or `permanent`) and `payload.reason`.
//! - `http_get`: GETs `payload.url` (plain HTTP on loopback) and returns status and body.
//! - `log`: writes `payload.message` to the log at info level.
//! - `exit`: ends the process with `payload.code` (process agents only: a crash mid-call).
//!
//! The library has its own global allocator, which puts a header before every block: had
//! the host ever freed a block this library allocated (or the other way round), the process
//! would abort.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use atamo_plugin_sdk::{
    async_trait, export_plugin, Call, CallError, CallRequest, EventIn, PluginAgent,
    PluginRuleProvider, ProposalOut, Value,
};
use serde::Deserialize;
use serde_json::json;

mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::OffsetAllocator = alloc::OffsetAllocator;

/// The test agent.
pub struct TestAgent {
    label: String,
}

/// Its init metadata.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// Echoed in answers; `fail-init` makes initialisation fail.
    #[serde(default)]
    pub label: String,
    /// Ignored; there to show a schema with a typed field.
    #[serde(default)]
    pub delay_ms: u64,
}

#[async_trait]
impl PluginAgent for TestAgent {
    type Config = TestConfig;
    const DESCRIPTION: &'static str = "does what the action type says; for tests";
    const CONFIG_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "label": {"type": "string"},
            "delay_ms": {"type": "integer", "minimum": 0}
        },
        "additionalProperties": false
    }"#;

    fn new(config: TestConfig) -> Result<Self, String> {
        if config.label == "fail-init" {
            return Err("label `fail-init` asks initialisation to fail".to_owned());
        }
        let _ = config.delay_ms;
        Ok(Self {
            label: config.label,
        })
    }

    fn health(&self) -> Result<Value, String> {
        Ok(json!({"running": RUNNING.load(Ordering::SeqCst), "label": self.label}))
    }

    async fn call(&self, request: CallRequest, call: Call) -> Result<Option<Value>, CallError> {
        let _running = Running::start();
        let p = &request.payload;
        match request.action_type.as_str() {
            "echo" => Ok(Some(json!({"label": self.label, "payload": p}))),
            "noop" => Ok(None),
            "feed" => {
                let count = p["count"].as_u64().unwrap_or(0);
                for seq in 0..count {
                    call.emit(json!({"seq": seq})).await?;
                }
                Ok(Some(json!({"sent": count})))
            }
            "sleep" => {
                let ms = p["ms"].as_u64().unwrap_or(0);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(Some(json!({"slept_ms": ms}))),
                    _ = call.cancelled() => Err(CallError::Cancelled),
                }
            }
            "panic" => panic!("boom in call"),
            "panic_in_task" => {
                atamo_plugin_sdk::spawn(async { panic!("boom in task") }).await;
                Ok(None)
            }
            "detached_panic" => {
                drop(atamo_plugin_sdk::spawn(async {
                    panic!("boom nobody awaits")
                }));
                Ok(Some(json!("still here")))
            }
            "bytes" => {
                let len = p["len"].as_u64().unwrap_or(0) as usize;
                Ok(Some(Value::String("x".repeat(len))))
            }
            "fail" => {
                let reason = p["reason"].as_str().unwrap_or("asked to fail").to_owned();
                match p["kind"].as_str() {
                    Some("permanent") => Err(CallError::permanent(reason)),
                    _ => Err(CallError::Retry {
                        reason,
                        after_ms: p["after_ms"].as_u64(),
                    }),
                }
            }
            "http_get" => http_get(p["url"].as_str().unwrap_or_default()).await,
            "log" => {
                atamo_plugin_sdk::tracing::info!("{}", p["message"].as_str().unwrap_or(""));
                Ok(None)
            }
            "exit" => std::process::exit(p["code"].as_i64().unwrap_or(1) as i32),
            other => Err(CallError::permanent(format!(
                "unknown action type `{other}`"
            ))),
        }
    }
}

/// Calls running now, across instances; reported by `health`, so tests can see a cancelled
/// call really stop inside the plugin.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

struct Running;

impl Running {
    fn start() -> Self {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A plain HTTP/1.1 GET over a tokio socket: enough for a loopback server in a test, without
/// pulling an HTTP client into every plugin build.
async fn http_get(url: &str) -> Result<Option<Value>, CallError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| CallError::permanent(format!("not an http:// URL: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| CallError::retry(format!("cannot connect to {authority}: {e}")))?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| CallError::retry(e.to_string()))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| CallError::retry(e.to_string()))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Some(json!({"status": status, "body": body})))
}

/// A rule provider: every event with `payload.action` becomes that action, with
/// `payload.args` as its payload, for the agent named in the config. `payload.action ==
/// "panic_in_rules"` panics, `"fail_in_rules"` fails the rule.
pub struct RouteByPayload {
    agent: String,
}

/// Its init metadata.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The agent every action goes to.
    pub agent: String,
}

impl PluginRuleProvider for RouteByPayload {
    type Config = RouteConfig;
    const CONFIG_SCHEMA: &'static str = r#"{"type": "object",
        "properties": {"agent": {"type": "string"}}, "required": ["agent"],
        "additionalProperties": false}"#;

    fn new(config: RouteConfig) -> Result<Self, String> {
        Ok(Self {
            agent: config.agent,
        })
    }

    fn evaluate(&self, event: &EventIn) -> Result<Vec<ProposalOut>, String> {
        let Some(action) = event.payload["action"].as_str() else {
            return Ok(Vec::new());
        };
        match action {
            "panic_in_rules" => panic!("boom in rules"),
            "fail_in_rules" => Err("asked to fail".to_owned()),
            _ => Ok(vec![ProposalOut {
                rule: "route-by-payload".to_owned(),
                agent: self.agent.clone(),
                action: action.to_owned(),
                payload: event.payload["args"].clone(),
                coalesce: None,
                cache_ttl_ms: None,
            }]),
        }
    }
}

export_plugin! {
    name: "atamo-test-plugin",
    version: env!("CARGO_PKG_VERSION"),
    agents: { "test" => TestAgent },
    rule_providers: { "route" => RouteByPayload },
}
