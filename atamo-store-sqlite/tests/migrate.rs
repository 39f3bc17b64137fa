//! A store of schema version 1 migrates when it opens, keeping every row.
//!
//! `fixtures/schema-v1.db` was written by the store of schema version 1 on a clock starting at
//! 1_800_000_000 s: twelve events `i` = 0..11, one a second, each with one ready action for
//! `mailer` and one `accepted` audit entry; event `i` is of type `bot.message` (even `i`) or
//! `order.created` (odd), for user `user-{i % 3}`, in tenant `acme` when `i % 4 == 0`, with the
//! payload `{"i": i, "state": "open" when i % 3 == 0 else "closed", "bot": {"name": "b{i % 2}"}}`;
//! event 5 holds the dedupe key `key-5` for ten days. Then node `n1` claimed two actions for an
//! hour and settled the first one done, with a result.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use atamo_core::message::Timestamp;
use atamo_core::store::{
    AcceptEvent, AcceptOutcome, ActionState, AuditLog, AuditQuery, BatchWriter, Clock,
    DefinitionRegistry, EventLog, EventQuery, EventRecord, Maintenance, ManualClock, PayloadFilter,
    RegistryKind, RegistryOutcome, RegistryWrite, WriteBatch,
};
use atamo_core::Principal;
use atamo_store_sqlite::{SqliteOptions, SqliteStore, SCHEMA_VERSION};
use serde_json::json;

const START: u64 = 1_800_000_000_000_000;

fn fixture(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("store.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-v1.db"),
        &path,
    )
    .unwrap();
    path
}

fn user_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn numbers(page: &[EventRecord]) -> Vec<u64> {
    page.iter()
        .map(|e| e.payload["i"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_store_migrates_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path());
    assert_eq!(user_version(&path), 1);
    let rowids: Vec<(i64, String)> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT rowid, id FROM events ORDER BY rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rowids.len(), 12);

    // Half an hour after the fixture was written: n1's lease (an hour) still runs.
    let clock = ManualClock::new(Timestamp::from_unix_micros(START + 1_800_000_000));
    let store = SqliteStore::open(&path, SqliteOptions::default().clock(clock.clone()))
        .await
        .expect("open");

    // Every event is listed, newest first, and reads back whole.
    let all = store.events(EventQuery::default()).await.unwrap();
    assert_eq!(numbers(&all.items), (0..12).rev().collect::<Vec<_>>());
    for e in &all.items {
        let i = e.payload["i"].as_u64().unwrap();
        assert_eq!(
            e.accepted_at,
            Timestamp::from_unix_micros(START + i * 1_000_000)
        );
        assert_eq!(store.event(e.id).await.unwrap().as_ref(), Some(e));
    }
    // Filters work on the migrated rows.
    let q = |f: fn(&mut EventQuery)| {
        let mut q = EventQuery::default();
        f(&mut q);
        q
    };
    let got = store
        .events(q(|q| q.event_type = Some("order.created".into())))
        .await
        .unwrap();
    assert_eq!(numbers(&got.items), [11, 9, 7, 5, 3, 1]);
    let got = store
        .events(q(|q| q.user = Some("user-1".into())))
        .await
        .unwrap();
    assert_eq!(numbers(&got.items), [10, 7, 4, 1]);
    let got = store
        .events(q(|q| q.tenant = Some("acme".into())))
        .await
        .unwrap();
    assert_eq!(numbers(&got.items), [8, 4, 0]);
    let got = store
        .events(q(|q| {
            q.payload = vec![
                PayloadFilter::parse("state", "open"),
                PayloadFilter::parse("bot.name", "b1"),
            ]
        }))
        .await
        .unwrap();
    assert_eq!(numbers(&got.items), [9, 3]);
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .events(EventQuery {
                cursor,
                limit: 5,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        paged.extend(numbers(&page.items));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, (0..12).rev().collect::<Vec<_>>());

    // Actions, audit entries, results and dedupe keys are all there.
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.events, 12);
    assert_eq!(stats.audit_entries, 12);
    assert_eq!(stats.results, 1);
    assert_eq!(stats.actions[&ActionState::Ready], 10);
    assert_eq!(stats.actions[&ActionState::Leased], 1);
    assert_eq!(stats.actions[&ActionState::Done], 1);
    let audit = store.audit(AuditQuery::default()).await.unwrap();
    assert_eq!(audit.items.len(), 12);
    let mut again = EventRecord::new(
        "order.created",
        Principal::user("x"),
        json!({}),
        clock.now(),
    );
    again.dedupe_key = Some("key-5".to_owned());
    let out = store
        .write(WriteBatch::accepting(vec![AcceptEvent::new(again, vec![])]))
        .await
        .unwrap();
    let five = all.items.iter().find(|e| e.payload["i"] == 5).unwrap();
    assert_eq!(
        out.accepted,
        vec![AcceptOutcome::Duplicate {
            event_id: five.id,
            correlation_id: five.correlation_id
        }]
    );

    // A new event comes after the migrated ones; the registry is there.
    let newer = EventRecord::new(
        "bot.message",
        Principal::user("x"),
        json!({"i": 12}),
        clock.now(),
    );
    store
        .write(WriteBatch::accepting(vec![AcceptEvent::new(
            newer.clone(),
            vec![],
        )]))
        .await
        .unwrap();
    let first = store
        .events(EventQuery {
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(first.items, vec![newer.clone()]);
    assert_eq!(
        store
            .put(
                &RegistryKind::AGENT,
                "mailer",
                json!({}),
                RegistryWrite::Create,
                vec![]
            )
            .await
            .unwrap(),
        RegistryOutcome::Written { revision: 1 }
    );
    let report = store.check().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    store.close().await.unwrap();

    // The numbers of the old rows are their rowids; the new one's is the next.
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let seqs: Vec<(i64, String)> = conn
        .prepare("SELECT seq, id FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(&seqs[..12], &rowids[..]);
    assert_eq!(seqs[12], (13, newer.id.to_string()));
    // Ids stay unique, through an index.
    let unique_id: bool = conn
        .query_row(
            "SELECT count(*) = 1 FROM pragma_index_list('events') AS l \
             WHERE l.\"unique\" AND (SELECT group_concat(name) FROM pragma_index_info(l.name)) = 'id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(unique_id);
    let err = conn
        .execute(
            "INSERT INTO events (id, event_type, user_id, correlation_id, accepted_at, body) \
             SELECT id, event_type, user_id, correlation_id, accepted_at, body FROM events LIMIT 1",
            [],
        )
        .expect_err("a second row with the same id");
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    drop(conn);

    // Opening again changes nothing.
    let store = SqliteStore::open(&path, SqliteOptions::default().clock(clock))
        .await
        .expect("open");
    assert_eq!(
        store
            .events(EventQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        13
    );
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_numbers_survive_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let clock = ManualClock::new(Timestamp::from_unix_micros(START));
    let store = SqliteStore::open(&path, SqliteOptions::default().clock(clock.clone()))
        .await
        .unwrap();
    let mut written = Vec::new();
    for i in 0..20 {
        let e = EventRecord::new("t", Principal::user("u"), json!({"i": i}), clock.now());
        written.push(e.clone());
        store
            .write(WriteBatch::accepting(vec![AcceptEvent::new(e, vec![])]))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(1));
    }
    let first = store
        .events(EventQuery {
            limit: 5,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let cursor = first.next.unwrap();
    // Old events go (gaps in the numbers), then the file is vacuumed.
    clock.advance(Duration::from_secs(3600));
    store
        .prune(&atamo_core::store::Retention {
            max_age: Some(Duration::from_secs(3600 + 10)),
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await.unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("VACUUM")
        .unwrap();
    let store = SqliteStore::open(&path, SqliteOptions::default().clock(clock))
        .await
        .unwrap();
    // The cursor taken before still continues where the first page ended.
    let rest = store
        .events(EventQuery {
            cursor: Some(cursor),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(numbers(&rest.items), (10..15).rev().collect::<Vec<_>>());
    store.close().await.unwrap();
}
