//! What the recorder counts from telemetry, what the gauges read, and the recorder's life.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use atamo_core::failure::AgentState;
use atamo_core::telemetry::TelemetryKind;
use atamo_core::{AgentId, Event, Hub};
use serde_json::json;

use super::exposition::parse;
use super::support::{alice, orders_hub, until, MAILER_TAKES, N};
use crate::metrics::gauges::{agent_state_label, AGENT_STATES};
use crate::metrics::Metrics;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_what_became_of_events_and_actions() {
    let hub = orders_hub();
    let control = hub.control();
    let metrics = Metrics::start(control.clone());
    for n in 0..N {
        let order = Event::new("order.created", alice(), json!({ "n": n }));
        hub.handle().publish(order).await.unwrap();
    }
    let rejected = [
        Event::new("order.unknown", alice(), json!({})),
        Event::new("order.unknown", alice(), json!({})),
        Event::new("nope", alice(), json!(5)),
        Event::new("order.created", alice(), json!({ "m": 1 })),
    ];
    for e in rejected {
        assert!(hub.handle().publish(e).await.is_err());
    }

    let n = N as f64;
    let x = until(&metrics, "every action's end", |x| {
        x.count("atamo_actions_total", &[("agent", "mailer"), ("outcome", "succeeded")]) == n
            && x.count("atamo_actions_total", &[("agent", "flaky"), ("outcome", "succeeded")])
                == n
            && x.count(
                "atamo_actions_total",
                &[("agent", "broken"), ("outcome", "dead_lettered")],
            ) == n
            // Each dead letter publishes an `atamo.action.exhausted` event no rule routes.
            && x.count(
                "atamo_events_unrouted_total",
                &[("event_type", "atamo.action.exhausted")],
            ) == n
            // The first success of `mailer` and of `flaky` puts them online, which the
            // hub announces with an `atamo.agent.status_changed` event.
            && x.count(
                "atamo_events_unrouted_total",
                &[("event_type", "atamo.agent.status_changed")],
            ) == 2.0
    })
    .await;

    // Events in, events refused and why.
    let accepted = |t| x.count("atamo_events_accepted_total", &[("event_type", t)]);
    assert_eq!(accepted("order.created"), n);
    assert_eq!(accepted("atamo.action.exhausted"), n);
    assert_eq!(accepted("atamo.agent.status_changed"), 2.0);
    assert_eq!(x.sum("atamo_events_accepted_total"), 2.0 * n + 2.0);
    let rejected = |t| x.count("atamo_events_rejected_total", &[("event_type", t)]);
    assert_eq!(rejected("(unregistered)"), 3.0);
    assert_eq!(rejected("order.created"), 1.0);
    assert_eq!(x.sum("atamo_events_rejected_total"), 4.0);
    let problem = |p| x.count("atamo_event_problems_total", &[("problem", p)]);
    assert_eq!(problem("unknown_event_type"), 3.0);
    assert_eq!(problem("payload_not_object"), 1.0);
    assert_eq!(problem("missing_field"), 1.0);
    assert_eq!(x.sum("atamo_events_unrouted_total"), n + 2.0);

    // Actions by agent and outcome.
    let actions = |agent, outcome| {
        x.count(
            "atamo_actions_total",
            &[("agent", agent), ("outcome", outcome)],
        )
    };
    assert_eq!(actions("flaky", "retrying"), n);
    assert_eq!(actions("flaky", "failed"), 0.0);
    assert_eq!(actions("broken", "failed"), n);
    assert_eq!(actions("broken", "succeeded"), 0.0);
    assert_eq!(x.sum("atamo_actions_total"), 5.0 * n);
    for (agent, action) in [("mailer", "mail"), ("flaky", "ship"), ("broken", "bill")] {
        assert_eq!(
            x.count(
                "atamo_actions_dispatched_total",
                &[("agent", agent), ("action_type", action)]
            ),
            n,
            "dispatched to {agent}: once per action, retries are not dispatched again"
        );
    }

    // Call durations: every attempt, by agent.
    let calls = |agent| x.count("atamo_action_duration_seconds_count", &[("agent", agent)]);
    assert_eq!(calls("mailer"), n);
    assert_eq!(calls("flaky"), 2.0 * n);
    assert_eq!(calls("broken"), n);
    let mailer_bucket = |le| {
        x.count(
            "atamo_action_duration_seconds_bucket",
            &[("agent", "mailer"), ("le", le)],
        )
    };
    assert_eq!(mailer_bucket("0.025"), 0.0, "every mail took 30 ms or more");
    assert_eq!(mailer_bucket("+Inf"), n);
    let mailer_sum = x.count("atamo_action_duration_seconds_sum", &[("agent", "mailer")]);
    assert!(mailer_sum >= n * MAILER_TAKES.as_secs_f64(), "{mailer_sum}");

    // The dead letters' alerts are counted, and never fire (nothing resolves them).
    assert_eq!(
        x.count(
            "atamo_alerts_raised_total",
            &[("alert", "retries_exhausted"), ("agent", "broken")]
        ),
        n
    );
    assert!(x.series("atamo_alerts_firing").is_empty());

    // Telemetry: every step counted, none missed.
    let steps = |kind| x.count("atamo_telemetry_events_total", &[("kind", kind)]);
    assert_eq!(steps("accepted"), 2.0 * n + 2.0);
    assert_eq!(steps("agent_status_changed"), 2.0);
    assert_eq!(steps("rejected"), 4.0);
    assert_eq!(steps("rule_matched"), 3.0 * n);
    assert_eq!(steps("action_dispatched"), 3.0 * n);
    assert_eq!(steps("action_succeeded"), 2.0 * n);
    assert_eq!(x.value("atamo_telemetry_missed_total", &[]), Some(0.0));

    // Gauges, as the hub reports them.
    let health = control.health();
    assert_eq!(x.value("atamo_hub_accepting", &[]), Some(1.0));
    assert_eq!(
        x.value("atamo_ingress_queue_capacity", &[]),
        Some(health.ingress.capacity as f64)
    );
    assert_eq!(x.value("atamo_ingress_queue_length", &[]), Some(0.0));
    assert_eq!(
        x.value("atamo_telemetry_subscribers", &[]),
        Some(health.telemetry_subscribers as f64)
    );
    assert_eq!(health.telemetry_subscribers, 1, "the metrics' own");
    assert_eq!(x.value("atamo_requests_running", &[]), Some(0.0));
    assert_eq!(health.agents.len(), 3);
    for a in &health.agents {
        let agent = [("agent", a.id.as_str())];
        assert_eq!(x.value("atamo_agent_queue_length", &agent), Some(0.0));
        assert_eq!(x.value("atamo_agent_in_flight", &agent), Some(0.0));
        assert_eq!(
            x.value("atamo_agent_queue_capacity", &agent),
            Some(a.queue.capacity as f64)
        );
    }
    assert_eq!(x.series("atamo_agent_status").len(), 3 * 4);
    let status =
        |agent, state| x.value("atamo_agent_status", &[("agent", agent), ("state", state)]);
    assert_eq!(status("mailer", "online"), Some(1.0));
    assert_eq!(status("flaky", "online"), Some(1.0));
    // Permanent errors say nothing about the agent.
    assert_eq!(status("broken", "unknown"), Some(1.0));
    for s in control.agent_statuses() {
        for state in AGENT_STATES {
            let labels = [
                ("agent", s.agent.as_str()),
                ("state", agent_state_label(state)),
            ];
            let want = if s.state == state { 1.0 } else { 0.0 };
            assert_eq!(x.value("atamo_agent_status", &labels), Some(want));
        }
    }
    // A stateless hub has no store.
    assert!(x.series("atamo_store_lost_leases_total").is_empty());

    // An operator takes the mailer offline: the gauge follows at once.
    control
        .set_agent_status(&AgentId::from("mailer"), AgentState::Offline, "maintenance")
        .unwrap();
    let x = parse(&metrics.render()).unwrap();
    let mailer = |state| {
        x.value(
            "atamo_agent_status",
            &[("agent", "mailer"), ("state", state)],
        )
    };
    assert_eq!(mailer("offline"), Some(1.0));
    assert_eq!(mailer("online"), Some(0.0));
    assert_eq!(mailer("unknown"), Some(0.0));

    hub.shutdown().await;
    let x = parse(&metrics.render()).unwrap();
    assert_eq!(x.value("atamo_hub_accepting", &[]), Some(0.0));
    // Counts survive the shutdown.
    assert_eq!(
        x.count(
            "atamo_events_accepted_total",
            &[("event_type", "order.created")]
        ),
        n
    );
}

/// On a current-thread runtime the counting task cannot run while the test records, so
/// a burst larger than the telemetry buffer makes it fall behind by an exact amount.
#[tokio::test]
async fn steps_missed_by_lagging_are_counted_not_lost() {
    const BUFFER: usize = 4;
    const BURST: usize = 100;
    let hub = Hub::builder().telemetry_capacity(BUFFER).build().unwrap();
    let control = hub.control();
    let metrics = Metrics::start(control.clone());
    for i in 0..BURST {
        control.record(TelemetryKind::PluginLoadFailed {
            path: format!("/plugins/{i}.so"),
            error: "not a plugin".into(),
        });
    }
    let x = until(&metrics, "the burst", |x| {
        x.sum("atamo_telemetry_events_total")
            + x.value("atamo_telemetry_missed_total", &[]).unwrap_or(0.0)
            == BURST as f64
    })
    .await;
    assert_eq!(
        x.value("atamo_telemetry_missed_total", &[]),
        Some((BURST - BUFFER) as f64)
    );
    assert_eq!(
        x.count(
            "atamo_telemetry_events_total",
            &[("kind", "plugin_load_failed")]
        ),
        BUFFER as f64,
        "the newest steps are counted"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn dropping_the_metrics_ends_the_subscription() {
    let hub = Hub::builder().build().unwrap();
    let control = hub.control();
    assert_eq!(control.health().telemetry_subscribers, 0);
    let metrics = Metrics::start(control.clone());
    assert_eq!(control.health().telemetry_subscribers, 1);
    drop(metrics);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while control.health().telemetry_subscribers != 0 {
        assert!(std::time::Instant::now() < deadline, "still subscribed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    hub.shutdown().await;
}
