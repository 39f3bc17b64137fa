//! Requests: answers collected by waiting, polling and subscribing; feeds with backpressure;
//! cancellation; deadlines; keep-alive expiry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::agent::{agent_fn, Agent, AgentError, Reply};
use atamo_core::request::{PartStatus, RequestSnapshot, RequestStatus, WaitError};
use atamo_core::rules::ProviderScope;
use atamo_core::{
    ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, HubBuilder, Principal, RequestOptions,
    RequestState, RequestUpdate,
};
use atamo_tests::{names, Recorder};
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

const WAIT: Duration = Duration::from_secs(10);

/// A hub where `find` requests go to the given agents (all handling `lookup`).
fn hub(agents: Vec<(&str, Arc<dyn Agent>)>, tune: impl FnOnce(HubBuilder) -> HubBuilder) -> Hub {
    let rules = agents
        .iter()
        .map(|(id, _)| {
            Rule::new(
                format!("find-{id}").as_str(),
                "find",
                *id,
                "lookup",
                json!({"q": "{{payload.q}}"}),
            )
        })
        .collect();
    let mut b = Hub::builder()
        .event_type(EventTypeDef::new("find").requiring(["q"]).unwrap())
        .event_type(EventTypeDef::new("unrouted"))
        .action_type(ActionTypeDef::new("lookup"))
        .provider(
            "rules",
            RuleBook::with_rules(rules).unwrap(),
            ProviderScope::AllEvents,
        );
    for (id, agent) in agents {
        b = b.agent(AgentSpec::from_arc(id, agent).handles(["lookup"]));
    }
    tune(b).build().unwrap()
}

fn find(q: &str) -> Event {
    Event::new("find", Principal::user("alice"), json!({"q": q}))
}

/// A feed that answers 1, 2, 3, ... every 5 ms until its request ends or is cancelled, then
/// reports how many answers it gave on `stopped` (if given).
fn endless_feed(stopped: Option<mpsc::UnboundedSender<u64>>) -> Arc<dyn Agent> {
    Arc::new(agent_fn(move |_, ctx| {
        let stopped = stopped.clone();
        async move {
            let mut i = 0;
            loop {
                i += 1;
                tokio::select! {
                    r = ctx.answer(json!(i)) => if r.is_err() { break },
                    _ = ctx.cancelled() => break,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if let Some(tx) = stopped {
                tx.send(i).unwrap();
            }
            Err(AgentError::Cancelled)
        }
    }))
}

fn known(status: RequestStatus) -> RequestSnapshot {
    match status {
        RequestStatus::Known(s) => s,
        other => panic!("expected a known request, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_is_answered_once_and_awaited() {
    let customers: Arc<dyn Agent> = Arc::new(agent_fn(|action, _| async move {
        Ok(Reply::with(
            json!({"customer": action.payload()["q"], "name": "Ada"}),
        ))
    }));
    let hub = hub(vec![("customers", customers)], |b| b);
    let h = hub.handle();
    let receipt = h.request(find("42")).await.unwrap();
    let done = h.wait(receipt.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::Complete);
    assert_eq!(done.answers.len(), 1);
    let a = &done.answers[0];
    assert_eq!((a.agent.as_str(), a.seq, a.last), ("customers", 1, true));
    assert_eq!(*a.payload, json!({"customer": "42", "name": "Ada"}));
    assert_eq!(a.request_id, receipt.request_id);
    assert_eq!(done.parts[0].status, PartStatus::Done);
    hub.shutdown().await;
}

#[tokio::test]
async fn poll_before_during_and_after() {
    let gate = Arc::new(Semaphore::new(0));
    let feed: Arc<dyn Agent> = {
        let gate = gate.clone();
        Arc::new(agent_fn(move |_, ctx| {
            let gate = gate.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                ctx.answer(json!({"page": 1})).await.unwrap();
                gate.acquire().await.unwrap().forget();
                Ok(Reply::with(json!({"page": 2})))
            }
        }))
    };
    let hub = hub(vec![("pages", feed)], |b| b);
    let h = hub.handle();
    let r = h.request(find("x")).await.unwrap();

    let before = known(h.poll(r.request_id));
    assert_eq!(before.state, RequestState::Running);
    assert!(before.answers.is_empty());

    gate.add_permits(1);
    let mut sub = h.subscribe(r.request_id).unwrap();
    assert!(matches!(sub.next().await, Some(RequestUpdate::Answer(a)) if a.seq == 1 && !a.last));
    let during = known(h.poll(r.request_id));
    assert_eq!(during.state, RequestState::Running);
    assert_eq!(during.answers.len(), 1);

    gate.add_permits(1);
    let after = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(after.state, RequestState::Complete);
    let polled = known(h.poll(r.request_id));
    assert_eq!(polled.state, RequestState::Complete);
    let pages: Vec<_> = polled
        .answers
        .iter()
        .map(|a| a.payload["page"].clone())
        .collect();
    assert_eq!(pages, [json!(1), json!(2)]);
    assert!(polled.answers[1].last);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_late_subscriber_gets_the_history_then_live_answers() {
    let (go_tx, go_rx) = mpsc::unbounded_channel::<()>();
    let go_rx = Arc::new(tokio::sync::Mutex::new(go_rx));
    let feed: Arc<dyn Agent> = Arc::new(agent_fn(move |_, ctx| {
        let go_rx = go_rx.clone();
        async move {
            for i in 1..=3 {
                ctx.answer(json!(i)).await.unwrap();
            }
            go_rx.lock().await.recv().await;
            ctx.answer(json!(4)).await.unwrap();
            Ok(Reply::done())
        }
    }));
    let hub = hub(vec![("feed", feed)], |b| b);
    let h = hub.handle();
    let r = h.request(find("x")).await.unwrap();
    // Let the first three arrive with nobody listening.
    let first = h.subscribe(r.request_id).unwrap();
    let mut early = first;
    for _ in 0..3 {
        early.next().await.unwrap();
    }
    let mut late = h.subscribe(r.request_id).unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        match late.next().await.unwrap() {
            RequestUpdate::Answer(a) => got.push(a.payload.as_i64().unwrap()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, [1, 2, 3], "history replayed");
    go_tx.send(()).unwrap();
    match late.next().await.unwrap() {
        RequestUpdate::Answer(a) => assert_eq!(*a.payload, json!(4)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        late.next().await,
        Some(RequestUpdate::PartEnded {
            status: PartStatus::Done,
            ..
        })
    ));
    assert_eq!(
        late.next().await,
        Some(RequestUpdate::Finished(RequestState::Complete))
    );
    assert_eq!(late.next().await, None);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_long_feed_to_a_slow_subscriber_stays_bounded_and_loses_nothing() {
    const N: u64 = 10_000;
    const BUFFER: usize = 64;
    let feed: Arc<dyn Agent> = Arc::new(agent_fn(|_, ctx| async move {
        for i in 1..=N {
            ctx.answer(json!({"tick": i}))
                .await
                .map_err(|e| AgentError::permanent(e.to_string()))?;
        }
        Ok(Reply::done())
    }));
    let hub = hub(vec![("ticker", feed)], |b| b.answer_buffer(BUFFER));
    let h = hub.handle();
    let r = h.request(find("prices")).await.unwrap();
    let mut sub = h.subscribe(r.request_id).unwrap();
    let mut expected = 1;
    let mut largest_kept = 0;
    while let Some(update) = sub.next().await {
        match update {
            RequestUpdate::Answer(a) => {
                assert_eq!(a.seq, expected, "answers arrive in order, none missing");
                assert_eq!(*a.payload, json!({"tick": expected}));
                expected += 1;
                if expected % 250 == 0 {
                    // A slow reader: the producer must wait rather than pile up answers.
                    tokio::task::yield_now().await;
                    let kept = known(h.poll(r.request_id)).answers.len();
                    largest_kept = largest_kept.max(kept);
                }
            }
            RequestUpdate::Finished(state) => assert_eq!(state, RequestState::Complete),
            RequestUpdate::PartEnded { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(expected, N + 1, "all {N} answers received");
    assert!(
        largest_kept <= BUFFER,
        "kept {largest_kept} answers, bound {BUFFER}"
    );
    assert!(largest_kept > 0);
    hub.shutdown().await;
}

#[tokio::test]
async fn dropping_the_last_subscription_of_a_live_feed_cancels_the_agent() {
    let (stopped_tx, mut stopped_rx) = mpsc::unbounded_channel();
    let feed = endless_feed(Some(stopped_tx));
    let hub = hub(vec![("live", feed)], |b| b);
    let rec = Recorder::start(&hub.control());
    let h = hub.handle();
    let r = h
        .request_with(find("live"), RequestOptions::new().live_feed())
        .await
        .unwrap();
    let mut sub = h.subscribe(r.request_id).unwrap();
    for _ in 0..5 {
        assert!(matches!(sub.next().await, Some(RequestUpdate::Answer(_))));
    }
    drop(sub);
    let produced = tokio::time::timeout(WAIT, stopped_rx.recv())
        .await
        .expect("the agent stopped promptly")
        .unwrap();
    assert!(produced >= 5);
    let s = known(h.poll(r.request_id));
    assert_eq!(s.state, RequestState::Cancelled);
    assert_eq!(s.parts[0].status, PartStatus::Stopped);
    rec.wait_for(r.event_id, "request_finished", 1).await;
    hub.shutdown().await;
}

#[tokio::test]
async fn a_request_answered_by_two_agents_one_failing_says_so() {
    let ok: Arc<dyn Agent> = Arc::new(agent_fn(|_, _| async { Ok(Reply::with(json!("found"))) }));
    let broken: Arc<dyn Agent> = Arc::new(agent_fn(|_, _| async {
        Err(AgentError::permanent("index offline"))
    }));
    let hub = hub(vec![("crm", ok), ("archive", broken)], |b| b);
    let h = hub.handle();
    let r = h.request(find("42")).await.unwrap();
    let done = h.wait(r.request_id, WAIT).await.unwrap();
    assert_eq!(
        done.state,
        RequestState::PartiallyFailed { failed: 1, of: 2 }
    );
    assert_eq!(done.answers.len(), 1);
    assert_eq!(done.answers[0].agent.as_str(), "crm");
    let archive = done
        .parts
        .iter()
        .find(|p| p.agent.as_str() == "archive")
        .unwrap();
    assert_eq!(
        archive.status,
        PartStatus::Failed {
            error: AgentError::permanent("index offline")
        }
    );
    let json = serde_json::to_value(&done).unwrap();
    assert_eq!(json["state"], "partially_failed");
    assert_eq!(json["parts"][1]["status"], "failed");
    hub.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_the_agents_and_a_request_nobody_routes_ends_at_once() {
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let slow = endless_feed(Some(seen_tx));
    let hub = hub(vec![("slow", slow)], |b| b);
    let h = hub.handle();
    let r = h.request(find("x")).await.unwrap();
    // Wait until the agent has the call, then cancel.
    let rec_until_dispatched = async {
        while known(h.poll(r.request_id)).parts.is_empty() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, rec_until_dispatched)
        .await
        .unwrap();
    assert!(h.cancel(r.request_id));
    assert!(!h.cancel(r.request_id), "already ended");
    tokio::time::timeout(WAIT, seen_rx.recv()).await.unwrap();
    assert_eq!(known(h.poll(r.request_id)).state, RequestState::Cancelled);

    let nobody = h
        .request(Event::new("unrouted", Principal::user("bob"), json!({})))
        .await
        .unwrap();
    let done = h.wait(nobody.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::NoRoute);
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn deadlines_and_keep_alive_expiry() {
    let never: Arc<dyn Agent> = Arc::new(agent_fn(|_, ctx| async move {
        ctx.cancelled().await;
        Err(AgentError::Cancelled)
    }));
    let quick: Arc<dyn Agent> = Arc::new(agent_fn(|_, _| async { Ok(Reply::with(json!(1))) }));
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("slow"))
        .event_type(EventTypeDef::new("quick"))
        .event_type(EventTypeDef::new("quick.brief").keep_alive(Duration::from_secs(2)))
        .action_type(ActionTypeDef::new("lookup"))
        .agent(AgentSpec::from_arc("never", never).handles(["lookup"]))
        .agent(AgentSpec::from_arc("quick", quick).handles(["lookup"]))
        .provider(
            "rules",
            RuleBook::with_rules(vec![
                Rule::new("s", "slow", "never", "lookup", json!({})),
                Rule::new("q", "quick", "quick", "lookup", json!({})),
                Rule::new("qb", "quick.brief", "quick", "lookup", json!({})),
            ])
            .unwrap(),
            ProviderScope::AllEvents,
        )
        .keep_alive(Duration::from_secs(60))
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let h = hub.handle();
    let ev = |t: &str| Event::new(t, Principal::user("u"), json!({}));

    // Deadline: the request ends as DeadlinePassed and its agent is cancelled.
    let slow = h
        .request_with(
            ev("slow"),
            RequestOptions::new().deadline(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    let ended = h
        .wait(slow.request_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ended.state, RequestState::DeadlinePassed);

    // A wait that gives up early hands back what there is.
    let pending = h.request(ev("slow")).await.unwrap();
    match h.wait(pending.request_id, Duration::from_secs(1)).await {
        Err(WaitError::Timeout(s)) => assert_eq!(s.state, RequestState::Running),
        other => panic!("expected a timeout, got {other:?}"),
    }
    h.cancel(pending.request_id);

    // Keep-alive: kept for the default 60 s, or the request type's, or a request's own time.
    let brief = h.request(ev("quick.brief")).await.unwrap();
    h.wait(brief.request_id, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(matches!(
        h.poll(brief.request_id),
        RequestStatus::Expired { .. }
    ));
    let kept = h.request(ev("quick")).await.unwrap();
    let short = h
        .request_with(
            ev("quick"),
            RequestOptions::new().keep_alive(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    h.wait(kept.request_id, WAIT).await.unwrap();
    h.wait(short.request_id, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(matches!(
        h.poll(short.request_id),
        RequestStatus::Expired { .. }
    ));
    assert_eq!(known(h.poll(kept.request_id)).answers.len(), 1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(matches!(
        h.poll(kept.request_id),
        RequestStatus::Expired { .. }
    ));
    assert!(matches!(
        h.subscribe(kept.request_id),
        Err(WaitError::Expired(_))
    ));
    let stranger = atamo_core::RequestId::generate();
    assert!(matches!(h.poll(stranger), RequestStatus::Unknown { .. }));
    rec.wait_for(kept.event_id, "request_expired", 1).await;
    hub.shutdown().await;
}

#[tokio::test]
async fn the_keep_alive_cache_evicts_by_memory_and_says_so() {
    let big: Arc<dyn Agent> = Arc::new(agent_fn(|_, _| async {
        Ok(Reply::with(json!("x".repeat(10_000))))
    }));
    let hub = hub(vec![("big", big)], |b| b.keep_alive_memory(100_000));
    let rec = Recorder::start(&hub.control());
    let h = hub.handle();
    let mut ids = Vec::new();
    for i in 0..40 {
        let r = h.request(find(&i.to_string())).await.unwrap();
        h.wait(r.request_id, WAIT).await.unwrap();
        ids.push(r.request_id);
    }
    rec.wait_until("a memory eviction", |evs| {
        evs.iter().any(|e| {
            matches!(
                &e.kind,
                atamo_core::TelemetryKind::RequestExpired {
                    reason: atamo_core::telemetry::ExpiryReason::Memory,
                    ..
                }
            )
        })
    })
    .await;
    let health = hub.control().health();
    assert!(
        health.requests_kept < 40 && health.requests_kept > 0,
        "kept {} of 40 within the bound",
        health.requests_kept
    );
    let expired = ids
        .iter()
        .filter(|id| matches!(h.poll(**id), RequestStatus::Expired { .. }))
        .count();
    assert!(expired > 0, "evicted requests poll as expired, not unknown");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_request_can_be_monitored_like_an_event() {
    let quick: Arc<dyn Agent> = Arc::new(agent_fn(|_, _| async { Ok(Reply::with(json!(7))) }));
    let hub = hub(vec![("quick", quick)], |b| b);
    let (receipt, monitor) = hub
        .handle()
        .request_monitored(find("7"), RequestOptions::new())
        .await
        .unwrap();
    let names = names(&monitor.collect().await);
    assert_eq!(
        names,
        [
            "accepted",
            "rule_matched",
            "action_dispatched",
            "action_succeeded"
        ]
    );
    let done = hub.handle().wait(receipt.request_id, WAIT).await.unwrap();
    assert_eq!(*done.answers[0].payload, json!(7));
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_wait_leaves_a_live_feed_running() {
    let hub = hub(vec![("live", endless_feed(None))], |b| b);
    let h = hub.handle();
    let r = h
        .request_with(find("x"), RequestOptions::new().live_feed())
        .await
        .unwrap();
    let mut watcher = h.subscribe(r.request_id).unwrap();
    assert!(matches!(
        h.wait(r.request_id, Duration::from_millis(50)).await,
        Err(WaitError::Timeout(_))
    ));
    assert!(matches!(
        watcher.next().await,
        Some(RequestUpdate::Answer(_))
    ));
    assert_eq!(known(h.poll(r.request_id)).state, RequestState::Running);
    drop(watcher);
    assert_eq!(known(h.poll(r.request_id)).state, RequestState::Cancelled);
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_live_feeds_at_once() {
    let hub = hub(vec![("live", endless_feed(None))], |b| {
        b.shutdown_grace(Duration::from_secs(60))
    });
    let h = hub.handle();
    let r = h
        .request_with(find("x"), RequestOptions::new().live_feed())
        .await
        .unwrap();
    let mut watcher = h.subscribe(r.request_id).unwrap();
    assert!(matches!(
        watcher.next().await,
        Some(RequestUpdate::Answer(_))
    ));
    let report = hub.shutdown().await;
    assert!(
        !report.deadline_passed,
        "the feed did not hold shutdown for its grace period"
    );
    assert!(report.elapsed < Duration::from_secs(60));
    assert_eq!(known(h.poll(r.request_id)).state, RequestState::Cancelled);
    let mut last = None;
    while let Some(u) = watcher.next().await {
        last = Some(u);
    }
    assert_eq!(last, Some(RequestUpdate::Finished(RequestState::Cancelled)));
}
