//! The defaults, the file, the environment and the flags, one over the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use atamo_core::alerts::AlertConfig;
use atamo_core::bounded::{DedupeWindow, Grace, KeepAlive, Lease, Wait};

use super::support::{env_of, no_env, ok, secs, write};
use crate::config::{
    load, HttpConfig, HubConfig, LogFormat, Overrides, RetentionConfig, ServeConfig, StoreConfig,
    DEFAULT_LISTEN,
};

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
            keep_alive: KeepAlive::saturating(secs(300)),
            shutdown_grace: Grace::saturating(secs(10)),
            dedupe_window: DedupeWindow::saturating(secs(86400)),
            lease: Lease::saturating(secs(30)),
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
            request_wait_max: Wait::saturating(secs(30)),
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
        load_env(&[("ATAMO_KEEP_ALIVE", "90s")])
            .hub
            .keep_alive
            .get(),
        secs(90)
    );
    assert_eq!(
        load_env(&[("ATAMO_SHUTDOWN_GRACE", "1m")])
            .hub
            .shutdown_grace
            .get(),
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
