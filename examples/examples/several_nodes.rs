//! Guide 14: several hub nodes sharing the work through PostgreSQL. Two nodes (here two hubs in
//! one program; in production two processes or machines) on the same database and schema: each
//! takes the events published to it, a retry or a redriven dead letter is taken by whichever
//! node claims it first, and when a node stops, the actions it held are given back and the other
//! node finishes them. Every step of both nodes is in one audit log.
//!
//! Run it against a server: `ATAMO_POSTGRES_URL=postgres://user@127.0.0.1:5432/db cargo run -p
//! atamo-examples --example several_nodes`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::hub::StoreSettings;
use atamo_core::rules::ProviderScope;
use atamo_core::store::{ActionState, AuditQuery, NodeId};
use atamo_core::{agent_fn, ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply};
use atamo_store_postgres::{PgOptions, PostgresStore};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("ATAMO_POSTGRES_URL")
        .map_err(|_| anyhow::anyhow!("set ATAMO_POSTGRES_URL to a PostgreSQL connection string"))?;
    run(&url, "atamo_guide14").await
}

/// Who carried out which order.
type Log = Arc<Mutex<BTreeMap<u64, String>>>;

/// One node: its own store connection and hub, with the same agents and rules as the other.
async fn node(url: &str, schema: &str, name: &str, log: &Log, slow: bool) -> anyhow::Result<Hub> {
    let store = PostgresStore::connect(
        url,
        PgOptions {
            schema: Some(schema.to_owned()),
            ..PgOptions::default()
        },
    )
    .await?;
    let (log, me) = (log.clone(), name.to_owned());
    let shipper = agent_fn(move |action, _ctx| {
        let (log, me) = (log.clone(), me.clone());
        async move {
            if slow {
                // This node's shipper hangs: its calls will not finish before the node stops.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            let order = action.payload()["order"].as_u64().unwrap_or_default();
            log.lock()
                .map_err(|_| atamo_core::AgentError::permanent("log"))?
                .insert(order, me);
            Ok(Reply::done())
        }
    });
    let rules = RuleBook::with_rules(vec![Rule::new(
        "ship",
        "order.paid",
        "shipper",
        "ship",
        json!({"order": "{{payload.order}}"}),
    )])?;
    Ok(Hub::builder()
        .event_type(EventTypeDef::new("order.paid"))
        .action_type(ActionTypeDef::new("ship"))
        .agent(
            AgentSpec::new("shipper", shipper)
                .handles(["ship"])
                .concurrency(16),
        )
        .provider("rules", rules, ProviderScope::AllEvents)
        .shutdown_grace(Duration::from_millis(200))
        .store_with(
            Arc::new(store),
            StoreSettings::default()
                .node(NodeId::new(name))
                .lease(Duration::from_secs(5))
                .claim_interval(Duration::from_millis(100)),
        )
        .build()?)
}

async fn run(url: &str, schema: &str) -> anyhow::Result<()> {
    let log: Log = Arc::default();
    // 1. Two nodes on one schema. Node b's shipper hangs, as if its carrier were down.
    let a = node(url, schema, "node-a", &log, false).await?;
    let b = node(url, schema, "node-b", &log, true).await?;
    let store = a
        .control()
        .store()
        .ok_or_else(|| anyhow::anyhow!("stateful"))?;
    // (The schema may hold earlier runs' actions.)
    let done_before = store
        .stats()
        .await?
        .actions
        .get(&ActionState::Done)
        .copied()
        .unwrap_or(0);

    // 2. Clients publish to either node (behind a load balancer, say): 10 orders each.
    let paid = |n: u64| Event::new("order.paid", Principal::user("shop"), json!({"order": n}));
    for n in 0..10 {
        a.handle().publish(paid(n)).await?;
        b.handle().publish(paid(100 + n)).await?;
    }

    // 3. Node b stops. Its hanging calls are abandoned at the end of its grace period and
    //    given back to the store; node a claims them at once and ships them. (Had node b
    //    crashed instead, its leases would end after 5 seconds and the same would happen.)
    let report = b.shutdown().await;
    println!(
        "node b stopped; actions it gave back: {}",
        report.actions_abandoned
    );
    loop {
        let stats = store.stats().await?;
        if stats.actions.get(&ActionState::Done).copied() == Some(done_before + 20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shipped = log.lock().map_err(|_| anyhow::anyhow!("log"))?.clone();
    let by_a = shipped.values().filter(|n| *n == "node-a").count();
    println!("shipped {} orders, {by_a} of them by node a", shipped.len());
    anyhow::ensure!(
        shipped.len() == 20 && by_a == 20,
        "node a shipped every order"
    );

    // 4. One audit log for both nodes: where did order 100 (published to node b) go?
    let page = a
        .control()
        .audit(AuditQuery {
            event_type: Some("order.paid".into()),
            step: Some("action_succeeded".into()),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await?;
    println!(
        "{} actions succeeded, all recorded in one audit log",
        page.items.len()
    );
    a.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_example_runs() {
        let pg = atamo_test_pg::Pg::start();
        let schema = atamo_test_pg::fresh_schema("guide14");
        super::run(&pg.url, &schema).await.unwrap();
    }
}
