//! The blocking facade, driven from plain threads as a desktop UI or a C host would: no
//! runtime on the calling thread, answers and telemetry on crossbeam receivers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atamo_core::blocking::crossbeam_channel::{Receiver, TryRecvError};
use atamo_core::blocking::{BlockingHub, TelemetryItem, REQUEST_BUFFER};
use atamo_core::request::{RequestOptions, RequestState, RequestStatus, RequestUpdate};
use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
use atamo_core::{
    async_trait, Action, ActionTypeDef, Agent, AgentError, AgentSpec, CallContext, Event,
    EventTypeDef, Hub, HubBuilder, Principal, Reply,
};
use atamo_tests::orders::{builder, notify_rule, order};
use atamo_tests::RecordingAgent;
use serde_json::json;

/// Gives the prices of a product, one answer per shop, and counts its calls: state kept in
/// the agent itself, which `call` borrows.
struct PriceList {
    shops: Vec<(&'static str, u64)>,
    calls: AtomicU64,
}

#[async_trait]
impl Agent for PriceList {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let sku = action.payload()["sku"].clone();
        for (shop, price) in &self.shops {
            ctx.answer(json!({"sku": sku, "shop": shop, "price": price}))
                .await
                .map_err(|e| AgentError::permanent(e.to_string()))?;
        }
        Ok(Reply::done())
    }
}

/// One rule: every event of `event_type` becomes action `action` for `agent`, with the
/// event's payload.
fn route_all(builder: HubBuilder, event_type: &str, agent: &str, action: &str) -> HubBuilder {
    let (agent, action, only) = (agent.to_owned(), action.to_owned(), event_type.to_owned());
    let rules = move |e: &Event, _: &Principal, out: &mut Vec<Proposal>| {
        // Not the hub's own events (an agent's status change, for one).
        if e.event_type().as_str() != only {
            return;
        }
        out.push(Proposal::action(
            "route".into(),
            PlannedAction::new(agent.as_str(), action.as_str(), e.payload().clone()),
        ));
    };
    builder.event_type(EventTypeDef::new(event_type)).provider(
        "rules",
        rules,
        ProviderScope::AllEvents,
    )
}

/// Drains `rx` without blocking, as a UI frame does.
fn frame<T>(rx: &Receiver<T>, into: &mut Vec<T>) -> bool {
    loop {
        match rx.try_recv() {
            Ok(item) => into.push(item),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}

/// The step names of `items`, failing on a lost step.
fn steps(items: &[TelemetryItem]) -> Vec<(atamo_core::EventId, &'static str)> {
    let mut out = Vec::new();
    for item in items {
        match item {
            TelemetryItem::Batch(b) => out.extend(
                b.events
                    .iter()
                    .filter_map(|e| e.event().map(|m| (m.id, e.name()))),
            ),
            TelemetryItem::Missed(n) => panic!("{n} steps missed"),
        }
    }
    out
}

#[test]
fn a_ui_loop_gets_an_async_trait_agents_answers_and_the_telemetry_without_awaiting() {
    let agent = Arc::new(PriceList {
        shops: vec![("north", 12), ("south", 11), ("east", 14)],
        calls: AtomicU64::new(0),
    });
    let hub = BlockingHub::start(
        route_all(Hub::builder(), "price.asked", "prices", "prices")
            .action_type(ActionTypeDef::new("prices"))
            .agent(AgentSpec::from_arc("prices", agent.clone()).handles(["prices"])),
    )
    .unwrap();
    let telemetry = hub.telemetry(256);
    let request = hub
        .request(Event::new(
            "price.asked",
            Principal::user("ada"),
            json!({"sku": "tea"}),
        ))
        .unwrap();

    // The "UI": a frame every 2 ms, each draining both receivers without blocking.
    let (mut updates, mut items) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let mut open = true;
    let event = request.receipt.event_id;
    let ended = |items: &[TelemetryItem]| {
        let steps = steps(items);
        ["request_finished", "action_succeeded"]
            .iter()
            .all(|want| steps.iter().any(|(id, s)| *id == event && s == want))
    };
    while open || !ended(&items) {
        open = frame(&request.updates, &mut updates);
        frame(&telemetry, &mut items);
        assert!(started.elapsed() < Duration::from_secs(10), "{updates:?}");
        std::thread::sleep(Duration::from_millis(2));
    }

    let answers: Vec<_> = updates
        .iter()
        .filter_map(|u| match u {
            RequestUpdate::Answer(a) => Some((a.payload["shop"].clone(), a.seq)),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [(json!("north"), 1), (json!("south"), 2), (json!("east"), 3)]
    );
    assert_eq!(
        updates.last(),
        Some(&RequestUpdate::Finished(RequestState::Complete))
    );
    assert_eq!(agent.calls.load(Ordering::SeqCst), 1);
    let path: Vec<_> = steps(&items)
        .into_iter()
        .filter(|(id, _)| *id == event)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        path,
        [
            "accepted",
            "rule_matched",
            "action_dispatched",
            "answer_ready",
            "answer_ready",
            "answer_ready",
            // The request ends with the agent's part; the step of the call's end follows.
            "request_finished",
            "action_succeeded",
        ]
    );
    let report = hub.shutdown().expect("the facade owned the hub");
    assert!(!report.deadline_passed);
}

#[test]
fn a_full_telemetry_receiver_loses_batches_and_is_told_exactly_how_many_steps() {
    let done = RecordingAgent::new();
    let hub = BlockingHub::start(
        builder(&["notify"], vec![notify_rule("mailer")])
            .agent(AgentSpec::new("mailer", done.agent()).handles(["notify"])),
    )
    .unwrap();
    // One receiver is drained only at the end and holds two items (room, once drained, for a
    // notice and the batch after it); the other holds everything and is the reference.
    let small = hub.telemetry(2);
    let reference = hub.telemetry(100_000);
    for n in 0..300 {
        hub.publish(order(n)).unwrap();
    }
    let mut all = Vec::new();
    let started = Instant::now();
    while done.count() < 300
        || steps(&all)
            .iter()
            .filter(|(_, s)| *s == "action_succeeded")
            .count()
            < 300
    {
        frame(&reference, &mut all);
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(2));
    }
    // The reader catches up (the first two batches were kept), then a last event comes: its
    // batches carry the notice of what the small receiver lost.
    let mut seen = Vec::new();
    frame(&small, &mut seen);
    assert_eq!(seen.len(), 2, "the receiver held two items");
    let last = hub.publish(order(300)).unwrap();
    while !steps(&all)
        .iter()
        .any(|(id, s)| *id == last.event_id && *s == "action_succeeded")
        || !seen.iter().any(|i| matches!(i, TelemetryItem::Missed(_)))
        || !matches!(seen.last(), Some(TelemetryItem::Batch(_)))
    {
        frame(&reference, &mut all);
        frame(&small, &mut seen);
        assert!(started.elapsed() < Duration::from_secs(10), "{seen:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    let lost: u64 = seen
        .iter()
        .map(|i| match i {
            TelemetryItem::Missed(n) => *n,
            TelemetryItem::Batch(_) => 0,
        })
        .sum();
    assert!(lost > 0, "the small receiver was full");
    // Every step is accounted for: the batches received and the steps counted as missed
    // cover the telemetry's numbering without a gap or an overlap.
    let TelemetryItem::Batch(first) = &seen[0] else {
        panic!("the first batch fitted: {seen:?}")
    };
    let mut next = first.first_seq;
    for item in &seen {
        match item {
            TelemetryItem::Missed(n) => next += n,
            TelemetryItem::Batch(b) => {
                assert_eq!(
                    b.first_seq, next,
                    "a batch starts where the last step counted ended"
                );
                next += b.events.len() as u64;
            }
        }
    }
    assert!(matches!(seen.last(), Some(TelemetryItem::Batch(_))));
    assert!(next > 900, "{next} steps accounted for");
    hub.shutdown();
}

#[test]
fn answers_are_never_dropped_when_the_readers_receiver_is_full() {
    const ANSWERS: u64 = (REQUEST_BUFFER as u64) * 3;
    let feed = atamo_core::agent_fn(|_, ctx| async move {
        for n in 1..=ANSWERS {
            ctx.answer(json!({ "n": n }))
                .await
                .map_err(|e| AgentError::permanent(e.to_string()))?;
        }
        Ok(Reply::done())
    });
    let hub = BlockingHub::start(
        route_all(Hub::builder(), "count.asked", "counter", "count")
            .action_type(ActionTypeDef::new("count"))
            .agent(AgentSpec::new("counter", feed).handles(["count"])),
    )
    .unwrap();
    let request = hub
        .request(Event::new("count.asked", Principal::user("ada"), json!({})))
        .unwrap();
    // The reader is slow to start: the receiver fills up, and the agent waits for it.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        request.updates.len(),
        REQUEST_BUFFER,
        "the receiver is full"
    );
    let got: Vec<u64> = request
        .updates
        .iter()
        .filter_map(|u| match u {
            RequestUpdate::Answer(a) => a.payload["n"].as_u64(),
            _ => None,
        })
        .collect();
    assert_eq!(got, (1..=ANSWERS).collect::<Vec<_>>());
    hub.shutdown();
}

#[test]
fn dropping_a_live_feeds_receiver_cancels_the_feed() {
    let cancelled = Arc::new(AtomicU64::new(0));
    let seen = cancelled.clone();
    let ticker = atamo_core::agent_fn(move |_, ctx| {
        let seen = seen.clone();
        async move {
            let mut n = 0u64;
            loop {
                n += 1;
                tokio::select! {
                    r = ctx.answer(json!({ "tick": n })) => if r.is_err() { break },
                    _ = ctx.cancelled() => break,
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seen.fetch_add(1, Ordering::SeqCst);
            Err(AgentError::Cancelled)
        }
    });
    let hub = BlockingHub::start(
        route_all(Hub::builder(), "ticks.asked", "ticker", "tick")
            .action_type(ActionTypeDef::new("tick"))
            .agent(AgentSpec::new("ticker", ticker).handles(["tick"])),
    )
    .unwrap();
    let request = hub
        .request_with(
            Event::new("ticks.asked", Principal::user("ada"), json!({})),
            RequestOptions::new().live_feed(),
        )
        .unwrap();
    let id = request.id();
    for _ in 0..3 {
        let update = request
            .updates
            .recv_timeout(Duration::from_secs(5))
            .unwrap();
        assert!(matches!(update, RequestUpdate::Answer(_)), "{update:?}");
    }
    drop(request);
    let started = Instant::now();
    loop {
        if let RequestStatus::Known(s) = hub.poll(id) {
            if s.state == RequestState::Cancelled && cancelled.load(Ordering::SeqCst) == 1 {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            hub.poll(id)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    hub.shutdown();
}

#[test]
fn a_facade_over_the_applications_own_runtime_publishes_from_many_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let done = RecordingAgent::new();
    let hub = runtime.block_on(async {
        builder(&["notify"], vec![notify_rule("mailer")])
            .agent(AgentSpec::new("mailer", done.agent()).handles(["notify"]))
            .build()
            .unwrap()
    });
    let facade = Arc::new(BlockingHub::new(&hub, runtime.handle().clone()));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let facade = facade.clone();
            std::thread::spawn(move || {
                for n in 0..100 {
                    if n % 2 == 0 {
                        facade.publish(order(t * 1000 + n)).unwrap();
                    } else {
                        // Never blocks; the hub has room for these few.
                        facade.try_publish(order(t * 1000 + n)).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let started = Instant::now();
    while done.count() < 400 {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut ns: Vec<u64> = done
        .received()
        .iter()
        .map(|a| a.payload()["n"].as_u64().unwrap())
        .collect();
    ns.sort_unstable();
    let want: Vec<u64> = (0..4u64)
        .flat_map(|t| (0..100).map(move |n| t * 1000 + n))
        .collect();
    assert_eq!(ns, want);
    // The application owns the hub: the facade does not stop it.
    assert_eq!(Arc::try_unwrap(facade).unwrap().shutdown(), None);
    assert!(hub.handle().is_accepting());
    runtime.block_on(hub.shutdown());
}
