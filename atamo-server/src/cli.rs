//! The command line: `atamo serve`, `atamo config check`, `atamo keys create`, `atamo store`,
//! `atamo plugin`, `atamo bench`.

use crate::{bench, plugin, serve, store};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Atamo: rule-driven, auditable, asynchronous work.
#[derive(Parser)]
#[command(name = "atamo", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Measure the hub against a baseline taken in the same run.
    Bench {
        /// Which one.
        #[command(subcommand)]
        which: bench::Bench,
    },
    /// Look at native plugin libraries.
    Plugin {
        /// What to do.
        #[command(subcommand)]
        command: plugin::Plugin,
    },
    /// Serve the hub over REST (127.0.0.1:7700, SQLite store in ./atamo-data by default).
    Serve(serve::ServeArgs),
    /// Check a configuration file.
    Config {
        /// What to do.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage API keys in the store.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: crate::api::keys_cli::KeysCommand,
    },
    /// Look at a stateful hub's store: integrity, queue depths, sizes.
    Store {
        /// What to do.
        #[command(subcommand)]
        command: store::StoreCommand,
    },
}

/// `atamo config ...`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Lists every error of a configuration file with its line; exits with 1 if there is one.
    Check {
        /// The file.
        file: std::path::PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line.
pub fn main() -> anyhow::Result<ExitCode> {
    let command = Cli::parse().command;
    match command {
        // The service sets up its own log, in the format its configuration asks for.
        Command::Serve(args) => return serve::run(args),
        Command::Config {
            command: ConfigCommand::Check { file, json },
        } => return Ok(crate::config::check_command(&file, json)),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match command {
        Command::Serve(_) | Command::Config { .. } => Ok(ExitCode::SUCCESS),
        Command::Keys { command } => crate::api::keys_cli::run(command),
        Command::Bench { which } => bench::run(which).map(|()| ExitCode::SUCCESS),
        Command::Plugin { command } => plugin::run(command),
        Command::Store { command } => store::run(command),
    }
}
