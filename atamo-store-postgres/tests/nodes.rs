//! Several hub nodes sharing one schema on a real PostgreSQL server: concurrent claims, leases
//! moving between nodes, wake-up hints, nodes starting at once, and group commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use atamo_core::ids::ActionId;
use atamo_core::store::conformance::{action, event};
use atamo_core::store::{
    AcceptEvent, AcceptOutcome, ActionQueue, ActionState, BatchWriter, Clock, EventLog,
    Maintenance, ManualClock, NewAction, NodeId, Settle, Settlement, Store, StoreError,
    SystemClock, WriteBatch,
};
use atamo_store_postgres::{PgOptions, PostgresStore};
use atamo_test_pg::{fresh_schema, Pg};
use futures_util::future::join_all;
use serde_json::json;
use tokio::time::timeout;

/// How long anything that should happen promptly may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

async fn node(pg: &Pg, schema: &str, clock: Arc<dyn Clock>) -> PostgresStore {
    PostgresStore::connect(
        &pg.url,
        PgOptions {
            clock,
            schema: Some(schema.to_owned()),
            pool_size: 4,
            ..PgOptions::default()
        },
    )
    .await
    .expect("connect")
}

/// One event with one action, ready or leased to `lease`; returns the action's id too.
fn accept_one(
    clock: &dyn Clock,
    lease: Option<(&str, Duration)>,
    key: Option<String>,
) -> (WriteBatch, ActionId) {
    let mut e = event("alice", None, clock.now());
    e.dedupe_key = key;
    let a = action(&e, "mailer");
    let id = a.id;
    let batch = WriteBatch {
        accepts: vec![AcceptEvent {
            event: e,
            dedupe_window: Duration::from_secs(60),
            actions: vec![NewAction {
                record: a,
                lease: lease.map(|(n, d)| (NodeId::new(n), d)),
            }],
        }],
        ..WriteBatch::default()
    };
    (batch, id)
}

fn settle(action: ActionId, attempt: u32, node: &str, outcome: Settlement) -> WriteBatch {
    WriteBatch {
        settles: vec![Settle {
            action,
            attempt,
            node: NodeId::new(node),
            outcome,
        }],
        ..WriteBatch::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_claiming_at_once_share_500_actions_exactly_once() {
    let pg = Pg::start();
    let schema = fresh_schema("two_nodes");
    let clock = ManualClock::starting_now();
    let a = Arc::new(node(&pg, &schema, clock.clone()).await);
    let b = Arc::new(node(&pg, &schema, clock.clone()).await);

    // 500 ready actions, written concurrently through both nodes.
    let mut ids = HashSet::new();
    let mut writes = Vec::new();
    for i in 0..500 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (batch, id) = accept_one(&*clock, None, None);
        ids.insert(id);
        writes.push(async move { store.write(batch).await });
    }
    for out in join_all(writes).await {
        assert_eq!(out.expect("write").accepted, vec![AcceptOutcome::New]);
    }
    assert_eq!(
        a.stats().await.unwrap().actions[&ActionState::Ready],
        500,
        "both nodes wrote to one queue"
    );

    // Four claimers per node, all starting together, claim until nothing is left.
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for (name, store) in [("node-a", a.clone()), ("node-b", b.clone())] {
        for _ in 0..4 {
            let store = store.clone();
            let start = start.clone();
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let me = NodeId::new(name);
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim(&me, 9, Duration::from_secs(60))
                        .await
                        .expect("claim");
                    if got.is_empty() {
                        break;
                    }
                    assert!(got.iter().all(|c| c.attempt == 1));
                    mine.extend(got.into_iter().map(|c| (name, c.record.id)));
                }
                mine
            }));
        }
    }
    let mut owner: HashMap<ActionId, &str> = HashMap::new();
    for task in tasks {
        for (name, id) in task.await.expect("claimer") {
            assert!(
                owner.insert(id, name).is_none(),
                "action {id} claimed twice"
            );
        }
    }
    assert_eq!(owner.keys().copied().collect::<HashSet<_>>(), ids);
    let by_a = owner.values().filter(|n| **n == "node-a").count();
    println!("node a claimed {by_a}, node b {}", owner.len() - by_a);
    // Each claim is recorded for the node that got it.
    for (id, name) in owner.iter().take(50) {
        let row = b.action(*id).await.unwrap().unwrap();
        assert_eq!(row.state, ActionState::Leased);
        assert_eq!(row.owner, Some(NodeId::new(*name)));
    }
    assert!(a.check().await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_moves_to_the_other_node_and_the_late_settle_is_refused() {
    let pg = Pg::start();
    let schema = fresh_schema("lease");
    let clock = ManualClock::starting_now();
    let a = node(&pg, &schema, clock.clone()).await;
    let b = node(&pg, &schema, clock.clone()).await;

    // Node A routed the event and holds its action.
    let (batch, id) = accept_one(&*clock, Some(("node-a", Duration::from_secs(10))), None);
    a.write(batch).await.unwrap();
    assert_eq!(b.recover_expired().await.unwrap(), 0, "not expired yet");

    // Node A stalls past its lease; node B recovers the action and finishes it.
    clock.advance(Duration::from_secs(11));
    assert_eq!(b.recover_expired().await.unwrap(), 1);
    let got = b
        .claim(&NodeId::new("node-b"), 10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|c| (c.record.id, c.attempt))
            .collect::<Vec<_>>(),
        vec![(id, 2)]
    );
    let late = a
        .write(settle(id, 1, "node-a", Settlement::Done))
        .await
        .unwrap();
    assert_eq!(late.settled, vec![false], "node A's lease is gone");
    let row = a.action(id).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.owner, row.attempt),
        (ActionState::Leased, Some(NodeId::new("node-b")), 2)
    );
    let done = b
        .write(settle(id, 2, "node-b", Settlement::Done))
        .await
        .unwrap();
    assert_eq!(done.settled, vec![true]);
    let row = a.action(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.owner), (ActionState::Done, None));
    // Node A's settle arriving even later still changes nothing.
    let later = a
        .write(settle(
            id,
            1,
            "node-a",
            Settlement::Dead {
                error: json!("late"),
            },
        ))
        .await
        .unwrap();
    assert_eq!(later.settled, vec![false]);
    assert_eq!(
        b.action(id).await.unwrap().unwrap().state,
        ActionState::Done
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wake_hint_fires_on_node_b_when_node_a_makes_actions_ready() {
    let pg = Pg::start();
    let schema = fresh_schema("wake");
    let a = node(&pg, &schema, Arc::new(SystemClock)).await;
    let b = node(&pg, &schema, Arc::new(SystemClock)).await;
    let hint = b.wake_hint().expect("postgres gives a wake hint");
    // B's listener signals once it listens: from then on no notification is missed.
    timeout(WAIT, hint.notified())
        .await
        .expect("node B listens");

    let (batch, id) = accept_one(&SystemClock, None, None);
    a.write(batch).await.unwrap();
    timeout(WAIT, hint.notified())
        .await
        .expect("node B is woken by node A's enqueue");

    // Dead-lettered by B, redriven by A: B is woken again.
    let got = b
        .claim(&NodeId::new("node-b"), 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    b.write(settle(
        id,
        1,
        "node-b",
        Settlement::Dead {
            error: json!({"kind": "permanent"}),
        },
    ))
    .await
    .unwrap();
    assert!(a.redrive(id).await.unwrap());
    timeout(WAIT, hint.notified())
        .await
        .expect("node B is woken by node A's redrive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_listens_again_after_its_connection_is_killed() {
    let pg = Pg::start();
    let schema = fresh_schema("relisten");
    let a = node(&pg, &schema, Arc::new(SystemClock)).await;
    let b = node(&pg, &schema, Arc::new(SystemClock)).await;
    let hint = b.wake_hint().unwrap();
    timeout(WAIT, hint.notified()).await.expect("listening");

    let admin = pg.client().await;
    let listen = format!("LISTEN {schema}");
    let listeners = "SELECT pid FROM pg_stat_activity
                     WHERE application_name = 'atamo-store-listen' AND query = $1
                       AND state = 'idle'";
    let pids = || async {
        admin
            .query(listeners, &[&listen])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect::<HashSet<i32>>()
    };
    // One listener per node (A's may still be starting).
    let before = timeout(WAIT, async {
        loop {
            let found = pids().await;
            if found.len() == 2 {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both nodes listen");
    for pid in &before {
        admin
            .execute("SELECT pg_terminate_backend($1)", &[pid])
            .await
            .unwrap();
    }
    // Both listeners come back on new connections.
    timeout(WAIT, async {
        loop {
            let now = pids().await;
            if now.len() == 2 && now.is_disjoint(&before) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the listeners reconnect");
    // The reconnection woke B (notifications may have been missed).
    timeout(WAIT, hint.notified()).await.expect("woken");

    let (batch, _) = accept_one(&SystemClock, None, None);
    a.write(batch).await.unwrap();
    timeout(WAIT, hint.notified())
        .await
        .expect("node B is woken after its listener came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_starting_at_once_on_a_new_schema_all_connect() {
    let pg = Pg::start();
    let schema = fresh_schema("start");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let stores: Vec<PostgresStore> = join_all((0..4).map(|_| node(&pg, &schema, clock.clone())))
        .await
        .into_iter()
        .collect();
    for store in &stores {
        let (batch, _) = accept_one(&SystemClock, None, None);
        store.write(batch).await.unwrap();
    }
    let stats = stores[3].stats().await.unwrap();
    assert_eq!(stats.events, 4);
    assert_eq!(stats.actions[&ActionState::Ready], 4);
    assert!(stats.size_bytes.is_some_and(|b| b > 0));
    let admin = pg.client().await;
    let versions = admin
        .query(&format!("SELECT value FROM {schema}.meta"), &[])
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        versions[0].get::<_, String>(0),
        PostgresStore::SCHEMA_VERSION.to_string()
    );
    let report = stores[0].check().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_from_a_newer_version_is_refused() {
    let pg = Pg::start();
    let schema = fresh_schema("newer");
    let first = node(&pg, &schema, Arc::new(SystemClock)).await;
    let admin = pg.client().await;
    let newer = PostgresStore::SCHEMA_VERSION + 1;
    admin
        .execute(
            &format!("UPDATE {schema}.meta SET value = $1 WHERE key = 'schema_version'"),
            &[&newer.to_string()],
        )
        .await
        .unwrap();
    let refused = PostgresStore::connect(
        &pg.url,
        PgOptions {
            schema: Some(schema.clone()),
            ..PgOptions::default()
        },
    )
    .await;
    match refused {
        Err(StoreError::Corrupt { message: why, .. }) => assert!(why.contains("newer"), "{why}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let report = first.check().await.unwrap();
    assert!(!report.ok());
    assert!(report.problems[0].contains("schema version"), "{report:?}");

    // Bad options are refused before connecting.
    for bad in ["Upper", "pg_x", "a-b"] {
        let r = PostgresStore::connect(
            &pg.url,
            PgOptions {
                schema: Some(bad.to_owned()),
                ..PgOptions::default()
            },
        )
        .await;
        assert!(matches!(r, Err(StoreError::Invalid { .. })), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dedupe_holds_across_nodes_and_merged_writes() {
    let pg = Pg::start();
    let schema = fresh_schema("dedupe");
    let clock = ManualClock::starting_now();
    let a = Arc::new(node(&pg, &schema, clock.clone()).await);
    let b = Arc::new(node(&pg, &schema, clock.clone()).await);
    let mut writes = Vec::new();
    for i in 0..200 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let key = format!("order-{}", i % 10);
        let (batch, _) = accept_one(&*clock, None, Some(key.clone()));
        let id = batch.accepts[0].event.id;
        writes.push(async move { (key, id, store.write(batch).await) });
    }
    let mut first: HashMap<String, atamo_core::ids::EventId> = HashMap::new();
    let mut duplicates = Vec::new();
    for (key, id, out) in join_all(writes).await {
        match out.unwrap().accepted[..] {
            [AcceptOutcome::New] => assert!(first.insert(key, id).is_none(), "two new events"),
            [AcceptOutcome::Duplicate { event_id, .. }] => duplicates.push((key, event_id)),
            ref other => panic!("{other:?}"),
        }
    }
    assert_eq!(first.len(), 10);
    assert_eq!(duplicates.len(), 190);
    for (key, event_id) in duplicates {
        assert_eq!(first[&key], event_id, "a duplicate names the first event");
    }
    assert_eq!(a.stats().await.unwrap().events, 10);
    assert_eq!(b.stats().await.unwrap().actions[&ActionState::Ready], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_batch_fails_alone_when_writes_are_merged() {
    let pg = Pg::start();
    let schema = fresh_schema("bad_batch");
    let store = Arc::new(node(&pg, &schema, Arc::new(SystemClock)).await);
    let mut writes = Vec::new();
    for i in 0..101 {
        // PostgreSQL text cannot hold NUL: this one batch is refused.
        let key = (i == 50).then(|| "bad\0key".to_owned());
        let (batch, _) = accept_one(&SystemClock, None, key);
        let store = store.clone();
        writes.push(async move { store.write(batch).await });
    }
    let outcomes = join_all(writes).await;
    for (i, out) in outcomes.into_iter().enumerate() {
        if i == 50 {
            assert!(matches!(out, Err(StoreError::Invalid { .. })), "{out:?}");
        } else {
            assert_eq!(out.unwrap().accepted, vec![AcceptOutcome::New]);
        }
    }
    assert_eq!(store.stats().await.unwrap().events, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_insert_writes_the_same_rows() {
    let pg = Pg::start();
    let schema = fresh_schema("baseline");
    let store = node(&pg, &schema, Arc::new(SystemClock)).await;
    let batches: Vec<WriteBatch> = (0..3)
        .map(|_| {
            let mut batch = WriteBatch::default();
            for _ in 0..4 {
                batch
                    .accepts
                    .extend(accept_one(&SystemClock, None, None).0.accepts);
            }
            batch
        })
        .collect();
    let some = batches[1].accepts[2].clone();
    assert_eq!(store.baseline_insert(batches).await.unwrap(), 24);
    assert_eq!(
        store.event(some.event.id).await.unwrap(),
        Some(some.event.clone())
    );
    let row = store
        .action(some.actions[0].record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, ActionState::Ready);
    assert_eq!(row.record, some.actions[0].record);
    assert!(store.check().await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_written_again_is_replaced_and_queued_last_as_in_memory() {
    let pg = Pg::start();
    let clock = ManualClock::starting_now();
    let postgres = node(&pg, &fresh_schema("rewrite"), clock.clone()).await;
    let memory = atamo_core::store::MemoryStore::with_clock(clock.clone());
    let stores: [&dyn Store; 2] = [&postgres, &memory];
    let (first, x) = accept_one(&*clock, None, None);
    let (second, y) = accept_one(&*clock, None, None);
    let mut again = accept_one(&*clock, None, None).0;
    again.accepts[0].actions[0].record.id = x;
    for store in stores {
        store.write(first.clone()).await.unwrap();
        store.write(second.clone()).await.unwrap();
        store
            .claim(&NodeId::new("n"), 1, Duration::from_secs(10))
            .await
            .unwrap();
        // Same clock reading: the queue order is the write order.
        store.write(again.clone()).await.unwrap();
        let row = store.action(x).await.unwrap().unwrap();
        assert_eq!((row.state, row.attempt), (ActionState::Ready, 0));
        let order: Vec<ActionId> = store
            .claim(&NodeId::new("n"), 10, Duration::from_secs(10))
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.record.id)
            .collect();
        assert_eq!(order, vec![y, x], "{}", store.backend());
    }
}
