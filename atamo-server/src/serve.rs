//! `atamo serve`: the hub as a REST service.
//!
//! Start-up: read the configuration (defaults, `atamo.toml`, `ATAMO_*`, flags), open the store,
//! build the hub with the rule book as its rule provider, apply the declared and the stored
//! agents, rules and types, make sure an admin key exists, then serve. On SIGTERM or SIGINT the
//! service stops taking connections, ends live feeds, lets running requests finish, drains
//! the hub within `shutdown_grace`, stops process agents and exits with 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use atamo_agents::native::PluginLoader;
use atamo_agents::registration::PluginHost;
use atamo_config::RuleBook;
use atamo_core::alerts::AlertMonitor;
use atamo_core::hub::StoreSettings;
use atamo_core::rules::ProviderScope;
use atamo_core::store::{MemoryStore, NodeId};
use atamo_core::Hub;
use tokio_util::sync::CancellationToken;

use crate::api::auth::{KeyRing, Role};
use crate::api::{self, ApiSettings, AppState, Shared};
use crate::config::{self, LogFormat, Overrides, ServeConfig, StoreConfig};
use crate::metrics::Metrics;
use crate::registry::{Registry, RULES_PROVIDER};
use crate::store::ServiceStore;

/// `atamo serve` options; each also comes from `atamo.toml` and the environment.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// The configuration file (default: `atamo.toml` in the working directory, when there is
    /// one).
    #[arg(long, env = "ATAMO_CONFIG")]
    pub config: Option<PathBuf>,
    /// The address to listen on (default 127.0.0.1:7700; port 0 takes a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The data directory: the SQLite store and the admin key file (default `atamo-data`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// `human` (default) or `json`.
    #[arg(long, value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err("`human` or `json`".into()),
    }
}

/// How often a service applies the definitions other nodes on its store changed.
pub const REGISTRY_SYNC: Duration = Duration::from_secs(5);

/// The name of the file the first admin key is written to, in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Reads the configuration `args` and the environment describe.
pub fn load_config(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let file = match &args.config {
        Some(f) => Some(f.clone()),
        None => Some(PathBuf::from("atamo.toml")).filter(|p| p.is_file()),
    };
    let flags = Overrides {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        log_format: args.log_format,
    };
    match config::load(file.as_deref(), &|k| std::env::var(k).ok(), &flags) {
        Ok((cfg, warnings)) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            Ok(cfg)
        }
        Err(errors) => anyhow::bail!("the configuration is not valid:\n{errors}"),
    }
}

/// Installs the log subscriber.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `atamo serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(&args)?;
    init_logging(cfg.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let service = Service::start(&cfg).await?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        println!("atamo listening on http://{addr}");
        println!("  store: {}", describe_store(&cfg.store));
        match &service.admin_token_file {
            Some(path) => println!(
                "  admin key: written to {} (read it with `cat {}`)",
                path.display(),
                path.display()
            ),
            None => println!(
                "  admin key: from ATAMO_ADMIN_TOKEN, or made earlier (see {})",
                cfg.data_dir.join(ADMIN_TOKEN_FILE).display()
            ),
        }
        println!("  API docs: http://{addr}/docs");
        service.serve(listener, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn describe_store(store: &StoreConfig) -> String {
    match store {
        StoreConfig::Sqlite { path } => format!("SQLite file {}", path.display()),
        StoreConfig::Postgres { schema, .. } => format!("PostgreSQL, schema {schema}"),
        StoreConfig::Memory => "memory (nothing kept across restarts)".into(),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("stop signal received; draining");
}

/// A started service: hub, store, registry, keys and router, not yet listening.
pub struct Service {
    hub: Option<Hub>,
    state: Shared,
    alerts: Option<AlertMonitor>,
    /// Applies definitions other nodes changed.
    sync: Option<tokio::task::JoinHandle<()>>,
    grace: Duration,
    /// Where a new admin key was written at this start, if one was made.
    pub admin_token_file: Option<PathBuf>,
    /// A key made at this start (the token in the file), for tests and the start-up message.
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

/// Opens the store the configuration names.
pub async fn open_store(cfg: &ServeConfig) -> anyhow::Result<ServiceStore> {
    Ok(match &cfg.store {
        StoreConfig::Sqlite { path } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let store = atamo_store_sqlite::SqliteStore::open(
                path,
                atamo_store_sqlite::SqliteOptions::default(),
            )
            .await
            .with_context(|| format!("opening the store {}", path.display()))?;
            ServiceStore::new(store)
        }
        StoreConfig::Postgres { url, schema } => {
            let options = atamo_store_postgres::PgOptions {
                schema: Some(schema.clone()),
                ..atamo_store_postgres::PgOptions::default()
            };
            ServiceStore::new(
                atamo_store_postgres::PostgresStore::connect(url, options)
                    .await
                    .context("connecting to the PostgreSQL store")?,
            )
        }
        StoreConfig::Memory => ServiceStore::new(MemoryStore::new()),
    })
}

/// Writes `token` to `path`, readable by its owner only.
fn write_token_file(path: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(f, "{token}")?;
    Ok(())
}

impl Service {
    /// Builds everything but the listener, on the store the configuration names.
    pub async fn start(cfg: &ServeConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
        let store = open_store(cfg).await?;
        Self::start_on(cfg, store).await
    }

    /// Builds everything but the listener, on a store already opened (for embedding, and for
    /// tests that wrap a store). `cfg.store` still says whether the hub is stateful: a memory
    /// store keeps only the service's keys and definitions.
    pub async fn start_on(cfg: &ServeConfig, store: ServiceStore) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
        let ServiceStore {
            store,
            registry: definitions,
        } = store;
        let rules = RuleBook::new();
        let mut settings = StoreSettings::default()
            .lease(cfg.hub.lease.get())
            .dedupe_window(cfg.hub.dedupe_window.get())
            .retention(cfg.retention.store_retention());
        if let Some(node) = &cfg.node {
            settings = settings.node(NodeId::new(node));
        }
        let mut builder = Hub::builder()
            .keep_alive(cfg.hub.keep_alive.get())
            .shutdown_grace(cfg.hub.shutdown_grace.get())
            .provider(RULES_PROVIDER, rules.clone(), ProviderScope::AllEvents);
        // A memory store keeps the service's keys and definitions only: the hub itself runs
        // stateless, keeping nothing of the events it routes (monitored ones excepted, for the
        // keep-alive time). Attaching the memory store would keep every event and step until
        // the process ends, and cost half the publish rate.
        let stateful = !matches!(cfg.store, StoreConfig::Memory);
        if stateful {
            builder = builder.store_with(store.clone(), settings);
        }
        let hub = builder.build().context("building the hub")?;
        let control = hub.control();
        let alerts = AlertMonitor::start(&hub, cfg.alerts.clone());
        let loader = PluginLoader::new(cfg.plugins_dir.clone());
        let host = PluginHost::new(control.clone(), loader);
        let registry = Registry::new(
            definitions.clone(),
            control.clone(),
            host,
            rules,
            cfg.plugins_dir.clone(),
        )
        .default_retry(cfg.retry);
        let declared = registry
            .apply_declared(&cfg.event_types, &cfg.action_types, &cfg.agents, &cfg.rules)
            .await;
        let stored = registry.load_stored().await;
        for f in declared.failed.iter().chain(&stored.failed) {
            tracing::error!("not applied: {f}");
        }
        tracing::info!(
            declared = declared.applied,
            stored = stored.applied,
            "definitions applied"
        );
        let env_token = std::env::var("ATAMO_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        if let Some(t) = &env_token {
            anyhow::ensure!(
                t.trim().len() >= 16,
                "ATAMO_ADMIN_TOKEN must be at least 16 characters"
            );
        }
        let keys = KeyRing::open(definitions, env_token.as_deref().map(str::trim)).await?;
        let refresh = keys.refresh_every(Duration::from_secs(10));
        drop(refresh);
        let (mut admin_token_file, mut admin_token) = (None, None);
        if env_token.is_none() && !keys.has_admin() {
            let key = keys
                .create(Role::Admin, None, Some("first admin".into()), Vec::new())
                .await?;
            let path = cfg.data_dir.join(ADMIN_TOKEN_FILE);
            write_token_file(&path, &key.token)?;
            admin_token_file = Some(path);
            admin_token = Some(key.token);
        }
        // Other nodes on the same store change definitions too.
        let sync = registry.sync_every(REGISTRY_SYNC);
        let metrics = Metrics::start(control.clone());
        let state = AppState::new(
            hub.handle(),
            control,
            store.clone(),
            registry,
            keys,
            metrics,
            ApiSettings {
                body_limit: cfg.http.body_limit,
                rate_limit: cfg.http.rate_limit,
                rate_burst: cfg.http.rate_burst,
                request_wait_max: cfg.http.request_wait_max.get(),
            },
            CancellationToken::new(),
            stateful,
            cfg.hub.keep_alive.get(),
        );
        Ok(Self {
            hub: Some(hub),
            state,
            alerts: Some(alerts),
            sync: Some(sync),
            grace: cfg.hub.shutdown_grace.get(),
            admin_token_file,
            admin_token,
        })
    }

    /// The state handlers see.
    pub fn state(&self) -> &Shared {
        &self.state
    }

    /// The router (for in-process tests).
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Serves on `listener` until `signal` resolves, then stops in order (see the module).
    pub async fn serve(
        mut self,
        listener: tokio::net::TcpListener,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let stop = state.shutdown.clone();
        let on_signal = {
            let state = state.clone();
            async move {
                signal.await;
                state.ready.store(false, Ordering::Release);
                // Live feeds end now, so that their connections can close.
                state.shutdown.cancel();
            }
        };
        let app = api::router(state.clone());
        let server = axum::serve(listener, app).with_graceful_shutdown(on_signal);
        server.await.context("serving")?;
        stop.cancel();
        self.stop().await;
        Ok(())
    }

    /// Drains the hub, stops process agents and closes the store.
    pub async fn stop(&mut self) {
        self.state.ready.store(false, Ordering::Release);
        self.state.shutdown.cancel();
        if let Some(sync) = self.sync.take() {
            sync.abort();
        }
        if let Some(hub) = self.hub.take() {
            let report =
                tokio::time::timeout(self.grace + Duration::from_secs(5), hub.shutdown()).await;
            match report {
                Ok(r) => tracing::info!(?r, "hub stopped"),
                Err(_) => tracing::warn!("the hub did not stop within its grace time"),
            }
        }
        if let Some(alerts) = self.alerts.take() {
            alerts.stop();
        }
        self.state.registry.host().shutdown().await;
        tracing::info!("stopped");
    }
}
