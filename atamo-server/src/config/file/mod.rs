//! Reading `atamo.toml`: one parse into a spanned document, then every key and every array
//! entry checked on its own, each problem reported with the line where its value starts.
//!
//! [`check`] reads the document and hands each section to its own checker (`store`, `hub`,
//! `retry`, `alerts`, `retention`, `http`, the registered types, `agents`, `rules`); the
//! [`Checker`](checker::Checker) they share records the issues, and `spans` finds where a
//! value or a field is written.

mod agents;
mod alerts;
mod checker;
mod document;
mod http;
mod hub;
mod retention;
mod retry;
mod rules;
mod spans;
mod store;
mod types;

pub(super) use document::check;
