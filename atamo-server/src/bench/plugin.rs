//! `atamo bench plugin`: no-op actions through a native plugin and a process agent, against an
//! in-process agent in the same run.
//!
//! Every side runs the same hub path: events published fire-and-forget through one rule to
//! one agent that does nothing, the agent wrapped in a counter of finished calls. Only the
//! agent differs: an in-process closure, the bench plugin's `noop` kind loaded through the C
//! ABI, and the same kind served by the bench plugin's process agent over JSON lines.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use atamo_agents::native::{NativeAgent, PluginLoader};
use atamo_agents::process::{ProcessAgent, ProcessSpec};
use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::rules::Sharing;
use atamo_core::{agent_fn, Action, Event, Principal};
use serde_json::json;
use tokio::sync::Notify;

use super::support::median;

#[derive(clap::Args)]
pub struct Args {
    /// Calls per run and side.
    #[arg(long, default_value_t = 200_000)]
    calls: u64,
    /// Runs of each side; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Worker threads of the hub's runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// The bench plugin library (default: next to this executable, as cargo builds it).
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// The bench plugin's process agent (default: next to this executable).
    #[arg(long)]
    process: Option<PathBuf>,
}

fn beside_exe(file: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the executable has no directory")?;
    for candidate in [dir.join(file), dir.join("deps").join(file)] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "{} not found beside {}; build it first: cargo build --release -p atamo-bench-plugin",
        file,
        exe.display()
    )
}

/// Counts finished calls of the agent it wraps, and wakes the bench when `target` is reached.
struct Counted<A> {
    inner: A,
    done: Arc<AtomicU64>,
    target: u64,
    finished: Arc<Notify>,
    failed: Arc<AtomicU64>,
}

#[async_trait]
impl<A: Agent> Agent for Counted<A> {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let result = self.inner.call(action, ctx).await;
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.done.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            self.finished.notify_one();
        }
        result
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.calls > 0, "--calls must be at least 1");
    ensure!(args.runs > 0, "--runs must be at least 1");
    let plugin_file = match &args.plugin {
        Some(p) => p.clone(),
        None => beside_exe(&format!(
            "{}atamo_bench_plugin{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))?,
    };
    let process_file = match &args.process {
        Some(p) => p.clone(),
        None => beside_exe(&format!(
            "atamo-bench-process-agent{}",
            std::env::consts::EXE_SUFFIX
        ))?,
    };
    let (rt, threads) = super::support::runtime(args.threads)?;
    println!(
        "plugin: {} no-op calls per run and side, {} runs, {} runtime threads",
        args.calls, args.runs, threads
    );
    println!(
        "{:<6} {:>14} {:>14} {:>14} {:>8} {:>8}",
        "run", "in-proc /s", "native /s", "process /s", "native×", "process×"
    );
    let (mut inproc, mut native, mut process) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=args.runs {
        let a = rt.block_on(side(
            Side::InProcess,
            args.calls,
            &plugin_file,
            &process_file,
        ))?;
        let b = rt.block_on(side(Side::Native, args.calls, &plugin_file, &process_file))?;
        let c = rt.block_on(side(Side::Process, args.calls, &plugin_file, &process_file))?;
        println!(
            "{:<6} {:>14.0} {:>14.0} {:>14.0} {:>8.3} {:>8.3}",
            i,
            a,
            b,
            c,
            b / a,
            c / a
        );
        inproc.push(a);
        native.push(b);
        process.push(c);
    }
    let (a, b, c) = (median(inproc), median(native), median(process));
    println!(
        "{:<6} {:>14.0} {:>14.0} {:>14.0} {:>8.3} {:>8.3}",
        "median",
        a,
        b,
        c,
        b / a,
        c / a
    );
    println!("targets: native >= 0.3x in-process; process agent >= 20000 calls/s");
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    println!(
        "{}",
        json!({
            "bench": "plugin",
            "calls": args.calls,
            "runs": args.runs,
            "threads": threads,
            "in_process_per_s": a.round(),
            "native_per_s": b.round(),
            "process_per_s": c.round(),
            "native_ratio": round3(b / a),
            "process_ratio": round3(c / a),
            "native_target_met": b / a >= 0.3,
            "process_target_met": c >= 20_000.0,
        })
    );
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    InProcess,
    Native,
    Process,
}

async fn side(which: Side, n: u64, plugin_file: &Path, process_file: &Path) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(Notify::new());
    let count = |inner: Arc<dyn Agent>| Counted {
        inner,
        done: done.clone(),
        target: n,
        finished: finished.clone(),
        failed: failed.clone(),
    };
    // The hub is built first with a stand-in so that the process agent can record telemetry
    // through its control; the measured agent replaces it before any event is published.
    let mut process_agent = None;
    let agent: Arc<dyn Agent> = match which {
        Side::InProcess => Arc::new(agent_fn(|_, _| std::future::ready(Ok(Reply::done())))),
        Side::Native => {
            let dir = plugin_file
                .parent()
                .context("the plugin file has no directory")?;
            let plugin = PluginLoader::new(dir)
                .load(plugin_file)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Arc::new(
                NativeAgent::new(plugin, "noop", &json!({}), "noop")
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
        }
        Side::Process => {
            let spec = ProcessSpec::new(process_file).kind("noop");
            let agent = Arc::new(
                ProcessAgent::start("noop".into(), spec, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            );
            process_agent = Some(agent.clone());
            agent
        }
    };
    let hub =
        super::support::one_rule_hub("bench.event", "n", "noop", count(agent), Sharing::default())?
            .build()?;
    let principal = Principal::user("bench");
    let events: Vec<Event> = (0..n)
        .map(|i| Event::new("bench.event", principal.clone(), json!({ "n": i })))
        .collect();
    let handle = hub.handle();
    let started = Instant::now();
    super::support::publish_and_wait(&handle, events, &done, &finished, Duration::from_secs(300))
        .await?;
    let elapsed = started.elapsed();
    hub.shutdown().await;
    if let Some(agent) = process_agent {
        agent.stop().await;
    }
    let failed = failed.load(Ordering::Relaxed);
    ensure!(failed == 0, "{failed} of {n} calls failed");
    Ok(n as f64 / elapsed.as_secs_f64())
}
