//! The PostgreSQL store passes the store conformance suite, each case in its own schema on a
//! real server (see `atamo_test_pg`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use atamo_core::store::conformance::Open;
use atamo_core::store::{Clock, Store};
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

impl Open for Postgres {
    fn open(
        &self,
        clock: Arc<dyn Clock>,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let options = PgOptions {
                clock,
                schema: Some(fresh_schema("conformance")),
                pool_size: 4,
                ..PgOptions::default()
            };
            let store = PostgresStore::connect(&self.pg.url, options)
                .await
                .expect("connect");
            Arc::new(store) as Arc<dyn Store>
        })
    }
}

atamo_core::store_conformance!(Postgres::new());
