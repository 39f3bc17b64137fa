//! Durable state for a stateful hub: the action queue, the result store and the audit log.
//!
//! A [`Store`] is what makes a hub stateful. Three backends implement it, and all pass one
//! conformance suite (`conformance`, behind the `conformance` feature):
//! - [`MemoryStore`] (this crate): the same semantics held in memory, for tests and for hubs
//!   that want dedupe, audit queries and leases without a disk;
//! - `atamo-store-sqlite`: the embedded default (one file, WAL, group commit);
//! - `atamo-store-postgres`: several hub nodes sharing one database.
//!
//! # Capabilities
//! A backend implements small traits one by one, each a thing a store can do; [`Store`] is all
//! of them, with a blanket implementation, and is what a hub holds (`Arc<dyn Store>`):
//! - [`BatchWriter`]: the transactional batch commit (`write`);
//! - [`ActionQueue`]: claims with leases, heartbeats, lease recovery, lookups, dead letters,
//!   redrives and the wake-up hint;
//! - [`RequestResults`]: the answers of requests;
//! - [`AuditLog`]: the steps of stored messages;
//! - [`EventLog`]: stored events, by id and listed with filters;
//! - [`Maintenance`]: the backend's name, pruning, statistics and the integrity check.
//!
//! [`DefinitionRegistry`] is a capability of its own, not part of [`Store`]: the service
//! holds it beside the store (the hub never sees it).
//!
//! # The model
//! - **Accepting** an event writes the event, its dedupe key and its actions in one transaction.
//!   An event whose dedupe key was seen within its window is not written again: the caller gets
//!   the first event's receipt.
//! - **Actions** are `ready` (waiting for `run_at`), `leased` (a node works on it until
//!   `lease_until`), `done` or `dead`. The node that routed an event usually enqueues its actions
//!   already leased to itself, so the common path needs no claim round trip.
//! - **Leases are fenced by attempt number.** Every claim raises the attempt; a settle names the
//!   attempt it holds and is refused once the lease expired and the action was claimed again.
//! - **Settling** (done, retry later, dead, or give back) writes the action's new state, the
//!   request's answers and the audit records of the same write batch in one transaction.
//! - **Events** stay stored until pruned, and are listed newest first with filters on their
//!   type, user, tenant, time and payload fields ([`EventLog::events`], [`EventQuery`]).
//! - **The registry** keeps configuration a service adds at run time (agents, rules, types,
//!   keys...): JSON entries by [`RegistryKind`] and id with a revision, written with their
//!   audit records in one transaction, shared by every node of the store and never pruned.
//! - **Time** comes from an injectable [`Clock`], so tests move it by hand.
//! - **Errors** ([`StoreError`]) say whether trying again may help, and keep the database's or
//!   the system's error as their source.
//!
//! # Files
//! `records` (what is stored), `batch` (write batches and their outcomes), `query` (audit and
//! event queries, pages), `maintenance` (retention, stats, checks), `registry`, `clock`,
//! `error`, `capabilities` (the traits) and `memory` (the in-memory backend).

mod batch;
mod capabilities;
mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod maintenance;
mod memory;
mod query;
mod records;
mod registry;

pub use batch::{
    AcceptEvent, AcceptOutcome, NewAction, Settle, Settlement, WriteBatch, WriteOutcome,
};
pub use capabilities::{
    ActionQueue, AuditLog, BatchWriter, EventLog, Maintenance, RequestResults, Store,
};
pub use clock::{earlier, later, system_time, Clock, ManualClock, SystemClock};
pub use error::{Chain, ErrorSource, StoreError};
pub use maintenance::{CheckReport, PruneReport, Retention, StoreStats};
pub use memory::MemoryStore;
pub use query::{
    page_size, AuditQuery, Cursor, EventQuery, Page, PayloadFilter, MAX_PAGE, MAX_PAYLOAD_FILTERS,
    MAX_PAYLOAD_PATH,
};
pub use records::{
    ActionRecord, ActionRow, ActionState, AuditRecord, Claimed, Durability, EventHeader,
    EventRecord, NodeId, OriginRecord, ResultRecord,
};
pub use registry::{
    check_registry_id, DefinitionRegistry, RegistryEntry, RegistryKind, RegistryOutcome,
    RegistryWrite, MAX_REGISTRY_KEY,
};
