//! `atamo.toml`: the service's configuration file, with `ATAMO_*` environment overrides.
//!
//! [`load()`] reads the file (when there is one), applies the environment and the command-line
//! flags, fills in the defaults and returns a [`ServeConfig`], or every problem found as
//! [`ConfigErrors`]. Precedence: command-line flag > environment > file > default.
//!
//! The file is parsed once into a spanned document; then each top-level key, each key of each
//! section and each `[[array]]` entry is checked on its own, so one run reports every error,
//! each with the line and column where the offending value (or unknown key) starts. Agents and
//! types are checked with the validators of [`crate::model`], rules with
//! [`atamo_config::RuleSet::new`]. Nothing is built or opened: no network, no file but the
//! configuration file itself. The reference of every key is `docs/config.md`.

pub mod check;
mod env;
mod file;
mod issue;
mod layer;
mod load;
mod settings;
mod units;

#[cfg(test)]
mod tests;

pub use check::check_command;
pub use issue::{ConfigErrors, ConfigIssue, Warning};
pub use load::load;
pub use settings::{
    HttpConfig, HubConfig, LogFormat, Overrides, RetentionConfig, ServeConfig, StoreConfig,
    DEFAULT_BODY_LIMIT, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_RATE_LIMIT, DEFAULT_SCHEMA,
    PLUGINS_DIR, SQLITE_FILE,
};
