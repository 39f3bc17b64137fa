//! Built-in generic agents: most users point one of these at what they already have instead of
//! writing an agent.
//!
//! - [`http`]: calls a REST endpoint.
//! - [`sql`]: runs a PostgreSQL function or procedure, or a named SQLite statement.
//! - [`email`]: sends mail over SMTP.
//! - [`command`]: runs a program (no shell).
//!
//! Each agent's registration metadata is a serde struct with unknown fields refused; it is
//! checked when the agent is built, and every problem is named ([`ConfigProblems`]). The
//! action's payload gives the details (a rule's template fills them from the event). Agents act
//! on behalf of the event's user: [`credentials`] gives them that user's token or password.

pub mod command;
pub mod credentials;
pub mod email;
pub mod http;
pub mod sql;

mod config;
mod kinds;

pub use config::{parse_config, ConfigProblems};
pub use credentials::{ConfigCredentials, Credential, CredentialProvider, NoCredentials, Secret};
pub use kinds::{build, KINDS};
