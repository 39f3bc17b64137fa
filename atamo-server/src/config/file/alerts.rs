//! `[alerts]`: the alert thresholds, for every agent and per agent.

use std::time::Duration;

use atamo_core::alerts::{
    AgentThresholds, AlertConfig, ErrorRateThreshold, LatencyThreshold, QueueDepthThreshold,
    ThroughputThreshold,
};
use atamo_core::bounded::Interval;
use atamo_core::AgentId;
use serde::Deserialize;

use super::checker::Checker;
use super::spans::{child_span, join, Value};
use crate::config::units::Dur;
use crate::model::check_id;

impl<'i> Checker<'_> {
    pub(super) fn alerts(&mut self, path: &str, v: &Value<'i>) -> AlertConfig {
        let mut config = AlertConfig::default();
        let keys = [
            "sample_interval",
            "error_rate",
            "latency_p95",
            "throughput",
            "queue_depth",
            "per_agent",
        ];
        let entries = self.table(path, v, &keys);
        // The thresholds for every agent first: each agent's own start from them.
        for (key, cv, p) in &entries {
            if *key == "sample_interval" {
                if let Some(d) = self.duration(p, cv, Interval::new) {
                    config.sample_interval = d.get();
                }
            } else if *key != "per_agent" {
                self.threshold(key, p, cv, &mut config.default);
            }
        }
        for (_, cv, p) in entries.iter().filter(|(k, _, _)| *k == "per_agent") {
            let Some(table) = cv.get_ref().as_table() else {
                self.error(cv.span(), p, "must be a table of agent ids");
                continue;
            };
            for (agent, av) in table.iter() {
                let agent_path = join(p, agent.get_ref());
                if let Err(e) = check_id(agent.get_ref()) {
                    self.error(agent.span(), &agent_path, format!("agent id: {e}"));
                }
                let mut own = config.default.clone();
                let kinds = ["error_rate", "latency_p95", "throughput", "queue_depth"];
                for (key, kv, kp) in self.table(&agent_path, av, &kinds) {
                    self.threshold(key, &kp, kv, &mut own);
                }
                config
                    .per_agent
                    .insert(AgentId::new(&**agent.get_ref()), own);
            }
        }
        config
    }

    /// One alert kind: a table of thresholds, or `false` to turn it off.
    pub(super) fn threshold(
        &mut self,
        key: &str,
        path: &str,
        v: &Value<'i>,
        into: &mut AgentThresholds,
    ) {
        if let Some(on) = v.get_ref().as_bool() {
            if on {
                self.error(
                    v.span(),
                    path,
                    "write the thresholds as a table, or `false` to turn this alert off",
                );
            } else {
                match key {
                    "error_rate" => into.error_rate = None,
                    "latency_p95" => into.latency_p95 = None,
                    "throughput" => into.throughput = None,
                    _ => into.queue_depth = None,
                }
            }
            return;
        }
        let window = |c: &mut Self, w: Option<Dur>, at: &str| -> Option<Duration> {
            match w {
                Some(Dur(d)) if d.is_zero() => {
                    c.error(
                        child_span(v, "window"),
                        &join(at, "window"),
                        "must be more than 0",
                    );
                    None
                }
                other => other.map(|d| d.0),
            }
        };
        match key {
            "error_rate" => {
                let Some(t) = self.get::<ErrorRateFile>(path, v) else {
                    return;
                };
                let mut out = ErrorRateThreshold::default();
                if let Some(rate) = t.max_rate {
                    if (0.0..=1.0).contains(&rate) {
                        out.max_rate = rate;
                    } else {
                        self.error(
                            child_span(v, "max_rate"),
                            &join(path, "max_rate"),
                            "must be a fraction from 0.0 to 1.0 (0.05 is 5 %)",
                        );
                    }
                }
                if let Some(w) = window(self, t.window, path) {
                    out.window = w;
                }
                if let Some(n) = t.min_calls {
                    out.min_calls = n;
                }
                into.error_rate = Some(out);
            }
            "latency_p95" => {
                let Some(t) = self.get::<LatencyFile>(path, v) else {
                    return;
                };
                let mut out = LatencyThreshold::new(t.max_p95.0);
                if let Some(w) = window(self, t.window, path) {
                    out.window = w;
                }
                if let Some(n) = t.min_calls {
                    out.min_calls = n;
                }
                into.latency_p95 = Some(out);
            }
            "throughput" => {
                let Some(t) = self.get::<ThroughputFile>(path, v) else {
                    return;
                };
                if !(t.min_per_sec.is_finite() && t.min_per_sec > 0.0) {
                    self.error(
                        child_span(v, "min_per_sec"),
                        &join(path, "min_per_sec"),
                        "must be more than 0",
                    );
                }
                let mut out = ThroughputThreshold::new(t.min_per_sec);
                if let Some(w) = window(self, t.window, path) {
                    out.window = w;
                }
                into.throughput = Some(out);
            }
            _ => {
                let Some(t) = self.get::<QueueDepthFile>(path, v) else {
                    return;
                };
                into.queue_depth = Some(QueueDepthThreshold::new(t.max_len, t.for_at_least.0));
            }
        }
    }
}

/// `error_rate = { max_rate, window, min_calls }`, each optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorRateFile {
    max_rate: Option<f64>,
    window: Option<Dur>,
    min_calls: Option<u64>,
}

/// `latency_p95 = { max_p95, window, min_calls }`, `max_p95` required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyFile {
    max_p95: Dur,
    window: Option<Dur>,
    min_calls: Option<u64>,
}

/// `throughput = { min_per_sec, window }`, `min_per_sec` required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThroughputFile {
    min_per_sec: f64,
    window: Option<Dur>,
}

/// `queue_depth = { max_len, for }`, both required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueDepthFile {
    max_len: usize,
    #[serde(rename = "for")]
    for_at_least: Dur,
}
