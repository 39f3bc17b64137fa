//! Audit queries: filters and pages.

use std::time::Duration;

use super::support::{action, audit, event, fresh, Case, Open};
use crate::ids::RequestId;
use crate::store::{later, AuditQuery, AuditRecord, Clock, Page, WriteBatch};

/// Every filter narrows the audit log; pages come newest first and cover it exactly once.
pub async fn audit_queries_filter_and_page(open: &dyn Open) {
    let Case { clock, store, .. } = &fresh(open).await;
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
