//! A `rule_matched` step followed by its `action_dispatched` is kept as one row and read back as
//! both steps, exactly, in order, under every filter and across pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use atamo_core::ids::{ActionId, CorrelationId, EventId};
use atamo_core::message::Timestamp;
use atamo_core::store::{
    AuditLog, AuditQuery, AuditRecord, BatchWriter, Cursor, Maintenance, WriteBatch,
};
use atamo_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

fn step(step: &str, event: EventId, at: Timestamp) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at,
        step: step.into(),
        event_id: Some(event),
        correlation_id: Some(CorrelationId::generate()),
        request_id: None,
        action_id: None,
        event_type: Some("order.created".into()),
        user: Some("alice".into()),
        tenant: Some("acme".into()),
        agent: None,
        detail: json!({}),
    }
}

/// The routing steps of one event: accepted, then (matched, dispatched) per rule.
fn routed(rules: &[(&str, &str)]) -> Vec<AuditRecord> {
    let event = EventId::generate();
    let at = Timestamp::now();
    let accepted = step("accepted", event, at);
    let mut out = vec![accepted.clone()];
    for (rule, agent) in rules {
        let matched = AuditRecord {
            step: "rule_matched".into(),
            agent: Some((*agent).into()),
            detail: json!({"action_type": "mail", "provider": "rules", "rule": rule}),
            ..accepted.clone()
        };
        let dispatched = AuditRecord {
            step: "action_dispatched".into(),
            action_id: Some(ActionId::generate()),
            agent: Some((*agent).into()),
            detail: json!({"action": {"action_type": "mail", "attempt": 1, "provider": "rules",
                                      "rule": rule}}),
            ..accepted.clone()
        };
        out.push(matched);
        out.push(dispatched);
    }
    out
}

fn strip(mut r: AuditRecord) -> AuditRecord {
    r.seq = 0;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folded_steps_read_back_exactly_in_order_under_every_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("a.db"), SqliteOptions::default())
        .await
        .unwrap();
    let one = routed(&[("r1", "mailer")]);
    let two = routed(&[("r2", "mailer"), ("r3", "archive")]);
    // A match whose dispatch says something else is not folded.
    let mut odd = routed(&[("r4", "mailer")]);
    odd[1].detail = json!({"action_type": "other", "provider": "rules", "rule": "r4"});
    let mut written = Vec::new();
    for steps in [&one, &two, &odd] {
        written.extend(steps.iter().cloned());
    }
    store
        .write(WriteBatch {
            audit: written.clone(),
            ..WriteBatch::default()
        })
        .await
        .unwrap();

    // Everything, newest first, exactly as written, with strictly falling seqs.
    let all = store.audit(AuditQuery::default()).await.unwrap().items;
    assert_eq!(all.len(), written.len());
    let mut oldest_first: Vec<AuditRecord> = all.iter().rev().cloned().collect();
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq));
    oldest_first.iter_mut().for_each(|r| r.seq = 0);
    assert_eq!(
        oldest_first,
        written.iter().cloned().map(strip).collect::<Vec<_>>()
    );
    assert_eq!(
        store.stats().await.unwrap().audit_entries,
        written.len() as u64
    );

    // By event, by step, by action, by agent.
    let path = |event| AuditQuery {
        event_id: Some(event),
        ..AuditQuery::default()
    };
    let p = store
        .audit(path(one[0].event_id.unwrap()))
        .await
        .unwrap()
        .items;
    let steps: Vec<&str> = p.iter().rev().map(|r| r.step.as_str()).collect();
    assert_eq!(steps, ["accepted", "rule_matched", "action_dispatched"]);
    for (name, n) in [
        ("rule_matched", 4),
        ("action_dispatched", 4),
        ("accepted", 3),
    ] {
        let q = AuditQuery {
            step: Some(name.into()),
            ..AuditQuery::default()
        };
        let got = store.audit(q).await.unwrap().items;
        assert_eq!(got.len(), n, "{name}");
        assert!(got.iter().all(|r| r.step == name));
    }
    let q = AuditQuery {
        action_id: one[2].action_id,
        ..AuditQuery::default()
    };
    let got = store.audit(q).await.unwrap().items;
    assert_eq!(
        got.iter().map(|r| r.step.as_str()).collect::<Vec<_>>(),
        ["action_dispatched"]
    );
    let q = AuditQuery {
        agent: Some("archive".into()),
        ..AuditQuery::default()
    };
    let got = store.audit(q).await.unwrap().items;
    assert_eq!(got.len(), 2);

    // Page by page, one record at a time: every record once, in order.
    let mut cursor: Option<Cursor> = None;
    let mut paged = Vec::new();
    loop {
        let page = store
            .audit(AuditQuery {
                cursor,
                limit: 1,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        paged.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, all);
    // And three at a time.
    let first = store
        .audit(AuditQuery {
            limit: 3,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let second = store
        .audit(AuditQuery {
            limit: 3,
            cursor: first.next,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(first.items[..], all[..3]);
    assert_eq!(second.items[..], all[3..6]);
}
