//! One long-lived task per agent ([`run`]): takes dispatched actions from the agent's queue in
//! batches and runs up to `concurrency` calls at once. Each concern has its own file:
//!
//! - [`call`]: a call in flight (polled once inline, panics caught, time limit);
//! - [`availability`] and [`breaker`]: whether the agent takes calls, from its circuit
//!   breaker and its status; [`status`] announces status changes;
//! - [`held`]: actions waiting while it does not, and their fallback agent;
//! - [`retry`]: failed calls waiting for their next attempt;
//! - [`coalesce`]: identical requests sharing one call, and recent results reused;
//! - [`dead_letter`]: actions that failed for good;
//! - [`probe`]: the health probe;
//! - [`settle`]: where outcomes go, stateless or stateful, behind one interface;
//! - [`supervise`]: the loop restarted after a panic, with its queue and calls in flight.

mod availability;
mod breaker;
mod call;
mod coalesce;
mod dead_letter;
mod held;
mod probe;
mod retry;
mod run;
mod settle;
mod status;
mod supervise;

pub(crate) use run::Worker;
pub(crate) use status::announce;
