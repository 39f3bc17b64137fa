//! Claims and leases: the order of claims, fencing by attempt, held retries and heartbeats.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::support::{enqueue_ready, fresh, node, settle, Case, Open};
use crate::ids::ActionId;
use crate::store::{later, ActionState, Clock, Settle, Settlement, WriteBatch};

/// Claims take ready actions whose time has come, oldest first, up to the limit, and each
/// raises the attempt.
pub async fn claims_take_due_actions_oldest_first_and_raise_the_attempt(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
    let ids = enqueue_ready(&**store, clock, "mailer", 5).await;
    let got = store
        .claim(&node("a"), 3, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(
        got.iter().map(|c| c.record.id).collect::<Vec<_>>(),
        ids[..3]
    );
    assert!(got.iter().all(|c| c.attempt == 1));
    let got = store
        .claim(&node("b"), 10, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(
        got.iter().map(|c| c.record.id).collect::<Vec<_>>(),
        ids[3..]
    );
    assert!(store
        .claim(&node("b"), 10, Duration::from_secs(30))
        .await
        .expect("claim")
        .is_empty());
    let row = store.action(ids[4]).await.expect("action").expect("stored");
    assert_eq!(
        (row.state, row.owner),
        (ActionState::Leased, Some(node("b")))
    );
}

/// Many claims racing from several nodes hand out every action exactly once.
pub async fn concurrent_claims_never_share_an_action(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
    let ids = enqueue_ready(&**store, clock, "mailer", 200).await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = node(&format!("n{n}"));
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(&me, 7, Duration::from_secs(30))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|c| c.record.id));
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.expect("task") {
            assert!(seen.insert(id), "action {id} claimed twice");
        }
    }
    assert_eq!(seen, ids.into_iter().collect::<HashSet<_>>());
}

/// A node whose lease expired and whose action was claimed again cannot settle it; the new
/// holder can.
pub async fn a_lease_is_fenced_by_its_attempt(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
    let id = enqueue_ready(&**store, clock, "mailer", 1).await[0];
    let a = store
        .claim(&node("a"), 1, Duration::from_secs(10))
        .await
        .expect("claim");
    assert_eq!(a[0].attempt, 1);
    assert_eq!(store.recover_expired().await.expect("recover"), 0);
    clock.advance(Duration::from_secs(11));
    assert_eq!(store.recover_expired().await.expect("recover"), 1);
    let b = store
        .claim(&node("b"), 1, Duration::from_secs(10))
        .await
        .expect("claim");
    assert_eq!((b[0].record.id, b[0].attempt), (id, 2));
    let late = store
        .write(settle(id, 1, &node("a"), Settlement::Done))
        .await
        .expect("write");
    assert_eq!(late.settled, vec![false]);
    assert_eq!(
        store
            .action(id)
            .await
            .expect("action")
            .expect("stored")
            .state,
        ActionState::Leased
    );
    let ok = store
        .write(settle(id, 2, &node("b"), Settlement::Done))
        .await
        .expect("write");
    assert_eq!(ok.settled, vec![true]);
    let row = store.action(id).await.expect("action").expect("stored");
    assert_eq!(
        (row.state, row.owner, row.attempt),
        (ActionState::Done, None, 2)
    );
    // Settling twice is refused too.
    let again = store
        .write(settle(id, 2, &node("b"), Settlement::Done))
        .await
        .expect("write");
    assert_eq!(again.settled, vec![false]);
}

/// Another node, or an unknown action, cannot settle.
pub async fn only_the_owner_settles(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
    let id = enqueue_ready(&**store, clock, "mailer", 1).await[0];
    store
        .claim(&node("a"), 1, Duration::from_secs(10))
        .await
        .expect("claim");
    let out = store
        .write(WriteBatch {
            settles: vec![
                Settle {
                    action: id,
                    attempt: 1,
                    node: node("b"),
                    outcome: Settlement::Done,
                },
                Settle {
                    action: ActionId::generate(),
                    attempt: 1,
                    node: node("a"),
                    outcome: Settlement::Done,
                },
                Settle {
                    action: id,
                    attempt: 1,
                    node: node("a"),
                    outcome: Settlement::Done,
                },
            ],
            ..WriteBatch::default()
        })
        .await
        .expect("write");
    assert_eq!(out.settled, vec![false, false, true]);
}

/// A held retry keeps the action leased to its node with the next attempt; a released one is
/// ready again but not claimable before its `run_at`.
pub async fn a_held_retry_keeps_the_lease_and_a_released_retry_waits_for_run_at(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
    let ids = enqueue_ready(&**store, clock, "mailer", 2).await;
    store
        .claim(&node("a"), 2, Duration::from_secs(10))
        .await
        .expect("claim");
    let error = json!({"kind": "retry", "reason": "busy"});
    let run_at = later(clock.now(), Duration::from_secs(5));
    let out = store
        .write(WriteBatch {
            settles: vec![
                Settle {
                    action: ids[0],
                    attempt: 1,
                    node: node("a"),
                    outcome: Settlement::Retry {
                        run_at,
                        hold_until: Some(later(run_at, Duration::from_secs(10))),
                        error: error.clone(),
                    },
                },
                Settle {
                    action: ids[1],
                    attempt: 1,
                    node: node("a"),
                    outcome: Settlement::Retry {
                        run_at,
                        hold_until: None,
                        error: error.clone(),
                    },
                },
            ],
            ..WriteBatch::default()
        })
        .await
        .expect("write");
    assert_eq!(out.settled, vec![true, true]);
    let held = store.action(ids[0]).await.expect("action").expect("stored");
    assert_eq!(
        (held.state, held.attempt, held.owner.clone()),
        (ActionState::Leased, 2, Some(node("a")))
    );
    assert_eq!(held.last_error, Some(error.clone()));
    assert_eq!(
        held.lease_until,
        Some(later(run_at, Duration::from_secs(10)))
    );
    let released = store.action(ids[1]).await.expect("action").expect("stored");
    assert_eq!(
        (released.state, released.attempt, released.run_at),
        (ActionState::Ready, 1, run_at)
    );
    assert!(store
        .claim(&node("b"), 10, Duration::from_secs(10))
        .await
        .expect("claim")
        .is_empty());
    clock.advance(Duration::from_secs(5));
    let got = store
        .claim(&node("b"), 10, Duration::from_secs(10))
        .await
        .expect("claim");
    assert_eq!(
        got.iter()
            .map(|c| (c.record.id, c.attempt))
            .collect::<Vec<_>>(),
        vec![(ids[1], 2)]
    );
    // The held one settles under its new attempt.
    let out = store
        .write(settle(ids[0], 2, &node("a"), Settlement::Done))
        .await
        .expect("write");
    assert_eq!(out.settled, vec![true]);
}

/// A heartbeat extends every lease of its node, so a long call is not taken away.
pub async fn heartbeats_keep_leases_alive(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
    enqueue_ready(&**store, clock, "mailer", 3).await;
    store
        .claim(&node("a"), 2, Duration::from_secs(10))
        .await
        .expect("claim");
    store
        .claim(&node("b"), 1, Duration::from_secs(10))
        .await
        .expect("claim");
    clock.advance(Duration::from_secs(8));
    assert_eq!(
        store
            .heartbeat(&node("a"), Duration::from_secs(10))
            .await
            .expect("beat"),
        2
    );
    clock.advance(Duration::from_secs(8));
    // b's lease ended; a's did not.
    assert_eq!(store.recover_expired().await.expect("recover"), 1);
    assert_eq!(
        store
            .heartbeat(&node("b"), Duration::from_secs(10))
            .await
            .expect("beat"),
        0
    );
    clock.advance(Duration::from_secs(3));
    assert_eq!(store.recover_expired().await.expect("recover"), 2);
}
