//! The whole exposition: every family described and typed, values escaped, one line a sample.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use atamo_core::Event;
use serde_json::json;

use super::exposition::parse;
use super::support::{alice, orders_hub, until, N};
use crate::metrics::Metrics;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_is_prometheus_text() {
    let hub = orders_hub();
    let metrics = Metrics::start(hub.control());
    for n in 0..N {
        let order = Event::new("order.created", alice(), json!({ "n": n }));
        hub.handle().publish(order).await.unwrap();
    }
    let bad = Event::new("order.unknown", alice(), json!({}));
    assert!(hub.handle().publish(bad).await.is_err());
    metrics.observe_http("POST", "/v1/events", 202, Duration::from_millis(3));
    metrics.observe_http("GET", "/v1/events/{id}", 404, Duration::from_millis(1));
    // A label value that needs escaping.
    metrics.observe_http("GET", "/v1/\"odd\"\\route", 200, Duration::from_millis(1));
    until(&metrics, "the dead letters", |x| {
        x.count(
            "atamo_events_unrouted_total",
            &[("event_type", "atamo.action.exhausted")],
        ) == N as f64
    })
    .await;
    let text = metrics.render();
    let x = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        x.count(
            "atamo_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/v1/\"odd\"\\route"),
                ("status", "200")
            ]
        ),
        1.0
    );

    // Every family `parse` checked has HELP and TYPE; these are the ones expected here.
    let families: Vec<&str> = x.types.keys().map(String::as_str).collect();
    for f in [
        "atamo_events_accepted_total",
        "atamo_events_rejected_total",
        "atamo_event_problems_total",
        "atamo_events_unrouted_total",
        "atamo_actions_dispatched_total",
        "atamo_actions_total",
        "atamo_action_duration_seconds",
        "atamo_alerts_raised_total",
        "atamo_telemetry_events_total",
        "atamo_telemetry_missed_total",
        "atamo_hub_accepting",
        "atamo_ingress_queue_length",
        "atamo_ingress_queue_capacity",
        "atamo_agent_queue_length",
        "atamo_agent_queue_capacity",
        "atamo_agent_in_flight",
        "atamo_agent_status",
        "atamo_telemetry_subscribers",
        "atamo_requests_running",
        "atamo_requests_kept",
        "atamo_http_requests_total",
        "atamo_http_request_duration_seconds",
    ] {
        assert!(families.contains(&f), "{f} missing from\n{text}");
    }
    assert_eq!(x.types["atamo_action_duration_seconds"], "histogram");
    assert_eq!(x.types["atamo_actions_total"], "counter");
    assert_eq!(x.types["atamo_agent_status"], "gauge");
    for (family, help) in &x.help {
        assert!(help.len() > 10, "{family}: {help}");
    }
    // Every sample line is `name{labels} value` (checked by `parse`), and there are as
    // many as lines that are not comments.
    let lines = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(lines, x.samples.len());
    assert!(Metrics::CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    hub.shutdown().await;
}
