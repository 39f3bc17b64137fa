//! Registering plugin agents and rule providers from a description: agent id, source (a
//! native library and kind, or a program to run), init metadata, the action types it handles
//! and its action template. The same shape arrives as JSON from a configuration file or, later,
//! the REST service.
//!
//! ```json
//! {"id": "inventory", "handles": ["check", "list"],
//!  "source": {"native": {"library": "libatamo_example_agent.so", "kind": "inventory"}},
//!  "config": {"warehouse": "berlin"},
//!  "action_template": {"required": ["sku"]}}
//!
//! {"id": "words", "handles": ["word_count"],
//!  "source": {"process": {"program": "python3", "args": ["plugins/python-agent/agent.py"],
//!                         "ping_interval_ms": 5000, "max_failed_restarts": 5}},
//!  "config": {"language": "en"}}
//! ```
//!
//! Process agents are kept running by a [`ProcessSupervisor`]: unregistering one through the
//! host stops it gracefully (goodbye, then SIGTERM, then SIGKILL), and one unregistered from
//! the hub by other means is stopped too.

use std::path::PathBuf;
use std::sync::Arc;

use atamo_core::rules::ProviderScope;
use atamo_core::{AgentSpec, Control, MessageTemplate};
use serde::Deserialize;
use serde_json::Value;

use crate::native::{LoadError, NativeAgent, NativeRuleProvider, PluginLoader};
use crate::process::{DesiredAgent, ProcessSpec, ProcessSupervisor};

/// An agent to register.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRegistration {
    /// The agent's id in the hub.
    pub id: String,
    /// Where its code comes from.
    pub source: AgentSource,
    /// The init metadata, checked against the kind's schema.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// The action types it handles (registered with the hub already).
    pub handles: Vec<String>,
    /// Fields every action for it must carry.
    #[serde(default)]
    pub action_template: Option<MessageTemplate>,
    /// How many of its calls may run at once (default 64).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Who to tell about it (shown in its status and alerts).
    #[serde(default)]
    pub owner: Option<String>,
    /// Its version, for the operator.
    #[serde(default)]
    pub version: Option<String>,
}

/// Where an agent's code comes from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentSource {
    /// A native library in the plugins directory.
    Native {
        /// The library file, relative to the plugins directory.
        library: PathBuf,
        /// The agent kind it offers.
        kind: String,
    },
    /// A program run and supervised by the hub (its `config` is the registration's).
    Process(Box<ProcessSpec>),
    /// A built-in agent: `http`, `sql`, `email` or `command` (its `config` is the
    /// registration's).
    Builtin {
        /// The kind.
        kind: String,
    },
}

/// A rule provider to register.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRegistration {
    /// The provider's id in the hub.
    pub id: String,
    /// The library file, relative to the plugins directory.
    pub library: PathBuf,
    /// The rule-provider kind it offers.
    pub kind: String,
    /// The init metadata, checked against the kind's schema.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// The event types it is asked about; all when empty.
    #[serde(default)]
    pub event_types: Vec<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The plugin could not be loaded or instantiated.
    #[error("{id}: {error}")]
    Load {
        /// The registration's id.
        id: String,
        /// Why.
        error: Box<LoadError>,
    },
    /// A built-in agent's configuration is wrong.
    #[error("{0}")]
    Builtin(#[from] crate::builtin::ConfigProblems),
    /// A process agent could not be started.
    #[error("{id}: {message}")]
    Process {
        /// The registration's id.
        id: String,
        /// Why.
        message: String,
    },
    /// The registration's `config` and its process source's `config` are both set.
    #[error("{id}: init metadata is given twice: set `config` on the registration only")]
    ConfigTwice {
        /// The registration's id.
        id: String,
    },
    /// Nothing with that id was registered through this host.
    #[error("{id}: not registered through this host")]
    NotRegistered {
        /// The id.
        id: String,
    },
    /// The hub refused the agent or provider.
    #[error("{id}: {error}")]
    Hub {
        /// The registration's id.
        id: String,
        /// Why.
        error: atamo_core::hub::ConfigError,
    },
}

/// Registers plugin agents and rule providers with one hub.
#[derive(Debug, Clone)]
pub struct PluginHost {
    control: Control,
    loader: PluginLoader,
    processes: Arc<ProcessSupervisor>,
    desired: Arc<tokio::sync::Mutex<Vec<DesiredAgent>>>,
    credentials: Arc<dyn crate::builtin::CredentialProvider>,
}

impl std::fmt::Debug for dyn crate::builtin::CredentialProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialProvider")
    }
}

impl PluginHost {
    /// A host registering into the hub behind `control`, loading native code with `loader`.
    /// Every load is recorded in the hub's telemetry.
    pub fn new(control: Control, loader: PluginLoader) -> Self {
        let loader = loader.telemetry(control.clone());
        Self {
            processes: Arc::new(ProcessSupervisor::new(control.clone())),
            control,
            loader,
            desired: Arc::default(),
            credentials: Arc::new(crate::builtin::NoCredentials),
        }
    }

    /// Gives built-in agents the credentials of the users they act for.
    #[must_use]
    pub fn credentials(mut self, provider: Arc<dyn crate::builtin::CredentialProvider>) -> Self {
        self.credentials = provider;
        self
    }

    /// Loads, instantiates (or starts) and registers an agent.
    pub async fn register_agent(
        &self,
        registration: AgentRegistration,
    ) -> Result<(), RegistrationError> {
        let AgentRegistration {
            id,
            source,
            config,
            handles,
            action_template,
            concurrency,
            owner,
            version,
        } = registration;
        let load = |error| RegistrationError::Load {
            id: id.clone(),
            error: Box::new(error),
        };
        let agent: Arc<dyn atamo_core::Agent> = match source {
            AgentSource::Native { library, kind } => {
                let plugin = self.loader.load(&library).map_err(load)?;
                Arc::new(NativeAgent::new(plugin, &kind, &config, id.as_str()).map_err(load)?)
            }
            AgentSource::Builtin { kind } => {
                crate::builtin::build(&kind, &id, &config, self.credentials.clone())?
            }
            AgentSource::Process(mut spec) => {
                if spec.config != empty_object() {
                    return Err(RegistrationError::ConfigTwice { id });
                }
                spec.config = config;
                let mut desired = DesiredAgent::new(id.as_str(), *spec).handles(handles);
                if let Some(template) = action_template {
                    desired = desired.action_template(template);
                }
                if let Some(n) = concurrency {
                    desired = desired.concurrency(n);
                }
                if let Some(o) = owner {
                    desired = desired.owner(o);
                }
                if let Some(v) = version {
                    desired = desired.version(v);
                }
                return self.start_process(id, desired).await;
            }
        };
        let mut spec = AgentSpec::from_arc(id.as_str(), agent)
            .handles(handles)
            .metadata(config);
        if let Some(o) = owner {
            spec = spec.owner(o);
        }
        if let Some(v) = version {
            spec = spec.version(v);
        }
        if let Some(template) = action_template {
            spec = spec.action_template(template);
        }
        if let Some(n) = concurrency {
            spec = spec.concurrency(n);
        }
        self.control
            .register_agent(spec)
            .map_err(|error| RegistrationError::Hub { id, error })
    }

    async fn start_process(
        &self,
        id: String,
        agent: DesiredAgent,
    ) -> Result<(), RegistrationError> {
        let mut desired = self.desired.lock().await;
        desired.retain(|d| d.id.as_str() != id);
        desired.push(agent);
        let report = self.processes.reconcile(desired.clone()).await;
        if let Some((_, message)) = report.failed.iter().find(|(a, _)| a.as_str() == id) {
            desired.retain(|d| d.id.as_str() != id);
            return Err(RegistrationError::Process {
                id,
                message: message.clone(),
            });
        }
        Ok(())
    }

    /// Unregisters an agent registered through this host; a process agent is stopped
    /// gracefully.
    pub async fn unregister_agent(&self, id: &str) -> Result<(), RegistrationError> {
        let mut desired = self.desired.lock().await;
        if desired.iter().any(|d| d.id.as_str() == id) {
            desired.retain(|d| d.id.as_str() != id);
            self.processes.reconcile(desired.clone()).await;
            return Ok(());
        }
        self.control
            .unregister_agent(&id.into())
            .map(drop)
            .map_err(|error| RegistrationError::Hub {
                id: id.to_owned(),
                error,
            })
    }

    /// Stops every process agent started through this host (call before the hub stops).
    pub async fn shutdown(&self) {
        self.desired.lock().await.clear();
        self.processes.shutdown().await;
    }

    /// Loads, instantiates and registers a rule provider.
    pub fn register_provider(
        &self,
        registration: ProviderRegistration,
    ) -> Result<(), RegistrationError> {
        let ProviderRegistration {
            id,
            library,
            kind,
            config,
            event_types,
        } = registration;
        let load = |error| RegistrationError::Load {
            id: id.clone(),
            error: Box::new(error),
        };
        let plugin = self.loader.load(&library).map_err(load)?;
        let provider =
            NativeRuleProvider::new(plugin, &kind, &config, id.as_str()).map_err(load)?;
        let scope = if event_types.is_empty() {
            ProviderScope::AllEvents
        } else {
            ProviderScope::EventTypes(event_types.into_iter().map(Into::into).collect())
        };
        self.control
            .register_provider(id.as_str(), provider, scope)
            .map_err(|error| RegistrationError::Hub { id, error })
    }
}
