//! The event log: listings, payload filters and pages.

use std::time::Duration;

use serde_json::json;

use super::support::{accept, fresh, Case, Open};
use crate::ids::EventId;
use crate::message::Principal;
use crate::store::{
    later, AcceptOutcome, Clock, Cursor, EventQuery, EventRecord, Page, PayloadFilter, Store,
    StoreError, MAX_PAYLOAD_FILTERS, MAX_PAYLOAD_PATH,
};

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
    let Case { clock, store, .. } = &fresh(open).await;
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
    store_each(&**store, &e).await;
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
    let Case { clock, store, .. } = &fresh(open).await;
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
    store_each(&**store, &[main.clone(), other.clone(), scalar.clone()]).await;

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
    let Case { clock, store, .. } = &fresh(open).await;
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
    store_each(&**store, &written).await;
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
            store_each(&**store, &[newer]).await;
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
        assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
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
