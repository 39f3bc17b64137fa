#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::model::{AgentDef, EventTypeBody};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Shape {
    name: String,
    kind: Kind,
    inner: Option<Inner>,
    list: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Http,
    Sql,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Inner {
    n: u32,
}

/// The fields named, sorted (serde reads an object's members in key order).
fn fields<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    body: serde_json::Value,
) -> Vec<String> {
    let bytes = serde_json::to_vec(&body).unwrap();
    let mut fields: Vec<String> = read::<T>(&bytes)
        .unwrap_err()
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    fields.sort();
    fields
}

#[test]
fn every_bad_field_is_named() {
    assert_eq!(
        fields::<Shape>(
            json!({"name": 3, "kind": "ftp", "inner": {"n": "x", "m": 1},
                               "list": [1, "two", 3], "colour": "red"})
        ),
        ["colour", "inner.m", "inner.n", "kind", "list[1]", "name"]
    );
    assert_eq!(fields::<Shape>(json!({})), ["kind", "list", "name"]);
    assert_eq!(
        fields::<AgentDef>(json!({"config": {}})),
        ["id", "kind"],
        "both missing fields of an agent are named"
    );
    assert_eq!(
        fields::<EventTypeBody>(json!({"name": 1, "keep_alive_ms": 1_000_000_000_000_000u64,
                                       "durability": "forever"})),
        ["durability", "keep_alive_ms", "name"]
    );
}

#[test]
fn good_bodies_read_and_bad_ones_say_why() {
    let ok: Shape = read(br#"{"name": "a", "kind": "sql", "list": []}"#).unwrap();
    assert_eq!(ok.name, "a");
    let problems = read::<Shape>(br#"{"name": "a""#).unwrap_err();
    assert_eq!(problems[0].0, "body");
    let problems = read::<Shape>(b"[]").unwrap_err();
    assert_eq!(problems, [("body".to_owned(), problems[0].1.clone())]);
    let problems =
        read::<EventTypeBody>(br#"{"name": "t", "keep_alive_ms": 1000000000000000}"#).unwrap_err();
    assert_eq!(problems[0].0, "keep_alive_ms");
    assert!(
        problems[0].1.contains("must be at most 30days"),
        "{problems:?}"
    );
}

#[test]
fn integers_past_64_bits_are_refused_at_their_field() {
    let problems = read::<serde_json::Value>(
        br#"{"payload": {"n": 18446744073709551616}, "m": 18446744073709551615}"#,
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].0, "payload.n");
    let problems =
        read::<Shape>(br#"{"name": "a", "kind": "sql", "list": [184467440737095516160]}"#)
            .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "list[0]");
}

#[test]
fn a_large_body_names_its_first_bad_field() {
    let filler = "x".repeat(REPAIR_LIMIT);
    let body = json!({"name": 1, "kind": "ftp", "list": [], "inner": null, "pad": filler});
    assert_eq!(fields::<Shape>(body).len(), 1);
}

#[test]
fn prefixes_name_the_element() {
    let problems = read_value::<Inner>(json!({"n": "x"}), "events[2].", true).unwrap_err();
    assert_eq!(problems[0].0, "events[2].n");
}
