//! Accepting events: their actions, and dedupe keys within their window.

use std::time::Duration;

use super::support::{accept, action, audit, event, fresh, node, ready_action, Case, Open};
use crate::ids::{ActionId, EventId};
use crate::store::{later, AcceptEvent, AcceptOutcome, ActionState, AuditQuery, Clock, NewAction};

/// The event, its dedupe key and its actions are written; a leased action belongs to its node
/// with attempt 1, a ready one waits with attempt 0.
pub async fn accept_writes_the_event_and_its_actions(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
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
    let Case { clock, store, .. } = &fresh(open).await;
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
