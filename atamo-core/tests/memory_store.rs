//! The in-memory store passes the store conformance suite.

use std::sync::Arc;

use atamo_core::store::conformance::{Open, Opened};
use atamo_core::store::{Clock, MemoryStore};

struct Memory;

#[atamo_core::async_trait]
impl Open for Memory {
    async fn open(&self, clock: Arc<dyn Clock>) -> Opened {
        Opened::new(MemoryStore::with_clock(clock))
    }
}

atamo_core::store_conformance!(Memory);
