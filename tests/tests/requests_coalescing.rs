//! Level-2 cache: identical requests in flight share one agent call, within the scope the rule
//! allows; an optional result TTL answers repeats from cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::agent::{agent_fn, Reply};
use atamo_core::rules::{ProviderScope, ShareScope, Sharing};
use atamo_core::{
    ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, RequestSnapshot, RequestState,
};
use atamo_tests::Recorder;
use serde_json::json;
use tokio::sync::Semaphore;

const WAIT: Duration = Duration::from_secs(10);

/// A hub whose `quote` requests go to one agent that counts its calls and holds each call until
/// the gate lets it through.
struct Fixture {
    hub: Hub,
    calls: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
    rec: Recorder,
}

fn fixture(sharing: Sharing) -> Fixture {
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let agent = {
        let calls = calls.clone();
        let gate = gate.clone();
        agent_fn(move |action, ctx| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let gate = gate.clone();
            async move {
                ctx.answer(json!({"partial": true})).await.ok();
                gate.acquire().await.unwrap().forget();
                Ok(Reply::with(
                    json!({"symbol": action.payload()["symbol"], "price": 42, "call": n}),
                ))
            }
        })
    };
    let rule = Rule::new(
        "quote",
        "quote",
        "prices",
        "lookup",
        json!({"symbol": "{{payload.symbol}}"}),
    )
    .shared(sharing);
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("quote").requiring(["symbol"]).unwrap())
        .action_type(ActionTypeDef::new("lookup"))
        .agent(AgentSpec::new("prices", agent).handles(["lookup"]))
        .provider(
            "rules",
            RuleBook::with_rules(vec![rule]).unwrap(),
            ProviderScope::AllEvents,
        )
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    Fixture {
        hub,
        calls,
        gate,
        rec,
    }
}

fn quote(user: &str) -> Event {
    Event::new("quote", Principal::user(user), json!({"symbol": "ACME"}))
}

async fn wait_for_steps(rec: &Recorder, name: &'static str, n: usize) {
    rec.wait_until(&format!("{n} x {name}"), |evs| {
        evs.iter().filter(|e| e.name() == name).count() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_identical_requests_make_one_call_and_all_get_the_answer() {
    let f = fixture(Sharing::default());
    let h = f.hub.handle();
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(h.request(quote("alice")).await.unwrap().request_id);
    }
    // All 100 are with the agent (one call, 99 joined) before the call is let finish.
    wait_for_steps(&f.rec, "action_coalesced", 99).await;
    f.gate.add_permits(1000);
    for id in &ids {
        let done = h.wait(*id, WAIT).await.unwrap();
        assert_eq!(done.state, RequestState::Complete);
        assert_eq!(done.request_id, *id, "each under its own request id");
        assert_eq!(done.answers.len(), 2, "the partial and the final answer");
        assert!(done.answers.iter().all(|a| a.request_id == *id));
        assert_eq!(done.answers[1].payload["call"], 1);
        assert!(done.answers[1].last);
    }
    assert_eq!(f.calls.load(Ordering::SeqCst), 1, "exactly one agent call");
    // Every request's action is reported ended, the joiners' too.
    wait_for_steps(&f.rec, "action_succeeded", 100).await;
    f.hub.shutdown().await;
}

/// Sends one request for each user, waits until `reached` shows both are with the agent (its
/// first answer, or a join), lets the calls finish, and returns both results.
async fn two_requests(
    f: &Fixture,
    users: [&str; 2],
    reached: &'static str,
    n: usize,
) -> (RequestSnapshot, RequestSnapshot) {
    let h = f.hub.handle();
    let a = h.request(quote(users[0])).await.unwrap();
    let b = h.request(quote(users[1])).await.unwrap();
    wait_for_steps(&f.rec, reached, n).await;
    f.gate.add_permits(10);
    (
        h.wait(a.request_id, WAIT).await.unwrap(),
        h.wait(b.request_id, WAIT).await.unwrap(),
    )
}

#[tokio::test]
async fn user_scoped_requests_of_two_users_are_not_coalesced() {
    let f = fixture(Sharing::default());
    let (a, b) = two_requests(&f, ["alice", "bob"], "answer_ready", 2).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 2);
    assert_ne!(a.answers[1].payload["call"], b.answers[1].payload["call"]);
    assert!(!f.rec.names().contains(&"action_coalesced"));
    f.hub.shutdown().await;
}

#[tokio::test]
async fn a_global_rule_shares_across_users_and_off_never_shares() {
    let global = fixture(Sharing {
        scope: ShareScope::Global,
        result_ttl: None,
    });
    two_requests(&global, ["alice", "bob"], "action_coalesced", 1).await;
    assert_eq!(global.calls.load(Ordering::SeqCst), 1);
    global.hub.shutdown().await;

    let off = fixture(Sharing {
        scope: ShareScope::Off,
        result_ttl: None,
    });
    two_requests(&off, ["alice", "alice"], "answer_ready", 2).await;
    assert_eq!(off.calls.load(Ordering::SeqCst), 2);
    off.hub.shutdown().await;
}

#[tokio::test]
async fn cancelling_one_sharer_leaves_the_call_running_for_the_other() {
    let f = fixture(Sharing::default());
    let h = f.hub.handle();
    let a = h.request(quote("alice")).await.unwrap();
    let b = h.request(quote("alice")).await.unwrap();
    wait_for_steps(&f.rec, "action_coalesced", 1).await;
    assert!(h.cancel(a.request_id));
    f.gate.add_permits(10);
    let b = h.wait(b.request_id, WAIT).await.unwrap();
    assert_eq!(b.state, RequestState::Complete);
    assert_eq!(b.answers.last().unwrap().payload["price"], 42);
    let a = h.wait(a.request_id, WAIT).await.unwrap();
    assert_eq!(a.state, RequestState::Cancelled);
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    f.hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_result_ttl_answers_repeats_from_cache_until_it_passes() {
    let f = fixture(Sharing {
        scope: ShareScope::User,
        result_ttl: Some(atamo_core::bounded::CacheTtl::saturating(
            Duration::from_secs(5),
        )),
    });
    f.gate.add_permits(100);
    let h = f.hub.handle();
    let first = h.request(quote("alice")).await.unwrap();
    h.wait(first.request_id, WAIT).await.unwrap();

    let repeat = h.request(quote("alice")).await.unwrap();
    let done = h.wait(repeat.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(done.answers.len(), 2);
    assert_eq!(done.answers[1].payload["call"], 1, "the cached result");
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    f.rec
        .wait_for(repeat.event_id, "action_served_from_cache", 1)
        .await;

    // Another user is not served alice's cached result.
    let bob = h.request(quote("bob")).await.unwrap();
    h.wait(bob.request_id, WAIT).await.unwrap();
    assert_eq!(f.calls.load(Ordering::SeqCst), 2);

    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = h.request(quote("alice")).await.unwrap();
    let done = h.wait(later.request_id, WAIT).await.unwrap();
    assert_eq!(
        done.answers[1].payload["call"], 3,
        "a fresh call after the TTL"
    );
    f.hub.shutdown().await;
}
