//! `atamo bench http`: `POST /v1/events` through the whole service (auth, parsing, the hub, one
//! rule, a no-op agent) against a bare handler answering 202 with the same kind of body, both
//! on loopback in this process, driven by the same in-process load generator over keep-alive
//! connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use atamo_core::{agent_fn, ActionTypeDef, AgentSpec, EventTypeDef, Reply};
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;

use super::support::median;
use crate::config::{Overrides, StoreConfig};
use crate::serve::Service;

/// Options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Requests per measured run.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Keep-alive connections sending at once.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Runs of each kind; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Events per call of the batch endpoint.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// What a run measured: calls answered per second, and events per second.
struct Rate {
    calls: f64,
    events: f64,
}

/// Sends `total` requests over `connections` keep-alive connections to `addr`, each with
/// `body`, and counts the answers with `want` status.
async fn load(
    addr: SocketAddr,
    path: &'static str,
    token: Arc<str>,
    body: Bytes,
    total: u64,
    connections: usize,
    want: StatusCode,
) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (next, token, body) = (next.clone(), token.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            let conn = tokio::spawn(conn);
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let req = Request::post(path)
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .header("authorization", &*token)
                    .body(Full::new(body.clone()))?;
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let _ = resp.into_body().collect().await?;
                ensure!(status == want, "answered {status}, not {want}");
            }
            drop(sender);
            let _ = conn.await;
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// A handler that reads the body and answers 202 with a receipt-sized body.
async fn bare(body: Bytes) -> (StatusCode, axum::Json<serde_json::Value>) {
    std::hint::black_box(body);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "event_id": "01890a5d-ac96-774b-bcce-b302099a8057",
            "correlation_id": "01890a5d-ac96-774b-bcce-b302099a8058",
        })),
    )
}

async fn serve_bare() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = axum::Router::new().route("/v1/events", axum::routing::post(bare));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}

/// A service on loopback with one event type, one rule and a no-op agent, no rate limit.
async fn serve_hub(
    dir: &std::path::Path,
    store: StoreConfig,
) -> anyhow::Result<(
    SocketAddr,
    String,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    tokio_util::sync::CancellationToken,
)> {
    let flags = Overrides {
        listen: Some("127.0.0.1:0".parse()?),
        data_dir: Some(dir.to_path_buf()),
        log_format: None,
    };
    let (mut cfg, _) =
        crate::config::load(None, &|_| None, &flags).map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.store = store;
    cfg.http.rate_limit = 0;
    let service = Service::start(&cfg).await?;
    let token = format!(
        "Bearer {}",
        service.admin_token.clone().context("no admin key made")?
    );
    let control = service.state().control.clone();
    control.register_event_type(EventTypeDef::new("bench.event").requiring(["n"])?)?;
    control.register_action_type(ActionTypeDef::new("sink"))?;
    control.register_agent(
        AgentSpec::new(
            "sink",
            agent_fn(|_, _| std::future::ready(Ok(Reply::done()))),
        )
        .handles(["sink"]),
    )?;
    let caller = crate::api::auth::Caller {
        key: "bench".into(),
        role: crate::api::auth::Role::Admin,
        tenant: None,
    };
    let rule = atamo_config::Rule::new(
        "bench-rule",
        "bench.event",
        "sink",
        "sink",
        json!({"n": "{{payload.n}}"}),
    );
    service
        .state()
        .registry
        .create_rule(rule, &caller)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = stop.clone();
    let task = tokio::spawn(async move {
        service
            .serve(listener, async move { signal.cancelled().await })
            .await
    });
    Ok((addr, token, task, stop))
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn event_body() -> Bytes {
    Bytes::from(json!({"type": "bench.event", "user": "bench", "payload": {"n": 1}}).to_string())
}

fn batch_body(n: usize) -> Bytes {
    let events: Vec<_> = (0..n)
        .map(|i| json!({"type": "bench.event", "user": "bench", "payload": {"n": i}}))
        .collect();
    Bytes::from(json!({ "events": events }).to_string())
}

async fn hub_run(
    args: &Args,
    store: StoreConfig,
    dir: &std::path::Path,
    batch: Option<usize>,
) -> anyhow::Result<Rate> {
    let (addr, token, task, stop) = serve_hub(dir, store).await?;
    let (path, body, per_call, calls) = match batch {
        Some(n) => (
            "/v1/events:batch",
            batch_body(n),
            n as f64,
            (args.requests / n as u64).max(1),
        ),
        None => ("/v1/events", event_body(), 1.0, args.requests),
    };
    let rate = load(
        addr,
        path,
        Arc::from(token.as_str()),
        body,
        calls,
        args.connections,
        StatusCode::ACCEPTED,
    )
    .await;
    stop.cancel();
    task.await??;
    let calls = rate?;
    Ok(Rate {
        calls,
        events: calls * per_call,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.requests > 0, "--requests must be at least 1");
    ensure!(args.connections > 0, "--connections must be at least 1");
    ensure!(args.runs > 0, "--runs must be at least 1");
    ensure!(
        (1..=crate::api::MAX_BATCH).contains(&args.batch),
        "--batch must be 1 to {}",
        crate::api::MAX_BATCH
    );
    let (rt, threads) = super::support::runtime(args.threads)?;
    let dir =
        TempDir(std::env::temp_dir().join(format!("atamo-bench-http-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).context("a temporary directory")?;
    println!(
        "http: {} requests per run over {} keep-alive connections, {} runs, {} runtime threads",
        args.requests, args.connections, args.runs, threads
    );
    println!(
        "{:<5} {:>12} {:>14} {:>8} {:>14} {:>16}",
        "run", "bare req/s", "stateless/s", "ratio", "stateful/s", "batch events/s"
    );
    let (mut bare_r, mut free_r, mut full_r, mut batch_r) = (vec![], vec![], vec![], vec![]);
    rt.block_on(async {
        let (bare_addr, bare_task) = serve_bare().await?;
        for i in 1..=args.runs {
            let run_dir = dir.0.join(format!("run-{i}"));
            let b = load(
                bare_addr,
                "/v1/events",
                Arc::from("Bearer none"),
                event_body(),
                args.requests,
                args.connections,
                StatusCode::ACCEPTED,
            )
            .await?;
            let f = hub_run(&args, StoreConfig::Memory, &run_dir.join("memory"), None).await?;
            let s = hub_run(
                &args,
                StoreConfig::Sqlite {
                    path: run_dir.join("sqlite").join("atamo.db"),
                },
                &run_dir.join("sqlite"),
                None,
            )
            .await?;
            let bt = hub_run(
                &args,
                StoreConfig::Memory,
                &run_dir.join("batch"),
                Some(args.batch),
            )
            .await?;
            println!(
                "{:<5} {:>12.0} {:>14.0} {:>8.3} {:>14.0} {:>16.0}",
                i,
                b,
                f.calls,
                f.calls / b,
                s.calls,
                bt.events
            );
            bare_r.push(b);
            free_r.push(f.calls);
            full_r.push(s.calls);
            batch_r.push(bt.events);
        }
        bare_task.abort();
        Ok::<(), anyhow::Error>(())
    })?;
    let (b, f, s, bt) = (
        median(bare_r),
        median(free_r),
        median(full_r),
        median(batch_r),
    );
    println!(
        "{:<5} {:>12.0} {:>14.0} {:>8.3} {:>14.0} {:>16.0}",
        "median",
        b,
        f,
        f / b,
        s,
        bt
    );
    println!(
        "{}",
        json!({
            "bench": "http",
            "requests": args.requests,
            "connections": args.connections,
            "runs": args.runs,
            "threads": threads,
            "bare_per_s": b.round(),
            "stateless_per_s": f.round(),
            "ratio": f / b,
            "stateful_sqlite_per_s": s.round(),
            "stateful_ratio": s / b,
            "batch_size": args.batch,
            "batch_events_per_s": bt.round(),
        })
    );
    Ok(())
}
