//! The `atamo` service and command line: the REST API over a hub, its configuration file,
//! metrics, the operator commands and the benchmarks.
//!
//! The binary (`src/main.rs`) only parses the command line and calls [`cli::main`]; everything
//! is here so that tests can build a service in-process:
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! let (cfg, _warnings) = atamo_server::config::load(None, &|_| None, &Default::default())
//!     .map_err(|e| anyhow::anyhow!("{e}"))?;
//! let service = atamo_server::serve::Service::start(&cfg).await?;
//! let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
//! service.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod model;
pub mod plugin;
pub mod registry;
pub mod serve;
pub mod store;
