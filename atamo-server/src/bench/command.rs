//! The `atamo bench` subcommands and their dispatch.

use clap::Subcommand;

use super::{coalesce, durable, fire_and_forget, http, plugin, request};

/// The benchmarks.
#[derive(Subcommand)]
pub enum Bench {
    /// Events published fire-and-forget through one rule to one no-op in-process agent, with
    /// telemetry on and consumed by a counting subscriber; baseline: the same events through a
    /// raw tokio mpsc channel from one task to another.
    FireAndForget(fire_and_forget::Args),
    /// Requests through one rule to one in-process agent that answers at once, the client
    /// awaiting each answer: latency at a fixed offered rate (open loop) and the maximum rate
    /// from concurrent clients; baseline: the same round trip over a raw tokio mpsc + oneshot.
    Request(request::Args),
    /// Identical concurrent requests to an agent that takes a while, with coalescing (one call
    /// shared, the default) and without (a call each) in the same run: agent calls saved and
    /// requests per second.
    Coalesce(coalesce::Args),
    /// No-op actions fire-and-forget through a native plugin (the bench plugin, loaded through
    /// the C ABI) and through a process agent (the same plugin code over JSON lines), against
    /// an in-process agent in the same run. Build the plugin first:
    /// `cargo build --release -p atamo-bench-plugin`.
    Plugin(plugin::Args),
    /// Events through a stateful hub on SQLite (default) or PostgreSQL: accepted (each
    /// publisher waits for its commit), delivered to a no-op agent and settled, per second;
    /// baseline: plain batched inserts of the same event and action rows into the same kind of
    /// database.
    Durable(durable::Args),
    /// `POST /v1/events` through the whole service (keys, parsing, the hub, a rule, a no-op
    /// agent) over keep-alive connections from an in-process load generator, stateless, on
    /// SQLite and through the batch endpoint; baseline: a bare handler answering 202 in the same
    /// process and run.
    Http(http::Args),
}

/// Runs a benchmark.
pub fn run(which: Bench) -> anyhow::Result<()> {
    match which {
        Bench::FireAndForget(args) => fire_and_forget::run(args),
        Bench::Request(args) => request::run(args),
        Bench::Coalesce(args) => coalesce::run(args),
        Bench::Plugin(args) => plugin::run(args),
        Bench::Durable(args) => durable::run(args),
        Bench::Http(args) => http::run(args),
    }
}
