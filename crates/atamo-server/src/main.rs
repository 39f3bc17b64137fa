//! `atamo`: the Atamo command line. For now it runs benchmarks; the REST service comes next.

mod bench;

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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Bench { which } => bench::run(which),
    }
}
