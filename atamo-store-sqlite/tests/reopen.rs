//! What a store wrote is there after it is closed and opened again, and leases that ended
//! while it was closed are recovered when it opens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atamo_core::message::Timestamp;
use atamo_core::store::conformance::{action, event};
use atamo_core::store::{
    later, AcceptEvent, AcceptOutcome, ActionQueue, ActionRow, ActionState, AuditLog, AuditQuery,
    AuditRecord, BatchWriter, Clock, EventLog, Maintenance, ManualClock, NewAction, NodeId,
    RequestResults, ResultRecord, Settle, Settlement, WriteBatch,
};
use atamo_core::RequestId;
use atamo_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

fn clock() -> Arc<ManualClock> {
    ManualClock::new(Timestamp::from_unix_micros(1_800_000_000_000_000))
}

async fn open(path: &Path, clock: &Arc<ManualClock>) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default().clock(clock.clone()))
        .await
        .expect("open")
}

async fn rows(store: &SqliteStore, ids: &[atamo_core::ActionId]) -> Vec<ActionRow> {
    let mut rows = Vec::new();
    for id in ids {
        rows.push(store.action(*id).await.unwrap().expect("stored"));
    }
    rows
}

fn leased(record: atamo_core::store::ActionRecord, node: &str, lease: Duration) -> NewAction {
    NewAction {
        record,
        lease: Some((NodeId::new(node), lease)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_written_is_there_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // Parent folders are created.
    let path = dir.path().join("data/hub/store.db");
    let clock = clock();
    let store = open(&path, &clock).await;

    let mut keyed = event("alice", Some("acme"), clock.now());
    keyed.dedupe_key = Some("order-7".to_owned());
    let held = action(&keyed, "mailer");
    let waiting = action(&keyed, "archive");
    let mut asked = event("bob", None, clock.now());
    asked.request = Some(RequestId::generate());
    let failing = action(&asked, "finder");
    let out = store
        .write(WriteBatch {
            accepts: vec![
                AcceptEvent {
                    event: keyed.clone(),
                    dedupe_window: Duration::from_secs(3600),
                    actions: vec![
                        leased(held.clone(), "a", Duration::from_secs(3600)),
                        NewAction {
                            record: waiting.clone(),
                            lease: None,
                        },
                    ],
                },
                AcceptEvent {
                    event: asked.clone(),
                    dedupe_window: Duration::ZERO,
                    actions: vec![leased(failing.clone(), "b", Duration::from_secs(60))],
                },
            ],
            ..WriteBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(out.accepted, vec![AcceptOutcome::New, AcceptOutcome::New]);
    clock.advance(Duration::from_secs(1));
    let result = ResultRecord {
        request: asked.request.unwrap(),
        action: failing.id,
        agent: failing.agent.clone(),
        tenant: None,
        answers: vec![json!({"partial": 1})],
        outcome: Err(json!({"kind": "permanent", "reason": "no such row"})),
        expires_at: later(clock.now(), Duration::from_secs(3600)),
    };
    let step = AuditRecord {
        seq: 0,
        at: clock.now(),
        step: "action_dead_lettered".to_owned(),
        event_id: Some(asked.id),
        correlation_id: Some(asked.correlation_id),
        request_id: asked.request,
        action_id: Some(failing.id),
        event_type: Some(asked.event_type.clone()),
        user: Some(asked.principal.user.clone()),
        tenant: None,
        agent: Some(failing.agent.clone()),
        detail: json!({"kind": "action_dead_lettered", "attempt": 1}),
    };
    let out = store
        .write(WriteBatch {
            settles: vec![Settle {
                action: failing.id,
                attempt: 1,
                node: NodeId::new("b"),
                outcome: Settlement::Dead {
                    error: json!({"kind": "permanent", "reason": "no such row"}),
                },
            }],
            results: vec![result.clone()],
            audit: vec![step],
            ..WriteBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(out.settled, vec![true]);

    let ids = [held.id, waiting.id, failing.id];
    let before_rows = rows(&store, &ids).await;
    let before_audit = store.audit(AuditQuery::default()).await.unwrap();
    let before_dead = store.dead_letters(None, 10).await.unwrap();
    let mut before_stats = store.stats().await.unwrap();
    assert!(before_stats.size_bytes.unwrap() > 0);
    before_stats.size_bytes = None;
    assert_eq!(before_dead.items.len(), 1);
    assert_eq!(before_audit.items.len(), 1);
    drop(store);

    let store = open(&path, &clock).await;
    assert_eq!(store.event(keyed.id).await.unwrap(), Some(keyed.clone()));
    assert_eq!(store.event(asked.id).await.unwrap(), Some(asked.clone()));
    assert_eq!(rows(&store, &ids).await, before_rows);
    assert_eq!(before_rows[0].state, ActionState::Leased);
    assert_eq!(before_rows[1].state, ActionState::Ready);
    assert_eq!(before_rows[2].state, ActionState::Dead);
    assert_eq!(
        store.audit(AuditQuery::default()).await.unwrap(),
        before_audit
    );
    assert_eq!(store.dead_letters(None, 10).await.unwrap(), before_dead);
    assert_eq!(
        store.results(asked.request.unwrap()).await.unwrap(),
        vec![result]
    );
    let mut stats = store.stats().await.unwrap();
    stats.size_bytes = None;
    assert_eq!(stats, before_stats);

    // The dedupe key is still held, and new writes continue the sequences.
    let mut again = event("alice", Some("acme"), clock.now());
    again.dedupe_key = Some("order-7".to_owned());
    let out = store
        .write(WriteBatch {
            accepts: vec![AcceptEvent {
                event: again,
                dedupe_window: Duration::from_secs(3600),
                actions: vec![],
            }],
            ..WriteBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(
        out.accepted,
        vec![AcceptOutcome::Duplicate {
            event_id: keyed.id,
            correlation_id: keyed.correlation_id
        }]
    );
    let report = store.check().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_that_expired_while_closed_are_recovered_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let clock = clock();
    let store = open(&path, &clock).await;

    let e = event("alice", None, clock.now());
    let short = action(&e, "mailer");
    let long = action(&e, "mailer");
    let claimed = action(&e, "archive");
    store
        .write(WriteBatch {
            accepts: vec![AcceptEvent {
                event: e.clone(),
                dedupe_window: Duration::ZERO,
                actions: vec![
                    leased(short.clone(), "a", Duration::from_secs(10)),
                    leased(long.clone(), "a", Duration::from_secs(3600)),
                    NewAction {
                        record: claimed.clone(),
                        lease: None,
                    },
                ],
            }],
            ..WriteBatch::default()
        })
        .await
        .unwrap();
    let got = store
        .claim(&NodeId::new("c"), 10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    store.close().await.unwrap();

    // The node died with the store; a minute later the store opens again.
    clock.advance(Duration::from_secs(60));
    let store = open(&path, &clock).await;
    let state = |id| {
        let store = &store;
        async move {
            let row = store.action(id).await.unwrap().unwrap();
            (row.state, row.owner, row.attempt)
        }
    };
    assert_eq!(state(short.id).await, (ActionState::Ready, None, 1));
    assert_eq!(state(claimed.id).await, (ActionState::Ready, None, 1));
    assert_eq!(
        state(long.id).await,
        (ActionState::Leased, Some(NodeId::new("a")), 1)
    );
    // Nothing is left to recover, and the recovered ones are claimed under their next attempt.
    assert_eq!(store.recover_expired().await.unwrap(), 0);
    let mut again: Vec<_> = store
        .claim(&NodeId::new("d"), 10, Duration::from_secs(10))
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.record.id, c.attempt))
        .collect();
    again.sort();
    let mut want = vec![(short.id, 2), (claimed.id, 2)];
    want.sort();
    assert_eq!(again, want);
    assert!(store.commits() >= 2, "the recovery at open and the claim");
}
