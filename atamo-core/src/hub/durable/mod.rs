//! The stateful hub's side of the store: settings, the records it writes, the settle writer,
//! and the node's background tasks (claiming ready actions, heartbeating leases, pruning).

mod records;
mod settings;
mod state;
mod tasks;

pub(crate) use records::{action_record, event_record};
pub use settings::StoreSettings;
pub(crate) use state::Durable;
pub(crate) use tasks::start;
