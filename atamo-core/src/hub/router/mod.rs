//! The routing task ([`run`]): takes accepted events in batches, asks the rule providers, and
//! queues the resulting actions for their agents' workers. How a batch is accepted, stateless
//! or committed to a store first, is [`acceptance`]'s concern; [`commit`] holds a stateful
//! hub's pipeline of batch writes, [`deliver`] queues actions on their agents, and
//! [`supervised`] runs the router and the committer with their panics caught.

mod acceptance;
mod commit;
mod deliver;
mod run;
mod supervised;

pub(crate) use run::RouterReport;
pub(crate) use supervised::router as supervised;
