//! Durable write rate of the SQLite store: accept batches (one event and one action each)
//! written by concurrent tasks with `synchronous = FULL`, against `baseline_insert` of the same
//! rows in batches of 256.
//!
//! ```text
//! cargo run --release -p atamo-store-sqlite --example write_rate -- [WRITES] [TASKS]
//! ```
//!
//! Also runs one task alone (no group commit possible) and `synchronous = NORMAL`; with
//! `WRITE_RATE_OFF=1` set, `synchronous = OFF` too (no syncs: what the CPU costs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use atamo_core::store::conformance::accept_one;
use atamo_core::store::{AcceptEvent, BatchWriter, WriteBatch};
use atamo_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

async fn concurrent(dir: &std::path::Path, sync: Synchronous, writes: usize, tasks: usize) {
    let store = Arc::new(
        SqliteStore::open(
            dir.join(format!("concurrent-{sync:?}-{tasks}.db")),
            SqliteOptions::default().synchronous(sync),
        )
        .await
        .unwrap(),
    );
    let per_task = writes / tasks;
    let before = store.commits();
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    store.write(accept_one()).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let took = started.elapsed();
    let done = per_task * tasks;
    let commits = store.commits() - before;
    println!(
        "write, {tasks:>2} tasks, {sync:?}: {done} accepts in {:.2}s = {:.0} accepts/s \
         ({commits} commits, {:.1} accepts per commit)",
        took.as_secs_f64(),
        done as f64 / took.as_secs_f64(),
        done as f64 / commits.max(1) as f64,
    );
}

async fn baseline(dir: &std::path::Path, sync: Synchronous, writes: usize) {
    let store = SqliteStore::open(
        dir.join(format!("baseline-{sync:?}.db")),
        SqliteOptions::default().synchronous(sync),
    )
    .await
    .unwrap();
    let accepts: Vec<AcceptEvent> = (0..writes).flat_map(|_| accept_one().accepts).collect();
    let batches: Vec<WriteBatch> = accepts
        .chunks(256)
        .map(|c| WriteBatch {
            accepts: c.to_vec(),
            ..WriteBatch::default()
        })
        .collect();
    let n = batches.len();
    let started = Instant::now();
    let rows = store.baseline_insert(batches).await.unwrap();
    let took = started.elapsed();
    println!(
        "baseline, batches of 256, {sync:?}: {writes} events + actions ({rows} rows, {n} \
         commits) in {:.2}s = {:.0} accepts/s",
        took.as_secs_f64(),
        writes as f64 / took.as_secs_f64(),
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let writes: usize = args.next().map_or(20_000, |a| a.parse().unwrap());
    let tasks: usize = args.next().map_or(16, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    concurrent(dir.path(), Synchronous::Full, writes, tasks).await;
    concurrent(dir.path(), Synchronous::Full, (writes / 20).max(1), 1).await;
    baseline(dir.path(), Synchronous::Full, writes).await;
    concurrent(dir.path(), Synchronous::Normal, writes, tasks).await;
    baseline(dir.path(), Synchronous::Normal, writes).await;
    if std::env::var_os("WRITE_RATE_OFF").is_some() {
        concurrent(dir.path(), Synchronous::Off, writes, tasks).await;
        baseline(dir.path(), Synchronous::Off, writes).await;
    }
}
