//! Maintenance: retention, statistics and the integrity check.

use std::time::Duration;

use serde_json::json;

use super::support::{
    accept, action, audit, enqueue_ready, event, fresh, node, ready_action, settle, Case, Open,
};
use crate::store::{
    AcceptEvent, ActionState, AuditQuery, Clock, NewAction, Retention, Settlement, WriteBatch,
};

/// Audit entries, events and finished actions older than the retention go, with a tenant's own
/// age where one is set; unfinished actions and their events stay.
pub async fn prune_follows_retention_per_tenant(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
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
    let Case { clock, store, .. } = &fresh(open).await;
    let first_ready_at = clock.now();
    enqueue_ready(&**store, clock, "mailer", 3).await;
    enqueue_ready(&**store, clock, "archive", 2).await;
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
    let Case { clock, store, .. } = &fresh(open).await;
    enqueue_ready(&**store, clock, "mailer", 2).await;
    store
        .claim(&node("a"), 1, Duration::from_secs(10))
        .await
        .expect("claim");
    let report = store.check().await.expect("check");
    assert!(report.ok(), "{:?}", report.problems);
    assert!(!report.checked.is_empty());
}
