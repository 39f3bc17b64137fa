//! The PostgreSQL store passes the store conformance suite, each case in its own schema on a
//! real server (see `atamo_test_pg`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use atamo_core::store::conformance::{Open, Opened};
use atamo_core::store::Clock;
use atamo_store_postgres::{PgOptions, PostgresStore};
use atamo_test_pg::{fresh_schema, Pg};

/// Opens stores on the test server; holds the server for the case's whole run.
struct Postgres {
    pg: Pg,
}

impl Postgres {
    fn new() -> Self {
        Self { pg: Pg::start() }
    }
}

#[atamo_core::async_trait]
impl Open for Postgres {
    async fn open(&self, clock: Arc<dyn Clock>) -> Opened {
        let options = PgOptions {
            clock,
            schema: Some(fresh_schema("conformance")),
            pool_size: 4,
            ..PgOptions::default()
        };
        let store = PostgresStore::connect(&self.pg.url, options)
            .await
            .expect("connect");
        Opened::new(store)
    }
}

atamo_core::store_conformance!(Postgres::new());
