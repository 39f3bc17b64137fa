//! `atamo store check|stats`: an operator's look at a stateful hub's store; opening the store a
//! service names, as the [`ServiceStore`] it holds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use atamo_core::store::{ActionState, DefinitionRegistry, Store};
use clap::Subcommand;

/// A store as the service holds it: what the hub keeps, and the definitions registry, both on
/// one backend. The hub sees only [`store`](Self::store); the service's registry and API keys
/// use [`registry`](Self::registry).
#[derive(Clone)]
pub struct ServiceStore {
    /// The hub's durable state: the action queue, results, the audit and event logs.
    pub store: Arc<dyn Store>,
    /// The definitions registry: agents, rules, types and API keys added at run time.
    pub registry: Arc<dyn DefinitionRegistry>,
}

impl ServiceStore {
    /// Both handles on `backend`.
    pub fn new<B: Store + DefinitionRegistry>(backend: B) -> Self {
        let backend = Arc::new(backend);
        Self {
            store: backend.clone(),
            registry: backend,
        }
    }
}

impl std::fmt::Debug for ServiceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceStore")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

/// Which store to open.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// The store: a SQLite file (`sqlite:PATH` or a path), or a PostgreSQL connection string
    /// (`postgres://...`). Default: the SQLite file in the data directory.
    #[arg(long, env = "ATAMO_STORE")]
    store: Option<String>,
    /// The data directory holding `atamo.db` when `--store` is not given.
    #[arg(long, env = "ATAMO_DATA_DIR", default_value = "atamo-data")]
    data_dir: PathBuf,
    /// The PostgreSQL schema.
    #[arg(long, default_value = "atamo")]
    schema: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl Target {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        self.json
    }
}

/// Opens the store `target` names, creating a SQLite file (and its directory) when there is
/// none yet: for commands that prepare a service before its first start.
pub async fn open_or_create(target: &Target) -> anyhow::Result<ServiceStore> {
    let is_sqlite = match target.store.as_deref() {
        Some(url) => {
            !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.contains("host="))
        }
        None => true,
    };
    if is_sqlite {
        let path = match target.store.as_deref() {
            Some(s) => PathBuf::from(s.strip_prefix("sqlite:").unwrap_or(s)),
            None => sqlite_file(&target.data_dir),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let store = atamo_store_sqlite::SqliteStore::open(
            &path,
            atamo_store_sqlite::SqliteOptions::default(),
        )
        .await
        .with_context(|| format!("opening {}", path.display()))?;
        return Ok(ServiceStore::new(store));
    }
    open(target).await
}

/// Operator commands on a store.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Checks the store's integrity; exits with 1 when something is wrong.
    Check(Target),
    /// Queue depths by state, the oldest ready action, dead letters, sizes.
    Stats(Target),
}

/// The SQLite file of a data directory.
pub fn sqlite_file(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("atamo.db")
}

/// Opens the store `target` names. A SQLite file must exist: checking a store never creates
/// one.
pub async fn open(target: &Target) -> anyhow::Result<ServiceStore> {
    let spec = target.store.clone();
    match spec.as_deref() {
        Some(url)
            if url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.contains("host=") =>
        {
            let options = atamo_store_postgres::PgOptions {
                schema: Some(target.schema.clone()),
                ..atamo_store_postgres::PgOptions::default()
            };
            let store = atamo_store_postgres::PostgresStore::connect(url, options)
                .await
                .context("connecting to the PostgreSQL store")?;
            Ok(ServiceStore::new(store))
        }
        other => {
            let path = match other {
                Some(s) => PathBuf::from(s.strip_prefix("sqlite:").unwrap_or(s)),
                None => sqlite_file(&target.data_dir),
            };
            anyhow::ensure!(
                path.is_file(),
                "no store at {}: start the hub once, or name the file with --store",
                path.display()
            );
            let store = atamo_store_sqlite::SqliteStore::open(
                &path,
                atamo_store_sqlite::SqliteOptions::default(),
            )
            .await
            .with_context(|| format!("opening {}", path.display()))?;
            Ok(ServiceStore::new(store))
        }
    }
}

/// Runs a store command.
pub fn run(command: StoreCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match command {
            StoreCommand::Check(target) => {
                let store = open(&target).await?.store;
                let report = store.check().await?;
                if target.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!(
                        "{} store: checked {}",
                        store.backend(),
                        report.checked.join(", ")
                    );
                    if report.ok() {
                        println!("ok");
                    }
                    for p in &report.problems {
                        println!("problem: {p}");
                    }
                }
                Ok(if report.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            StoreCommand::Stats(target) => {
                let store = open(&target).await?.store;
                let stats = store.stats().await?;
                if target.json {
                    println!("{}", serde_json::to_string_pretty(&stats)?);
                    return Ok(ExitCode::SUCCESS);
                }
                println!("{} store", stats.backend);
                for state in ActionState::ALL {
                    let n = stats.actions.get(&state).copied().unwrap_or(0);
                    println!("  actions {:<8} {n}", state.as_str());
                }
                match stats.oldest_ready {
                    Some(t) => println!("  oldest ready action since {t}"),
                    None => println!("  no ready action"),
                }
                for (agent, n) in &stats.ready_by_agent {
                    println!("  ready for {agent}: {n}");
                }
                let dead = stats.actions.get(&ActionState::Dead).copied().unwrap_or(0);
                println!("  dead letters {dead}");
                println!("  events {}", stats.events);
                println!("  audit entries {}", stats.audit_entries);
                println!("  request results {}", stats.results);
                if let Some(bytes) = stats.size_bytes {
                    println!("  size {:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
