//! HTTP requests by method, route template and status, with bounded routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use atamo_core::Hub;

use super::exposition::parse;
use crate::metrics::http::MAX_HTTP_ROUTES;
use crate::metrics::Metrics;

#[tokio::test]
async fn http_requests_by_route_and_status() {
    let hub = Hub::builder().build().unwrap();
    let metrics = Metrics::start(hub.control());
    let ms = Duration::from_millis;
    let one = "/v1/events/{id}";
    metrics.observe_http("GET", one, 200, ms(2));
    metrics.observe_http("GET", one, 200, ms(20));
    metrics.observe_http("get", one, 200, Duration::from_secs(2));
    metrics.observe_http("GET", one, 404, ms(1));
    metrics.observe_http("POST", "/v1/events", 202, ms(4));
    metrics.observe_http("BREW", "/v1/events", 405, ms(1));
    let x = parse(&metrics.render()).unwrap();
    let requests = |method, route, status| {
        x.count(
            "atamo_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("GET", one, "200"), 3.0);
    assert_eq!(requests("GET", one, "404"), 1.0);
    assert_eq!(requests("POST", "/v1/events", "202"), 1.0);
    assert_eq!(requests("OTHER", "/v1/events", "405"), 1.0);
    assert_eq!(x.sum("atamo_http_requests_total"), 6.0);
    let get = [("method", "GET"), ("route", one)];
    let bucket = |le| {
        x.count(
            "atamo_http_request_duration_seconds_bucket",
            &[("method", "GET"), ("route", one), ("le", le)],
        )
    };
    assert_eq!(bucket("0.001"), 1.0);
    assert_eq!(bucket("0.0025"), 2.0);
    assert_eq!(bucket("0.025"), 3.0);
    assert_eq!(bucket("1"), 3.0);
    assert_eq!(bucket("2.5"), 4.0);
    assert_eq!(bucket("+Inf"), 4.0);
    assert_eq!(
        x.value("atamo_http_request_duration_seconds_count", &get),
        Some(4.0)
    );
    let sum = x
        .value("atamo_http_request_duration_seconds_sum", &get)
        .unwrap();
    assert!((sum - 2.023).abs() < 1e-9, "{sum}");

    // Raw paths passed as routes cannot grow the series without bound.
    let used = 3; // (GET, one), (POST, /v1/events), (OTHER, /v1/events)
    let extra = 50;
    for i in 0..(MAX_HTTP_ROUTES - used + extra) {
        metrics.observe_http("GET", &format!("/v1/events/{i}"), 200, ms(1));
    }
    let x = parse(&metrics.render()).unwrap();
    let routes: BTreeSet<(&str, &str)> = x
        .series("atamo_http_request_duration_seconds_count")
        .into_iter()
        .map(|l| (l["method"].as_str(), l["route"].as_str()))
        .collect();
    assert_eq!(routes.len(), MAX_HTTP_ROUTES + 1);
    assert!(routes.contains(&("GET", "(other)")));
    assert_eq!(
        x.value(
            "atamo_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "(other)")]
        ),
        Some(extra as f64)
    );
    hub.shutdown().await;
}
