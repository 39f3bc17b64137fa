//! `atamo plugin ...`: looking at native plugin libraries without running them in a hub.

use std::path::PathBuf;
use std::process::ExitCode;

/// What to do with a plugin library.
#[derive(clap::Subcommand)]
pub enum Plugin {
    /// Print what a plugin library declares (name, versions, ABI, target, panic strategy,
    /// kinds and their config schemas) as JSON, or why it cannot be loaded (exit code 2).
    ///
    /// The library is opened to read its declaration (its static initialisers run), but no
    /// instance is created and nothing is loaded into a hub. Unlike a hub's loader, any path
    /// is accepted and a panic=abort plugin is reported rather than refused.
    Inspect {
        /// The library: a `.so`, `.dylib` or `.dll`.
        path: PathBuf,
    },
}

/// The exit code of a plugin that cannot be loaded.
const LOAD_FAILED: u8 = 2;

/// Runs a plugin command.
pub fn run(command: Plugin) -> anyhow::Result<ExitCode> {
    match command {
        Plugin::Inspect { path } => match atamo_agents::native::inspect(&path) {
            Ok(info) => {
                println!("{}", serde_json::to_string_pretty(&info)?);
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("error: {err}");
                Ok(ExitCode::from(LOAD_FAILED))
            }
        },
    }
}
