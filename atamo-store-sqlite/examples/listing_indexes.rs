//! What indexes for listing events would cost the write path: concurrent accepts (one event
//! and one ready action each, `synchronous = FULL`) with events spread over many users,
//! tenants and types, on a store as it is and with extra indexes on `events`, run in turns.
//!
//! ```text
//! cargo run --release -p atamo-store-sqlite --example listing_indexes -- [WRITES] [TASKS] [ROUNDS] [full|normal|off]
//! ```
//!
//! Syncs make the rates of one variant vary a lot from run to run on a shared disk; besides
//! the medians, each round's rates relative to the schema as is (run next to them) are
//! printed, and `off` (no syncs) shows what the CPU and the pages written cost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use atamo_core::message::Timestamp;
use atamo_core::store::{
    AcceptEvent, ActionRecord, BatchWriter, EventRecord, NewAction, WriteBatch,
};
use atamo_core::Principal;
use atamo_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use serde_json::json;

/// The variants: a name and the indexes created on top of the schema. An index's entries end
/// with the rowid (`seq`), so `(tenant)` lists a tenant's events in `seq` order.
const VARIANTS: [(&str, &[&str]); 4] = [
    ("schema as is", &[]),
    (
        "+ tenant",
        &["CREATE INDEX x_tenant ON events (tenant) WHERE tenant IS NOT NULL"],
    ),
    ("+ user", &["CREATE INDEX x_user ON events (user_id)"]),
    (
        "+ tenant, user, type",
        &[
            "CREATE INDEX x_tenant ON events (tenant) WHERE tenant IS NOT NULL",
            "CREATE INDEX x_user ON events (user_id)",
            "CREATE INDEX x_type ON events (event_type)",
        ],
    ),
];

/// One accept: an event of one of 20 types, for one of 1000 users, in one of 50 tenants (or
/// none, one time in three), with one ready action.
fn accept() -> WriteBatch {
    let mut principal = Principal::user(format!("user-{}", fastrand::u32(..1000)));
    if fastrand::u32(..3) > 0 {
        principal = principal.in_tenant(format!("tenant-{}", fastrand::u32(..50)));
    }
    let event = EventRecord::new(
        format!("type.{}", fastrand::u32(..20)),
        principal,
        json!({"n": fastrand::u64(..), "state": "open"}),
        Timestamp::now(),
    );
    let action = ActionRecord::new(&event, "mailer", "email.send", json!({"n": 1}));
    WriteBatch::accepting(vec![AcceptEvent::new(
        event,
        vec![NewAction::ready(action)],
    )])
}

async fn run(
    dir: &std::path::Path,
    n: usize,
    indexes: &[&str],
    (writes, tasks, sync): (usize, usize, Synchronous),
) -> f64 {
    let path = dir.join(format!("run-{n}.db"));
    let store = Arc::new(
        SqliteStore::open(&path, SqliteOptions::default().synchronous(sync))
            .await
            .unwrap(),
    );
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in indexes {
            conn.execute_batch(sql).unwrap();
        }
    }
    let per_task = writes / tasks;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    store.write(accept()).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let rate = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
    Arc::into_inner(store).unwrap().close().await.unwrap();
    std::fs::remove_file(&path).unwrap();
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let writes: usize = args.next().map_or(50_000, |a| a.parse().unwrap());
    let tasks: usize = args.next().map_or(256, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(3, |a| a.parse().unwrap());
    let sync = match args.next().as_deref() {
        None | Some("full") => Synchronous::Full,
        Some("normal") => Synchronous::Normal,
        Some("off") => Synchronous::Off,
        Some(other) => panic!("unknown synchronous level {other}"),
    };
    println!("{writes} accepts from {tasks} tasks, {rounds} rounds, {sync:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut rates = vec![Vec::new(); VARIANTS.len()];
    let mut relative = vec![Vec::new(); VARIANTS.len()];
    let mut n = 0;
    for round in 0..rounds {
        // Each round in another order, so no variant always runs on a warmer machine.
        let mut order: Vec<usize> = (0..VARIANTS.len()).collect();
        order.rotate_left(round % VARIANTS.len());
        let mut this = vec![0.0; VARIANTS.len()];
        for v in order {
            n += 1;
            let rate = run(dir.path(), n, VARIANTS[v].1, (writes, tasks, sync)).await;
            println!("round {round}: {:<22} {rate:>8.0} accepts/s", VARIANTS[v].0);
            rates[v].push(rate);
            this[v] = rate;
        }
        for v in 0..VARIANTS.len() {
            relative[v].push(this[v] / this[0]);
        }
    }
    let base = median(rates[0].clone());
    for (v, r) in rates.into_iter().enumerate() {
        let m = median(r);
        println!(
            "median {:<22} {m:>8.0} accepts/s  {:>+6.1}%   median of the rounds' ratios {:>+6.1}%",
            VARIANTS[v].0,
            (m / base - 1.0) * 100.0,
            (median(relative[v].clone()) - 1.0) * 100.0
        );
    }
}
