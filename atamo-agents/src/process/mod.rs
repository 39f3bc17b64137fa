//! Process agents: separate programs that do an agent's work, speaking JSON lines over their
//! stdin and stdout, started and supervised by the hub.
//!
//! A program can be written in any language. It reads [`HostMessage`]s, one JSON object per
//! line, from stdin and writes [`PluginMessage`]s to stdout; stdout carries nothing else, and
//! whatever it writes to stderr goes to the hub's log (`tracing`, target [`STDERR_TARGET`],
//! with the agent id and pid, at the level the line names: `ERROR`, `WARN`, ... else info). A Rust
//! program is one line, `atamo_plugin_sdk::serve_stdio(plugin())`; `plugins/python-agent`
//! is one in Python with nothing but the standard library.
//!
//! ```text
//! host -> {"type":"hello","protocol":1,"agent":"words","kind":"words","config":{}}
//! prog <- {"type":"hello","protocol":1,"name":"python-agent","version":"1.0"}
//! host -> {"type":"call","id":1,"request":{...,"action_type":"upper","payload":{"text":"a b"}},"credits":32}
//! prog <- {"type":"data","id":1,"payload":"A"}
//! prog <- {"type":"data","id":1,"payload":"B"}
//! host -> {"type":"credit","id":1,"credits":1}         (one per answer the client took)
//! prog <- {"type":"end","id":1,"payload":{"words":2}}
//! host -> {"type":"ping","id":7}
//! prog <- {"type":"pong","id":7}
//! host -> {"type":"goodbye"}                           (finish the calls in flight, exit)
//! ```
//!
//! - [`ProcessAgent`] runs one program as one agent and supervises it: pings every
//!   `ping_interval`, kills and restarts a process that hangs (no `pong` within
//!   `ping_timeout`), writes garbage (a line that is not protocol JSON, or longer than
//!   `max_line_bytes`), or exits; restarts back off exponentially with jitter; after
//!   `max_failed_restarts` restarts in a row that never became healthy (answered a ping), the
//!   agent goes offline with an `agent_offline` alert. Every change is telemetry:
//!   [`ProcessChange`](atamo_core::telemetry::ProcessChange) `Started`, `Exited`,
//!   `Restarting`, `Stopped`, `Offline`.
//! - [`ProcessSupervisor`] keeps a set of process agents, registered with the hub, equal to a
//!   desired list ([`DesiredAgent`]), and stops those somebody unregisters.
//! - [`ProcessSpec`] says which program to run and how to supervise it; it reads from
//!   configuration with serde (durations as `*_ms` milliseconds).
//!
//! ```no_run
//! use atamo_agents::process::{DesiredAgent, ProcessSpec, ProcessSupervisor};
//! use atamo_core::{ActionTypeDef, Hub};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::builder().action_type(ActionTypeDef::new("word_count")).build()?;
//! let supervisor = ProcessSupervisor::new(hub.control());
//! let report = supervisor
//!     .reconcile(vec![DesiredAgent::new(
//!         "words",
//!         ProcessSpec::new("python3")
//!             .kind("words")
//!             .arg("plugins/python-agent/agent.py"),
//!     )
//!     .handles(["word_count"])])
//!     .await;
//! assert!(report.is_ok(), "{report:?}");
//! // ... publish events and requests ...
//! supervisor.shutdown().await;
//! hub.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! [`HostMessage`]: atamo_plugin_protocol::HostMessage
//! [`PluginMessage`]: atamo_plugin_protocol::PluginMessage

mod agent;
mod conn;
mod error;
mod io;
mod reconcile;
mod spec;
mod state;
mod supervise;

pub use agent::ProcessAgent;
pub use error::ProcessError;
pub use io::STDERR_TARGET;
pub use reconcile::{DesiredAgent, ProcessSupervisor, ReconcileReport};
pub use spec::{
    ProcessSpec, DEFAULT_CALL_WAIT, DEFAULT_CREDITS, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_KIND,
    DEFAULT_MAX_FAILED_RESTARTS, DEFAULT_MAX_LINE_BYTES, DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT, DEFAULT_RESTART_BACKOFF_INITIAL, DEFAULT_RESTART_BACKOFF_MAX,
    DEFAULT_STOP_GRACE,
};
pub use state::{ProcessState, StopHow};
