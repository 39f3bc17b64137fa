//! Everything but writes: `queue` (claims, leases, redrives), `reads` (actions, results,
//! events, the audit log), `maintenance` (pruning, stats, checks) and `conn` (pooled
//! connections and the wake-up notification).

mod conn;
mod maintenance;
mod queue;
mod reads;

pub(crate) use conn::conn;
pub(crate) use maintenance::{check, prune, stats};
pub(crate) use queue::{action, claim, dead_letters, heartbeat, recover_expired, redrive};
pub(crate) use reads::{audit, event, events, results};
