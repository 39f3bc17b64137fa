//! PostgreSQL and pool errors as [`StoreError`]s (the original error as their source), and
//! retrying what the server rolled back.

use std::error::Error;
use std::future::Future;
use std::time::Duration;

use atamo_core::store::StoreError;
use tokio_postgres::error::SqlState;

/// Why one attempt at an operation failed.
pub(crate) enum Failure {
    /// The server rolled the transaction back (deadlock, serialization failure): run it again.
    /// The error says why.
    Retry(Box<dyn Error + Send + Sync>),
    /// Anything else.
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED => Self::Retry(Box::new(e)),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE => Self::Retry(Box::new(e)),
            _ => Self::Store(store_error(e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Backend(e) => e.into(),
            PoolError::Closed => Self::Store(StoreError::Closed),
            other => {
                Self::Store(StoreError::unavailable("no database connection").with_source(other))
            }
        }
    }
}

/// Maps a PostgreSQL error, keeping it as the source: data the server rejects is `Invalid`, a
/// schema that does not fit is `Corrupt`, everything else (connections, resources, shutdowns,
/// locks) `Unavailable`. The server's errors are named by their SQLSTATE code.
pub(crate) fn store_error(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        // The client's own errors have no code; their wording is all there is to go by.
        let shown = e.to_string();
        let error = if shown.starts_with("error serializing parameter") {
            StoreError::invalid("a value cannot be sent to postgres")
        } else if shown.starts_with("error deserializing column") {
            StoreError::corrupt("a stored value does not decode")
        } else {
            StoreError::unavailable("postgres failed")
        };
        return error.with_source(e);
    };
    let code = db.code().code().to_owned();
    let message = format!("postgres {code}");
    let error = match code.get(..2).unwrap_or("") {
        // Data exceptions (a NUL byte in a text, for example) and constraint violations.
        "22" | "23" => StoreError::invalid(message),
        // Missing privileges: refused, and may work once granted.
        "42" if code == "42501" => StoreError::unavailable(message),
        // Undefined tables or columns: the schema is not what this version expects.
        "42" | "XX" => StoreError::corrupt(message),
        _ => StoreError::unavailable(message),
    };
    // The server's own error (severity, message, detail) is the source.
    match e.into_source() {
        Some(db) => error.with_source(db),
        None => error,
    }
}

/// A column that does not decode.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(format!("{what}: {e}"))
}

/// How often an operation the server rolled back is run again.
const TRIES: u32 = 8;

/// Runs `op` until it succeeds, fails for good, or was rolled back [`TRIES`] times.
pub(crate) async fn retrying<T, F, Fut>(what: &str, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(Failure::Store(e)) => return Err(e),
            Err(Failure::Retry(why)) => {
                tries += 1;
                if tries >= TRIES {
                    return Err(StoreError::unavailable(format!(
                        "{what}: rolled back {tries} times"
                    ))
                    .with_source(why));
                }
                tracing::debug!(what, tries, %why, "transaction rolled back by the server; running it again");
                let jitter = fastrand::u64(1..=5 * u64::from(tries));
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
        }
    }
}

/// A pool error as a [`StoreError`].
pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match Failure::from(e) {
        Failure::Store(e) => e,
        Failure::Retry(why) => {
            StoreError::unavailable("the server rolled the transaction back").with_source(why)
        }
    }
}
