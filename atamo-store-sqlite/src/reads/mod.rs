//! Reads: a small pool of read connections used on blocking threads, and the queries.
//!
//! In WAL mode a reader sees the last committed state and never waits for the writer.
//! `pool` holds the connections; `actions`, `audit`, `events` and `maintenance` the queries of
//! each concern (the registry's are in [`crate::registry`]).

mod actions;
mod audit;
mod events;
mod maintenance;
mod pool;

pub(crate) use actions::{action, dead_letters, results};
pub(crate) use audit::audit;
pub(crate) use events::{event, events};
pub(crate) use maintenance::{check, size_on_disk, stats};
pub(crate) use pool::Readers;
