//! The statements of writes, run by the writer thread inside the transaction it opened:
//! `insert` (event and action rows, several per statement), `write` (a write batch),
//! `audit` (audit rows), `queue` (claims, leases, redrives) and `maintenance` (pruning).

mod audit;
mod insert;
mod maintenance;
mod queue;
mod write;

pub(crate) use audit::{encode_audit, insert_audit};
pub(crate) use insert::{baseline_batch, encode_bodies};
pub(crate) use maintenance::{prune, synchronous};
pub(crate) use queue::{claim, heartbeat, recover_expired, redrive};
pub(crate) use write::write;
