//! `atamo store stats|check`, run as the real binary on a real SQLite store: queue depths by
//! state, the oldest ready action, dead letters and size as text and JSON; a clean check exits
//! 0, a damaged file exits 1 naming the problem; a missing store is an error, never created.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::Duration;

use atamo_core::store::{
    AcceptEvent, ActionQueue, ActionRecord, BatchWriter, EventRecord, NewAction, NodeId, Settle,
    Settlement, WriteBatch,
};
use atamo_core::Principal;
use atamo_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::{json, Value};

fn atamo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atamo"))
        .args(args)
        .env_remove("ATAMO_STORE")
        .env_remove("ATAMO_DATA_DIR")
        .output()
        .unwrap()
}

fn accept(agent: &str, n: u64) -> AcceptEvent {
    let event = EventRecord::new(
        "order.created",
        Principal::user("alice"),
        json!({"n": n}),
        atamo_core::message::Timestamp::now(),
    );
    let record = ActionRecord::new(&event, agent, "notify", json!({"n": n}));
    AcceptEvent::new(event, vec![NewAction::ready(record)])
}

/// A store with 3 ready actions for `mailer`, 1 for `archive`, and one dead letter (the
/// first mailer action).
async fn fill(path: &std::path::Path) {
    let store = SqliteStore::open(path, SqliteOptions::default())
        .await
        .unwrap();
    let mut batch = WriteBatch::default();
    for n in 0..5 {
        let agent = if n == 3 { "archive" } else { "mailer" };
        batch.accepts.push(accept(agent, n));
    }
    store.write(batch).await.unwrap();
    let node = NodeId::new("n1");
    let claimed = store
        .claim(&node, 1, Duration::from_secs(30))
        .await
        .unwrap();
    let settle = Settle {
        action: claimed[0].record.id,
        attempt: 1,
        node,
        outcome: Settlement::Dead {
            error: json!({"kind": "permanent", "reason": "no such mailbox"}),
        },
    };
    store
        .write(WriteBatch {
            settles: vec![settle],
            ..WriteBatch::default()
        })
        .await
        .unwrap();
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_queue_depths_and_check_passes_on_a_sound_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atamo.db");
    fill(&path).await;
    let file = path.display().to_string();

    let out = atamo(&["store", "stats", "--store", &file, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["backend"], "sqlite");
    assert_eq!(
        stats["actions"],
        json!({"ready": 4, "leased": 0, "done": 0, "dead": 1})
    );
    assert_eq!(stats["ready_by_agent"], json!({"archive": 1, "mailer": 3}));
    assert_eq!(stats["events"], 5);
    assert!(stats["oldest_ready"].is_string(), "{stats}");
    assert!(stats["size_bytes"].as_u64().unwrap() > 0);

    let out = atamo(&[
        "store",
        "stats",
        "--data-dir",
        &dir.path().display().to_string(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("actions ready    4"), "{text}");
    assert!(text.contains("dead letters 1"), "{text}");
    assert!(text.contains("ready for mailer: 3"), "{text}");

    let out = atamo(&["store", "check", "--store", &format!("sqlite:{file}")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_damaged_file_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atamo.db");
    fill(&path).await;
    // Garbage over the middle of the file, where table and index pages are.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    let end = (mid + 8192).min(bytes.len());
    for b in &mut bytes[mid..end] {
        *b = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    let out = atamo(&[
        "store",
        "check",
        "--store",
        &path.display().to_string(),
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    // Either the check ran and lists what is wrong, or the file could not even be opened.
    match serde_json::from_str::<Value>(&stdout) {
        Ok(report) => assert!(
            !report["problems"].as_array().unwrap().is_empty(),
            "{report}"
        ),
        Err(_) => assert!(
            stderr.contains("corrupt") || stderr.contains("malformed"),
            "{stderr}"
        ),
    }
}

#[test]
fn a_missing_store_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.db");
    let out = atamo(&["store", "stats", "--store", &path.display().to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no store at"));
    assert!(!path.exists());
}
