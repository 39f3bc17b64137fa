//! Alerts: counted when raised, firing from raise to resolve.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use atamo_core::alerts::{AgentThresholds, AlertConfig, AlertMonitor, ErrorRateThreshold};
use atamo_core::telemetry::{ProcessChange, TelemetryKind};
use atamo_core::{AgentId, Event, Hub};
use serde_json::json;

use super::support::{alice, orders_hub, until, N};
use crate::metrics::Metrics;

fn alert(alert: &str, agent: &str, raised: bool) -> TelemetryKind {
    TelemetryKind::Alert {
        alert: alert.parse().expect("an alert kind"),
        agent: Some(AgentId::from(agent)),
        raised,
        detail: String::new(),
    }
}

#[tokio::test]
async fn alerts_fire_from_raise_to_resolve() {
    let hub = Hub::builder().build().unwrap();
    let control = hub.control();
    let metrics = Metrics::start(control.clone());
    for step in [
        alert("error_rate", "a", true),
        alert("latency_p95", "a", true),
        alert("error_rate", "a", false),
        // A notification: counted, never firing.
        alert("retries_exhausted", "b", true),
        // Fires until the process starts again.
        alert("agent_offline", "c", true),
        TelemetryKind::AgentProcess {
            agent: AgentId::from("c"),
            change: ProcessChange::Started {
                pid: 42,
                restarts: 3,
            },
        },
        // Fires until the agent is unregistered.
        alert("queue_depth", "d", true),
        TelemetryKind::AgentUnregistered {
            agent: AgentId::from("d"),
        },
        alert("agent_offline", "e", true),
    ] {
        control.record(step);
    }
    let x = until(&metrics, "9 steps", |x| {
        x.sum("atamo_telemetry_events_total") == 9.0
    })
    .await;
    let firing: BTreeSet<(String, String)> = x
        .samples
        .iter()
        .filter(|s| s.name == "atamo_alerts_firing")
        .map(|s| {
            assert_eq!(s.value, 1.0);
            (s.labels["alert"].clone(), s.labels["agent"].clone())
        })
        .collect();
    let want: BTreeSet<(String, String)> = [("latency_p95", "a"), ("agent_offline", "e")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    assert_eq!(firing, want);
    let raised = |alert, agent| {
        x.count(
            "atamo_alerts_raised_total",
            &[("alert", alert), ("agent", agent)],
        )
    };
    assert_eq!(raised("error_rate", "a"), 1.0);
    assert_eq!(raised("retries_exhausted", "b"), 1.0);
    assert_eq!(x.sum("atamo_alerts_raised_total"), 6.0);
    assert_eq!(
        x.count(
            "atamo_agent_process_changes_total",
            &[("agent", "c"), ("change", "started")]
        ),
        1.0
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_monitors_alert_fires_then_resolves() {
    let hub = orders_hub();
    let metrics = Metrics::start(hub.control());
    let config = AlertConfig::new()
        .default_thresholds(
            AgentThresholds::none().with_error_rate(
                ErrorRateThreshold::new(0.1)
                    .window(Duration::from_secs(1))
                    .min_calls(2),
            ),
        )
        .sample_interval(Duration::from_millis(50));
    let monitor = AlertMonitor::start(&hub, config);
    for n in 0..N {
        let order = Event::new("order.created", alice(), json!({ "n": n }));
        hub.handle().publish(order).await.unwrap();
    }
    let broken = [("alert", "error_rate"), ("agent", "broken")];
    until(&metrics, "the broken agent's error rate alert", |x| {
        x.value("atamo_alerts_firing", &broken) == Some(1.0)
    })
    .await;
    // With no more calls the window empties and the alert is resolved.
    let x = until(&metrics, "the alert resolved", |x| {
        x.value("atamo_alerts_firing", &broken).is_none()
    })
    .await;
    assert_eq!(x.count("atamo_alerts_raised_total", &broken), 1.0);
    assert!(x.count("atamo_telemetry_events_total", &[("kind", "alert")]) >= 2.0);
    monitor.stop();
    hub.shutdown().await;
}
