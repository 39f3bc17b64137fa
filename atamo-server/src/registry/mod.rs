//! Agents, rules and types of a running service: applied to the hub, kept in the store's
//! definitions registry so they survive a restart.
//!
//! What `atamo.toml` declares is applied first and is not stored; what the API adds is stored
//! (registry kinds `agent`, `rule`, `event_type`, `action_type`) and applied at every start
//! after the file, so a definition changed through the API wins over the file's. Each entry
//! has a revision: [`Registry::sync`] applies what other nodes on the same store changed since
//! this node last looked, and removes what they deleted.
//! Every change made through the API is written to the audit log in the same transaction
//! (step `registry_changed`, with the key that made it).
//!
//! `state` holds the [`Registry`] and what this node applied; `types`, `agents` and `rules`
//! apply and change each kind of definition; `persist` writes changes to the store's
//! definitions registry and loads and syncs what it holds; `errors` turns the hub's, the
//! rules' and the plugin host's refusals into API errors.

mod agents;
mod errors;
mod persist;
mod rules;
mod state;
mod types;

pub use state::{
    LoadReport, Registry, Source, ACTION_TYPE, AGENT, EVENT_TYPE, RULE, RULES_PROVIDER,
};
