//! The in-memory store passes the store conformance suite.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use atamo_core::store::conformance::Open;
use atamo_core::store::{Clock, MemoryStore, Store};

struct Memory;

impl Open for Memory {
    fn open(
        &self,
        clock: Arc<dyn Clock>,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move { Arc::new(MemoryStore::with_clock(clock)) as Arc<dyn Store> })
    }
}

atamo_core::store_conformance!(Memory);
