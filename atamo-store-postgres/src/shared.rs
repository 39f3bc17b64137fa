//! What the store's handle, its writer task and its operations share.

use std::sync::Arc;

use atamo_core::store::Clock;
use deadpool_postgres::Pool;

/// What the store's handle, its writer task and its operations share.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) schema: String,
    /// The notification channel: the schema's name.
    pub(crate) channel: String,
    pub(crate) max_batch_items: usize,
}
