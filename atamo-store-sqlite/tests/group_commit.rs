//! Concurrent writes share transactions; the baseline inserts one transaction per batch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use atamo_core::store::conformance::accept_one;
use atamo_core::store::{
    AcceptOutcome, ActionQueue, ActionState, BatchWriter, EventLog, Maintenance, WriteBatch,
};
use atamo_store_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits() {
    const WRITES: u64 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("store.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let before = store.commits();
    let tasks: Vec<_> = (0..WRITES)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.write(accept_one()).await })
        })
        .collect();
    for task in tasks {
        let out = task.await.unwrap().unwrap();
        assert_eq!(out.accepted, vec![AcceptOutcome::New]);
    }
    let commits = store.commits() - before;
    assert!(
        commits < WRITES / 4,
        "{WRITES} writes took {commits} commits"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.events, WRITES);
    assert_eq!(stats.actions[&ActionState::Ready], WRITES);
    println!("{WRITES} concurrent writes, {commits} commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_claims_interleave_with_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("store.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    // Writers, claimers and readers at once: every action is claimed exactly once.
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    store.write(accept_one()).await.unwrap();
                    store.stats().await.unwrap();
                }
            })
        })
        .collect();
    let claimers: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let node = atamo_core::store::NodeId::new(format!("n{n}"));
                let mut mine = Vec::new();
                for _ in 0..200 {
                    let got = store
                        .claim(&node, 5, Duration::from_secs(60))
                        .await
                        .unwrap();
                    mine.extend(got.into_iter().map(|c| c.record.id));
                    tokio::task::yield_now().await;
                }
                mine
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    let node = atamo_core::store::NodeId::new("last");
    loop {
        let got = store
            .claim(&node, 100, Duration::from_secs(60))
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        claimed.extend(got.into_iter().map(|c| c.record.id));
    }
    let n = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), n, "an action was claimed twice");
    assert_eq!(n, 400);
    assert_eq!(
        store.stats().await.unwrap().actions[&ActionState::Leased],
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baseline_inserts_one_transaction_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("store.db"), SqliteOptions::default())
        .await
        .unwrap();
    let batches: Vec<WriteBatch> = (0..4)
        .map(|_| WriteBatch {
            accepts: (0..256).flat_map(|_| accept_one().accepts).collect(),
            ..WriteBatch::default()
        })
        .collect();
    let first = batches[0].accepts[0].clone();
    let before = store.commits();
    let rows = store.baseline_insert(batches).await.unwrap();
    assert_eq!(rows, 4 * 256 * 2);
    assert_eq!(store.commits() - before, 4);
    assert_eq!(
        store.event(first.event.id).await.unwrap(),
        Some(first.event)
    );
    let row = store
        .action(first.actions[0].record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, ActionState::Ready);
    assert_eq!(store.stats().await.unwrap().events, 1024);
    let report = store.check().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}
