//! Guide 13: a stateful hub on SQLite. Events are committed to one file before the hub answers;
//! their actions survive a restart; a second publish with the same dedupe key gets the first
//! receipt; failed attempts and dead letters are kept; the audit log tells the whole path of a
//! message; `atamo store stats` shows the queues.
//!
//! Run it: `cargo run -p atamo-examples --example stateful_hub` (the store goes to
//! `./atamo-data/guide13.db`; pass another path as the first argument).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::agent::AgentError;
use atamo_core::failure::RetryPolicy;
use atamo_core::hub::StoreSettings;
use atamo_core::rules::ProviderScope;
use atamo_core::store::{ActionState, AuditQuery, EventLog, Maintenance};
use atamo_core::{agent_fn, ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply};
use atamo_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "atamo-data/guide13.db".to_owned());
    run(std::path::Path::new(&path)).await
}

async fn run(path: &std::path::Path) -> anyhow::Result<()> {
    // The guide starts from an empty store each time it runs.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    // 1. The store: one SQLite file (created with its directory when missing), in WAL mode,
    //    every commit flushed to disk (`synchronous=FULL`).
    let store = Arc::new(SqliteStore::open(path, SqliteOptions::default()).await?);
    println!("store: {}", path.display());

    // 2. A mailer that fails its first attempt at every order: the retry is kept in the store.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let mailer = agent_fn(move |action, _ctx| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            if action.attempt() == 1 {
                return Err(AgentError::retry("mail server busy"));
            }
            // The idempotency key is the same for every attempt and after a restart: a
            // mailer that remembers it sends each mail once.
            println!(
                "mailer: order {} to {} (attempt {}, key {})",
                action.payload()["order"],
                action.payload()["to"],
                action.attempt(),
                action.idempotency_key()
            );
            Ok(Reply::done())
        }
    });
    let rules = RuleBook::with_rules(vec![Rule::new(
        "mail-orders",
        "order.created",
        "mailer",
        "email.send",
        json!({"to": "{{user}}", "order": "{{payload.order}}"}),
    )])?;
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("order.created").requiring(["order"])?)
        .action_type(ActionTypeDef::new("email.send"))
        .agent(
            AgentSpec::new("mailer", mailer)
                .handles(["email.send"])
                .retry(
                    RetryPolicy::attempts(3)
                        .backoff(Duration::from_millis(20), Duration::from_secs(1)),
                ),
        )
        .provider("rules", rules, ProviderScope::AllEvents)
        // 3. The store makes the hub stateful.
        .store_with(
            store.clone(),
            StoreSettings::default().lease(Duration::from_secs(10)),
        )
        .build()?;

    // 4. `publish` returns once the event and its action are committed.
    let order = |n: u64| {
        Event::builder("order.created", Principal::user("alice"))
            .payload(json!({"order": n}))
            .dedupe_key(format!("order-{n}"))
            .build()
    };
    let first = hub.handle().publish(order(1)).await?;
    hub.handle().publish(order(2)).await?;
    // The same order again (a client retrying after a lost answer): the first receipt.
    let again = hub.handle().publish(order(1)).await?;
    println!(
        "order 1 published twice: same receipt = {}",
        again.event_id == first.event_id
    );

    // 5. Wait until both actions are done in the store.
    let control = hub.control();
    loop {
        let stats = store.stats().await?;
        if stats.actions.get(&ActionState::Done).copied() == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 6. The audit log: the whole path of order 1, oldest step first.
    let page = control
        .audit(AuditQuery {
            event_id: Some(first.event_id),
            ..AuditQuery::default()
        })
        .await?;
    let steps: Vec<&str> = page.items.iter().rev().map(|r| r.step.as_str()).collect();
    println!("path of order 1: {}", steps.join(" -> "));
    anyhow::ensure!(
        steps
            == [
                "accepted",
                "rule_matched",
                "action_dispatched",
                "action_retrying",
                "action_succeeded"
            ],
        "unexpected path {steps:?}"
    );
    hub.shutdown().await;

    // 7. Everything is in the file: open it again, as `atamo store stats` does.
    drop(control);
    drop(store);
    let reopened = SqliteStore::open(path, SqliteOptions::default()).await?;
    let event = reopened.event(first.event_id).await?;
    let stats = reopened.stats().await?;
    println!(
        "after reopening: order 1 stored = {}, done actions = {}, audit entries = {}",
        event.is_some(),
        stats.actions.get(&ActionState::Done).copied().unwrap_or(0),
        stats.audit_entries
    );
    anyhow::ensure!(calls.load(Ordering::SeqCst) == 4, "two attempts per order");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_example_runs() {
        let dir = std::env::temp_dir().join(format!("atamo-guide13-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        super::run(&dir.join("guide13.db")).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
