//! The conformance suite every [`Store`] backend passes.
//!
//! A backend's tests call [`store_conformance!`](crate::store_conformance) with an expression
//! giving an [`Open`] implementation; each case becomes its own `#[tokio::test]`:
//!
//! ```ignore
//! atamo_core::store_conformance!(crate::open_for_conformance());
//! ```
//!
//! Every case gets a fresh, empty store on a [`ManualClock`], so lease expiry, dedupe windows,
//! result TTLs and retention are tested without sleeping.

// A test suite: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::ids::{ActionId, EventId, RequestId};
use crate::message::Principal;

/// Opens a fresh, empty store reading the time from `clock`.
pub trait Open: Send + Sync {
    /// The store.
    fn open(
        &self,
        clock: Arc<dyn Clock>,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
}

/// Generates one `#[tokio::test]` per conformance case, each opening its store with `$open`.
#[macro_export]
macro_rules! store_conformance {
    ($open:expr) => {
        $crate::store_conformance!(@cases $open;
            accept_writes_the_event_and_its_actions,
            a_dedupe_key_is_accepted_once_within_its_window,
            claims_take_due_actions_oldest_first_and_raise_the_attempt,
            concurrent_claims_never_share_an_action,
            a_lease_is_fenced_by_its_attempt,
            only_the_owner_settles,
            a_held_retry_keeps_the_lease_and_a_released_retry_waits_for_run_at,
            heartbeats_keep_leases_alive,
            dead_letters_page_newest_first_and_redrive,
            settle_results_and_audit_commit_together,
            results_expire,
            audit_queries_filter_and_page,
            prune_follows_retention_per_tenant,
            stats_count_by_state,
            a_fresh_store_checks_clean,
            events_list_newest_first_by_type_user_tenant_and_time,
            event_payload_filters_match_strings_numbers_and_booleans,
            event_pages_cover_every_match_once,
            registry_writes_follow_their_mode,
            registry_audit_is_written_with_the_change_only,
            registry_keys_are_checked_and_listed_in_byte_order,
            concurrent_registry_writes_get_distinct_revisions,
            prune_keeps_the_registry,
        );
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::store::conformance::$case(&$open).await;
            }
        )*
    };
}

fn node(name: &str) -> NodeId {
    NodeId::new(name)
}

fn start() -> Arc<ManualClock> {
    ManualClock::new(Timestamp::from_unix_micros(1_800_000_000_000_000))
}

async fn fresh(open: &dyn Open) -> (Arc<ManualClock>, Arc<dyn Store>) {
    let clock = start();
    let store = open.open(clock.clone()).await;
    (clock, store)
}

/// An event of type `order.created` for `user` (and `tenant`).
pub fn event(user: &str, tenant: Option<&str>, at: Timestamp) -> EventRecord {
    let mut principal = Principal::user(user);
    if let Some(t) = tenant {
        principal = principal.in_tenant(t);
    }
    EventRecord::new(
        "order.created",
        principal,
        json!({"order": {"id": 7, "note": "ünïcode ✓"}}),
        at,
    )
}

/// An action of `event` for `agent`.
pub fn action(event: &EventRecord, agent: &str) -> ActionRecord {
    let to = event.principal.user.as_str();
    ActionRecord {
        rule: Some("mail-orders".into()),
        provider: Some("rules".into()),
        retry: Some(crate::failure::RetryPolicy::attempts(3)),
        ..ActionRecord::new(
            event,
            agent,
            "email.send",
            json!({"to": to, "n": [1, 2, 3]}),
        )
    }
}

/// One accepted event (for `alice` in `acme`) with one ready action for `mailer`: the unit of
/// the backends' write-rate measurements.
pub fn accept_one() -> WriteBatch {
    let e = event("alice", Some("acme"), Timestamp::now());
    let a = action(&e, "mailer");
    WriteBatch::accepting(vec![AcceptEvent::new(e, vec![NewAction::ready(a)])])
}

fn accept(event: EventRecord, actions: Vec<NewAction>) -> WriteBatch {
    WriteBatch {
        accepts: vec![AcceptEvent {
            event,
            dedupe_window: Duration::from_secs(60),
            actions,
        }],
        ..WriteBatch::default()
    }
}

fn ready_action(record: ActionRecord) -> NewAction {
    NewAction {
        record,
        lease: None,
    }
}

/// Enqueues `n` ready actions for `agent`, one event each; returns their ids in order.
async fn enqueue_ready(
    store: &dyn Store,
    clock: &ManualClock,
    agent: &str,
    n: usize,
) -> Vec<ActionId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let e = event("alice", None, clock.now());
        let a = action(&e, agent);
        ids.push(a.id);
        store
            .write(accept(e, vec![ready_action(a)]))
            .await
            .expect("write");
        clock.advance(Duration::from_millis(1));
    }
    ids
}

fn settle(action: ActionId, attempt: u32, node: &NodeId, outcome: Settlement) -> WriteBatch {
    WriteBatch {
        settles: vec![Settle {
            action,
            attempt,
            node: node.clone(),
            outcome,
        }],
        ..WriteBatch::default()
    }
}

fn audit(step: &str, e: &EventRecord, action: Option<&ActionRecord>, at: Timestamp) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at,
        step: step.to_owned(),
        event_id: Some(e.id),
        correlation_id: Some(e.correlation_id),
        request_id: e.request,
        action_id: action.map(|a| a.id),
        event_type: Some(e.event_type.clone()),
        user: Some(e.principal.user.clone()),
        tenant: e.principal.tenant.clone(),
        agent: action.map(|a| a.agent.clone()),
        detail: json!({"kind": step, "n": 1}),
    }
}

/// The event, its dedupe key and its actions are written; a leased action belongs to its node
/// with attempt 1, a ready one waits with attempt 0.
pub async fn accept_writes_the_event_and_its_actions(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let e = event("alice", Some("acme"), clock.now());
    let leased = action(&e, "mailer");
    let waiting = action(&e, "archive");
    let out = store
        .write(accept(
            e.clone(),
            vec![
                NewAction {
                    record: leased.clone(),
                    lease: Some((node("a"), Duration::from_secs(30))),
                },
                ready_action(waiting.clone()),
            ],
        ))
        .await
        .expect("write");
    assert_eq!(out.accepted, vec![AcceptOutcome::New]);
    assert_eq!(store.event(e.id).await.expect("event"), Some(e.clone()));
    let row = store
        .action(leased.id)
        .await
        .expect("action")
        .expect("stored");
    assert_eq!(row.record, leased);
    assert_eq!(row.state, ActionState::Leased);
    assert_eq!(row.attempt, 1);
    assert_eq!(row.owner, Some(node("a")));
    assert_eq!(
        row.lease_until,
        Some(later(clock.now(), Duration::from_secs(30)))
    );
    let row = store
        .action(waiting.id)
        .await
        .expect("action")
        .expect("stored");
    assert_eq!(row.state, ActionState::Ready);
    assert_eq!(row.attempt, 0);
    assert_eq!(row.owner, None);
    assert_eq!(
        store.action(ActionId::generate()).await.expect("action"),
        None
    );
    assert_eq!(store.event(EventId::generate()).await.expect("event"), None);
}

/// A second event with the same key inside the window gets the first receipt and writes
/// nothing; in another tenant, or once the window has passed, it is new.
pub async fn a_dedupe_key_is_accepted_once_within_its_window(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let keyed = |tenant: Option<&str>| {
        let mut e = event("alice", tenant, clock.now());
        e.dedupe_key = Some("order-7".to_owned());
        e
    };
    let first = keyed(None);
    let out = store
        .write(accept(first.clone(), vec![]))
        .await
        .expect("write");
    assert_eq!(out.accepted, vec![AcceptOutcome::New]);

    let second = keyed(None);
    let second_action = action(&second, "mailer");
    // Two events in one batch: the second one is the duplicate of the first batch's event.
    let mut batch = accept(second.clone(), vec![ready_action(second_action.clone())]);
    batch
        .audit
        .push(audit("accepted", &second, None, clock.now()));
    let third = keyed(Some("acme"));
    batch.accepts.push(AcceptEvent {
        event: third.clone(),
        dedupe_window: Duration::from_secs(60),
        actions: vec![],
    });
    let out = store.write(batch).await.expect("write");
    assert_eq!(
        out.accepted,
        vec![
            AcceptOutcome::Duplicate {
                event_id: first.id,
                correlation_id: first.correlation_id
            },
            AcceptOutcome::New
        ]
    );
    assert_eq!(store.event(second.id).await.expect("event"), None);
    assert_eq!(store.action(second_action.id).await.expect("action"), None);
    let steps = store
        .audit(AuditQuery {
            event_id: Some(second.id),
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    assert!(steps.items.is_empty(), "a duplicate leaves no audit trail");

    clock.advance(Duration::from_secs(61));
    let fourth = keyed(None);
    let out = store.write(accept(fourth, vec![])).await.expect("write");
    assert_eq!(out.accepted, vec![AcceptOutcome::New]);
}

/// Claims take ready actions whose time has come, oldest first, up to the limit, and each
/// raises the attempt.
pub async fn claims_take_due_actions_oldest_first_and_raise_the_attempt(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let ids = enqueue_ready(&*store, &clock, "mailer", 5).await;
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
    let (clock, store) = fresh(open).await;
    let ids = enqueue_ready(&*store, &clock, "mailer", 200).await;
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
    let (clock, store) = fresh(open).await;
    let id = enqueue_ready(&*store, &clock, "mailer", 1).await[0];
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
    let (clock, store) = fresh(open).await;
    let id = enqueue_ready(&*store, &clock, "mailer", 1).await[0];
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
    let (clock, store) = fresh(open).await;
    let ids = enqueue_ready(&*store, &clock, "mailer", 2).await;
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
    let (clock, store) = fresh(open).await;
    enqueue_ready(&*store, &clock, "mailer", 3).await;
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

/// Dead actions list newest first in pages, and a redrive makes one ready with the same id.
pub async fn dead_letters_page_newest_first_and_redrive(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let ids = enqueue_ready(&*store, &clock, "mailer", 5).await;
    store
        .claim(&node("a"), 5, Duration::from_secs(10))
        .await
        .expect("claim");
    for id in &ids {
        let out = store
            .write(settle(
                *id,
                1,
                &node("a"),
                Settlement::Dead {
                    error: json!({"kind": "permanent", "reason": "no"}),
                },
            ))
            .await
            .expect("write");
        assert_eq!(out.settled, vec![true]);
    }
    let first = store.dead_letters(None, 2).await.expect("dead");
    let mut listed: Vec<ActionId> = first.items.iter().map(|r| r.record.id).collect();
    assert_eq!(
        first.items[0].last_error,
        Some(json!({"kind": "permanent", "reason": "no"}))
    );
    let mut next = first.next;
    while let Some(cursor) = next {
        let page = store.dead_letters(Some(cursor), 2).await.expect("dead");
        listed.extend(page.items.iter().map(|r| r.record.id));
        next = page.next;
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);

    assert!(store.redrive(ids[2]).await.expect("redrive"));
    assert!(
        !store.redrive(ids[2]).await.expect("redrive"),
        "not dead any more"
    );
    assert!(!store.redrive(ActionId::generate()).await.expect("redrive"));
    let got = store
        .claim(&node("b"), 10, Duration::from_secs(10))
        .await
        .expect("claim");
    assert_eq!(
        got.iter()
            .map(|c| (c.record.id, c.attempt))
            .collect::<Vec<_>>(),
        vec![(ids[2], 2)]
    );
    assert_eq!(
        store
            .dead_letters(None, 100)
            .await
            .expect("dead")
            .items
            .len(),
        4
    );
}

/// A settle, its request's answers and its audit records are written by one batch.
pub async fn settle_results_and_audit_commit_together(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let mut e = event("alice", None, clock.now());
    e.request = Some(RequestId::generate());
    let a = action(&e, "finder");
    store
        .write(accept(
            e.clone(),
            vec![NewAction {
                record: a.clone(),
                lease: Some((node("a"), Duration::from_secs(10))),
            }],
        ))
        .await
        .expect("write");
    let result = ResultRecord {
        request: e.request.expect("request"),
        action: a.id,
        agent: a.agent.clone(),
        tenant: None,
        answers: vec![json!({"row": 1}), json!({"row": 2})],
        outcome: Ok(json!({"rows": 2})),
        expires_at: later(clock.now(), Duration::from_secs(60)),
    };
    let mut batch = settle(a.id, 1, &node("a"), Settlement::Done);
    batch.results.push(result.clone());
    batch
        .audit
        .push(audit("action_succeeded", &e, Some(&a), clock.now()));
    let out = store.write(batch).await.expect("write");
    assert_eq!(out.settled, vec![true]);
    assert_eq!(
        store.results(result.request).await.expect("results"),
        vec![result]
    );
    let page = store
        .audit(AuditQuery {
            action_id: Some(a.id),
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].step, "action_succeeded");
    assert!(page.items[0].seq > 0);
    assert_eq!(
        page.items[0].detail,
        json!({"kind": "action_succeeded", "n": 1})
    );
}

/// Results are served until their expiry and pruned after it.
pub async fn results_expire(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let request = RequestId::generate();
    let mut batch = WriteBatch::default();
    for (i, ttl) in [10u64, 100].into_iter().enumerate() {
        batch.results.push(ResultRecord {
            request,
            action: ActionId::generate(),
            agent: "finder".into(),
            tenant: None,
            answers: vec![json!(i)],
            outcome: if i == 0 {
                Ok(json!(null))
            } else {
                Err(json!({"kind": "permanent", "reason": "x"}))
            },
            expires_at: later(clock.now(), Duration::from_secs(ttl)),
        });
    }
    store.write(batch.clone()).await.expect("write");
    assert_eq!(
        store.results(request).await.expect("results"),
        batch.results
    );
    assert!(store
        .results(RequestId::generate())
        .await
        .expect("results")
        .is_empty());
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        store.results(request).await.expect("results"),
        batch.results[1..]
    );
    let report = store.prune(&Retention::default()).await.expect("prune");
    assert_eq!(report.results, 1);
}

/// Every filter narrows the audit log; pages come newest first and cover it exactly once.
pub async fn audit_queries_filter_and_page(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let alice = event("alice", Some("acme"), clock.now());
    let mut bob = event("bob", None, clock.now());
    bob.request = Some(RequestId::generate());
    let a1 = action(&alice, "mailer");
    let b1 = action(&bob, "finder");
    let t0 = clock.now();
    let mut batch = WriteBatch::default();
    for step in [
        "accepted",
        "rule_matched",
        "action_dispatched",
        "action_succeeded",
    ] {
        batch.audit.push(audit(
            step,
            &alice,
            (step != "accepted").then_some(&a1),
            clock.now(),
        ));
        clock.advance(Duration::from_secs(1));
        batch.audit.push(audit(
            step,
            &bob,
            (step != "accepted").then_some(&b1),
            clock.now(),
        ));
        clock.advance(Duration::from_secs(1));
    }
    store.write(batch).await.expect("write");
    let steps = |page: &Page<AuditRecord>| {
        page.items
            .iter()
            .map(|r| r.step.clone())
            .collect::<Vec<_>>()
    };

    let all = store.audit(AuditQuery::default()).await.expect("audit");
    assert_eq!(all.items.len(), 8);
    assert!(
        all.items.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    assert_eq!(all.next, None);

    let by_user = store
        .audit(AuditQuery {
            user: Some("alice".into()),
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    assert_eq!(
        steps(&by_user),
        [
            "action_succeeded",
            "action_dispatched",
            "rule_matched",
            "accepted"
        ]
    );
    let found = |q: AuditQuery| {
        let store = store.clone();
        async move { store.audit(q).await.expect("audit").items.len() }
    };
    let with = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(found(with(|q| q.tenant = Some("acme".into()))).await, 4);
    assert_eq!(found(with(|q| q.agent = Some("finder".into()))).await, 3);
    assert_eq!(found(with(|q| q.step = Some("accepted".into()))).await, 2);
    assert_eq!(
        found(with(|q| q.event_type = Some("order.created".into()))).await,
        8
    );
    let by_request = AuditQuery {
        request_id: bob.request,
        ..AuditQuery::default()
    };
    assert_eq!(found(by_request).await, 4);
    let by_correlation = AuditQuery {
        correlation_id: Some(bob.correlation_id),
        ..AuditQuery::default()
    };
    assert_eq!(found(by_correlation).await, 4);
    let by_event = AuditQuery {
        event_id: Some(alice.id),
        action_id: Some(a1.id),
        ..AuditQuery::default()
    };
    assert_eq!(found(by_event).await, 3);
    // [t0 + 2s, t0 + 5s): the entries at 2, 3 and 4 seconds.
    let range = AuditQuery {
        since: Some(later(t0, Duration::from_secs(2))),
        until: Some(later(t0, Duration::from_secs(5))),
        ..AuditQuery::default()
    };
    let got = store.audit(range).await.expect("audit");
    assert_eq!(
        got.items.iter().map(|r| r.at).collect::<Vec<_>>(),
        vec![
            later(t0, Duration::from_secs(4)),
            later(t0, Duration::from_secs(3)),
            later(t0, Duration::from_secs(2)),
        ]
    );

    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .audit(AuditQuery {
                cursor,
                limit: 3,
                ..AuditQuery::default()
            })
            .await
            .expect("audit");
        assert!(page.items.len() <= 3);
        paged.extend(page.items.iter().map(|r| r.seq));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, all.items.iter().map(|r| r.seq).collect::<Vec<_>>());
}

/// Audit entries, events and finished actions older than the retention go, with a tenant's own
/// age where one is set; unfinished actions and their events stay.
pub async fn prune_follows_retention_per_tenant(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let old_plain = event("alice", None, clock.now());
    let old_acme = event("carol", Some("acme"), clock.now());
    let old_pending = event("dave", None, clock.now());
    let done = action(&old_plain, "mailer");
    let pending = action(&old_pending, "mailer");
    let mut batch = WriteBatch::default();
    for (e, actions) in [
        (
            &old_plain,
            vec![NewAction {
                record: done.clone(),
                lease: Some((node("a"), Duration::from_secs(3600))),
            }],
        ),
        (&old_acme, vec![]),
        (&old_pending, vec![ready_action(pending.clone())]),
    ] {
        batch.accepts.push(AcceptEvent {
            event: e.clone(),
            dedupe_window: Duration::ZERO,
            actions,
        });
        batch.audit.push(audit("accepted", e, None, clock.now()));
    }
    store.write(batch).await.expect("write");
    store
        .write(settle(done.id, 1, &node("a"), Settlement::Done))
        .await
        .expect("write");
    clock.advance(Duration::from_secs(2 * 3600));
    let fresh_event = event("erin", Some("acme"), clock.now());
    let mut batch = accept(fresh_event.clone(), vec![]);
    batch
        .audit
        .push(audit("accepted", &fresh_event, None, clock.now()));
    store.write(batch).await.expect("write");

    // Nothing is older than 3 hours; acme keeps one hour only.
    let mut retention = Retention {
        max_age: Some(Duration::from_secs(3 * 3600)),
        ..Retention::default()
    };
    retention
        .tenants
        .insert("acme".into(), Duration::from_secs(3600));
    let report = store.prune(&retention).await.expect("prune");
    assert_eq!((report.audit, report.events, report.actions), (1, 1, 0));
    assert_eq!(store.event(old_acme.id).await.expect("event"), None);
    assert!(store.event(fresh_event.id).await.expect("event").is_some());
    assert!(store.event(old_plain.id).await.expect("event").is_some());

    retention.max_age = Some(Duration::from_secs(3600));
    let report = store.prune(&retention).await.expect("prune");
    assert_eq!((report.audit, report.events, report.actions), (2, 1, 1));
    assert_eq!(store.action(done.id).await.expect("action"), None);
    assert_eq!(store.event(old_plain.id).await.expect("event"), None);
    // The pending action and its event stay, however old.
    assert!(store.action(pending.id).await.expect("action").is_some());
    assert!(store.event(old_pending.id).await.expect("event").is_some());
    let left = store.audit(AuditQuery::default()).await.expect("audit");
    assert_eq!(left.items.len(), 1);
    assert_eq!(left.items[0].event_id, Some(fresh_event.id));
}

/// Stats count actions by state and agent and name the oldest ready one.
pub async fn stats_count_by_state(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let first_ready_at = clock.now();
    enqueue_ready(&*store, &clock, "mailer", 3).await;
    enqueue_ready(&*store, &clock, "archive", 2).await;
    let claimed = store
        .claim(&node("a"), 1, Duration::from_secs(10))
        .await
        .expect("claim");
    store
        .write(settle(
            claimed[0].record.id,
            1,
            &node("a"),
            Settlement::Dead { error: json!("x") },
        ))
        .await
        .expect("write");
    store
        .claim(&node("a"), 1, Duration::from_secs(10))
        .await
        .expect("claim");
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.backend, store.backend());
    let by_state: Vec<(ActionState, u64)> = stats.actions.clone().into_iter().collect();
    assert_eq!(
        by_state,
        vec![
            (ActionState::Ready, 3),
            (ActionState::Leased, 1),
            (ActionState::Done, 0),
            (ActionState::Dead, 1)
        ]
    );
    assert_eq!(
        stats.ready_by_agent.get(&crate::AgentId::from("mailer")),
        Some(&1)
    );
    assert_eq!(
        stats.ready_by_agent.get(&crate::AgentId::from("archive")),
        Some(&2)
    );
    assert_eq!(stats.events, 5);
    assert!(stats.oldest_ready.is_some_and(|t| t > first_ready_at));
}

/// A new store passes its own integrity check.
pub async fn a_fresh_store_checks_clean(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    enqueue_ready(&*store, &clock, "mailer", 2).await;
    store
        .claim(&node("a"), 1, Duration::from_secs(10))
        .await
        .expect("claim");
    let report = store.check().await.expect("check");
    assert!(report.ok(), "{:?}", report.problems);
    assert!(!report.checked.is_empty());
}

/// Stores `events` one batch each, in order.
async fn store_each(store: &dyn Store, events: &[EventRecord]) {
    for e in events {
        let out = store.write(accept(e.clone(), vec![])).await.expect("write");
        assert_eq!(out.accepted, vec![AcceptOutcome::New]);
    }
}

/// The ids of a page's events.
fn ids(page: &Page<EventRecord>) -> Vec<EventId> {
    page.items.iter().map(|e| e.id).collect()
}

/// Events list newest first; each of type, user, tenant and the time range narrows the list,
/// together too; a refused duplicate is not listed.
pub async fn events_list_newest_first_by_type_user_tenant_and_time(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let t0 = clock.now();
    let at = |s: u64| later(t0, Duration::from_secs(s));
    let mut e = Vec::new();
    for (i, (event_type, user, tenant)) in [
        ("order.created", "alice", Some("acme")),
        ("order.paid", "bob", Some("acme")),
        ("order.created", "bob", None),
        ("order.created", "alice", Some("globex")),
        ("order.paid", "alice", None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut principal = Principal::user(user);
        if let Some(t) = tenant {
            principal = principal.in_tenant(t);
        }
        let mut record = EventRecord::new(
            event_type,
            principal,
            json!({"i": i, "note": "ünïcode ✓"}),
            at(i as u64),
        );
        if i == 2 {
            record.dedupe_key = Some("order-7".to_owned());
        }
        e.push(record);
    }
    store_each(&*store, &e).await;
    // A duplicate of e[2], refused: not stored, so not listed.
    let mut dup = EventRecord::new("order.created", Principal::user("bob"), json!({}), at(9));
    dup.dedupe_key = Some("order-7".to_owned());
    let out = store.write(accept(dup, vec![])).await.expect("write");
    assert!(matches!(out.accepted[0], AcceptOutcome::Duplicate { .. }));

    let list = |q: EventQuery| {
        let store = store.clone();
        async move { store.events(q).await.expect("events") }
    };
    let all = list(EventQuery::default()).await;
    let newest_first: Vec<EventRecord> = e.iter().rev().cloned().collect();
    assert_eq!(all.items, newest_first);
    assert_eq!(all.next, None);
    let want = |idx: &[usize]| idx.iter().map(|&i| e[i].id).collect::<Vec<_>>();
    let by_type = list(EventQuery {
        event_type: Some("order.created".into()),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(ids(&by_type), want(&[3, 2, 0]));
    let by_user = list(EventQuery {
        user: Some("alice".into()),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(ids(&by_user), want(&[4, 3, 0]));
    for (tenant, idx) in [
        ("acme", &[1usize, 0][..]),
        ("globex", &[3][..]),
        ("initech", &[][..]),
    ] {
        let got = list(EventQuery {
            tenant: Some(tenant.into()),
            ..EventQuery::default()
        })
        .await;
        assert_eq!(ids(&got), want(idx), "tenant {tenant}");
    }
    // [t0 + 1s, t0 + 4s): the events at 1, 2 and 3 seconds.
    let range = list(EventQuery {
        since: Some(at(1)),
        until: Some(at(4)),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(ids(&range), want(&[3, 2, 1]));
    let together = list(EventQuery {
        event_type: Some("order.created".into()),
        user: Some("alice".into()),
        tenant: Some("acme".into()),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(ids(&together), want(&[0]));
    let none = list(EventQuery {
        event_type: Some("order.paid".into()),
        user: Some("bob".into()),
        until: Some(at(1)),
        ..EventQuery::default()
    })
    .await;
    assert!(none.items.is_empty());
}

/// Payload filters: strings by their text, numbers and booleans by their JSON text; null,
/// objects, arrays and missing fields never match; paths go through objects only and take
/// field names with any character.
pub async fn event_payload_filters_match_strings_numbers_and_booleans(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let main = EventRecord::new(
        "bot.message",
        Principal::user("bot-1"),
        json!({
            "state": "open",
            "n": 5,
            "neg": -3,
            "big": u64::MAX,
            "x": 2.5,
            "huge": 1e100,
            "tiny": 1.5e-7,
            "ok": true,
            "no": false,
            "none": null,
            "obj": {"a": 1},
            "arr": [1, 2, {"a": "in"}],
            "nested": {"deep": {"state": "closed"}},
            "odd.key": "dot",
            "q\"uote": "q",
            "back\\slash": "b",
            "$": "dollar",
            "[0]": "bracket",
            "' OR 1=1 --": "sql",
            "ü ✓": "unicode",
            "": "empty",
            "text": "say \"hi\" ✓ \\ $.x '",
            "five": "5",
        }),
        clock.now(),
    );
    let other = EventRecord::new(
        "bot.message",
        Principal::user("bot-2"),
        json!({"state": "closed", "n": 6, "nested": {"deep": "flat"}, "ok": "true"}),
        clock.now(),
    );
    let scalar = EventRecord::new(
        "bot.note",
        Principal::user("bot-2"),
        json!("open"),
        clock.now(),
    );
    store_each(&*store, &[main.clone(), other.clone(), scalar.clone()]).await;

    let found = |filters: Vec<PayloadFilter>| {
        let store = store.clone();
        async move {
            let page = store
                .events(EventQuery {
                    payload: filters,
                    ..EventQuery::default()
                })
                .await
                .expect("events");
            ids(&page)
        }
    };
    let at = |path: &[&str], value: &str| PayloadFilter {
        path: path.iter().map(|p| (*p).to_owned()).collect(),
        value: value.to_owned(),
    };
    let p = |path: &str, value: &str| PayloadFilter::parse(path, value);
    let m = vec![main.id];
    let o = vec![other.id];
    let nothing: Vec<EventId> = Vec::new();
    let cases: Vec<(PayloadFilter, &Vec<EventId>)> = vec![
        (p("state", "open"), &m),
        (p("state", "closed"), &o),
        (p("state", "OPEN"), &nothing),
        (p("n", "5"), &m),
        (p("n", "6"), &o),
        (p("n", "5.0"), &nothing),
        (p("neg", "-3"), &m),
        (p("big", &u64::MAX.to_string()), &m),
        (p("x", "2.5"), &m),
        (p("huge", &json!(1e100).to_string()), &m),
        (p("tiny", &json!(1.5e-7).to_string()), &m),
        (p("no", "false"), &m),
        (p("ok", "1"), &nothing),
        (p("none", "null"), &nothing),
        (p("none", ""), &nothing),
        (p("obj", r#"{"a":1}"#), &nothing),
        (p("obj.a", "1"), &m),
        (p("arr", r#"[1,2,{"a":"in"}]"#), &nothing),
        (p("arr.0", "1"), &nothing),
        (p("arr.2.a", "in"), &nothing),
        (p("nested.deep.state", "closed"), &m),
        (p("nested.deep", "flat"), &o),
        (p("odd.key", "dot"), &nothing),
        (at(&["odd.key"], "dot"), &m),
        (at(&["q\"uote"], "q"), &m),
        (at(&["back\\slash"], "b"), &m),
        (at(&["$"], "dollar"), &m),
        (at(&["[0]"], "bracket"), &m),
        (at(&["' OR 1=1 --"], "sql"), &m),
        (at(&["ü ✓"], "unicode"), &m),
        (at(&[""], "empty"), &m),
        (at(&["text"], "say \"hi\" ✓ \\ $.x '"), &m),
        (p("five", "5"), &m),
        (p("missing", "x"), &nothing),
        (p("state.deeper", "open"), &nothing),
    ];
    for (filter, want) in cases {
        assert_eq!(&found(vec![filter.clone()]).await, want, "{filter:?}");
        let e = if *want == m { &main } else { &other };
        if !want.is_empty() {
            assert!(filter.matches(&e.payload), "{filter:?}");
        }
    }
    // `ok` is a boolean in one event and a string in the other: both match their text.
    let mut both = found(vec![p("ok", "true")]).await;
    both.sort();
    let mut want = vec![main.id, other.id];
    want.sort();
    assert_eq!(both, want);
    // Every filter must match.
    assert_eq!(found(vec![p("state", "open"), p("n", "5")]).await, m);
    assert_eq!(found(vec![p("state", "open"), p("n", "6")]).await, nothing);
    // The empty path is the payload itself.
    assert_eq!(found(vec![at(&[], "open")]).await, vec![scalar.id]);
    // With the other filters.
    let page = store
        .events(EventQuery {
            user: Some("bot-2".into()),
            event_type: Some("bot.message".into()),
            payload: vec![p("n", "6")],
            ..EventQuery::default()
        })
        .await
        .expect("events");
    assert_eq!(page.items, vec![other]);
}

/// Pages of a filtered listing come newest first and cover every match exactly once, even
/// when events are written between pages; bad queries are refused.
pub async fn event_pages_cover_every_match_once(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let mut written = Vec::new();
    for i in 0..30 {
        let e = EventRecord::new(
            "bot.message",
            Principal::user(format!("bot-{}", i % 3)).in_tenant("acme"),
            json!({"bot": {"name": format!("b{}", i % 3)}, "i": i}),
            clock.now(),
        );
        written.push(e);
        clock.advance(Duration::from_millis(10));
    }
    store_each(&*store, &written).await;
    let b1: Vec<EventId> = written
        .iter()
        .rev()
        .filter(|e| e.payload["bot"]["name"] == "b1")
        .map(|e| e.id)
        .collect();
    assert_eq!(b1.len(), 10);
    let query = |cursor: Option<Cursor>| EventQuery {
        tenant: Some("acme".into()),
        payload: vec![PayloadFilter::parse("bot.name", "b1")],
        cursor,
        limit: 3,
        ..EventQuery::default()
    };
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.events(query(cursor)).await.expect("events");
        sizes.push(page.items.len());
        paged.extend(ids(&page));
        if paged.len() == 3 {
            // Newer events written meanwhile do not show on later pages.
            let mut newer = written[1].clone();
            newer.id = EventId::generate();
            newer.accepted_at = clock.now();
            store_each(&*store, &[newer]).await;
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, b1);
    assert_eq!(sizes, vec![3, 3, 3, 1]);

    // A limit of 0 is a page of 100.
    let all = store.events(EventQuery::default()).await.expect("events");
    assert_eq!((all.items.len(), all.next), (31, None));

    let too_many = EventQuery {
        payload: vec![PayloadFilter::parse("a", "b"); MAX_PAYLOAD_FILTERS + 1],
        ..EventQuery::default()
    };
    let too_deep = EventQuery {
        payload: vec![PayloadFilter {
            path: vec!["a".to_owned(); MAX_PAYLOAD_PATH + 1],
            value: "b".to_owned(),
        }],
        ..EventQuery::default()
    };
    let nul = EventQuery {
        payload: vec![PayloadFilter::parse("a\0b", "c")],
        ..EventQuery::default()
    };
    for q in [too_many, too_deep, nul] {
        let err = store.events(q).await.expect_err("a bad query");
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    }
    let deepest = EventQuery {
        payload: vec![PayloadFilter {
            path: vec!["a".to_owned(); MAX_PAYLOAD_PATH],
            value: "b".to_owned(),
        }],
        ..EventQuery::default()
    };
    assert!(store
        .events(deepest)
        .await
        .expect("events")
        .items
        .is_empty());
}

async fn put(
    store: &dyn Store,
    kind: &str,
    id: &str,
    body: Value,
    mode: RegistryWrite,
) -> RegistryOutcome {
    store
        .registry_put(kind, id, body, mode, Vec::new())
        .await
        .expect("registry_put")
}

/// Create, replace and upsert follow their mode; revisions start at 1 and rise by one at each
/// write; kinds are apart; a deleted entry is gone and starts again at 1; any JSON is a body.
pub async fn registry_writes_follow_their_mode(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let s = &*store;
    let t0 = clock.now();
    use RegistryWrite::*;
    assert_eq!(
        put(s, "agent", "mailer", json!({"v": 1}), Create).await,
        RegistryOutcome::Written { revision: 1 }
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        put(s, "agent", "mailer", json!({"v": 0}), Create).await,
        RegistryOutcome::Exists
    );
    let entry = s
        .registry_get("agent", "mailer")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        entry,
        RegistryEntry {
            kind: "agent".to_owned(),
            id: "mailer".to_owned(),
            body: json!({"v": 1}),
            revision: 1,
            updated_at: t0,
        }
    );
    assert_eq!(
        put(s, "agent", "mailer", json!({"v": 2}), Replace).await,
        RegistryOutcome::Written { revision: 2 }
    );
    let entry = s
        .registry_get("agent", "mailer")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        (entry.body, entry.revision, entry.updated_at),
        (json!({"v": 2}), 2, clock.now())
    );
    assert_eq!(
        put(s, "agent", "ghost", json!({}), Replace).await,
        RegistryOutcome::Missing
    );
    assert_eq!(s.registry_get("agent", "ghost").await.expect("get"), None);
    assert_eq!(
        put(s, "agent", "mailer", json!({"v": 3}), Upsert).await,
        RegistryOutcome::Written { revision: 3 }
    );
    assert_eq!(
        put(s, "agent", "archive", json!("just text"), Upsert).await,
        RegistryOutcome::Written { revision: 1 }
    );
    assert_eq!(
        put(s, "rule", "mailer", json!({"rule": true}), Upsert).await,
        RegistryOutcome::Written { revision: 1 }
    );
    let listed = |kind: &'static str| {
        let store = store.clone();
        async move {
            store
                .registry_list(kind)
                .await
                .expect("list")
                .into_iter()
                .map(|e| (e.id, e.revision))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed("agent").await,
        vec![("archive".to_owned(), 1), ("mailer".to_owned(), 3)]
    );
    assert_eq!(listed("rule").await, vec![("mailer".to_owned(), 1)]);
    assert!(listed("type").await.is_empty());
    let rule = s
        .registry_get("rule", "mailer")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(rule.kind, "rule");
    assert_eq!(rule.body, json!({"rule": true}));

    assert!(s
        .registry_delete("agent", "mailer", Vec::new())
        .await
        .expect("delete"));
    assert!(!s
        .registry_delete("agent", "mailer", Vec::new())
        .await
        .expect("delete"));
    assert_eq!(s.registry_get("agent", "mailer").await.expect("get"), None);
    assert_eq!(listed("agent").await, vec![("archive".to_owned(), 1)]);
    assert_eq!(listed("rule").await, vec![("mailer".to_owned(), 1)]);
    assert_eq!(
        put(s, "agent", "mailer", json!({"v": 4}), Create).await,
        RegistryOutcome::Written { revision: 1 }
    );

    let bodies = [
        json!(null),
        json!(true),
        json!(5),
        json!(-2.5),
        json!("text with \"quotes\", \\ and ✓"),
        json!([1, "a", null, [], {}]),
        json!({"nested": {"deep": [{"k": "v"}]}, "unicode": "ünïcode", "nul": "a\u{0}b"}),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let id = format!("b{i}");
        put(s, "bodies", &id, body.clone(), Upsert).await;
        let got = s
            .registry_get("bodies", &id)
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(&got.body, body);
    }
}

/// Audit records passed with a registry change are written with it, and only when something
/// changed.
pub async fn registry_audit_is_written_with_the_change_only(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    let step = |change: &str| AuditRecord {
        seq: 0,
        at: clock.now(),
        step: "registry_changed".to_owned(),
        event_id: None,
        correlation_id: None,
        request_id: None,
        action_id: None,
        event_type: None,
        user: Some("admin".into()),
        tenant: None,
        agent: None,
        detail: json!({"change": change}),
    };
    use RegistryWrite::*;
    let s = &*store;
    let put = |id: &'static str, mode, change: &str| {
        s.registry_put("agent", id, json!({"id": id}), mode, vec![step(change)])
    };
    assert_eq!(
        put("mailer", Create, "create").await.expect("put"),
        RegistryOutcome::Written { revision: 1 }
    );
    assert_eq!(
        put("mailer", Create, "create again").await.expect("put"),
        RegistryOutcome::Exists
    );
    assert_eq!(
        put("ghost", Replace, "replace a ghost").await.expect("put"),
        RegistryOutcome::Missing
    );
    let refused = s
        .registry_put("agent", "", json!({}), Upsert, vec![step("bad id")])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(
        put("mailer", Replace, "replace").await.expect("put"),
        RegistryOutcome::Written { revision: 2 }
    );
    assert!(!s
        .registry_delete("agent", "ghost", vec![step("delete a ghost")])
        .await
        .expect("delete"));
    assert!(s
        .registry_delete(
            "agent",
            "mailer",
            vec![step("delete"), step("delete, second record")]
        )
        .await
        .expect("delete"));
    let page = s
        .audit(AuditQuery {
            step: Some("registry_changed".to_owned()),
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    let changes: Vec<&str> = page
        .items
        .iter()
        .map(|r| r.detail["change"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        changes,
        ["delete, second record", "delete", "replace", "create"]
    );
    assert!(page.items.iter().all(|r| r.seq > 0));
}

/// Kinds and ids are 1 to 200 bytes without NUL; any other text is fine, and entries list in
/// the byte order of their ids.
pub async fn registry_keys_are_checked_and_listed_in_byte_order(open: &dyn Open) {
    let (_, store) = fresh(open).await;
    let s = &*store;
    let long = "x".repeat(MAX_REGISTRY_KEY + 1);
    for (kind, id) in [
        ("", "x"),
        ("agent", ""),
        ("agent", long.as_str()),
        (long.as_str(), "x"),
        ("agent", "a\0b"),
    ] {
        let invalid = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Invalid(_)));
        assert!(
            invalid(
                s.registry_put(kind, id, json!(1), RegistryWrite::Upsert, Vec::new())
                    .await
                    .map(drop)
            ),
            "put {kind:?}/{id:?}"
        );
        assert!(
            invalid(s.registry_get(kind, id).await.map(drop)),
            "get {kind:?}/{id:?}"
        );
        assert!(
            invalid(s.registry_delete(kind, id, Vec::new()).await.map(drop)),
            "delete {kind:?}/{id:?}"
        );
    }
    assert!(matches!(
        s.registry_list("").await,
        Err(StoreError::Invalid(_))
    ));
    // 200 bytes in 100 characters.
    let longest = "é".repeat(MAX_REGISTRY_KEY / 2);
    let mut ids: Vec<String> = [
        "b",
        "B",
        "a",
        "Z",
        "ä",
        "a.b",
        "a b",
        "a\"q",
        "a'q",
        "$x",
        "10",
        "9",
        "_",
        "a/b",
        "✓",
        longest.as_str(),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for id in &ids {
        assert_eq!(
            put(s, &longest, id, json!({"id": id}), RegistryWrite::Create).await,
            RegistryOutcome::Written { revision: 1 }
        );
    }
    ids.sort();
    let listed: Vec<String> = s
        .registry_list(&longest)
        .await
        .expect("list")
        .into_iter()
        .map(|e| {
            assert_eq!(e.body, json!({"id": e.id}));
            e.id
        })
        .collect();
    assert_eq!(listed, ids);
}

/// Writes of one entry racing from many tasks each get their own revision; of racing creates,
/// exactly one wins.
pub async fn concurrent_registry_writes_get_distinct_revisions(open: &dyn Open) {
    let (_, store) = fresh(open).await;
    let mut tasks = Vec::new();
    for t in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..5 {
                let out = store
                    .registry_put(
                        "rule",
                        "shared",
                        json!({"task": t, "i": i}),
                        RegistryWrite::Upsert,
                        Vec::new(),
                    )
                    .await
                    .expect("put");
                let RegistryOutcome::Written { revision } = out else {
                    panic!("an upsert was not written: {out:?}");
                };
                got.push(revision);
            }
            let created = store
                .registry_put(
                    "rule",
                    "first",
                    json!({"task": t}),
                    RegistryWrite::Create,
                    Vec::new(),
                )
                .await
                .expect("put");
            (got, created)
        }));
    }
    let mut revisions = Vec::new();
    let mut wins = 0;
    for t in tasks {
        let (got, created) = t.await.expect("task");
        revisions.extend(got);
        match created {
            RegistryOutcome::Written { revision: 1 } => wins += 1,
            RegistryOutcome::Exists => {}
            other => panic!("a create ended with {other:?}"),
        }
    }
    revisions.sort_unstable();
    assert_eq!(revisions, (1..=50).collect::<Vec<u64>>());
    assert_eq!(wins, 1);
    let entry = store
        .registry_get("rule", "shared")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(entry.revision, 50);
}

/// Pruning, however strict, leaves the registry alone.
pub async fn prune_keeps_the_registry(open: &dyn Open) {
    let (clock, store) = fresh(open).await;
    put(
        &*store,
        "key",
        "k1",
        json!({"hash": "x"}),
        RegistryWrite::Create,
    )
    .await;
    clock.advance(Duration::from_secs(30 * 24 * 3600));
    let retention = Retention {
        max_age: Some(Duration::from_secs(1)),
        ..Retention::default()
    };
    store.prune(&retention).await.expect("prune");
    assert!(store
        .registry_get("key", "k1")
        .await
        .expect("get")
        .is_some());
    assert_eq!(store.registry_list("key").await.expect("list").len(), 1);
}
