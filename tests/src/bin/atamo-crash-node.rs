//! A stateful hub node for the crash tests, run as a child process and killed with SIGKILL.
//!
//! It publishes `order.created` events numbered `CRASH_FROM..CRASH_TO` (each with the dedupe
//! key `<prefix>-<n>`, so that publishing a number again after a restart is recognised), and
//! prints `accepted <n>` once the hub has acknowledged each one (that is, committed it). Its
//! agent appends `<prefix>-<n> <action id> <attempt> <node>` to the ledger file with one
//! `write` per line, which survives the process being killed.
//!
//! With `CRASH_FINISH=1` it then waits until the store holds no ready or leased action and
//! exits 0. With `CRASH_IDLE=1` it publishes nothing and only works.
//!
//! Settings come from the environment:
//! - `CRASH_STORE`: `sqlite:<path>` or `postgres:<url>#<schema>`
//! - `CRASH_LEDGER`: the ledger file
//! - `CRASH_PREFIX`, `CRASH_FROM`, `CRASH_TO`, `CRASH_FINISH`, `CRASH_IDLE`
//! - `CRASH_AGENT_DELAY_MS`: how long each call takes at most (random, default 3)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::hub::StoreSettings;
use atamo_core::rules::ProviderScope;
use atamo_core::store::{ActionState, NodeId, Store};
use atamo_core::{agent_fn, ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply};
use serde_json::json;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn open_store(spec: &str) -> Arc<dyn Store> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        let store = atamo_store_sqlite::SqliteStore::open(
            path,
            atamo_store_sqlite::SqliteOptions::default(),
        )
        .await
        .expect("open the SQLite store");
        return Arc::new(store);
    }
    if let Some(rest) = spec.strip_prefix("postgres:") {
        let (url, schema) = rest.rsplit_once('#').expect("postgres:<url>#<schema>");
        let options = atamo_store_postgres::PgOptions {
            schema: Some(schema.to_owned()),
            ..atamo_store_postgres::PgOptions::default()
        };
        let store = atamo_store_postgres::PostgresStore::connect(url, options)
            .await
            .expect("connect the PostgreSQL store");
        return Arc::new(store);
    }
    panic!("CRASH_STORE must be sqlite:<path> or postgres:<url>#<schema>, not {spec}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let store = open_store(&var("CRASH_STORE").expect("CRASH_STORE")).await;
    let ledger_path = var("CRASH_LEDGER").expect("CRASH_LEDGER");
    let prefix = var("CRASH_PREFIX").unwrap_or_else(|| "e".to_owned());
    let from: u64 = var("CRASH_FROM").map_or(0, |v| v.parse().unwrap());
    let to: u64 = var("CRASH_TO").map_or(0, |v| v.parse().unwrap());
    let finish = var("CRASH_FINISH").is_some();
    let idle = var("CRASH_IDLE").is_some();
    let delay_ms: u64 = var("CRASH_AGENT_DELAY_MS").map_or(3, |v| v.parse().unwrap());
    let node = NodeId::generate();

    let ledger = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ledger_path)
            .expect("open the ledger"),
    ));
    let me = node.to_string();
    let agent = agent_fn(move |action, _ctx| {
        let ledger = ledger.clone();
        let me = me.clone();
        async move {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=delay_ms))).await;
            }
            let line = format!(
                "{} {} {} {}\n",
                action.payload()["key"].as_str().unwrap_or("?"),
                action.idempotency_key(),
                action.attempt(),
                me
            );
            // One write per line: the kernel has it even if this process is killed next.
            ledger.lock().unwrap().write_all(line.as_bytes()).unwrap();
            Ok(Reply::done())
        }
    });
    let rules = RuleBook::with_rules(vec![Rule::new(
        "record",
        "order.created",
        "recorder",
        "record",
        json!({"key": "{{payload.key}}"}),
    )])
    .unwrap();
    let settings = StoreSettings::default()
        .node(node.clone())
        .lease(Duration::from_secs(1))
        .claim_interval(Duration::from_millis(50));
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("order.created"))
        .action_type(ActionTypeDef::new("record"))
        .agent(
            AgentSpec::new("recorder", agent)
                .handles(["record"])
                .concurrency(64),
        )
        .provider("rules", rules, ProviderScope::AllEvents)
        .store_with(store.clone(), settings)
        .build()
        .unwrap();

    let stdout = std::io::stdout();
    if !idle {
        // Several publishers at once, so that commits are grouped as they are under load.
        let next = Arc::new(std::sync::atomic::AtomicU64::new(from));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let handle = hub.handle();
            let next = next.clone();
            let prefix = prefix.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if n >= to {
                        return;
                    }
                    let key = format!("{prefix}-{n}");
                    let event = Event::builder("order.created", Principal::user("alice"))
                        .payload(json!({"key": key}))
                        .dedupe_key(key.clone())
                        .build();
                    handle.publish(event).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "accepted {n}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    if finish || idle {
        loop {
            let stats = store.stats().await.unwrap();
            let open = stats.actions.get(&ActionState::Ready).copied().unwrap_or(0)
                + stats
                    .actions
                    .get(&ActionState::Leased)
                    .copied()
                    .unwrap_or(0);
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let report = hub.shutdown().await;
        let mut out = stdout.lock();
        writeln!(out, "finished {}", report.actions_abandoned).unwrap();
        out.flush().unwrap();
        return;
    }
    // Keep working until killed.
    std::future::pending::<()>().await;
}
