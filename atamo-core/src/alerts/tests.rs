//! The monitor's measures, on hand-made samples.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::time::Instant;

use crate::hub::QueueDepth;

use super::config::{
    AgentThresholds, ErrorRateThreshold, LatencyThreshold, QueueDepthThreshold, ThroughputThreshold,
};
use super::names::LATENCY_SAMPLES;
use super::units::window_secs;
use super::window::{AgentState, Kind, Level};

fn ms_(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn every_kind(window: u64) -> AgentThresholds {
    AgentThresholds::none()
        .with_error_rate(
            ErrorRateThreshold::new(0.05)
                .window(Duration::from_secs(window))
                .min_calls(20),
        )
        .with_latency_p95(
            LatencyThreshold::new(ms_(100))
                .window(Duration::from_secs(window))
                .min_calls(20),
        )
        .with_throughput(ThroughputThreshold::new(2.0).window(Duration::from_secs(window)))
}

#[test]
fn windows_are_whole_seconds() {
    assert_eq!(window_secs(Duration::ZERO), 1);
    assert_eq!(window_secs(ms_(1)), 1);
    assert_eq!(window_secs(ms_(1000)), 1);
    assert_eq!(window_secs(ms_(1001)), 2);
    assert_eq!(window_secs(Duration::from_secs(300)), 300);
}

#[test]
fn p95_is_the_nearest_rank() {
    let mut s = AgentState::new(every_kind(60), 0);
    // 1..=100 ms: the 95th value is 95 ms.
    for i in 1..=100 {
        s.record(0, false, ms_(i));
    }
    let m = s.latency(0);
    assert_eq!(m.value, 95.0);
    assert_eq!(m.count, 100);
    assert_eq!(m.level, Level::Clear);
    // Six slow calls out of 106 put the p95 above the threshold.
    for _ in 0..6 {
        s.record(0, false, ms_(500));
    }
    let m = s.latency(0);
    assert_eq!((m.level, m.value), (Level::Alarm, 500.0));
}

#[test]
fn too_few_calls_neither_raise_nor_resolve_and_none_resolve() {
    let mut s = AgentState::new(every_kind(10), 0);
    for i in 0..10 {
        s.record(0, i % 2 == 0, ms_(1));
    }
    assert_eq!(s.error_rate(0).level, Level::Hold);
    for i in 0..10 {
        s.record(1, i % 2 == 0, ms_(1));
    }
    let m = s.error_rate(1);
    assert_eq!((m.level, m.count, m.part), (Level::Alarm, 20, 10));
    // Ten seconds later the window is empty: resolved.
    let m = s.error_rate(11);
    assert_eq!((m.level, m.count), (Level::Clear, 0));
    assert_eq!(
        m.describe(Kind::ErrorRate, false),
        "no calls in the last 10 s"
    );
}

#[test]
fn throughput_waits_for_a_whole_window_and_counts_whole_seconds() {
    let mut s = AgentState::new(every_kind(5), 3);
    assert_eq!(s.throughput(7).level, Level::Hold);
    assert_eq!(s.throughput(8).level, Level::Alarm);
    // Two calls a second in seconds 8..13; the current second (13) does not count.
    for sec in 8..=13 {
        s.record(sec, false, ms_(1));
        s.record(sec, false, ms_(1));
    }
    let m = s.throughput(13);
    assert_eq!((m.level, m.count, m.value), (Level::Clear, 10, 2.0));
}

#[test]
fn memory_stays_bounded() {
    let mut s = AgentState::new(every_kind(60), 0);
    for sec in 0..10_000 {
        for _ in 0..3 {
            s.record(sec, false, ms_(5));
        }
    }
    assert!(s.buckets.len() <= 61, "{}", s.buckets.len());
    assert!(s.latencies.len() <= LATENCY_SAMPLES);
    // A kind that is off keeps nothing.
    let mut off = AgentState::new(AgentThresholds::none(), 0);
    for sec in 0..100 {
        off.record(sec, true, ms_(5));
    }
    assert!(off.buckets.is_empty() && off.latencies.is_empty());
}

#[test]
fn the_queue_must_stay_above_for_the_whole_time() {
    let t = AgentThresholds::none().with_queue_depth(QueueDepthThreshold::new(2, ms_(3000)));
    let mut s = AgentState::new(t, 0);
    let start = Instant::now();
    let q = |len| Some(QueueDepth { len, capacity: 10 });
    s.queue = q(5);
    assert_eq!(s.queue_depth(start).level, Level::Hold);
    assert_eq!(s.queue_depth(start + ms_(2000)).level, Level::Hold);
    // Dipping to the threshold starts the clock again.
    s.queue = q(2);
    assert_eq!(s.queue_depth(start + ms_(2500)).level, Level::Clear);
    s.queue = q(5);
    assert_eq!(s.queue_depth(start + ms_(3000)).level, Level::Hold);
    let m = s.queue_depth(start + ms_(6000));
    assert_eq!((m.level, m.value, m.threshold), (Level::Alarm, 5.0, 2.0));
    assert_eq!(
        m.describe(Kind::Queue, true),
        "queue at 5 of 10 has stayed above 2 for 3 s"
    );
}
