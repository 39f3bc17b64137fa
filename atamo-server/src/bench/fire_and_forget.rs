use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use atamo_core::rules::Sharing;
use atamo_core::telemetry::TelemetryRecvError;
use atamo_core::{agent_fn, Event, Principal, Reply};
use serde_json::json;
use tokio::sync::{mpsc, Notify};

use super::support::median;

#[derive(clap::Args)]
pub struct Args {
    /// Events per run.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Runs of each side; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Steps recorded per event on this path: accepted, rule_matched, action_dispatched,
/// action_succeeded.
const STEPS_PER_EVENT: u64 = 4;

struct HubRun {
    per_s: f64,
    telemetry_seen: u64,
    telemetry_missed: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.events > 0, "--events must be at least 1");
    ensure!(args.runs > 0, "--runs must be at least 1");
    let (rt, threads) = super::support::runtime(args.threads)?;

    println!(
        "fire-and-forget: {} events per run, {} runs, {} runtime threads",
        args.events, args.runs, threads
    );
    println!(
        "{:<6} {:>16} {:>16} {:>8}",
        "run", "hub ev/s", "mpsc ev/s", "ratio"
    );
    let mut hub_rates = Vec::new();
    let mut base_rates = Vec::new();
    let mut seen = 0;
    let mut missed = 0;
    for i in 1..=args.runs {
        // Alternate the order so neither side always runs on a warmer machine.
        let (h, b) = if i % 2 == 1 {
            let b = rt.block_on(baseline(args.events))?;
            (rt.block_on(hub_run(args.events))?, b)
        } else {
            let h = rt.block_on(hub_run(args.events))?;
            (h, rt.block_on(baseline(args.events))?)
        };
        println!(
            "{:<6} {:>16.0} {:>16.0} {:>8.3}",
            i,
            h.per_s,
            b,
            h.per_s / b
        );
        seen += h.telemetry_seen;
        missed += h.telemetry_missed;
        hub_rates.push(h.per_s);
        base_rates.push(b);
    }
    let hub = median(hub_rates);
    let base = median(base_rates);
    println!(
        "{:<6} {:>16.0} {:>16.0} {:>8.3}",
        "median",
        hub,
        base,
        hub / base
    );
    println!(
        "telemetry: {seen} steps counted by the subscriber, {missed} missed (lagged) over all runs"
    );
    println!(
        "{}",
        json!({
            "bench": "fire-and-forget",
            "events": args.events,
            "runs": args.runs,
            "threads": threads,
            "hub_events_per_s": hub.round(),
            "baseline_per_s": base.round(),
            "ratio": (hub / base * 1000.0).round() / 1000.0,
            "telemetry_steps_counted": seen,
            "telemetry_steps_missed": missed,
        })
    );
    Ok(())
}

fn events(n: u64) -> Vec<Event> {
    let principal = Principal::user("bench");
    (0..n)
        .map(|i| Event::new("bench.event", principal.clone(), json!({ "n": i })))
        .collect()
}

/// The same event values sent through a bare bounded mpsc channel, one task to another.
async fn baseline(n: u64) -> anyhow::Result<f64> {
    let events = events(n);
    let (tx, mut rx) = mpsc::channel::<Event>(8192);
    let started = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(512);
        let mut count = 0u64;
        while rx.recv_many(&mut buf, 512).await > 0 {
            count += buf.len() as u64;
            buf.clear();
        }
        count
    });
    for e in events {
        tx.send(e).await.context("baseline consumer stopped")?;
    }
    drop(tx);
    let received = consumer.await?;
    let elapsed = started.elapsed();
    ensure!(received == n, "baseline lost events: {received} of {n}");
    Ok(n as f64 / elapsed.as_secs_f64())
}

async fn hub_run(n: u64) -> anyhow::Result<HubRun> {
    let events = events(n);
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(Notify::new());
    let agent = {
        let done = done.clone();
        let finished = finished.clone();
        agent_fn(move |_action, _ctx| {
            if done.fetch_add(1, Ordering::Relaxed) + 1 == n {
                finished.notify_one();
            }
            std::future::ready(Ok(Reply::done()))
        })
    };
    let hub = super::support::one_rule_hub("bench.event", "n", "noop", agent, Sharing::default())?
        .build()?;

    // The counting subscriber: counts every step it receives and every step it missed.
    let mut sub = hub.control().subscribe();
    let expected_steps = n * STEPS_PER_EVENT;
    let counter = tokio::spawn(async move {
        let (mut seen, mut missed) = (0u64, 0u64);
        while seen + missed < expected_steps {
            match sub.recv_batch().await {
                Ok(batch) => {
                    seen += batch.events.iter().filter(|e| e.event().is_some()).count() as u64
                }
                Err(TelemetryRecvError::Lagged { missed: m }) => missed += m,
                Err(_) => break,
            }
        }
        (seen, missed)
    });

    let handle = hub.handle();
    let started = Instant::now();
    super::support::publish_and_wait(&handle, events, &done, &finished, Duration::from_secs(120))
        .await?;
    let (seen, missed) = tokio::time::timeout(Duration::from_secs(60), counter)
        .await
        .context("the telemetry subscriber did not finish")??;
    let elapsed = started.elapsed();
    hub.shutdown().await;
    Ok(HubRun {
        per_s: n as f64 / elapsed.as_secs_f64(),
        telemetry_seen: seen,
        telemetry_missed: missed,
    })
}
