//! Events: publish one or many, look one up with the path it took, list stored ones.

pub(super) mod list;
mod parse;
pub(super) mod publish;
pub(super) mod view;

pub(crate) use parse::parse_event;
pub use publish::MAX_BATCH;
pub(crate) use publish::{hub_problems, publish_error};
