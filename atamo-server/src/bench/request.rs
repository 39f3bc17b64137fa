//! `atamo bench request`: the in-process request round trip.
//!
//! A client sends a request; one rule routes it to one in-process agent that answers at once
//! with `Reply::with(..)`; the client awaits the answer. Latency is measured per request, from
//! just before `request()` to having the answer, in two phases:
//!
//! 1. a fixed offered rate (open loop): requests start on a fixed schedule, each in its own
//!    task, whether or not earlier ones have been answered;
//! 2. the maximum rate: `--clients` tasks each loop request-then-await until `--requests` are
//!    done (closed loop).
//!
//! The baseline does the same over bare tokio: the client sends `(event, oneshot::Sender)` over
//! a bounded mpsc to a server task that answers at once.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use atamo_core::rules::Sharing;
use atamo_core::{agent_fn, Event, HubHandle, Principal, Reply, RequestState, RequestUpdate};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::support::median;

/// Options of `atamo bench request`.
#[derive(clap::Args)]
pub struct Args {
    /// Offered rate of the fixed-rate phase, in requests per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Length of the fixed-rate phase, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Requests of the maximum-rate phase.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Concurrent clients of the maximum-rate phase, each awaiting its answer before sending
    /// the next request.
    #[arg(long, default_value_t = 64)]
    clients: u64,
    /// Runs of each side; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// How the hub's client collects the answer.
    #[arg(long, value_enum, default_value_t = Collect::Wait)]
    collect: Collect,
    /// What starts the requests of the fixed-rate phase on schedule.
    #[arg(long, value_enum, default_value_t = Pacing::Thread)]
    pacing: Pacing,
}

/// What starts the fixed-rate requests on schedule.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Pacing {
    /// A dedicated thread sleeps until each request's time and spawns it onto the runtime, as a
    /// network connection's readiness would wake a worker: requests arrive one by one.
    Thread,
    /// A task on the runtime sleeps on the tokio timer. The timer ticks every millisecond, so
    /// requests start in bursts of rate/1000 and each one waits for the rest of its burst.
    Tokio,
}

impl Pacing {
    fn name(self) -> &'static str {
        match self {
            Self::Thread => "thread",
            Self::Tokio => "tokio",
        }
    }
}

/// How the hub's client collects the answer to its request.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Collect {
    /// `HubHandle::wait(id, timeout)`: what a client that wants the complete result uses, and so
    /// the default. It costs a timer per request and a snapshot at the end.
    Wait,
    /// `HubHandle::subscribe(id)`, read until `Finished`: no timer, no snapshot; for comparison.
    Subscribe,
}

impl Collect {
    fn name(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Subscribe => "subscribe",
        }
    }
}

/// How long one request may take before the benchmark gives up on it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests of the warm-up before each side's measured phases (not measured).
const WARM_UP: u64 = 5_000;
/// The most requests one phase may make.
const MAX_REQUESTS: u64 = 10_000_000;
/// Capacity of the baseline's channel: the same as the hub's default ingress queue.
const BASELINE_QUEUE: usize = 8192;

/// What the server side of the baseline receives: the request and where to send the answer.
type BaselineRequest = (Event, oneshot::Sender<Value>);

/// One side's way to make a request and await its answer.
#[derive(Clone)]
enum Client {
    /// Through the hub: request, one rule, one in-process agent, answer.
    Hub { handle: HubHandle, collect: Collect },
    /// Through a raw tokio oneshot round trip.
    Baseline { tx: mpsc::Sender<BaselineRequest> },
}

impl Client {
    /// Sends one request and awaits its answer; returns the time from just before the request
    /// to having the answer.
    async fn round_trip(&self, event: Event) -> anyhow::Result<Duration> {
        let n = event.payload()["n"].clone();
        let started = Instant::now();
        let answer = match self {
            Self::Hub { handle, collect } => {
                let receipt = handle.request(event).await?;
                let id = receipt.request_id;
                match collect {
                    Collect::Wait => {
                        let snapshot = handle.wait(id, ANSWER_TIMEOUT).await?;
                        let elapsed = started.elapsed();
                        ensure!(
                            snapshot.state == RequestState::Complete,
                            "request {id} ended as {:?}",
                            snapshot.state
                        );
                        let answer = snapshot
                            .answers
                            .first()
                            .with_context(|| format!("request {id} has no answer"))?;
                        ensure!(
                            answer.payload["n"] == n,
                            "request {id}: wrong answer {}",
                            answer.payload
                        );
                        return Ok(elapsed);
                    }
                    Collect::Subscribe => {
                        let mut stream = handle.subscribe(id)?;
                        let mut answer = None;
                        while let Some(update) = stream.next().await {
                            match update {
                                RequestUpdate::Answer(a) => answer = Some(a.payload),
                                RequestUpdate::Finished(state) => {
                                    let elapsed = started.elapsed();
                                    ensure!(
                                        state == RequestState::Complete,
                                        "request {id} ended as {state:?}"
                                    );
                                    let answer = answer
                                        .with_context(|| format!("request {id} has no answer"))?;
                                    ensure!(
                                        answer["n"] == n,
                                        "request {id}: wrong answer {answer}"
                                    );
                                    return Ok(elapsed);
                                }
                                _ => {}
                            }
                        }
                        bail!("request {id}: the stream ended without `Finished`")
                    }
                }
            }
            Self::Baseline { tx } => {
                let (reply_tx, reply_rx) = oneshot::channel();
                tx.send((event, reply_tx))
                    .await
                    .map_err(|_| anyhow::anyhow!("the baseline server stopped"))?;
                reply_rx
                    .await
                    .context("the baseline server dropped a request")?
            }
        };
        let elapsed = started.elapsed();
        ensure!(answer["n"] == n, "wrong answer {answer}");
        Ok(elapsed)
    }
}

/// Latency percentiles of one phase, in microseconds.
#[derive(Clone, Copy)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Latency {
    /// The percentiles of `samples` (nearest rank).
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len().max(1));
            samples.get(rank - 1).map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    /// The median of each percentile over runs.
    fn median(runs: &[Self]) -> Self {
        let m = |f: fn(&Self) -> f64| median(runs.iter().map(f).collect());
        Self {
            p50: m(|l| l.p50),
            p90: m(|l| l.p90),
            p99: m(|l| l.p99),
            max: m(|l| l.max),
        }
    }
}

/// One side's figures in one run.
#[derive(Clone, Copy)]
struct SideRun {
    /// Latency at the fixed offered rate.
    fixed: Latency,
    /// Requests answered per second during the fixed-rate phase.
    achieved_per_s: f64,
    /// Median delay between a request's scheduled start and its actual start, in µs.
    start_lag_p50_us: f64,
    /// Requests per second at the maximum rate.
    max_rate_per_s: f64,
    /// Latency at the maximum rate.
    max_rate: Latency,
}

impl SideRun {
    /// The median of each figure over runs.
    fn median(runs: &[Self]) -> Self {
        let m = |f: fn(&Self) -> f64| median(runs.iter().map(f).collect());
        let fixed: Vec<_> = runs.iter().map(|r| r.fixed).collect();
        let max_rate: Vec<_> = runs.iter().map(|r| r.max_rate).collect();
        Self {
            fixed: Latency::median(&fixed),
            achieved_per_s: m(|r| r.achieved_per_s),
            start_lag_p50_us: m(|r| r.start_lag_p50_us),
            max_rate_per_s: m(|r| r.max_rate_per_s),
            max_rate: Latency::median(&max_rate),
        }
    }
}

/// Runs the benchmark and prints a table, then one JSON object as the last line.
pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.rate > 0, "--rate must be at least 1");
    ensure!(
        args.seconds > 0.0 && args.seconds <= 600.0,
        "--seconds must be above 0 and at most 600"
    );
    ensure!(args.requests > 0, "--requests must be at least 1");
    ensure!(args.clients > 0, "--clients must be at least 1");
    ensure!(args.runs > 0, "--runs must be at least 1");
    let fixed_n = (args.rate as f64 * args.seconds).round().max(1.0) as u64;
    // Every request's event is built before the phase starts: keep that memory bounded.
    ensure!(
        fixed_n <= MAX_REQUESTS && args.requests <= MAX_REQUESTS,
        "at most {MAX_REQUESTS} requests per phase (--rate times --seconds, and --requests)"
    );
    let (rt, threads) = super::support::runtime(args.threads)?;
    let plan = Plan {
        rate: args.rate,
        pacing: args.pacing,
        fixed_n,
        requests: args.requests,
        clients: args.clients,
    };

    println!(
        "request round trip: {} req/s offered for {} s ({} requests, paced by {}), then {} \
         requests from {} clients; {} runs, {} runtime threads, hub client collects with `{}`",
        args.rate,
        args.seconds,
        fixed_n,
        args.pacing.name(),
        args.requests,
        args.clients,
        args.runs,
        threads,
        args.collect.name()
    );
    println!(
        "latency in µs from just before the request to having the answer; `lag p50`: how late \
         requests started after their scheduled time"
    );
    println!(
        "{:<7} {:<9} {:>8} {:>8} {:>8} {:>9} {:>10} {:>8} {:>11} {:>9} {:>9}",
        "run",
        "side",
        "p50",
        "p90",
        "p99",
        "max",
        "achieved/s",
        "lag p50",
        "max rate/s",
        "max p50",
        "max p99"
    );
    let mut hub_runs = Vec::new();
    let mut base_runs = Vec::new();
    for i in 1..=args.runs {
        // Alternate the order so neither side always runs on a warmer machine.
        let (h, b) = if i % 2 == 1 {
            let b = rt.block_on(baseline_side(&plan))?;
            (rt.block_on(hub_side(&plan, args.collect))?, b)
        } else {
            let h = rt.block_on(hub_side(&plan, args.collect))?;
            (h, rt.block_on(baseline_side(&plan))?)
        };
        print_row(&i.to_string(), "hub", &h);
        print_row(&i.to_string(), "baseline", &b);
        hub_runs.push(h);
        base_runs.push(b);
    }
    let hub = SideRun::median(&hub_runs);
    let base = SideRun::median(&base_runs);
    print_row("median", "hub", &hub);
    print_row("median", "baseline", &base);
    let ratio = |h: f64, b: f64| if b > 0.0 { h / b } else { f64::NAN };
    println!(
        "{:<7} {:<9} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>10} {:>8} {:>11.3} {:>9.2} {:>9.2}",
        "ratio",
        "hub/base",
        ratio(hub.fixed.p50, base.fixed.p50),
        ratio(hub.fixed.p90, base.fixed.p90),
        ratio(hub.fixed.p99, base.fixed.p99),
        ratio(hub.fixed.max, base.fixed.max),
        "",
        "",
        ratio(hub.max_rate_per_s, base.max_rate_per_s),
        ratio(hub.max_rate.p50, base.max_rate.p50),
        ratio(hub.max_rate.p99, base.max_rate.p99),
    );
    let worst_max = hub_runs.iter().map(|r| r.fixed.max).fold(0.0, f64::max);
    let us = |x: f64| (x * 10.0).round() / 10.0;
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    println!(
        "{}",
        json!({
            "bench": "request",
            "collect": args.collect.name(),
            "runs": args.runs,
            "threads": threads,
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "clients": args.clients,
            "pacing": args.pacing.name(),
            "requests": args.requests,
            "p50_us": us(hub.fixed.p50),
            "p90_us": us(hub.fixed.p90),
            "p99_us": us(hub.fixed.p99),
            "max_us": us(hub.fixed.max),
            "max_us_worst_run": us(worst_max),
            "achieved_per_s": hub.achieved_per_s.round(),
            "max_rate_per_s": hub.max_rate_per_s.round(),
            "max_rate_p50_us": us(hub.max_rate.p50),
            "max_rate_p99_us": us(hub.max_rate.p99),
            "baseline_p50_us": us(base.fixed.p50),
            "baseline_p90_us": us(base.fixed.p90),
            "baseline_p99_us": us(base.fixed.p99),
            "baseline_max_us": us(base.fixed.max),
            "baseline_achieved_per_s": base.achieved_per_s.round(),
            "baseline_max_rate_per_s": base.max_rate_per_s.round(),
            "baseline_max_rate_p50_us": us(base.max_rate.p50),
            "baseline_max_rate_p99_us": us(base.max_rate.p99),
            "p50_ratio": r3(ratio(hub.fixed.p50, base.fixed.p50)),
            "p99_ratio": r3(ratio(hub.fixed.p99, base.fixed.p99)),
            "max_rate_ratio": r3(ratio(hub.max_rate_per_s, base.max_rate_per_s)),
        })
    );
    Ok(())
}

fn print_row(run: &str, side: &str, r: &SideRun) {
    println!(
        "{:<7} {:<9} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>10.0} {:>8.1} {:>11.0} {:>9.1} {:>9.1}",
        run,
        side,
        r.fixed.p50,
        r.fixed.p90,
        r.fixed.p99,
        r.fixed.max,
        r.achieved_per_s,
        r.start_lag_p50_us,
        r.max_rate_per_s,
        r.max_rate.p50,
        r.max_rate.p99,
    );
}

/// What each side runs.
struct Plan {
    rate: u64,
    pacing: Pacing,
    fixed_n: u64,
    requests: u64,
    clients: u64,
}

/// `n` request events, numbered from 0.
fn events(n: u64) -> Vec<Event> {
    let principal = Principal::user("bench");
    (0..n)
        .map(|i| Event::new("bench.request", principal.clone(), json!({ "n": i })))
        .collect()
}

/// The hub side of one run: a fresh hub with one rule and one echoing agent.
async fn hub_side(plan: &Plan, collect: Collect) -> anyhow::Result<SideRun> {
    let agent = agent_fn(|action, _ctx| {
        let n = action.payload()["n"].clone();
        std::future::ready(Ok(Reply::with(json!({ "n": n }))))
    });
    let hub =
        super::support::one_rule_hub("bench.request", "n", "echo", agent, Sharing::default())?
            .build()?;
    let client = Client::Hub {
        handle: hub.handle(),
        collect,
    };
    let result = measure(&client, plan).await;
    drop(client);
    hub.shutdown().await;
    result
}

/// The baseline side of one run: a server task that answers each request at once.
async fn baseline_side(plan: &Plan) -> anyhow::Result<SideRun> {
    let (tx, mut rx) = mpsc::channel::<BaselineRequest>(BASELINE_QUEUE);
    let server = tokio::spawn(async move {
        while let Some((event, reply)) = rx.recv().await {
            let n = event.payload()["n"].clone();
            // The client may have given up; nothing to do then.
            let _ = reply.send(json!({ "n": n }));
        }
    });
    let client = Client::Baseline { tx };
    let result = measure(&client, plan).await;
    drop(client);
    server.await?;
    result
}

/// Warm-up, then the fixed-rate phase, then the maximum-rate phase, through `client`.
async fn measure(client: &Client, plan: &Plan) -> anyhow::Result<SideRun> {
    max_rate(client, WARM_UP.min(plan.requests), plan.clients).await?;
    let (fixed, achieved_per_s, start_lag_p50_us) = fixed_rate(client, plan).await?;
    let (max_rate_per_s, max_rate) = max_rate(client, plan.requests, plan.clients).await?;
    Ok(SideRun {
        fixed,
        achieved_per_s,
        start_lag_p50_us,
        max_rate_per_s,
        max_rate,
    })
}

/// Open loop: request `i` is started at `start + i / rate` in a task of its own, whatever
/// became of the earlier ones. Returns the latencies, the rate at which requests were answered
/// (all of them over the time from the first scheduled start to the last answer) and the median
/// start lag in µs.
async fn fixed_rate(client: &Client, plan: &Plan) -> anyhow::Result<(Latency, f64, f64)> {
    let (rate, n) = (plan.rate, plan.fixed_n);
    let events = events(n);
    let capacity = usize::try_from(n).unwrap_or(usize::MAX);
    let start = Instant::now() + Duration::from_millis(1);
    let due = move |i: u64| -> anyhow::Result<Instant> {
        let offset = u64::try_from(u128::from(i) * 1_000_000_000 / u128::from(rate))
            .context("schedule overflow")?;
        Ok(start + Duration::from_nanos(offset))
    };
    let runtime = tokio::runtime::Handle::current();
    let spawn = {
        let client = client.clone();
        move |event: Event, due: Instant| {
            let client = client.clone();
            runtime.spawn(async move {
                let lag = Instant::now().saturating_duration_since(due);
                let latency = client.round_trip(event).await?;
                anyhow::Ok((lag, latency, Instant::now()))
            })
        }
    };
    let tasks = match plan.pacing {
        Pacing::Thread => {
            tokio::task::spawn_blocking(move || {
                let mut tasks = Vec::with_capacity(capacity);
                for (i, event) in (0u64..).zip(events) {
                    let due = due(i)?;
                    let now = Instant::now();
                    if now < due {
                        std::thread::sleep(due - now);
                    }
                    tasks.push(spawn(event, due));
                }
                anyhow::Ok(tasks)
            })
            .await??
        }
        Pacing::Tokio => {
            let mut tasks = Vec::with_capacity(capacity);
            for (i, event) in (0u64..).zip(events) {
                let due = due(i)?;
                if Instant::now() < due {
                    tokio::time::sleep_until(due.into()).await;
                }
                tasks.push(spawn(event, due));
            }
            tasks
        }
    };
    let mut latencies = Vec::with_capacity(capacity);
    let mut lags = Vec::with_capacity(capacity);
    let mut last = start;
    for t in tasks {
        let (lag, latency, done) = t.await??;
        latencies.push(latency);
        lags.push(lag.as_secs_f64() * 1e6);
        last = last.max(done);
    }
    let achieved = n as f64 / last.duration_since(start).as_secs_f64();
    Ok((Latency::of(latencies), achieved, median(lags)))
}

/// Closed loop: `clients` tasks each send a request and await its answer, then the next, until
/// `n` requests are answered. Returns requests per second and the latencies.
async fn max_rate(client: &Client, n: u64, clients: u64) -> anyhow::Result<(f64, Latency)> {
    let clients = clients.min(n);
    let mut events = events(n).into_iter();
    let mut batches = Vec::new();
    for c in 0..clients {
        // Spread `n` over the clients; the first `n % clients` take one more.
        let take = n / clients + u64::from(c < n % clients);
        let batch: Vec<Event> = events
            .by_ref()
            .take(usize::try_from(take).unwrap_or(usize::MAX))
            .collect();
        batches.push(batch);
    }
    let started = Instant::now();
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(batch.len());
                for event in batch {
                    latencies.push(client.round_trip(event).await?);
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(usize::try_from(n).unwrap_or(usize::MAX));
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed();
    Ok((n as f64 / elapsed.as_secs_f64(), Latency::of(latencies)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples = (1..=100).map(Duration::from_micros).collect();
        let l = Latency::of(samples);
        assert_eq!(l.p50, 50.0);
        assert_eq!(l.p90, 90.0);
        assert_eq!(l.p99, 99.0);
        assert_eq!(l.max, 100.0);
    }

    #[test]
    fn percentiles_of_nothing_are_zero() {
        let l = Latency::of(Vec::new());
        assert_eq!(l.p50, 0.0);
        assert_eq!(l.max, 0.0);
    }
}
