//! The file itself: options that reach SQLite, newer schema versions, damaged files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use atamo_core::message::Timestamp;
use atamo_core::store::conformance::{action, event};
use atamo_core::store::{AcceptEvent, BatchWriter, Maintenance, NewAction, StoreError, WriteBatch};
use atamo_store_sqlite::{SqliteOptions, SqliteStore, Synchronous, SCHEMA_VERSION};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_synchronous_option_is_what_sqlite_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    for (i, level) in [Synchronous::Full, Synchronous::Normal, Synchronous::Off]
        .into_iter()
        .enumerate()
    {
        let store = SqliteStore::open(
            dir.path().join(format!("{i}.db")),
            SqliteOptions::default().synchronous(level),
        )
        .await
        .unwrap();
        assert_eq!(store.synchronous().await.unwrap(), level);
    }
    let store = SqliteStore::open(dir.path().join("default.db"), SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(store.synchronous().await.unwrap(), Synchronous::Full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let newer = SCHEMA_VERSION + 6;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .expect_err("a newer schema opens");
    let StoreError::Corrupt { message, .. } = &err else {
        panic!("not a Corrupt error: {err:?}");
    };
    assert!(
        message.contains(&newer.to_string()) && message.contains(&SCHEMA_VERSION.to_string()),
        "{message}"
    );
    // Nothing was changed by the refused open.
    let found: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(found, newer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    std::fs::write(&path, "these are notes, not a database\n".repeat(400)).unwrap();
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .expect_err("opens a text file");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(
        &path,
        SqliteOptions::default().synchronous(Synchronous::Off),
    )
    .await
    .unwrap();
    for _ in 0..20 {
        let accepts = (0..100)
            .map(|i| {
                let mut e = event("alice", Some("acme"), Timestamp::now());
                e.payload = json!({"order": i, "text": "x".repeat(300)});
                let a = action(&e, "mailer");
                AcceptEvent {
                    event: e,
                    dedupe_window: Duration::ZERO,
                    actions: vec![NewAction {
                        record: a,
                        lease: None,
                    }],
                }
            })
            .collect();
        store
            .write(WriteBatch {
                accepts,
                ..WriteBatch::default()
            })
            .await
            .unwrap();
    }
    store.close().await.unwrap();
    // Closing checkpointed everything into the file and emptied the WAL.
    let wal = dir.path().join("store.db-wal");
    assert_eq!(std::fs::metadata(&wal).map_or(0, |m| m.len()), 0);

    // Overwrite 16 pages in the middle of the file.
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 1 << 20, "the file holds {len} bytes");
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
    file.write_all(&[0xA5; 16 * 4096]).unwrap();
    file.sync_all().unwrap();
    drop(file);

    match SqliteStore::open(&path, SqliteOptions::default()).await {
        Err(err) => assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}"),
        Ok(store) => {
            let report = store.check().await.expect("check");
            assert!(!report.ok(), "the damage went unnoticed");
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.contains("sqlite integrity")),
                "{:?}",
                report.problems
            );
            println!(
                "check found: {:?}",
                &report.problems[..report.problems.len().min(3)]
            );
        }
    }
}
