//! The in-memory store: the store model with nothing on disk.
//!
//! `state` holds the data and how a write batch changes it; `store` is [`MemoryStore`] and its
//! store capabilities; `registry` its definitions registry.

mod registry;
mod state;
mod store;

pub use store::MemoryStore;
