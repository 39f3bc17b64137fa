//! Writes: group commit, and the statements of one transaction.
//!
//! `write` calls queue their batches for one writer task, which merges the batches waiting
//! (up to `max_batch_items` items) into one transaction and tells each caller its own outcome.
//! A transaction is a few statements whatever its size: every kind of row goes in with one
//! `INSERT … SELECT FROM unnest(…)` (or one `UPDATE … FROM unnest(…)` for settles), and the
//! statements are pipelined on the connection, so most groups cost one or two round trips.
//!
//! `group` (the writer task), `commit` (one transaction), `dedupe` (dedupe decisions of a
//! group), `params` (the statements' array parameters), `pipeline` (pipelined statements on
//! one connection in a transaction) and `statements` (the SQL).

mod commit;
mod dedupe;
mod group;
mod params;
mod pipeline;
mod statements;

pub(crate) use commit::baseline_insert;
pub(crate) use group::{writer, Job};
pub(crate) use params::AuditRows;
pub(crate) use statements::{AUDIT_INSERT, NOTIFY};
