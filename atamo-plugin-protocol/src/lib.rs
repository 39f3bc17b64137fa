//! The JSON messages between the Atamo hub and its plugins: types only, no I/O.
//!
//! Both sides link this crate, so they cannot drift: the hub (`atamo-agents`, which loads
//! native plugins and supervises process agents) and the plugins (`atamo-plugin-sdk`
//! re-exports it as `atamo_plugin_sdk::protocol`). A native plugin exchanges these shapes as
//! JSON inside the C ABI's byte buffers (`atamo-plugin-abi`); a process agent exchanges them
//! as one JSON object per line on its stdin and stdout.
//!
//! ```
//! use atamo_plugin_protocol::{CallError, HostMessage, PluginMessage};
//!
//! let line = serde_json::to_string(&HostMessage::Ping { id: 3 })?;
//! assert_eq!(line, r#"{"type":"ping","id":3}"#);
//!
//! let answer: PluginMessage = serde_json::from_str(
//!     r#"{"type":"error","id":1,"error":{"kind":"permanent","reason":"no such item"}}"#,
//! )?;
//! assert_eq!(
//!     answer,
//!     PluginMessage::Error { id: 1, error: CallError::permanent("no such item") }
//! );
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! - [`CallRequest`] and [`CallError`]: one call of an agent, and why it failed.
//! - [`EventIn`], [`ProposalOut`] and [`EvaluateOut`]: what a rule provider sees and proposes.
//! - [`Description`], [`KindInfo`] and [`Role`]: what a plugin offers.
//! - [`HostMessage`], [`PluginMessage`] and [`PROCESS_PROTOCOL_VERSION`]: the process-agent
//!   line protocol, `hello` first.

mod call;
mod description;
mod process;
mod rules;

pub use call::{CallError, CallRequest};
pub use description::{Description, KindInfo, Role};
pub use process::{HostMessage, PluginMessage, PROCESS_PROTOCOL_VERSION};
pub use rules::{EvaluateOut, EventIn, ProposalOut};
