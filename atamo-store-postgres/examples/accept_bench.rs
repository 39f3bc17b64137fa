//! A quick measurement, not a test: accept-batch writes per second (one event and one action
//! each) from concurrent tasks through group commit, against `baseline_insert` of the same rows
//! in batches of 256.
//!
//! ```text
//! cargo run --release -p atamo-store-postgres --example accept_bench -- [events] [tasks] [leased]
//! ```
//!
//! The actions are enqueued ready (each write then also notifies other nodes), or with
//! `leased` already leased to the writing node, as a hub routing its own events does.
//!
//! The server is `ATAMO_TEST_POSTGRES_URL`'s, or one started for the run (see `atamo_test_pg`;
//! that one runs with `fsync=off`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use atamo_core::message::Timestamp;
use atamo_core::store::conformance::{action, event};
use atamo_core::store::{AcceptEvent, BatchWriter, NewAction, NodeId, SystemClock, WriteBatch};
use atamo_store_postgres::{PgOptions, PostgresStore};
use atamo_test_pg::{fresh_schema, Pg};

static LEASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn accept() -> AcceptEvent {
    let e = event("alice", Some("acme"), Timestamp::now());
    let a = action(&e, "mailer");
    AcceptEvent {
        event: e,
        dedupe_window: Duration::from_secs(60),
        actions: vec![NewAction {
            record: a,
            lease: LEASED
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(|| (NodeId::new("bench"), Duration::from_secs(60))),
        }],
    }
}

async fn store(pg: &Pg, name: &str) -> Arc<PostgresStore> {
    let options = PgOptions {
        clock: Arc::new(SystemClock),
        schema: Some(fresh_schema(name)),
        ..PgOptions::default()
    };
    Arc::new(PostgresStore::connect(&pg.url, options).await.unwrap())
}

async fn group_commit(pg: &Pg, events: usize, tasks: usize) -> f64 {
    let store = store(pg, "bench_write").await;
    // Warm up: connections and prepared statements.
    for _ in 0..50 {
        store
            .write(WriteBatch {
                accepts: vec![accept()],
                ..WriteBatch::default()
            })
            .await
            .unwrap();
    }
    let per_task = events / tasks;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let out = store
                        .write(WriteBatch {
                            accepts: vec![accept()],
                            ..WriteBatch::default()
                        })
                        .await
                        .unwrap();
                    assert_eq!(out.accepted.len(), 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (per_task * tasks) as f64 / started.elapsed().as_secs_f64()
}

async fn baseline(pg: &Pg, events: usize) -> f64 {
    let store = store(pg, "bench_base").await;
    let warm: Vec<WriteBatch> = vec![WriteBatch {
        accepts: (0..50).map(|_| accept()).collect(),
        ..WriteBatch::default()
    }];
    store.baseline_insert(warm).await.unwrap();
    let batches: Vec<WriteBatch> = (0..events.div_ceil(256))
        .map(|i| WriteBatch {
            accepts: (0..256.min(events - i * 256)).map(|_| accept()).collect(),
            ..WriteBatch::default()
        })
        .collect();
    let started = Instant::now();
    let rows = store.baseline_insert(batches).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(rows, 2 * events as u64);
    events as f64 / elapsed
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(20_000, |a| a.parse().unwrap());
    let tasks: usize = args.next().map_or(16, |a| a.parse().unwrap());
    let leased = args.next().is_some_and(|a| a == "leased");
    LEASED.store(leased, std::sync::atomic::Ordering::Relaxed);
    let pg = Pg::start();
    let one = group_commit(&pg, events / 10, 1).await;
    let merged = group_commit(&pg, events, tasks).await;
    let base = baseline(&pg, events).await;
    let kind = if leased { "leased" } else { "ready" };
    println!("accept batches of one event + one {kind} action, {events} events");
    println!("  write, 1 task (no merging):    {one:>9.0} writes/s");
    println!("  write, {tasks} tasks (group commit): {merged:>9.0} writes/s");
    println!("  baseline_insert, batches of 256: {base:>9.0} events/s (+ as many actions)");
    println!(
        "  group commit reaches {:.0}% of the baseline",
        100.0 * merged / base
    );
}
