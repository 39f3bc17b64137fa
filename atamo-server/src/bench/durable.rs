//! `atamo bench durable`: events through a stateful hub on SQLite or PostgreSQL, accepted
//! (committed before each publisher is answered), delivered and settled; baseline: plain
//! batched inserts of the same event and action rows into the same database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use atamo_core::hub::StoreSettings;
use atamo_core::rules::Sharing;
use atamo_core::store::{
    AcceptEvent, ActionRecord, ActionState, EventRecord, NewAction, Store, WriteBatch,
};
use atamo_core::{agent_fn, Event, Principal, Reply};
use serde_json::json;

use super::support::median;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// One SQLite file (the embedded default), `synchronous=FULL`.
    Sqlite,
    /// A PostgreSQL server: `--url` or `ATAMO_POSTGRES_URL`.
    Postgres,
}

#[derive(clap::Args)]
pub struct Args {
    /// Which store.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    store: Backend,
    /// Events per run.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Publishers publishing at the same time (each waits for its commit).
    #[arg(long, default_value_t = 256)]
    publishers: usize,
    /// Runs of each side; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Where SQLite files go (default: a temporary directory, removed at the end).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// PostgreSQL connection string (default: `ATAMO_POSTGRES_URL`); each run uses a new schema,
    /// dropped at the end.
    #[arg(long)]
    url: Option<String>,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Where each run's database lives.
struct Place {
    backend: Backend,
    dir: std::path::PathBuf,
    remove_dir: bool,
    url: Option<String>,
    runs: AtomicU64,
    schemas: std::sync::Mutex<Vec<String>>,
}

/// A store opened for one run.
enum Opened {
    Sqlite(Arc<atamo_store_sqlite::SqliteStore>),
    Postgres(Arc<atamo_store_postgres::PostgresStore>),
}

impl Opened {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }

    async fn baseline_insert(&self, batches: Vec<WriteBatch>) -> anyhow::Result<u64> {
        Ok(match self {
            Self::Sqlite(s) => s.baseline_insert(batches).await?,
            Self::Postgres(s) => s.baseline_insert(batches).await?,
        })
    }
}

impl Place {
    async fn open(&self) -> anyhow::Result<Opened> {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        match self.backend {
            Backend::Sqlite => {
                let path = self.dir.join(format!("bench-{n}.db"));
                let store = atamo_store_sqlite::SqliteStore::open(
                    &path,
                    atamo_store_sqlite::SqliteOptions::default(),
                )
                .await?;
                Ok(Opened::Sqlite(Arc::new(store)))
            }
            Backend::Postgres => {
                let url = self.url.as_deref().context("no PostgreSQL URL")?;
                let schema = format!("atamo_bench_{}_{n}", std::process::id());
                self.schemas
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(schema.clone());
                let options = atamo_store_postgres::PgOptions {
                    schema: Some(schema),
                    ..atamo_store_postgres::PgOptions::default()
                };
                Ok(Opened::Postgres(Arc::new(
                    atamo_store_postgres::PostgresStore::connect(url, options).await?,
                )))
            }
        }
    }

    /// Sqlite: the files; PostgreSQL: the schemas.
    async fn clean_up(&self) -> anyhow::Result<()> {
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if let (Backend::Postgres, Some(url)) = (self.backend, &self.url) {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            let task = tokio::spawn(conn);
            let schemas = self
                .schemas
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .clone();
            for s in schemas {
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
                    .await?;
            }
            drop(client);
            let _ = task.await;
        }
        Ok(())
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.events > 0, "--events must be at least 1");
    ensure!(args.runs > 0, "--runs must be at least 1");
    ensure!(args.publishers > 0, "--publishers must be at least 1");
    let (rt, threads) = super::support::runtime(args.threads)?;
    let url = args
        .url
        .clone()
        .or_else(|| std::env::var("ATAMO_POSTGRES_URL").ok())
        .filter(|u| !u.trim().is_empty());
    if args.store == Backend::Postgres && url.is_none() {
        bail!("--store postgres needs --url or ATAMO_POSTGRES_URL");
    }
    let (dir, remove_dir) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("atamo-bench-durable-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let place = Place {
        backend: args.store,
        dir,
        remove_dir,
        url,
        runs: AtomicU64::new(0),
        schemas: std::sync::Mutex::new(Vec::new()),
    };
    let name = match args.store {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    println!(
        "durable ({name}): {} events per run, {} publishers, {} runs, {} runtime threads",
        args.events, args.publishers, args.runs, threads
    );
    println!(
        "{:<6} {:>14} {:>16} {:>8}",
        "run", "hub ev/s", "baseline ev/s", "ratio"
    );
    let mut hub_rates = Vec::new();
    let mut base_rates = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for i in 1..=args.runs {
            // Alternate the order so neither side always runs on a warmer machine.
            let (h, b) = if i % 2 == 1 {
                let b = rt.block_on(baseline(&place, args.events))?;
                (
                    rt.block_on(hub_run(&place, args.events, args.publishers))?,
                    b,
                )
            } else {
                let h = rt.block_on(hub_run(&place, args.events, args.publishers))?;
                (h, rt.block_on(baseline(&place, args.events))?)
            };
            println!("{:<6} {:>14.0} {:>16.0} {:>8.3}", i, h, b, h / b);
            hub_rates.push(h);
            base_rates.push(b);
        }
        Ok(())
    })();
    rt.block_on(place.clean_up())?;
    result?;
    let hub = median(hub_rates);
    let base = median(base_rates);
    println!(
        "{:<6} {:>14.0} {:>16.0} {:>8.3}",
        "median",
        hub,
        base,
        hub / base
    );
    println!(
        "{}",
        json!({
            "bench": "durable",
            "store": name,
            "events": args.events,
            "publishers": args.publishers,
            "runs": args.runs,
            "threads": threads,
            "events_per_s": hub.round(),
            "baseline_rows_per_s": base.round(),
            "baseline": "plain batched inserts of each event's event and action rows (512 events per transaction); rows_per_s counts events",
            "ratio": hub / base,
        })
    );
    Ok(())
}

/// Events accepted (each publisher waiting for its commit), delivered to a no-op agent and
/// settled, per second.
async fn hub_run(place: &Place, events: u64, publishers: usize) -> anyhow::Result<f64> {
    let store = place.open().await?.store();
    let done = Arc::new(AtomicU64::new(0));
    let counter = done.clone();
    let agent = agent_fn(move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(Reply::done()))
    });
    let hub = super::support::one_rule_hub("bench.event", "n", "sink", agent, Sharing::default())?
        .store_with(store.clone(), StoreSettings::default())
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..publishers {
        let handle = hub.handle();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= events {
                    return Ok::<(), anyhow::Error>(());
                }
                let e = Event::new("bench.event", Principal::user("bench"), json!({"n": n}));
                handle
                    .publish(e)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Delivered, then settled: every action done in the store.
    let limit = Instant::now() + Duration::from_secs(600);
    loop {
        let settled = if done.load(Ordering::Relaxed) >= events {
            let stats = store.stats().await?;
            stats.actions.get(&ActionState::Done).copied().unwrap_or(0) >= events
        } else {
            false
        };
        if settled {
            break;
        }
        ensure!(
            Instant::now() < limit,
            "the hub did not settle every action in time"
        );
        // Counting is a scan of the store: not too often, or it slows what it measures.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    hub.shutdown().await;
    Ok(events as f64 / elapsed.as_secs_f64())
}

/// The same rows (an event and its action per event) inserted in plain batches.
async fn baseline(place: &Place, events: u64) -> anyhow::Result<f64> {
    let store = place.open().await?;
    let mut batches = Vec::new();
    let mut n = 0;
    while n < events {
        let mut batch = WriteBatch::default();
        for _ in 0..512.min(events - n) {
            batch.accepts.push(rows(n));
            n += 1;
        }
        batches.push(batch);
    }
    let started = Instant::now();
    let inserted = store.baseline_insert(batches).await?;
    let elapsed = started.elapsed();
    ensure!(
        inserted >= events,
        "the baseline inserted {inserted} of {events} events' rows"
    );
    Ok(events as f64 / elapsed.as_secs_f64())
}

/// An event and its action, as the hub stores them.
fn rows(n: u64) -> AcceptEvent {
    let event = EventRecord::new(
        "bench.event",
        Principal::user("bench"),
        json!({"n": n}),
        atamo_core::message::Timestamp::now(),
    );
    let record = ActionRecord {
        rule: Some("bench-rule".into()),
        provider: Some("rules".into()),
        ..ActionRecord::new(&event, "sink", "sink", json!({"n": n}))
    };
    AcceptEvent::new(event, vec![NewAction::ready(record)])
}
