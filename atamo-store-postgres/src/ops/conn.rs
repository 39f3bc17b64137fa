//! Pooled connections, and the notification that tells other nodes actions are ready.

use deadpool_postgres::Object;

use crate::error::Failure;
use crate::shared::Inner;

/// A connection from the pool.
pub(crate) async fn conn(inner: &Inner) -> Result<Object, Failure> {
    Ok(inner.pool.get().await?)
}

/// Tells every listening node that actions are ready. Only a hint: a failure is logged.
pub(crate) async fn notify(inner: &Inner) {
    let sent: Result<(), Failure> = async {
        let c = conn(inner).await?;
        let st = c.prepare_cached(crate::write::NOTIFY).await?;
        c.execute(&st, &[&inner.channel]).await?;
        Ok(())
    }
    .await;
    if let Err(e) = sent {
        let why = match e {
            Failure::Store(e) => e.detail(),
            Failure::Retry(why) => why.to_string(),
        };
        tracing::debug!(error = %why, "could not notify other nodes of ready actions");
    }
}
