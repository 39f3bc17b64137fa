//! The definitions registry: write modes, revisions, audit, keys and races.

use std::time::Duration;

use serde_json::{json, Value};

use super::support::{fresh, Case, Open};
use crate::store::{
    AuditQuery, AuditRecord, Clock, DefinitionRegistry, RegistryEntry, RegistryKind,
    RegistryOutcome, RegistryWrite, Retention, StoreError, MAX_REGISTRY_KEY,
};

/// A kind the cases name.
fn kind(name: &str) -> RegistryKind {
    RegistryKind::new(name).expect("a valid kind")
}

async fn put(
    registry: &dyn DefinitionRegistry,
    kind: &RegistryKind,
    id: &str,
    body: Value,
    mode: RegistryWrite,
) -> RegistryOutcome {
    registry
        .put(kind, id, body, mode, Vec::new())
        .await
        .expect("put")
}

/// Create, replace and upsert follow their mode; revisions start at 1 and rise by one at each
/// write; kinds are apart; a deleted entry is gone and starts again at 1; any JSON is a body.
pub async fn registry_writes_follow_their_mode(open: &dyn Open) {
    let Case {
        clock, registry, ..
    } = &fresh(open).await;
    let s = &**registry;
    let t0 = clock.now();
    use RegistryWrite::*;
    assert_eq!(
        put(s, &kind("agent"), "mailer", json!({"v": 1}), Create).await,
        RegistryOutcome::Written { revision: 1 }
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        put(s, &kind("agent"), "mailer", json!({"v": 0}), Create).await,
        RegistryOutcome::Exists
    );
    let entry = s
        .entry(&kind("agent"), "mailer")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        entry,
        RegistryEntry {
            kind: RegistryKind::AGENT,
            id: "mailer".to_owned(),
            body: json!({"v": 1}),
            revision: 1,
            updated_at: t0,
        }
    );
    assert_eq!(
        put(s, &kind("agent"), "mailer", json!({"v": 2}), Replace).await,
        RegistryOutcome::Written { revision: 2 }
    );
    let entry = s
        .entry(&kind("agent"), "mailer")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        (entry.body, entry.revision, entry.updated_at),
        (json!({"v": 2}), 2, clock.now())
    );
    assert_eq!(
        put(s, &kind("agent"), "ghost", json!({}), Replace).await,
        RegistryOutcome::Missing
    );
    assert_eq!(s.entry(&kind("agent"), "ghost").await.expect("get"), None);
    assert_eq!(
        put(s, &kind("agent"), "mailer", json!({"v": 3}), Upsert).await,
        RegistryOutcome::Written { revision: 3 }
    );
    assert_eq!(
        put(s, &kind("agent"), "archive", json!("just text"), Upsert).await,
        RegistryOutcome::Written { revision: 1 }
    );
    assert_eq!(
        put(s, &kind("rule"), "mailer", json!({"rule": true}), Upsert).await,
        RegistryOutcome::Written { revision: 1 }
    );
    let listed = |name: &'static str| {
        let registry = registry.clone();
        async move {
            registry
                .entries(&kind(name))
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
        .entry(&kind("rule"), "mailer")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(rule.kind, "rule");
    assert_eq!(rule.body, json!({"rule": true}));

    assert!(s
        .delete(&kind("agent"), "mailer", Vec::new())
        .await
        .expect("delete"));
    assert!(!s
        .delete(&kind("agent"), "mailer", Vec::new())
        .await
        .expect("delete"));
    assert_eq!(s.entry(&kind("agent"), "mailer").await.expect("get"), None);
    assert_eq!(listed("agent").await, vec![("archive".to_owned(), 1)]);
    assert_eq!(listed("rule").await, vec![("mailer".to_owned(), 1)]);
    assert_eq!(
        put(s, &kind("agent"), "mailer", json!({"v": 4}), Create).await,
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
        put(s, &kind("bodies"), &id, body.clone(), Upsert).await;
        let got = s
            .entry(&kind("bodies"), &id)
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(&got.body, body);
    }
}

/// Audit records passed with a registry change are written with it, and only when something
/// changed.
pub async fn registry_audit_is_written_with_the_change_only(open: &dyn Open) {
    let Case {
        clock,
        store,
        registry,
        ..
    } = &fresh(open).await;
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
    let s = &**registry;
    let agent = RegistryKind::AGENT;
    let put = |id: &'static str, mode, change: &str| {
        s.put(&agent, id, json!({"id": id}), mode, vec![step(change)])
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
        .put(&agent, "", json!({}), Upsert, vec![step("bad id")])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );
    assert_eq!(
        put("mailer", Replace, "replace").await.expect("put"),
        RegistryOutcome::Written { revision: 2 }
    );
    assert!(!s
        .delete(&agent, "ghost", vec![step("delete a ghost")])
        .await
        .expect("delete"));
    assert!(s
        .delete(
            &agent,
            "mailer",
            vec![step("delete"), step("delete, second record")]
        )
        .await
        .expect("delete"));
    let page = store
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
    let Case { registry, .. } = &fresh(open).await;
    let s = &**registry;
    let long = "x".repeat(MAX_REGISTRY_KEY + 1);
    let invalid = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Invalid { .. }));
    // A kind is checked when it is made: a bad one never reaches the backend.
    for bad in ["", long.as_str(), "a\0b"] {
        assert!(invalid(RegistryKind::new(bad).map(drop)), "kind {bad:?}");
    }
    let agent = RegistryKind::AGENT;
    for id in ["", long.as_str(), "a\0b"] {
        assert!(
            invalid(
                s.put(&agent, id, json!(1), RegistryWrite::Upsert, Vec::new())
                    .await
                    .map(drop)
            ),
            "put {id:?}"
        );
        assert!(invalid(s.entry(&agent, id).await.map(drop)), "get {id:?}");
        assert!(
            invalid(s.delete(&agent, id, Vec::new()).await.map(drop)),
            "delete {id:?}"
        );
    }
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
    let longest_kind = kind(&longest);
    for id in &ids {
        assert_eq!(
            put(
                s,
                &longest_kind,
                id,
                json!({"id": id}),
                RegistryWrite::Create
            )
            .await,
            RegistryOutcome::Written { revision: 1 }
        );
    }
    ids.sort();
    let listed: Vec<String> = s
        .entries(&longest_kind)
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
    let Case { registry, .. } = &fresh(open).await;
    let mut tasks = Vec::new();
    for t in 0..10 {
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..5 {
                let out = registry
                    .put(
                        &RegistryKind::RULE,
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
            let created = registry
                .put(
                    &RegistryKind::RULE,
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
    let entry = registry
        .entry(&RegistryKind::RULE, "shared")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(entry.revision, 50);
}

/// Pruning, however strict, leaves the registry alone.
pub async fn prune_keeps_the_registry(open: &dyn Open) {
    let Case {
        clock,
        store,
        registry,
        ..
    } = &fresh(open).await;
    put(
        &**registry,
        &kind("key"),
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
    assert!(registry
        .entry(&kind("key"), "k1")
        .await
        .expect("get")
        .is_some());
    assert_eq!(registry.entries(&kind("key")).await.expect("list").len(), 1);
}
