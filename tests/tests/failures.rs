//! Failure handling on a paused clock: retries with backoff, Retry-After, timeouts, dead
//! letters and redrive, the exhausted event routed by a rule, and policies overridden per
//! action type and per rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::agent::{agent_fn, AgentError, Reply};
use atamo_core::failure::{RetryPolicy, EXHAUSTED_EVENT};
use atamo_core::rules::ProviderScope;
use atamo_core::{ActionTypeDef, AgentSpec, EventTypeDef, Hub, HubBuilder};
use atamo_tests::{tally, Recorder, RecordingAgent};
use serde_json::json;
use tokio::time::Instant;

fn builder(rules: Vec<Rule>) -> HubBuilder {
    atamo_tests::orders::builder(&["notify", "alert"], rules)
}

fn notify_rule() -> Rule {
    atamo_tests::orders::notify_rule("flaky")
}

use atamo_tests::orders::order;

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy::attempts(attempts).backoff(Duration::from_millis(100), Duration::from_secs(5))
}

#[tokio::test(start_paused = true)]
async fn a_flaky_agent_ends_with_every_action_done_and_the_retries_counted() {
    // Fails the first attempt of every action, succeeds the second: half its calls fail.
    let calls = RecordingAgent::new();
    let agent = calls.agent_with(|action| {
        if action.attempt() == 1 {
            Err(AgentError::retry("warming up"))
        } else {
            Ok(Reply::done())
        }
    });
    let hub = builder(vec![notify_rule()])
        .agent(
            AgentSpec::new("flaky", agent)
                .handles(["notify"])
                .retry(fast_retries(3)),
        )
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    const N: u64 = 50;
    for n in 0..N {
        hub.handle().publish(order(n)).await.unwrap();
    }
    rec.wait_until("every action succeeded", |evs| {
        tally(evs).get("action_succeeded").copied() == Some(N as usize)
    })
    .await;
    let counts = tally(&rec.events());
    assert_eq!(counts.get("action_retrying"), Some(&(N as usize)));
    assert_eq!(
        counts.get("action_failed"),
        None,
        "no action failed for good"
    );
    assert_eq!(counts.get("action_dead_lettered"), None);
    assert_eq!(calls.count(), 2 * N as usize, "half the calls failed");
    // Each retry is the same action, one attempt later.
    let received = calls.received();
    let mut attempts: HashMap<_, Vec<u32>> = HashMap::new();
    for a in &received {
        attempts.entry(a.id()).or_default().push(a.attempt());
    }
    assert!(attempts.values().all(|a| a == &vec![1, 2]));
    assert!(hub.control().dead_letters().is_empty());
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_backoff_grows() {
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let agent = {
        let times = times.clone();
        agent_fn(move |action, _| {
            times.lock().unwrap().push(Instant::now());
            let result = match action.attempt() {
                1 => Err(AgentError::retry_after(
                    "rate limited",
                    Duration::from_secs(7),
                )),
                2 | 3 => Err(AgentError::retry("still busy")),
                _ => Ok(Reply::done()),
            };
            std::future::ready(result)
        })
    };
    let policy = RetryPolicy::attempts(5)
        .backoff(Duration::from_millis(100), Duration::from_secs(10))
        .jitter(0.0);
    let hub = builder(vec![notify_rule()])
        .agent(
            AgentSpec::new("flaky", agent)
                .handles(["notify"])
                .retry(policy),
        )
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let r = hub.handle().publish(order(1)).await.unwrap();
    rec.wait_for(r.event_id, "action_succeeded", 1).await;
    let t = times.lock().unwrap().clone();
    assert_eq!(t.len(), 4);
    let gaps: Vec<Duration> = t.windows(2).map(|w| w[1] - w[0]).collect();
    // The hint (7 s) beats the policy's 100 ms; then 200 ms, then 400 ms.
    assert!(gaps[0] >= Duration::from_secs(7), "{gaps:?}");
    assert!(gaps[0] < Duration::from_millis(7100), "{gaps:?}");
    assert_eq!(gaps[1], Duration::from_millis(200));
    assert_eq!(gaps[2], Duration::from_millis(400));
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried_and_is_dead_lettered_then_redriven() {
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = RecordingAgent::new();
    let agent = {
        let fixed = fixed.clone();
        calls.agent_with(move |_| {
            if fixed.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(Reply::done())
            } else {
                Err(AgentError::permanent("no such mailbox"))
            }
        })
    };
    let hub = builder(vec![notify_rule()])
        .agent(
            AgentSpec::new("flaky", agent)
                .handles(["notify"])
                .retry(fast_retries(5)),
        )
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let control = hub.control();
    let r = hub.handle().publish(order(7)).await.unwrap();
    rec.wait_for(r.event_id, "action_failed", 1).await;
    assert_eq!(calls.count(), 1, "a permanent error is never retried");
    let path = rec.path(r.event_id);
    assert!(!path.contains(&"action_retrying"), "{path:?}");

    let letters = control.dead_letters();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.error, AgentError::permanent("no such mailbox"));
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.action.payload(), &json!({"n": 7}));
    let id = letter.action.id();
    assert!(control.dead_letter(id).is_some());
    // The alert was recorded.
    assert!(rec.events().iter().any(|e| matches!(
        &e.kind,
        atamo_core::TelemetryKind::Alert { alert, raised: true, .. } if *alert == atamo_core::telemetry::AlertKind::RetriesExhausted
    )));

    // Fixed: redrive delivers the same action again, and it leaves the store.
    fixed.store(true, std::sync::atomic::Ordering::SeqCst);
    control.redrive(id).await.unwrap();
    rec.wait_for(r.event_id, "action_succeeded", 1).await;
    assert_eq!(calls.count(), 2);
    let again = &calls.received()[1];
    assert_eq!(
        again.id(),
        id,
        "the same action, so the agent can de-duplicate"
    );
    assert_eq!(again.attempt(), 1);
    assert!(control.dead_letters().is_empty());
    assert!(
        control.redrive(id).await.is_err(),
        "nothing left to redrive"
    );
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_reach_a_rule_routed_agent_for_the_same_user() {
    let alerts = RecordingAgent::new();
    let rules = vec![
        notify_rule(),
        // alice wants to hear about her own failed actions.
        Rule::new(
            "tell-alice",
            EXHAUSTED_EVENT,
            "alerts",
            "alert",
            json!({"failed": "{{payload.action_type}}", "error": "{{payload.error.reason}}", "for": "{{user}}"}),
        )
        .for_subject(atamo_config::Subject::User("alice".into())),
    ];
    let hub = builder(rules)
        .agent(
            AgentSpec::new(
                "flaky",
                agent_fn(|_, _| std::future::ready(Err(AgentError::retry("down")))),
            )
            .handles(["notify"])
            .retry(fast_retries(3)),
        )
        .agent(AgentSpec::new("alerts", alerts.agent()).handles(["alert"]))
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let r = hub.handle().publish(order(1)).await.unwrap();
    alerts.wait_for(1).await;
    let alert = &alerts.received()[0];
    assert_eq!(
        alert.payload(),
        &json!({"failed": "notify", "error": "down", "for": "alice"})
    );
    // The exhausted event carries the original correlation id: the whole story is one trace.
    assert_eq!(alert.meta().event.correlation_id, r.correlation_id);
    let path = rec.path(r.event_id);
    assert_eq!(
        path.iter().filter(|p| **p == "action_retrying").count(),
        2,
        "{path:?}"
    );
    assert_eq!(hub.control().dead_letters()[0].attempts, 3);
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_times_out_and_policies_are_overridden_per_action_type_and_rule() {
    let calls = RecordingAgent::new();
    let slow = {
        let calls = calls.clone();
        let inner = std::sync::Arc::new(calls.agent());
        agent_fn(move |action, ctx| {
            let inner = inner.clone();
            async move {
                let _ = atamo_core::Agent::call(&inner, action, ctx).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Reply::done())
            }
        })
    };
    let _ = calls.clone();
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("order.created"))
        .action_type(ActionTypeDef::new("notify").retry(fast_retries(2)))
        .action_type(ActionTypeDef::new("ship"))
        .agent(
            AgentSpec::new("slow", slow)
                .handles(["notify", "ship"])
                .call_timeout(Duration::from_secs(1))
                .retry(fast_retries(4)),
        )
        .provider(
            "rules",
            RuleBook::with_rules(vec![
                Rule::new("n", "order.created", "slow", "notify", json!({})),
                Rule::new("s", "order.created", "slow", "ship", json!({})),
                Rule::new("s1", "order.created", "slow", "ship", json!({"once": true}))
                    .retry(RetryPolicy::none()),
            ])
            .unwrap(),
            ProviderScope::AllEvents,
        )
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let r = hub.handle().publish(order(1)).await.unwrap();
    rec.wait_for(r.event_id, "action_dead_lettered", 3).await;
    let mut attempts: HashMap<String, u32> = HashMap::new();
    for letter in hub.control().dead_letters() {
        assert!(
            matches!(letter.error, AgentError::Timeout { after } if after == Duration::from_secs(1))
        );
        let key = format!("{}{}", letter.action.action_type(), letter.action.payload());
        attempts.insert(key, letter.attempts);
    }
    assert_eq!(
        attempts["notify{}"], 2,
        "the action type's policy beats the agent's"
    );
    assert_eq!(attempts["ship{}"], 4, "the agent's policy");
    assert_eq!(
        attempts["ship{\"once\":true}"], 1,
        "the rule's policy beats both"
    );
    hub.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_after_the_policys_time_limit() {
    let calls = RecordingAgent::new();
    let agent = calls.agent_with(|_| Err(AgentError::retry("down")));
    // 1 s, 2 s, 4 s pauses; at most 5 s after the first attempt: attempts at 0, 1 and 3 s;
    // the next would start at 7 s.
    let policy = RetryPolicy::attempts(10)
        .backoff(Duration::from_secs(1), Duration::from_secs(60))
        .jitter(0.0)
        .max_elapsed(Duration::from_secs(5));
    let hub = builder(vec![notify_rule()])
        .agent(
            AgentSpec::new("flaky", agent)
                .handles(["notify"])
                .retry(policy),
        )
        .build()
        .unwrap();
    let rec = Recorder::start(&hub.control());
    let r = hub.handle().publish(order(1)).await.unwrap();
    rec.wait_for(r.event_id, "action_dead_lettered", 1).await;
    assert_eq!(calls.count(), 3);
    assert_eq!(hub.control().dead_letters()[0].attempts, 3);
    hub.shutdown().await;
}
