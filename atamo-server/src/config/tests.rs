//! The loader and the checker: defaults, each environment override, precedence, every
//! section, and files with many errors reported at their lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atamo_core::alerts::{AgentThresholds, AlertConfig, LatencyThreshold, QueueDepthThreshold};
use atamo_core::failure::RetryPolicy;
use atamo_core::{AgentId, TenantId};

use super::check::check_file;
use super::*;
use crate::model::AgentKind;

/// An environment that holds `vars` only.
fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// A configuration file in a temporary directory.
struct TempFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write(text: &str) -> TempFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atamo.toml");
    std::fs::write(&path, text).unwrap();
    TempFile { _dir: dir, path }
}

/// `text` loaded as a file, with no environment and no flags.
fn load_text(text: &str) -> Result<(ServeConfig, Vec<Warning>), ConfigErrors> {
    let f = write(text);
    load(Some(&f.path), &no_env, &Overrides::default())
}

fn ok(text: &str) -> ServeConfig {
    match load_text(text) {
        Ok((config, warnings)) => {
            assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
            config
        }
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

/// The errors of `text`, checked in memory.
fn errors(text: &str) -> Vec<ConfigIssue> {
    let checked = file::check(text, Some(Path::new("atamo.toml")));
    assert!(
        !checked.errors.is_empty(),
        "expected errors in:\n{text}\nwarnings: {:?}",
        checked.warnings
    );
    checked.errors
}

/// The one error of `text`.
fn one_error(text: &str) -> ConfigIssue {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

/// The line (from 1) of the first line of `text` holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the text"))
        + 1
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn no_file_gives_the_defaults() {
    let (config, warnings) = load(None, &no_env, &Overrides::default()).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(config.listen, "127.0.0.1:7700".parse().unwrap());
    assert_eq!(config.data_dir, PathBuf::from("atamo-data"));
    assert_eq!(config.log_format, LogFormat::Human);
    assert_eq!(config.plugins_dir, PathBuf::from("atamo-data/plugins"));
    assert_eq!(
        config.store,
        StoreConfig::Sqlite {
            path: PathBuf::from("atamo-data/atamo.db")
        }
    );
    assert_eq!(config.node, None);
    assert_eq!(
        config.hub,
        HubConfig {
            keep_alive: secs(300),
            shutdown_grace: secs(10),
            dedupe_window: secs(86400),
            lease: secs(30),
        }
    );
    assert_eq!(config.retry, None);
    assert_eq!(config.alerts, AlertConfig::default());
    assert_eq!(config.retention, RetentionConfig::default());
    assert_eq!(
        config.http,
        HttpConfig {
            body_limit: 1 << 20,
            rate_limit: 100,
            rate_burst: 200,
            request_wait_max: secs(30),
        }
    );
    assert!(config.event_types.is_empty() && config.action_types.is_empty());
    assert!(config.agents.is_empty() && config.rules.is_empty());
    assert_eq!(config.source, None);
    assert_eq!(config, ServeConfig::default());
    // An empty file is the defaults too, with its name kept.
    let from_empty = ok("# nothing set\n");
    assert_eq!(
        ServeConfig {
            source: None,
            ..from_empty
        },
        config
    );
}

#[test]
fn a_missing_file_named_explicitly_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let err = load(Some(&path), &no_env, &Overrides::default()).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].file.as_deref(), Some(path.as_path()));
    assert_eq!(err.0[0].line, None);
    assert!(
        err.0[0].message.starts_with("cannot read the file"),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with(&format!("{}: cannot read", path.display())));
}

#[test]
fn each_environment_variable_overrides() {
    let load_env = |vars: &[(&str, &str)]| {
        let (config, warnings) = load(None, &env_of(vars), &Overrides::default()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        config
    };
    let c = load_env(&[("ATAMO_LISTEN", "0.0.0.0:8080")]);
    assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
    let c = load_env(&[("ATAMO_DATA_DIR", "/var/lib/atamo")]);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/atamo"));
    // Paths derived from the data directory follow it.
    assert_eq!(c.plugins_dir, PathBuf::from("/var/lib/atamo/plugins"));
    assert_eq!(
        c.store,
        StoreConfig::Sqlite {
            path: PathBuf::from("/var/lib/atamo/atamo.db")
        }
    );
    assert_eq!(
        load_env(&[("ATAMO_LOG_FORMAT", "json")]).log_format,
        LogFormat::Json
    );
    assert_eq!(
        load_env(&[("ATAMO_PLUGINS_DIR", "/opt/plugins")]).plugins_dir,
        PathBuf::from("/opt/plugins")
    );
    assert_eq!(
        load_env(&[("ATAMO_STORE", "sqlite:/tmp/hub.db")]).store,
        StoreConfig::Sqlite {
            path: PathBuf::from("/tmp/hub.db")
        }
    );
    assert_eq!(
        load_env(&[("ATAMO_STORE", "postgres://u:p@127.0.0.1/db")]).store,
        StoreConfig::Postgres {
            url: "postgres://u:p@127.0.0.1/db".into(),
            schema: "atamo".into()
        }
    );
    assert_eq!(
        load_env(&[
            ("ATAMO_STORE", "postgresql://u@127.0.0.1/db"),
            ("ATAMO_STORE_SCHEMA", "shop")
        ])
        .store,
        StoreConfig::Postgres {
            url: "postgresql://u@127.0.0.1/db".into(),
            schema: "shop".into()
        }
    );
    assert_eq!(
        load_env(&[("ATAMO_STORE", "memory")]).store,
        StoreConfig::Memory
    );
    assert_eq!(
        load_env(&[("ATAMO_NODE", "node-b")]).node.as_deref(),
        Some("node-b")
    );
    assert_eq!(
        load_env(&[("ATAMO_KEEP_ALIVE", "90s")]).hub.keep_alive,
        secs(90)
    );
    assert_eq!(
        load_env(&[("ATAMO_SHUTDOWN_GRACE", "1m")])
            .hub
            .shutdown_grace,
        secs(60)
    );
    assert_eq!(
        load_env(&[("ATAMO_BODY_LIMIT", "512KiB")]).http.body_limit,
        512 * 1024
    );
    assert_eq!(
        load_env(&[("ATAMO_BODY_LIMIT", "4096")]).http.body_limit,
        4096
    );
    let c = load_env(&[("ATAMO_RATE_LIMIT", "50")]);
    assert_eq!((c.http.rate_limit, c.http.rate_burst), (50, 100));
    assert_eq!(load_env(&[("ATAMO_RATE_LIMIT", "0")]).http.rate_limit, 0);
    // Empty means unset.
    assert_eq!(load_env(&[("ATAMO_LISTEN", "")]).listen, DEFAULT_LISTEN);
}

#[test]
fn a_bad_environment_value_is_an_error_naming_the_variable() {
    let cases = [
        ("ATAMO_LISTEN", "localhost:7700"),
        ("ATAMO_LOG_FORMAT", "xml"),
        ("ATAMO_STORE", "mysql://u:secret@h/db"),
        ("ATAMO_STORE", "sqlite:"),
        ("ATAMO_STORE", "postgres://u@h/db?sslmode=sometimes"),
        ("ATAMO_STORE_SCHEMA", "Shop"),
        ("ATAMO_NODE", "node b"),
        ("ATAMO_KEEP_ALIVE", "soon"),
        ("ATAMO_SHUTDOWN_GRACE", "10"),
        ("ATAMO_BODY_LIMIT", "1 parsec"),
        ("ATAMO_BODY_LIMIT", "0"),
        ("ATAMO_RATE_LIMIT", "-3"),
    ];
    for (var, value) in cases {
        let err = load(None, &env_of(&[(var, value)]), &Overrides::default()).unwrap_err();
        assert_eq!(err.0.len(), 1, "{var}={value}: {err}");
        let issue = &err.0[0];
        assert_eq!(issue.path, var);
        assert_eq!((issue.file.as_ref(), issue.line), (None, None));
        assert!(err.to_string().starts_with(&format!("{var}: ")), "{err}");
    }
    // A store URL that may hold a password is not repeated.
    let err = load(
        None,
        &env_of(&[("ATAMO_STORE", "mysql://u:secret@h/db")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
    // Every bad variable is reported, together with the file's errors.
    let f = write("listen = 7\n");
    let err = load(
        Some(&f.path),
        &env_of(&[("ATAMO_NODE", "a b"), ("ATAMO_RATE_LIMIT", "many")]),
        &Overrides::default(),
    )
    .unwrap_err();
    let paths: Vec<&str> = err.0.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["listen", "ATAMO_NODE", "ATAMO_RATE_LIMIT"]);
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let f = write(
        "listen = \"127.0.0.1:1001\"\ndata_dir = \"from-file\"\nlog_format = \"json\"\n\
         [http]\nrate_limit = 7\n",
    );
    let env = env_of(&[
        ("ATAMO_LISTEN", "127.0.0.1:1002"),
        ("ATAMO_DATA_DIR", "from-env"),
        ("ATAMO_LOG_FORMAT", "human"),
        ("ATAMO_RATE_LIMIT", "8"),
    ]);
    let flags = Overrides {
        listen: Some("127.0.0.1:1003".parse().unwrap()),
        data_dir: Some("from-flag".into()),
        log_format: Some(LogFormat::Json),
    };
    let (all, _) = load(Some(&f.path), &env, &flags).unwrap();
    assert_eq!(all.listen.port(), 1003);
    assert_eq!(all.data_dir, PathBuf::from("from-flag"));
    assert_eq!(all.plugins_dir, PathBuf::from("from-flag/plugins"));
    assert_eq!(all.log_format, LogFormat::Json);
    assert_eq!(all.http.rate_limit, 8);
    assert_eq!(all.source.as_deref(), Some(f.path.as_path()));

    let (no_flags, _) = load(Some(&f.path), &env, &Overrides::default()).unwrap();
    assert_eq!(no_flags.listen.port(), 1002);
    assert_eq!(no_flags.data_dir, PathBuf::from("from-env"));
    assert_eq!(no_flags.log_format, LogFormat::Human);

    let (file_only, _) = load(Some(&f.path), &no_env, &Overrides::default()).unwrap();
    assert_eq!(file_only.listen.port(), 1001);
    assert_eq!(file_only.data_dir, PathBuf::from("from-file"));
    assert_eq!(
        file_only.store,
        StoreConfig::Sqlite {
            path: PathBuf::from("from-file/atamo.db")
        }
    );
    assert_eq!(file_only.log_format, LogFormat::Json);
    assert_eq!(
        (file_only.http.rate_limit, file_only.http.rate_burst),
        (7, 14)
    );

    let (defaults, _) = load(None, &no_env, &Overrides::default()).unwrap();
    assert_eq!(defaults.listen.port(), 7700);
}

#[test]
fn the_environment_store_replaces_the_files_store() {
    let f = write(
        "[store]\nkind = \"postgres\"\nurl = \"postgres://u@127.0.0.1/db\"\nschema = \"shop\"\n",
    );
    let (config, _) = load(Some(&f.path), &no_env, &Overrides::default()).unwrap();
    assert_eq!(
        config.store,
        StoreConfig::Postgres {
            url: "postgres://u@127.0.0.1/db".into(),
            schema: "shop".into()
        }
    );
    let env = env_of(&[("ATAMO_STORE", "sqlite:other.db")]);
    let (config, _) = load(Some(&f.path), &env, &Overrides::default()).unwrap();
    assert_eq!(
        config.store,
        StoreConfig::Sqlite {
            path: "other.db".into()
        }
    );
    // A schema for a store that is not PostgreSQL is ignored, with a warning.
    let env = env_of(&[("ATAMO_STORE", "memory"), ("ATAMO_STORE_SCHEMA", "shop")]);
    let (config, warnings) = load(None, &env, &Overrides::default()).unwrap();
    assert_eq!(config.store, StoreConfig::Memory);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].path, "ATAMO_STORE_SCHEMA");
    // The file's schema stays when only the URL comes from the environment.
    let env = env_of(&[("ATAMO_STORE", "postgres://v@127.0.0.1/other")]);
    let (config, _) = load(Some(&f.path), &env, &Overrides::default()).unwrap();
    assert_eq!(
        config.store,
        StoreConfig::Postgres {
            url: "postgres://v@127.0.0.1/other".into(),
            schema: "shop".into()
        }
    );
}

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
            keep_alive: secs(60),
            shutdown_grace: secs(30),
            dedupe_window: secs(3600),
            lease: secs(5),
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
    assert_eq!(all[1].message, "must be at least 100ms");
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
        .map(|p| RetryPolicy {
            multiplier: 3.0,
            ..p
        })
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
            request_wait_max: secs(60),
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
        "must be at least 1 byte"
    );
}

#[test]
fn types_agents_and_rules() {
    let c = ok(r#"
[[event_types]]
name = "order.created"
required = ["order.id"]
durability = "memory"

[[action_types]]
name = "email.send"
retry = { max_attempts = 3 }

[[agents]]
id = "hook"
kind = "http"
config = { base_url = "http://127.0.0.1:9000/hook", headers = { Accept = "application/json" } }

[[agents]]
id = "words"
kind = "process"
handles = ["count"]
config = { program = "python3", args = ["agent.py"], config = { lang = "en" } }

[[rules]]
id = "notify"
event_type = "order.created"
agent = "hook"
action = "http.request"
template = { order = "{{payload.order.id}}", path = "/orders" }
"#);
    assert_eq!(c.event_types.len(), 1);
    assert_eq!(c.event_types[0].required, ["order.id"]);
    assert_eq!(c.action_types[0].retry, Some(RetryPolicy::attempts(3)));
    assert_eq!(c.agents.len(), 2);
    assert_eq!(c.agents[0].kind, AgentKind::Http);
    assert_eq!(
        c.agents[0].config,
        serde_json::json!({"base_url": "http://127.0.0.1:9000/hook", "headers": {"Accept": "application/json"}})
    );
    assert_eq!(c.agents[1].handled_types(), ["count"]);
    assert_eq!(c.rules.len(), 1);
    assert_eq!(c.rules[0].id.as_str(), "notify");
    assert_eq!(
        c.rules[0].template,
        serde_json::json!({"order": "{{payload.order.id}}", "path": "/orders"})
    );
    // `url` stands for an HTTP agent's `base_url`.
    let aliased = ok("[[agents]]\nid = \"hook\"\nkind = \"http\"\nconfig = { url = \"http://127.0.0.1:9000/\" }\n");
    assert_eq!(aliased.agents[0].config["url"], "http://127.0.0.1:9000/");
    let e = one_error("[[agents]]\nid = \"hook\"\nkind = \"http\"\n");
    assert_eq!((e.path.as_str(), e.line), ("agents[0].config", Some(1)));
    assert!(
        e.message.contains("missing field `base_url`"),
        "{}",
        e.message
    );
}

#[test]
fn rules_naming_what_the_file_does_not_declare_are_warnings() {
    let text = r#"
[[agents]]
id = "hook"
kind = "http"
config = { base_url = "http://127.0.0.1:9000/hook" }

[[rules]]
id = "later"
event_type = "order.created"
agent = "added-later"
action = "http.request"
fallback = "also-later"
template = {}

[[rules]]
id = "exhausted"
event_type = "atamo.action.exhausted"
agent = "hook"
action = "http.request"
template = {}
"#;
    let (config, warnings) = load_text(text).unwrap();
    assert_eq!(config.rules.len(), 2);
    let got: Vec<_> = warnings
        .iter()
        .map(|w| (w.path.as_str(), w.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("rules[0].event_type", line_of(text, "order.created")),
            ("rules[0].agent", line_of(text, "added-later")),
            ("rules[0].fallback", line_of(text, "also-later")),
        ]
    );
    assert!(warnings[1].message.contains("registered through the API"));

    // An agent the file declares must handle the rule's action.
    let e = one_error(
        "[[agents]]\nid = \"hook\"\nkind = \"http\"\nconfig = { base_url = \"http://127.0.0.1:1/\" }\n\
         [[rules]]\nid = \"r\"\nevent_type = \"atamo.alert\"\nagent = \"hook\"\naction = \"email.send\"\n\
         template = {}\n",
    );
    assert_eq!((e.path.as_str(), e.line), ("rules[0].action", Some(9)));
    assert!(
        e.message.contains("does not handle `email.send`"),
        "{}",
        e.message
    );
}

#[test]
fn entries_are_checked_with_the_model_validators() {
    let text = r#"
[[agents]]
id = "inv"
kind = "native"
concurrency = 0
config = { library = 3 }

[[agents]]
id = "hook"
kind = "http"
config = { base_ulr = "http://127.0.0.1:9000/hook" }

[[agents]]
id = "cmd"
kind = "command"
handles = ["run", "bad name"]

[[event_types]]
name = "a b"

[[action_types]]
name = "ok.type"

[[action_types]]
name = "ok.type"
"#;
    let got: Vec<_> = errors(text)
        .into_iter()
        .map(|e| (e.path, e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "agents[0].handles".to_owned(),
                line_of(text, "id = \"inv\"") - 1
            ),
            (
                "agents[0].concurrency".to_owned(),
                line_of(text, "concurrency")
            ),
            ("agents[0].config".to_owned(), line_of(text, "library = 3")),
            (
                "agents[1].config.base_ulr".to_owned(),
                line_of(text, "base_ulr")
            ),
            (
                "agents[2].config".to_owned(),
                line_of(text, "id = \"cmd\"") - 1
            ),
            ("agents[2].handles[1]".to_owned(), line_of(text, "bad name")),
            ("event_types[0].name".to_owned(), line_of(text, "a b")),
            ("action_types[1].name".to_owned(), text.lines().count()),
        ]
    );
}

/// A file with six mistakes: a bad duration, an unknown key, an agent with an unknown kind, a
/// rule with a bad template, two agents with one id and a bad listen address, each reported
/// at its line, with nothing else.
const MANY_ERRORS: &str = r#"# a file with six mistakes
listen = "localhost:7700"

[hub]
keep_alive = "5 parsecs"
lease = "30s"

[http]
rate_limit = 100
colour = "blue"

[[agents]]
id = "hook"
kind = "http"
config = { base_url = "http://127.0.0.1:9000/hook" }

[[agents]]
id = "mailer"
kind = "ftp"

[[agents]]
id = "hook"
kind = "http"
config = { base_url = "http://127.0.0.1:9001/hook" }

[[rules]]
id = "notify"
event_type = "order.created"
agent = "hook"
action = "http.request"

[rules.template]
path = "/orders"
order = "{{payload.order.id"
"#;

#[test]
fn every_error_of_a_file_is_reported_at_its_line() {
    let text = MANY_ERRORS;
    let all = errors(text);
    let got: Vec<_> = all
        .iter()
        .map(|e| (e.path.as_str(), e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("listen", line_of(text, "localhost")),
            ("hub.keep_alive", line_of(text, "parsecs")),
            ("http.colour", line_of(text, "colour")),
            ("agents[1].kind", line_of(text, "ftp")),
            ("agents[2].id", line_of(text, "9001") - 2),
            (
                "rules[0].template.order",
                line_of(text, "{{payload.order.id\"")
            ),
        ],
        "{all:#?}"
    );
    assert_eq!(got[0].1, 2);
    assert_eq!(got[5].1, 34);
    let by_path = |p: &str| all.iter().find(|e| e.path == p).unwrap();
    assert!(by_path("listen").message.contains("not a socket address"));
    assert!(by_path("hub.keep_alive").message.contains("not a duration"));
    assert!(by_path("http.colour")
        .message
        .starts_with("unknown key `colour`"));
    assert!(by_path("agents[1].kind")
        .message
        .starts_with("unknown variant `ftp`, expected one of `http`"));
    assert_eq!(
        by_path("agents[2].id").message,
        "agent `hook` is declared more than once (first at line 13)"
    );
    assert!(by_path("rules[0].template.order")
        .message
        .contains("is not closed"));
    // The display names file, line, column and setting.
    assert_eq!(
        all[3].to_string(),
        format!(
            "atamo.toml:{}:8: agents[1].kind: {}",
            line_of(text, "ftp"),
            all[3].message
        )
    );
}

#[test]
fn duplicate_rule_ids_and_bad_rules() {
    let text = r#"
[[rules]]
id = "r"
event_type = "atamo.alert"
agent = "a"
action = "x"
template = {}

[[rules]]
id = "r"
event_type = "atamo.alert"
agent = "a"
action = "x"
template = {}

[[rules]]
id = "two-subjects"
event_type = "atamo.alert"
user = "alice"
group = "sales"
agent = "a"
action = "x"
template = {}

[[rules]]
id = "unknown-root"
event_type = "atamo.alert"
agent = "a"
action = "x"
template = { items = ["{{payload.a}}", "{{nobody}}"] }
"#;
    let all = errors(text);
    let got: Vec<_> = all
        .iter()
        .map(|e| (e.path.as_str(), e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("rules[1].id", 10),
            ("rules[2]", 16),
            ("rules[3].template.items.1", 30),
        ],
        "{all:#?}"
    );
    assert!(
        all[0].message.contains("first at line 3"),
        "{}",
        all[0].message
    );
    assert!(
        all[1].message.contains("`user` and `group`"),
        "{}",
        all[1].message
    );
    assert!(
        all[2].message.contains("unknown root `nobody`"),
        "{}",
        all[2].message
    );
}

#[test]
fn syntax_errors_and_datetimes() {
    let e = one_error("listen = \"127.0.0.1:7700\"\nhub = [1,\nlease = 3\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.path, "");
    let e = one_error("a = 1\na = 2\n");
    assert_eq!((e.line, e.message.as_str()), (Some(2), "duplicate key"));
    let e = one_error(
        "[[agents]]\nid = \"a\"\nkind = \"http\"\nconfig = { base_url = \"http://127.0.0.1/\", since = 1979-05-27 }\n",
    );
    assert_eq!(
        (e.path.as_str(), e.line),
        ("agents[0].config.since", Some(4))
    );
    assert!(e.message.contains("dates and times"));
}

#[test]
fn check_reports_text_json_and_exit_codes() {
    let f = write(MANY_ERRORS);
    let report = check_file(&f.path);
    assert!(!report.ok());
    assert_eq!(report.errors.len(), 6);
    let text = report.text(&f.path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    assert!(lines[0].starts_with(&format!("error: {}:2:10: listen: ", f.path.display())));
    assert!(lines[6].starts_with("warning: "), "{text}");
    assert_eq!(
        lines[7],
        format!("{}: 6 errors, 1 warning", f.path.display())
    );
    let json = report.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["errors"].as_array().unwrap().len(), 6);
    assert_eq!(
        json["errors"][0],
        serde_json::json!({
            "line": 2, "column": 10, "path": "listen",
            "message": report.errors[0].message,
        })
    );
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1);
    let code = |c: std::process::ExitCode| format!("{c:?}");
    assert_eq!(
        code(check_command(&f.path, true)),
        code(std::process::ExitCode::FAILURE)
    );

    let good = write(
        "[[rules]]\nid = \"r\"\nevent_type = \"e\"\nagent = \"a\"\naction = \"x\"\ntemplate = {}\n",
    );
    let report = check_file(&good.path);
    assert!(report.ok());
    assert_eq!(report.warnings.len(), 2);
    assert!(report.text(&good.path).ends_with("ok, 2 warnings\n"));
    assert_eq!(report.json()["ok"], true);
    assert_eq!(
        code(check_command(&good.path, false)),
        code(std::process::ExitCode::SUCCESS)
    );

    // A file that cannot be read is one error, without a line.
    let missing = good.path.with_file_name("missing.toml");
    let report = check_file(&missing);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.json()["errors"][0]["line"], serde_json::Value::Null);
}

fn workspace_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn the_example_file_passes_the_check() {
    let path = workspace_file("examples/atamo.toml");
    let report = check_file(&path);
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{}",
        report.text(&path)
    );
    let (config, _) = load(Some(&path), &no_env, &Overrides::default()).unwrap();
    assert_eq!(config.agents.len(), 3);
    assert_eq!(config.rules.len(), 3);
    assert_eq!(config.http.rate_burst, 400);
    assert_eq!(config.node.as_deref(), Some("shop-1"));
}

#[test]
fn the_reference_names_every_key_and_variable() {
    let doc = std::fs::read_to_string(workspace_file("docs/config.md")).unwrap();
    for var in env::ALL {
        assert!(doc.contains(var), "docs/config.md does not name {var}");
    }
    for key in [
        "listen",
        "data_dir",
        "log_format",
        "plugins_dir",
        "[store]",
        "kind",
        "path",
        "url",
        "schema",
        "node",
        "[hub]",
        "keep_alive",
        "shutdown_grace",
        "dedupe_window",
        "lease",
        "[retry]",
        "max_attempts",
        "initial_backoff",
        "max_backoff",
        "multiplier",
        "jitter",
        "max_elapsed",
        "[alerts]",
        "sample_interval",
        "error_rate",
        "max_rate",
        "window",
        "min_calls",
        "latency_p95",
        "max_p95",
        "throughput",
        "min_per_sec",
        "queue_depth",
        "max_len",
        "per_agent",
        "[retention]",
        "audit",
        "tenants",
        "[http]",
        "body_limit",
        "rate_limit",
        "rate_burst",
        "request_wait_max",
        "[[event_types]]",
        "[[action_types]]",
        "[[agents]]",
        "[[rules]]",
    ] {
        assert!(
            doc.contains(&format!("`{key}")),
            "docs/config.md does not name `{key}`"
        );
    }
}
