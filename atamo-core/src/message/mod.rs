//! The messages that travel through the hub: events in, actions out.

mod action;
mod event;
mod fields;
mod principal;
pub(crate) mod request;
mod time;

pub use action::{Action, ActionMeta};
pub use event::{Event, EventBuilder, EventMeta, Origin};
pub use fields::{FieldPath, FieldPathError, MessageTemplate, Problem};
pub use principal::Principal;
pub use time::Timestamp;
