//! Each section of `atamo.toml`, its values read and its mistakes reported where they are.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use atamo_core::alerts::{AgentThresholds, AlertConfig, LatencyThreshold, QueueDepthThreshold};
use atamo_core::bounded::{DedupeWindow, Grace, KeepAlive, Lease, Wait};
use atamo_core::failure::RetryPolicy;
use atamo_core::{AgentId, TenantId};

use super::support::{errors, line_of, ok, one_error, secs};
use crate::config::{HttpConfig, HubConfig, LogFormat, StoreConfig};

#[test]
fn top_level_keys() {
    let c = ok(r#"
listen = "[::1]:9000"
data_dir = "/srv/atamo"
log_format = "json"
plugins_dir = "/opt/atamo/plugins"
"#);
    assert_eq!(c.listen, "[::1]:9000".parse().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("/srv/atamo"));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.plugins_dir, PathBuf::from("/opt/atamo/plugins"));
    assert_eq!(
        c.store,
        StoreConfig::Sqlite {
            path: "/srv/atamo/atamo.db".into()
        }
    );

    let e = one_error("log_format = \"xml\"\n");
    assert_eq!(
        (e.path.as_str(), e.line, e.column),
        ("log_format", Some(1), Some(14))
    );
    assert!(e.message.contains("unknown variant `xml`"), "{}", e.message);
    let e = one_error("data_dir = \"\"\n");
    assert_eq!(e.message, "the path is empty");
    let e = one_error("listen = 7700\n");
    assert!(
        e.message.contains("expected a socket address"),
        "{}",
        e.message
    );
    let e = one_error("\n\ncolour = \"blue\"\n");
    assert_eq!(
        (e.path.as_str(), e.line, e.column),
        ("colour", Some(3), Some(1))
    );
    assert!(e
        .message
        .starts_with("unknown key `colour`; expected one of `listen`"));
    // Columns count characters, not bytes.
    let at: Vec<_> = errors("\nhttp = { rate_limit = 1, \"ü\" = 2, colour = 3 }\n")
        .into_iter()
        .map(|e| (e.path, e.line.unwrap(), e.column.unwrap()))
        .collect();
    assert_eq!(
        at,
        [
            ("http.ü".to_owned(), 2, 26),
            ("http.colour".to_owned(), 2, 35)
        ]
    );
}

#[test]
fn store_section() {
    let c = ok("[store]\nkind = \"sqlite\"\npath = \"/data/hub.db\"\nnode = \"node-a\"\n");
    assert_eq!(
        c.store,
        StoreConfig::Sqlite {
            path: "/data/hub.db".into()
        }
    );
    assert_eq!(c.node.as_deref(), Some("node-a"));
    let c = ok("[store]\nkind = \"memory\"\n");
    assert_eq!(c.store, StoreConfig::Memory);
    let c = ok("[store]\nkind = \"postgres\"\nurl = \"postgres://u:pw@127.0.0.1:5432/db\"\n");
    assert_eq!(
        c.store,
        StoreConfig::Postgres {
            url: "postgres://u:pw@127.0.0.1:5432/db".into(),
            schema: "atamo".into()
        }
    );
    // The password stays out of debug output.
    let shown = format!("{:?}", c.store);
    assert!(
        !shown.contains("pw") && shown.contains("127.0.0.1:5432/db"),
        "{shown}"
    );

    let e = one_error("[store]\nkind = \"postgres\"\n");
    assert_eq!((e.path.as_str(), e.line), ("store.url", Some(1)));
    let e = one_error("[store]\nurl = \"postgres://u@h/db\"\n");
    assert_eq!((e.path.as_str(), e.line), ("store.url", Some(2)));
    assert!(
        e.message.contains("set kind = \"postgres\""),
        "{}",
        e.message
    );
    let text = "[store]\nkind = \"memory\"\npath = \"x.db\"\nschema = \"s\"\n";
    let paths: Vec<_> = errors(text).into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["store.path", "store.schema"]);
    let e =
        one_error("[store]\nkind = \"postgres\"\nurl = \"postgres://u@h/db\"\nschema = \"Bad\"\n");
    assert_eq!((e.path.as_str(), e.line), ("store.schema", Some(4)));
    let e = one_error("[store]\nkind = \"mysql\"\n");
    assert!(
        e.message.contains("unknown variant `mysql`"),
        "{}",
        e.message
    );
    let e = one_error("[store]\nnode = \"two words\"\n");
    assert_eq!(e.path, "store.node");
    let e = one_error("store = \"memory\"\n");
    assert_eq!(e.message, "must be a table, not string");
}

#[test]
fn hub_section() {
    let c = ok(
        "[hub]\nkeep_alive = \"1m\"\nshutdown_grace = \"30s\"\ndedupe_window = \"1h\"\nlease = \"5s\"\n",
    );
    assert_eq!(
        c.hub,
        HubConfig {
            keep_alive: KeepAlive::saturating(secs(60)),
            shutdown_grace: Grace::saturating(secs(30)),
            dedupe_window: DedupeWindow::saturating(secs(3600)),
            lease: Lease::saturating(secs(5)),
        }
    );
    let settings = c.store_settings();
    assert_eq!(settings.lease_time(), secs(5));

    // Every bad key of a section is reported, not only the first.
    let text = "[hub]\nkeep_alive = 300\nlease = \"10ms\"\nshutdown_grace = \"ten seconds\"\n";
    let all = errors(text);
    let got: Vec<_> = all.iter().map(|e| (e.path.as_str(), e.line)).collect();
    assert_eq!(
        got,
        [
            ("hub.keep_alive", Some(2)),
            ("hub.lease", Some(3)),
            ("hub.shutdown_grace", Some(4))
        ]
    );
    assert!(
        all[0].message.contains("expected a duration"),
        "{}",
        all[0].message
    );
    assert_eq!(
        all[1].message,
        "must be from 100ms to 1h (100 to 3600000 ms)"
    );
    assert!(
        all[2].message.contains("is not a duration"),
        "{}",
        all[2].message
    );
}

#[test]
fn retry_section() {
    let c = ok(
        "[retry]\nmax_attempts = 3\ninitial_backoff = \"50ms\"\nmax_backoff = \"2s\"\n\
         multiplier = 3\njitter = 0.1\nmax_elapsed = \"10m\"\n",
    );
    assert_eq!(
        c.retry,
        Some(
            RetryPolicy::attempts(3)
                .backoff(Duration::from_millis(50), secs(2))
                .jitter(0.1)
                .max_elapsed(secs(600))
        )
        .map(|p| p.multiplier(3.0))
    );
    assert_eq!(ok("[retry]\n").retry, Some(RetryPolicy::default()));
    let text = "[retry]\nmax_attempts = 0\nmultiplier = 0.5\njitter = 2\n\
                initial_backoff = \"1m\"\nmax_backoff = \"1s\"\n";
    let paths: Vec<_> = errors(text).into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "retry.max_attempts",
            "retry.multiplier",
            "retry.jitter",
            "retry.max_backoff"
        ]
    );
}

#[test]
fn alerts_section() {
    // The default: the hub's error-rate alert only.
    assert_eq!(ok("[alerts]\n").alerts, AlertConfig::default());
    let c = ok(r#"
[alerts]
sample_interval = "2s"
error_rate = false

[alerts.latency_p95]
max_p95 = "250ms"
window = "1m"

[alerts.queue_depth]
max_len = 100
for = "30s"

[alerts.per_agent.search]
throughput = { min_per_sec = 2.5 }
latency_p95 = false

[alerts.per_agent.mailer.error_rate]
max_rate = 0.2
"#);
    let default = AgentThresholds::none()
        .with_latency_p95(LatencyThreshold::new(Duration::from_millis(250)).window(secs(60)))
        .with_queue_depth(QueueDepthThreshold::new(100, secs(30)));
    assert_eq!(c.alerts.sample_interval, secs(2));
    assert_eq!(c.alerts.default, default);
    // An agent's own thresholds start from those of every agent.
    let search = c.alerts.thresholds_for(&AgentId::new("search"));
    assert_eq!(search.latency_p95, None);
    assert_eq!(search.queue_depth, default.queue_depth);
    assert_eq!(search.throughput.as_ref().unwrap().min_per_sec, 2.5);
    assert_eq!(search.throughput.as_ref().unwrap().window, secs(300));
    let mailer = c.alerts.thresholds_for(&AgentId::new("mailer"));
    let rate = mailer.error_rate.as_ref().unwrap();
    assert_eq!(
        (rate.max_rate, rate.window, rate.min_calls),
        (0.2, secs(300), 20)
    );
    assert_eq!(mailer.latency_p95, default.latency_p95);

    let text = r#"
[alerts.error_rate]
max_rate = 5
[alerts.latency_p95]
window = "1m"
[alerts.queue_depth]
max_len = 10
for = "30s"
colour = 1
[alerts.per_agent."bad id"]
error_rate = true
"#;
    let got: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.path, e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "alerts.error_rate.max_rate".to_owned(),
                line_of(text, "max_rate")
            ),
            (
                "alerts.latency_p95".to_owned(),
                line_of(text, "[alerts.latency_p95]")
            ),
            (
                "alerts.queue_depth.colour".to_owned(),
                line_of(text, "colour")
            ),
            (
                "alerts.per_agent.bad id".to_owned(),
                line_of(text, "bad id")
            ),
            (
                "alerts.per_agent.bad id.error_rate".to_owned(),
                line_of(text, "error_rate = true")
            ),
        ]
    );
}

#[test]
fn retention_section() {
    let c = ok("[retention]\naudit = \"30d\"\n\n[retention.tenants.acme]\naudit = \"90d\"\n");
    let day = secs(86400);
    assert_eq!(c.retention.audit, Some(day * 30));
    // Results expire with the keep-alive time; no key sets them.
    assert_eq!(errors("[retention]\nresults = \"1d\"\n").len(), 1);
    assert_eq!(
        c.retention.tenants.get(&TenantId::new("acme")),
        Some(&(day * 90))
    );
    let store = c.retention.store_retention();
    assert_eq!(store.for_tenant(None), Some(day * 30));
    assert_eq!(
        store.for_tenant(Some(&TenantId::new("acme"))),
        Some(day * 90)
    );
    assert_eq!(
        store.for_tenant(Some(&TenantId::new("globex"))),
        Some(day * 30)
    );

    let text = "[retention]\naudit = \"0s\"\n[retention.tenants.acme]\nresults = \"1d\"\n\
                [retention.tenants.globex]\n";
    let got: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.path, e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("retention.audit".to_owned(), 2),
            ("retention.tenants.acme.audit".to_owned(), 3),
            ("retention.tenants.acme.results".to_owned(), 4),
            ("retention.tenants.globex.audit".to_owned(), 5),
        ]
    );
}

#[test]
fn http_section() {
    let c = ok(
        "[http]\nbody_limit = \"512KiB\"\nrate_limit = 200\nrate_burst = 1000\nrequest_wait_max = \"1m\"\n",
    );
    assert_eq!(
        c.http,
        HttpConfig {
            body_limit: 512 * 1024,
            rate_limit: 200,
            rate_burst: 1000,
            request_wait_max: Wait::saturating(secs(60)),
        }
    );
    assert_eq!(
        ok("[http]\nbody_limit = 1048576\n").http.body_limit,
        1 << 20
    );
    assert_eq!(
        ok("[http]\nbody_limit = \"2MB\"\n").http.body_limit,
        2_000_000
    );
    let c = ok("[http]\nrate_limit = 0\nrate_burst = 0\n");
    assert_eq!((c.http.rate_limit, c.http.rate_burst), (0, 0));

    let text = "[http]\nbody_limit = \"1.5MiB\"\nrate_limit = -1\nrate_burst = 0\n";
    let got: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.path, e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("http.body_limit".to_owned(), 2),
            ("http.rate_limit".to_owned(), 3),
            ("http.rate_burst".to_owned(), 4),
        ]
    );
    assert_eq!(
        one_error("[http]\nbody_limit = 0\n").message,
        "must be from 1 byte to 64MiB (67108864 bytes)"
    );
}
