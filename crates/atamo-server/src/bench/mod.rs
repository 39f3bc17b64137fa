//! `atamo bench ...`: each benchmark measures a baseline in the same run and reports ratios,
//! because the machines it runs on are shared and noisy. The last line printed is one JSON
//! object for scripts.

mod fire_and_forget;

use clap::Subcommand;

/// The benchmarks.
#[derive(Subcommand)]
pub enum Bench {
    /// Events published fire-and-forget through one rule to one no-op in-process agent, with
    /// telemetry on and consumed by a counting subscriber; baseline: the same events through a
    /// raw tokio mpsc channel from one task to another.
    FireAndForget(fire_and_forget::Args),
}

pub fn run(which: Bench) -> anyhow::Result<()> {
    match which {
        Bench::FireAndForget(args) => fire_and_forget::run(args),
    }
}

/// The median of some measurements.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}
