//! Ready-made agents for the Atamo hub.
//!
//! - [`ChannelAgent`]: hands each action to your code through a bounded channel, so an
//!   application (a desktop UI thread, a worker pool) can act on actions in its own loop.
//! - [`LogAgent`]: writes each action to the `tracing` log and succeeds.
//!
//! ```
//! use atamo_agents::ChannelAgent;
//! use atamo_core::{ActionTypeDef, AgentSpec, Hub};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (agent, mut actions) = ChannelAgent::new(64);
//! let hub = Hub::builder()
//!     .action_type(ActionTypeDef::new("ui.refresh"))
//!     .agent(AgentSpec::new("ui", agent).handles(["ui.refresh"]))
//!     .build()?;
//! # drop(actions.try_recv());
//! hub.shutdown().await;
//! # Ok(()) }
//! ```

pub mod builtin;
mod channel;
mod log;
pub mod native;
pub mod process;
pub mod registration;
pub mod schema;
mod wire;

pub use channel::{ChannelAgent, Delivery};
pub use log::LogAgent;
pub use process::{ProcessAgent, ProcessSpec, ProcessSupervisor};
