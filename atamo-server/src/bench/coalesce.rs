//! `atamo bench coalesce`: identical concurrent requests with and without coalescing, in the
//! same run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use atamo_core::rules::{ShareScope, Sharing};
use atamo_core::{agent_fn, Event, Principal, Reply, RequestState};
use serde_json::json;

/// Options of `atamo bench coalesce`.
#[derive(clap::Args)]
pub struct Args {
    /// Identical requests per run.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Concurrent clients sending them (each sends, then waits for its answer).
    #[arg(long, default_value_t = 256)]
    clients: u64,
    /// How long the agent works on each call, in microseconds (a remote lookup, say).
    #[arg(long, default_value_t = 1000)]
    work_us: u64,
    /// Runs of each mode; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

struct Run {
    per_s: f64,
    calls: u64,
}

/// Runs the benchmark and prints a table, then one JSON line.
pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.requests > 0 && args.clients > 0,
        "--requests and --clients must be at least 1"
    );
    ensure!(args.runs > 0, "--runs must be at least 1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "coalesce: {} identical requests from {} clients, {} us of agent work per call, {} runs",
        args.requests, args.clients, args.work_us, args.runs
    );
    println!(
        "{:<6} {:>12} {:>10} {:>14} {:>10} {:>14}",
        "run", "shared req/s", "calls", "unshared req/s", "calls", "speed-up"
    );
    let (mut shared_rates, mut plain_rates, mut shared_calls, mut plain_calls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 1..=args.runs {
        let shared = rt.block_on(one_run(&args, ShareScope::User))?;
        let plain = rt.block_on(one_run(&args, ShareScope::Off))?;
        println!(
            "{:<6} {:>12.0} {:>10} {:>14.0} {:>10} {:>14.1}",
            i,
            shared.per_s,
            shared.calls,
            plain.per_s,
            plain.calls,
            shared.per_s / plain.per_s
        );
        shared_rates.push(shared.per_s);
        plain_rates.push(plain.per_s);
        shared_calls.push(shared.calls as f64);
        plain_calls.push(plain.calls as f64);
    }
    let (s, p) = (
        super::support::median(shared_rates),
        super::support::median(plain_rates),
    );
    let (sc, pc) = (
        super::support::median(shared_calls),
        super::support::median(plain_calls),
    );
    println!(
        "median: {s:.0} vs {p:.0} requests/s ({:.1}x); {sc:.0} vs {pc:.0} agent calls ({:.1}% saved)",
        s / p,
        (1.0 - sc / pc) * 100.0
    );
    println!(
        "{}",
        json!({
            "bench": "coalesce",
            "requests": args.requests,
            "clients": args.clients,
            "work_us": args.work_us,
            "coalesced_per_s": s.round(),
            "uncoalesced_per_s": p.round(),
            "ratio": (s / p * 100.0).round() / 100.0,
            "calls_coalesced": sc,
            "calls_uncoalesced": pc,
            "calls_saved_ratio": ((1.0 - sc / pc) * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}

async fn one_run(args: &Args, scope: ShareScope) -> anyhow::Result<Run> {
    let calls = Arc::new(AtomicU64::new(0));
    let work = Duration::from_micros(args.work_us);
    let agent = {
        let calls = calls.clone();
        agent_fn(move |action, _ctx| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(work).await;
                Ok(Reply::with(
                    json!({"symbol": action.payload()["symbol"], "price": 42}),
                ))
            }
        })
    };
    let sharing = Sharing {
        scope,
        result_ttl: None,
    };
    let hub = super::support::one_rule_hub("quote", "symbol", "prices", agent, sharing)?
        .keep_alive(Duration::from_secs(5))
        .build()?;
    let started = Instant::now();
    let per_client = args.requests / args.clients;
    let extra = args.requests % args.clients;
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let h = hub.handle();
        let n = per_client + u64::from(c < extra);
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                let ev = Event::new(
                    "quote",
                    Principal::user("trader"),
                    json!({"symbol": "ACME"}),
                );
                let r = h.request(ev).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                let done = h
                    .wait(r.request_id, Duration::from_secs(60))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                ensure!(
                    done.state == RequestState::Complete,
                    "request ended {}",
                    done.state
                );
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await.context("client task")??;
    }
    let elapsed = started.elapsed();
    hub.shutdown().await;
    Ok(Run {
        per_s: args.requests as f64 / elapsed.as_secs_f64(),
        calls: calls.load(Ordering::Relaxed),
    })
}
