//! `atamo`: the Atamo command line. For now it runs benchmarks and inspects native plugins;
//! the REST service comes next.

mod bench;
mod plugin;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Atamo: rule-driven, auditable, asynchronous work.
#[derive(Parser)]
#[command(name = "atamo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure the hub against a baseline taken in the same run.
    Bench {
        #[command(subcommand)]
        which: bench::Bench,
    },
    /// Look at native plugin libraries.
    Plugin {
        #[command(subcommand)]
        command: plugin::Plugin,
    },
    /// Look at a stateful hub's store: integrity, queue depths, sizes.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Bench { which } => bench::run(which).map(|()| ExitCode::SUCCESS),
        Command::Plugin { command } => plugin::run(command),
        Command::Store { command } => store::run(command),
    }
}
