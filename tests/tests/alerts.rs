//! Alerts: each kind is raised and then resolved, reported as `alert` telemetry and as an
//! `atamo.alert` event that a rule routes to the owner's agent. All on a paused clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_core::alerts::{
    AgentThresholds, AlertConfig, AlertMonitor, ErrorRateThreshold, LatencyThreshold,
    QueueDepthThreshold, ThroughputThreshold, ALERT_EVENT_TYPE,
};
use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
use atamo_core::telemetry::{AlertKind, TelemetryKind};
use atamo_core::{
    agent_fn, ActionTypeDef, AgentError, AgentSpec, Event, EventTypeDef, GroupId, Hub, HubHandle,
    Principal, Reply, TryPublishError,
};
use atamo_tests::{Recorder, RecordingAgent};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The alerts an [`AlertMonitor`] raises.
const MONITOR_ALERTS: [AlertKind; 4] = [ERROR_RATE, LATENCY_P95, THROUGHPUT_LOW, QUEUE_DEPTH];
const ERROR_RATE: AlertKind = AlertKind::ErrorRate;
const LATENCY_P95: AlertKind = AlertKind::LatencyP95;
const THROUGHPUT_LOW: AlertKind = AlertKind::ThroughputLow;
const QUEUE_DEPTH: AlertKind = AlertKind::QueueDepth;

/// The most virtual time any one test may take.
const TEST_BUDGET: Duration = Duration::from_secs(900);

/// A hub with the agents under test (handling `run`), an `owner` agent (handling `notify`)
/// that records the alerts routed to it, and an alert monitor.
struct Scenario {
    hub: Hub,
    rec: Recorder,
    owner: RecordingAgent,
    monitor: AlertMonitor,
    started: Instant,
}

impl Scenario {
    fn new(agents: Vec<AgentSpec>, config: AlertConfig) -> Self {
        let owner = RecordingAgent::new();
        // Jobs go to the agent their payload names; alerts, published by the controller, to
        // the owner.
        let controller = GroupId::from("atamo.controller");
        let rules = move |event: &Event, principal: &Principal, out: &mut Vec<Proposal>| {
            let payload = event.payload().clone();
            match event.event_type().as_str() {
                "job" => {
                    let agent = payload["agent"].as_str().unwrap().to_owned();
                    out.push(Proposal::action(
                        "jobs".into(),
                        PlannedAction::new(agent, "run", payload),
                    ));
                }
                ALERT_EVENT_TYPE
                    if principal.user.as_str() == "atamo" && principal.is_in(&controller) =>
                {
                    out.push(Proposal::action(
                        "alerts-to-owner".into(),
                        PlannedAction::new("owner", "notify", payload),
                    ));
                }
                _ => {}
            }
        };
        let mut builder = Hub::builder()
            .event_type(EventTypeDef::new("job"))
            .action_type(ActionTypeDef::new("run"))
            .action_type(ActionTypeDef::new("notify"))
            .agent(AgentSpec::new("owner", owner.agent()).handles(["notify"]))
            .provider("routes", rules, ProviderScope::AllEvents);
        for a in agents {
            builder = builder.agent(a.handles(["run"]));
        }
        let hub = builder.build().unwrap();
        let rec = Recorder::start(&hub.control());
        let started = Instant::now();
        let monitor = AlertMonitor::start(&hub, config);
        Self {
            hub,
            rec,
            owner,
            monitor,
            started,
        }
    }

    /// (alert, agent, raised) of every `alert` telemetry step of the monitor, in order (the
    /// hub raises alerts of its own, such as `retries_exhausted`).
    fn alert_steps(&self) -> Vec<(AlertKind, String, bool)> {
        self.rec
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                TelemetryKind::Alert {
                    alert,
                    agent,
                    raised,
                    ..
                } if MONITOR_ALERTS.contains(alert) => {
                    Some((*alert, agent.as_ref().unwrap().to_string(), *raised))
                }
                _ => None,
            })
            .collect()
    }

    /// The `detail` of every `alert` telemetry step, in order.
    fn alert_details(&self) -> Vec<String> {
        self.rec
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                TelemetryKind::Alert { alert, detail, .. } if MONITOR_ALERTS.contains(alert) => {
                    Some(detail.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// The payloads of the alert events the owner's agent received, in order.
    fn owner_alerts(&self) -> Vec<Value> {
        self.owner
            .received()
            .iter()
            .map(|a| {
                assert_eq!(a.principal().user.as_str(), "atamo");
                a.payload().clone()
            })
            .collect()
    }

    /// Waits (in virtual time) until the owner's agent has received `n` alert events, and
    /// checks that they match the telemetry steps one for one.
    async fn owner_got(&self, n: usize) {
        until("alert events at the owner", Duration::from_secs(30), || {
            self.owner.count() >= n
        })
        .await;
        let payloads = self.owner_alerts();
        let from_events: Vec<_> = payloads
            .iter()
            .map(|p| {
                (
                    p["alert"].as_str().unwrap().parse::<AlertKind>().unwrap(),
                    p["agent"].as_str().unwrap().to_owned(),
                    p["raised"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(from_events, self.alert_steps(), "events match telemetry");
        let details: Vec<_> = payloads
            .iter()
            .map(|p| p["detail"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(details, self.alert_details());
    }

    fn is_active(&self, alert: AlertKind, agent: &str) -> bool {
        self.monitor
            .active()
            .iter()
            .any(|a| a.alert == alert && a.agent.as_str() == agent)
    }

    /// Shuts the hub down and checks that the monitor stops with it.
    async fn finish(self, traffic: Vec<JoinHandle<()>>) {
        for t in traffic {
            t.abort();
        }
        self.hub.shutdown().await;
        tokio::time::timeout(Duration::from_secs(5), self.monitor.join())
            .await
            .expect("the monitor stops with the hub");
    }
}

/// Waits in virtual time, checking every 100 ms, failing after `within`.
async fn until(what: &str, within: Duration, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !pred() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a test body within the virtual time budget.
async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_BUDGET, body)
        .await
        .expect("the test finished within its time budget");
}

fn job(agent: &str, n: u64) -> Event {
    Event::new(
        "job",
        Principal::user("client"),
        json!({"agent": agent, "n": n}),
    )
}

/// Publishes a job for `agent` every `every` while `on` is set, numbering them from 0.
fn traffic(
    h: HubHandle,
    agent: &'static str,
    every: Duration,
    on: Arc<AtomicBool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if !on.load(Ordering::Relaxed) {
                continue;
            }
            match h.try_publish(job(agent, n)) {
                Ok(_) => n += 1,
                Err(TryPublishError::Full { .. }) => {}
                Err(_) => return,
            }
        }
    })
}

/// An agent that fails every tenth call (n = 9, 19, ...) while `failing` is set.
fn flaky(id: &str, failing: Arc<AtomicBool>) -> AgentSpec {
    AgentSpec::new(
        id,
        agent_fn(move |action, _ctx| {
            let fail = failing.load(Ordering::Relaxed)
                && action.payload()["n"].as_u64().unwrap() % 10 == 9;
            async move {
                if fail {
                    Err(AgentError::permanent("every tenth call fails"))
                } else {
                    Ok(Reply::done())
                }
            }
        }),
    )
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn on() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(true))
}

#[tokio::test(start_paused = true)]
async fn error_rate_is_raised_when_an_agent_fails_ten_percent_and_resolved_after_it_recovers() {
    bounded(async {
        let failing = on();
        let config = AlertConfig::new().default_thresholds(
            AgentThresholds::none()
                .with_error_rate(ErrorRateThreshold::new(0.05).window(secs(10)).min_calls(20)),
        );
        let s = Scenario::new(vec![flaky("flaky", failing.clone())], config);
        // Ten calls a second, one in ten failing.
        let t = traffic(s.hub.handle(), "flaky", Duration::from_millis(100), on());

        until("error_rate raised", secs(30), || {
            s.is_active(ERROR_RATE, "flaky")
        })
        .await;
        let raised = s.monitor.active()[0].clone();
        // Not before the window held 20 calls (two seconds of traffic).
        assert!(raised.since - s.started >= Duration::from_millis(1900));
        assert!(raised.value > 0.05 && raised.value <= 0.1, "{raised:?}");
        assert_eq!(raised.threshold, 0.05);
        assert!(
            raised.detail.starts_with("error rate 10.0%"),
            "{}",
            raised.detail
        );

        // Still failing for a while: the alert stays, and is not raised again.
        tokio::time::sleep(secs(10)).await;
        assert_eq!(s.alert_steps(), [(ERROR_RATE, "flaky".into(), true)]);
        assert!(s.is_active(ERROR_RATE, "flaky"));

        // Recovered: resolved once the failures have slid out of the window far enough to be
        // at or under 5 % of it (about five seconds at one failure a second).
        failing.store(false, Ordering::Relaxed);
        let recovered = Instant::now();
        until("error_rate resolved", secs(30), || {
            !s.is_active(ERROR_RATE, "flaky")
        })
        .await;
        let took = recovered.elapsed();
        assert!(
            took >= secs(4) && took <= secs(11),
            "resolved after {took:?}"
        );
        assert_eq!(
            s.alert_steps(),
            [
                (ERROR_RATE, "flaky".into(), true),
                (ERROR_RATE, "flaky".into(), false),
            ]
        );
        s.owner_got(2).await;
        let events = s.owner_alerts();
        assert_eq!(events[0]["threshold"], 0.05);
        assert!(events[0]["value"].as_f64().unwrap() > 0.05);
        assert!(events[1]["value"].as_f64().unwrap() <= 0.05);
        assert!(s.monitor.active().is_empty());
        s.finish(vec![t]).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn latency_p95_is_raised_for_a_slow_agent_and_resolved_when_it_speeds_up() {
    bounded(async {
        let delay_ms = Arc::new(AtomicU64::new(20));
        let delay = delay_ms.clone();
        let slow = AgentSpec::new(
            "slow",
            agent_fn(move |_action, _ctx| {
                let d = Duration::from_millis(delay.load(Ordering::Relaxed));
                async move {
                    tokio::time::sleep(d).await;
                    Ok(Reply::done())
                }
            }),
        );
        let config = AlertConfig::new().default_thresholds(
            AgentThresholds::none().with_latency_p95(
                LatencyThreshold::new(Duration::from_millis(100))
                    .window(secs(10))
                    .min_calls(10),
            ),
        );
        let s = Scenario::new(vec![slow], config);
        // Five calls a second.
        let t = traffic(s.hub.handle(), "slow", Duration::from_millis(200), on());

        // Fast: nothing.
        tokio::time::sleep(secs(5)).await;
        assert!(s.alert_steps().is_empty());

        // Slow: raised as soon as more than 5 % of the window's calls take 300 ms.
        delay_ms.store(300, Ordering::Relaxed);
        let slowed = Instant::now();
        until("latency_p95 raised", secs(10), || {
            s.is_active(LATENCY_P95, "slow")
        })
        .await;
        assert!(slowed.elapsed() <= secs(3));
        let raised = s.monitor.active()[0].clone();
        assert_eq!(raised.threshold, 100.0);
        assert_eq!(raised.value, 300.0, "p95 in ms: {}", raised.detail);

        tokio::time::sleep(secs(5)).await;
        assert_eq!(s.alert_steps().len(), 1, "raised once while active");

        // Fast again: resolved once slow calls are no more than 5 % of the window.
        delay_ms.store(20, Ordering::Relaxed);
        let sped_up = Instant::now();
        until("latency_p95 resolved", secs(30), || {
            !s.is_active(LATENCY_P95, "slow")
        })
        .await;
        let took = sped_up.elapsed();
        assert!(
            took >= secs(8) && took <= secs(12),
            "resolved after {took:?}"
        );
        assert_eq!(
            s.alert_steps(),
            [
                (LATENCY_P95, "slow".into(), true),
                (LATENCY_P95, "slow".into(), false),
            ]
        );
        s.owner_got(2).await;
        let events = s.owner_alerts();
        assert_eq!(events[0]["value"], 300.0);
        assert_eq!(events[0]["threshold"], 100.0);
        assert!(events[1]["value"].as_f64().unwrap() <= 100.0);
        s.finish(vec![t]).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn throughput_low_fires_without_any_traffic_after_one_window_and_resolves_when_traffic_returns(
) {
    bounded(async {
        let config = AlertConfig::new()
            .default_thresholds(AgentThresholds::none())
            .agent(
                "feed",
                AgentThresholds::none()
                    .with_throughput(ThroughputThreshold::new(2.0).window(secs(5))),
            );
        let feed = RecordingAgent::new();
        let s = Scenario::new(vec![AgentSpec::new("feed", feed.agent())], config);
        let running = Arc::new(AtomicBool::new(false));
        let t = traffic(
            s.hub.handle(),
            "feed",
            Duration::from_millis(200),
            running.clone(),
        );

        // No traffic at all: nothing before the first window has passed...
        tokio::time::sleep(Duration::from_millis(4500)).await;
        assert!(s.alert_steps().is_empty());
        // ...then raised.
        until("throughput_low raised", secs(10), || {
            s.is_active(THROUGHPUT_LOW, "feed")
        })
        .await;
        let raised = s.monitor.active()[0].clone();
        assert!(raised.since - s.started >= secs(5));
        assert!(raised.since - s.started <= secs(7));
        assert_eq!((raised.value, raised.threshold), (0.0, 2.0));

        // Five calls a second: resolved once the last whole window holds ten calls.
        running.store(true, Ordering::Relaxed);
        let resumed = Instant::now();
        until("throughput_low resolved", secs(10), || {
            !s.is_active(THROUGHPUT_LOW, "feed")
        })
        .await;
        assert!(resumed.elapsed() <= secs(4), "{:?}", resumed.elapsed());

        // Traffic stops again: raised again once the window has emptied below the floor.
        running.store(false, Ordering::Relaxed);
        until("throughput_low raised again", secs(10), || {
            s.is_active(THROUGHPUT_LOW, "feed")
        })
        .await;
        assert_eq!(
            s.alert_steps(),
            [
                (THROUGHPUT_LOW, "feed".into(), true),
                (THROUGHPUT_LOW, "feed".into(), false),
                (THROUGHPUT_LOW, "feed".into(), true),
            ]
        );
        s.owner_got(3).await;
        let events = s.owner_alerts();
        assert_eq!(events[0]["value"], 0.0);
        assert!(events[1]["value"].as_f64().unwrap() >= 2.0);
        s.finish(vec![t]).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn queue_depth_is_raised_when_a_queue_stays_long_and_resolved_once_it_drains() {
    bounded(async {
        // The agent does one call at a time and holds it until released.
        let (jam, jammed) = tokio::sync::watch::channel(true);
        let agent = agent_fn(move |_action, _ctx| {
            let mut jammed = jammed.clone();
            async move {
                let _ = jammed.wait_for(|j| !*j).await;
                Ok(Reply::done())
            }
        });
        let spec = AgentSpec::new("jammed", agent)
            .concurrency(1)
            .queue_capacity(4);
        let config = AlertConfig::new().default_thresholds(
            AgentThresholds::none().with_queue_depth(QueueDepthThreshold::new(2, secs(3))),
        );
        let s = Scenario::new(vec![spec], config);
        let control = s.hub.control();
        // Four jobs a second, from a task of its own: the queue fills, then routing waits.
        let t = traffic(s.hub.handle(), "jammed", Duration::from_millis(250), on());

        let queue_len = || {
            control
                .health()
                .agents
                .iter()
                .find(|a| a.id.as_str() == "jammed")
                .unwrap()
                .queue
                .len
        };
        until("queue above 2", secs(5), || queue_len() > 2).await;
        let over = Instant::now();
        until("queue_depth raised", secs(10), || {
            s.is_active(QUEUE_DEPTH, "jammed")
        })
        .await;
        let raised = s.monitor.active()[0].clone();
        assert!(
            raised.since - over >= secs(3),
            "raised {:?} after the queue grew",
            raised.since - over
        );
        assert!(raised.since - over <= secs(5));
        assert!(raised.value > 2.0 && raised.value <= 4.0);
        assert_eq!(raised.threshold, 2.0);

        tokio::time::sleep(secs(5)).await;
        assert_eq!(s.alert_steps().len(), 1, "raised once while active");

        // Released: it drains at once, and the next sample resolves the alert.
        jam.send(false).unwrap();
        let released = Instant::now();
        until("queue_depth resolved", secs(5), || {
            !s.is_active(QUEUE_DEPTH, "jammed")
        })
        .await;
        assert!(released.elapsed() <= Duration::from_millis(1100));
        assert_eq!(
            s.alert_steps(),
            [
                (QUEUE_DEPTH, "jammed".into(), true),
                (QUEUE_DEPTH, "jammed".into(), false),
            ]
        );
        // The raise event waited behind the jammed queue; both arrive once it drains.
        s.owner_got(2).await;
        let events = s.owner_alerts();
        assert_eq!(events[0]["threshold"], 2.0);
        assert!(events[1]["value"].as_f64().unwrap() <= 2.0);
        s.finish(vec![t]).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn per_agent_thresholds_override_the_default() {
    bounded(async {
        let failing = on();
        // Every agent fails one call in ten. The default (5 %) fires; `lenient` allows 50 %,
        // `quiet` has no alert at all, `slowish` adds a latency threshold to none.
        let config = AlertConfig::new()
            .default_thresholds(
                AgentThresholds::none()
                    .with_error_rate(ErrorRateThreshold::new(0.05).window(secs(10)).min_calls(20)),
            )
            .agent(
                "lenient",
                AgentThresholds::none()
                    .with_error_rate(ErrorRateThreshold::new(0.5).window(secs(10)).min_calls(20)),
            )
            .agent("quiet", AgentThresholds::none());
        let s = Scenario::new(
            vec![
                flaky("strict", failing.clone()),
                flaky("lenient", failing.clone()),
                flaky("quiet", failing.clone()),
            ],
            config,
        );
        let h = s.hub.handle();
        let every = Duration::from_millis(100);
        let ts = vec![
            traffic(h.clone(), "strict", every, on()),
            traffic(h.clone(), "lenient", every, on()),
            traffic(h.clone(), "quiet", every, on()),
        ];
        tokio::time::sleep(secs(20)).await;
        assert_eq!(s.alert_steps(), [(ERROR_RATE, "strict".into(), true)]);
        let active = s.monitor.active();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].agent.as_str(), "strict");
        assert_eq!(active[0].threshold, 0.05);
        s.owner_got(1).await;
        s.finish(ts).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_alert_is_not_raised_twice_while_active() {
    bounded(async {
        let config = AlertConfig::new()
            .default_thresholds(
                AgentThresholds::none()
                    .with_throughput(ThroughputThreshold::new(1.0).window(secs(2))),
            )
            .agent("owner", AgentThresholds::none());
        let idle = RecordingAgent::new();
        let s = Scenario::new(vec![AgentSpec::new("idle", idle.agent())], config);
        // Sixty samples, all below the floor: one alert.
        tokio::time::sleep(secs(60)).await;
        assert_eq!(s.alert_steps(), [(THROUGHPUT_LOW, "idle".into(), true)]);
        assert_eq!(s.monitor.active().len(), 1);
        s.owner_got(1).await;
        s.finish(vec![]).await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_monitor_registers_its_event_type_and_stops_on_request() {
    bounded(async {
        let s = Scenario::new(vec![], AlertConfig::new());
        let control = s.hub.control();
        assert!(control
            .event_types()
            .iter()
            .any(|d| d.name.as_str() == ALERT_EVENT_TYPE));
        // A second monitor finds it registered and still starts.
        let second = AlertMonitor::start(&s.hub, AlertConfig::new());
        assert!(second.is_running());
        second.stop();
        tokio::time::timeout(secs(5), second.join())
            .await
            .expect("stopped");
        assert_eq!(s.monitor.missed_telemetry(), 0);
        assert_eq!(s.monitor.dropped_events(), 0);
        s.finish(vec![]).await;
    })
    .await;
}

#[test]
fn alert_config_reads_from_json_with_durations_in_ms() {
    let config: AlertConfig = serde_json::from_value(json!({
        "default": {"error_rate": {"max_rate": 0.1}},
        "per_agent": {
            "search": {
                "error_rate": null,
                "latency_p95": {"max_p95_ms": 250, "window_ms": 60000},
                "throughput": {"min_per_sec": 0.5},
                "queue_depth": {"max_len": 100, "for_ms": 30000}
            }
        },
        "sample_interval_ms": 500
    }))
    .unwrap();
    assert_eq!(config.sample_interval, Duration::from_millis(500));
    let d = config.default.error_rate.as_ref().unwrap();
    assert_eq!((d.max_rate, d.window, d.min_calls), (0.1, secs(300), 20));
    let search = config.thresholds_for(&"search".into());
    assert!(search.error_rate.is_none());
    let l = search.latency_p95.as_ref().unwrap();
    assert_eq!(
        (l.max_p95, l.window, l.min_calls),
        (Duration::from_millis(250), secs(60), 20)
    );
    assert_eq!(search.throughput.as_ref().unwrap().window, secs(300));
    assert_eq!(
        search.queue_depth,
        Some(QueueDepthThreshold::new(100, secs(30)))
    );
    assert_eq!(config.thresholds_for(&"other".into()), &config.default);

    // The defaults, and unknown fields refused.
    let empty: AlertConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(empty, AlertConfig::default());
    assert!(serde_json::from_value::<AlertConfig>(json!({"sample_interval": 5})).is_err());
    assert!(serde_json::from_value::<AlertConfig>(
        json!({"default": {"error_rate": {"window": 5}}})
    )
    .is_err());
    assert!(
        serde_json::from_value::<AlertConfig>(
            json!({"default": {"latency_p95": {"window_ms": 5}}})
        )
        .is_err(),
        "max_p95_ms is required"
    );
}
