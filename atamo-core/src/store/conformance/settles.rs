//! Ends of attempts: dead letters and redrives, results, and what commits together.

use std::time::Duration;

use serde_json::json;

use super::support::{
    accept, action, audit, enqueue_ready, event, fresh, node, settle, Case, Open,
};
use crate::ids::{ActionId, RequestId};
use crate::store::{
    later, AuditQuery, Clock, NewAction, ResultRecord, Retention, Settlement, WriteBatch,
};

/// Dead actions list newest first in pages, and a redrive makes one ready with the same id.
pub async fn dead_letters_page_newest_first_and_redrive(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
    let ids = enqueue_ready(&**store, clock, "mailer", 5).await;
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
    let Case { clock, store, .. } = &fresh(open).await;
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
    let Case { clock, store, .. } = &fresh(open).await;
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
