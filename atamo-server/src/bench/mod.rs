//! `atamo bench ...`: each benchmark measures a baseline in the same run and reports ratios,
//! because the machines it runs on are shared and noisy. The last line printed is one JSON
//! object for scripts.

mod coalesce;
mod command;
mod durable;
mod fire_and_forget;
mod http;
mod plugin;
mod request;
mod support;

pub use command::{run, Bench};
pub use support::{median, one_rule_hub, publish_and_wait, runtime};
