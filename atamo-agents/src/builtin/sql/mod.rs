//! The built-in `sql` agent: runs a named SQLite statement, or calls a PostgreSQL function or
//! procedure, with the action's parameters.
//!
//! The SQL text comes from the agent's configuration only; the action gives parameters, which
//! are always **bound**, never spliced into SQL text, so a value such as
//! `x'); DROP TABLE notes; --` is stored as the text it is.
//!
//! # Configuration ([`SqlConfig`])
//!
//! SQLite, which has no procedures: the statements the agent may run, by name.
//!
//! ```json
//! {"sqlite": {
//!     "path": "/var/lib/app/notes.db",
//!     "statements": {
//!         "add_note": "INSERT INTO notes(author, body) VALUES (?1, ?2)",
//!         "notes_by": "SELECT id, body FROM notes WHERE author = :author ORDER BY id"
//!     },
//!     "busy_timeout_ms": 5000
//! }}
//! ```
//!
//! PostgreSQL: a connection string (`key=value` pairs or a `postgresql://` URL) and the routine
//! to call, a function (`SELECT * FROM routine($1, ...)`) or a procedure (`CALL routine($1,
//! ...)`). The routine name is `name` or `schema.name` (letters, digits and `_`).
//!
//! ```json
//! {"postgres": {
//!     "url": "host=127.0.0.1 port=5432 user=app dbname=app",
//!     "call": "function",
//!     "routine": "crm.find_customers",
//!     "connect_timeout_ms": 5000
//! }}
//! ```
//!
//! When the [`CredentialProvider`](crate::builtin::CredentialProvider) has a
//! [`Credential::Password`](crate::builtin::Credential::Password) for (agent, the event's user),
//! the PostgreSQL agent logs in with it instead of the user and password of `url`: it acts on
//! behalf of the event's user.
//!
//! # Action payload ([`SqlAction`])
//!
//! ```json
//! {"statement": "add_note", "params": ["alice", "hello"]}
//! ```
//!
//! `statement` names one of the configured SQLite statements (PostgreSQL agents take none).
//! `params` is an array (positional: `?1`, `?2` in SQLite; `$1`, `$2` in PostgreSQL) or an
//! object (named: `:author`, `@author` or `$author` in SQLite, given as `{"author": ...}`;
//! `routine(author => $1)` notation in PostgreSQL). See [`SqlAction`] for how values map to
//! SQL types.
//!
//! # Answers
//!
//! Each row is one answer, a JSON object (column name → value), sent as a feed as the rows are
//! read (a long result is never held in memory whole); the final reply is `{"rows": n}`. For an
//! event (no request) the rows are read and counted only.
//!
//! # Failures
//!
//! A connection that cannot be made or breaks, a timeout, a busy or locked database, and
//! PostgreSQL's transient errors (serialization failure, deadlock, too many connections, server
//! shutting down) are retryable; SQL errors (syntax, constraint, bad input for a type, unknown
//! routine) are permanent, with the database's message. A bad action payload is permanent and
//! names the field.

mod action;
mod agent;
mod config;
mod postgres;
mod sink;
mod sqlite;

pub use action::{Params, SqlAction};
pub use agent::SqlAgent;
pub use config::{
    PostgresConfig, RoutineKind, SqlConfig, SqliteConfig, CONFIG_SCHEMA, DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_CONNECT_TIMEOUT_MS, KIND,
};
