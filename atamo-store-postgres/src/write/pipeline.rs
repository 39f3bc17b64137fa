//! Statements pipelined on one connection, in an explicit transaction.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use atamo_core::store::StoreError;
use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use crate::error::Failure;

pub(super) type Step<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>>;

/// A statement with its parameters, run by [`pipeline`].
pub(super) fn step<'a>(
    client: &'a tokio_postgres::Client,
    statement: &'a Statement,
    params: &'a [&'a (dyn ToSql + Sync)],
) -> Step<'a> {
    Box::pin(client.query(statement, params))
}

/// A simple command (`BEGIN`, `COMMIT`), run by [`pipeline`].
pub(super) fn command<'a>(client: &'a tokio_postgres::Client, sql: &'static str) -> Step<'a> {
    Box::pin(async move { client.batch_execute(sql).await.map(|()| Vec::new()) })
}

/// Runs `steps` pipelined on one connection and returns each one's result, or `None` for the
/// steps never sent.
///
/// tokio-postgres sends a request when its future is first polled, and the server runs requests
/// in the order they arrive, so the first polls go strictly in order here (futures' join
/// helpers do not promise an order for long lists). A step that fails on its first poll was
/// never sent (its parameters did not encode, say): the steps after it are then not sent
/// either, so a trailing `COMMIT` never commits a transaction missing a statement.
pub(super) async fn pipeline(
    steps: Vec<Step<'_>>,
) -> Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>> {
    let n = steps.len();
    let mut results: Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>> =
        (0..n).map(|_| None).collect();
    let mut live: Vec<Option<Step<'_>>> = steps.into_iter().map(Some).collect();
    let mut sent = false;
    std::future::poll_fn(|cx| {
        for i in 0..n {
            let Some(fut) = live[i].as_mut() else {
                continue;
            };
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                let unsent = !sent && r.is_err();
                results[i] = Some(r);
                live[i] = None;
                if unsent {
                    // Nothing after it goes out.
                    for slot in &mut live[i + 1..] {
                        *slot = None;
                    }
                    break;
                }
            }
        }
        sent = true;
        if live.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    results
}

/// A pooled connection in an explicit transaction. Dropped while the transaction is still open
/// (a failed `ROLLBACK`, a cancelled write), the connection is closed rather than returned to
/// the pool mid-transaction.
pub(super) struct TxConn {
    pub(super) conn: Option<Object>,
    pub(super) open: bool,
}

impl TxConn {
    fn client(&self) -> Result<&tokio_postgres::Client, StoreError> {
        self.conn.as_ref().map(|o| &***o).ok_or(StoreError::Closed)
    }

    pub(super) async fn rollback(&mut self) {
        if !self.open {
            return;
        }
        if let Ok(client) = self.client() {
            if client.batch_execute("ROLLBACK").await.is_ok() {
                self.open = false;
            }
        }
    }
}

impl Drop for TxConn {
    fn drop(&mut self) {
        if self.open {
            if let Some(conn) = self.conn.take() {
                drop(Object::take(conn));
            }
        }
    }
}

/// The first failure among `results` (a step never sent counts as one).
pub(super) fn first_error(
    results: Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>>,
) -> Result<Vec<Vec<Row>>, Failure> {
    let mut rows = Vec::with_capacity(results.len());
    let mut failure: Option<Failure> = None;
    for r in results {
        match r {
            Some(Ok(v)) => rows.push(v),
            Some(Err(e)) => {
                // A rolled-back transaction makes later steps fail too; the first error is
                // the cause.
                if failure.is_none() {
                    failure = Some(e.into());
                }
                rows.push(Vec::new());
            }
            None => {
                if failure.is_none() {
                    failure = Some(Failure::Store(StoreError::unavailable(
                        "a statement was not sent",
                    )));
                }
                rows.push(Vec::new());
            }
        }
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(rows),
    }
}
