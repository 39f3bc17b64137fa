//! The SQLite store passes the store conformance suite, each case on a file of its own.

#![allow(clippy::expect_used)]

use std::sync::Arc;

use atamo_core::store::conformance::{Open, Opened};
use atamo_core::store::Clock;
use atamo_store_sqlite::{SqliteOptions, SqliteStore};

struct Sqlite;

#[atamo_core::async_trait]
impl Open for Sqlite {
    async fn open(&self, clock: Arc<dyn Clock>) -> Opened {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(
            dir.path().join("store.db"),
            SqliteOptions::default().clock(clock),
        )
        .await
        .expect("open");
        // The folder is removed once the case is over and the store is gone.
        Opened::new(store).keeping(dir)
    }
}

atamo_core::store_conformance!(Sqlite);
