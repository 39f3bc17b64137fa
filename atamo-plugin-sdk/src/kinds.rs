//! The traits plugin authors implement, and the registry of kinds a plugin offers.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use atamo_plugin_protocol::{
    CallError, CallRequest, Description, EventIn, KindInfo, ProposalOut, Role,
};
use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::call::{Call, Emit};

/// An agent a plugin offers: performs actions.
///
/// One value is made per registration with [`PluginAgent::new`] from the registration's init
/// metadata; the hub may run many calls on it at once. Implement it with
/// [`async_trait`](crate::async_trait): `call` borrows `self`, so state can live in the agent
/// itself, and the SDK keeps the instance alive until every call on it has ended.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use atamo_plugin_sdk::{async_trait, json, Call, CallError, CallRequest, PluginAgent, Value};
///
/// pub struct Counter {
///     calls: AtomicU64,
/// }
///
/// #[async_trait]
/// impl PluginAgent for Counter {
///     type Config = Value;
///
///     fn new(_config: Value) -> Result<Self, String> {
///         Ok(Self { calls: AtomicU64::new(0) })
///     }
///
///     async fn call(&self, request: CallRequest, _call: Call) -> Result<Option<Value>, CallError> {
///         let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
///         Ok(Some(json!({ "call": n, "action": request.action_type })))
///     }
/// }
/// ```
#[async_trait]
pub trait PluginAgent: Sized + Send + Sync + 'static {
    /// The init metadata, deserialized. Use `#[serde(deny_unknown_fields)]` to refuse typos.
    type Config: DeserializeOwned;

    /// The JSON schema of the init metadata. The host checks a registration against it before
    /// creating the instance, and the error names the field at fault.
    const CONFIG_SCHEMA: &'static str = r#"{"type":"object"}"#;

    /// What the agent does, in one line.
    const DESCRIPTION: &'static str = "";

    /// Makes an instance. An error refuses the registration with that message.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// Performs one action. Send answers with [`Call::emit`]; return the final result.
    async fn call(&self, request: CallRequest, call: Call) -> Result<Option<Value>, CallError>;

    /// Answers a health check; an error marks the agent unhealthy.
    fn health(&self) -> Result<Value, String> {
        Ok(serde_json::json!({"ok": true}))
    }
}

/// A rule provider a plugin offers: turns an event into proposed actions.
///
/// `evaluate` runs on the hub's routing path for every event it is asked about: keep it quick
/// and free of I/O.
pub trait PluginRuleProvider: Sized + Send + Sync + 'static {
    /// The init metadata, deserialized.
    type Config: DeserializeOwned;

    /// The JSON schema of the init metadata.
    const CONFIG_SCHEMA: &'static str = r#"{"type":"object"}"#;

    /// What the provider does, in one line.
    const DESCRIPTION: &'static str = "";

    /// Makes an instance.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// The actions `event` causes; an error is reported as a failed rule.
    fn evaluate(&self, event: &EventIn) -> Result<Vec<ProposalOut>, String>;
}

/// A call in progress, borrowing the agent it runs on.
pub(crate) type CallFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Value>, CallError>> + Send + 'a>>;

/// An agent with its type erased. The future `call` returns borrows the agent; [`run_call`]
/// owns an `Arc` of it for as long as the future runs.
pub(crate) trait DynAgent: Send + Sync {
    fn call(&self, request: CallRequest, call: Call) -> CallFuture<'_>;
    fn health(&self) -> Result<Value, String>;
}

impl<T: PluginAgent> DynAgent for T {
    fn call(&self, request: CallRequest, call: Call) -> CallFuture<'_> {
        PluginAgent::call(self, request, call)
    }

    fn health(&self) -> Result<Value, String> {
        PluginAgent::health(self)
    }
}

/// A rule provider with its type erased.
pub(crate) trait DynProvider: Send + Sync {
    fn evaluate(&self, event: &EventIn) -> Result<Vec<ProposalOut>, String>;
}

impl<T: PluginRuleProvider> DynProvider for T {
    fn evaluate(&self, event: &EventIn) -> Result<Vec<ProposalOut>, String> {
        PluginRuleProvider::evaluate(self, event)
    }
}

/// An instance of a kind.
pub(crate) enum Made {
    Agent(Arc<dyn DynAgent>),
    Provider(Arc<dyn DynProvider>),
}

/// One kind a plugin offers.
#[derive(Clone)]
struct Kind {
    name: &'static str,
    role: Role,
    description: &'static str,
    schema: &'static str,
    make: fn(Value) -> Result<Made, String>,
}

/// Why an instance could not be made.
#[derive(Debug)]
pub(crate) enum MakeError {
    UnknownKind(String),
    Init(String),
}

/// The kinds a plugin offers, with its name and version. [`export_plugin!`](crate::export_plugin)
/// builds one as `plugin()` in the plugin crate; a process agent's `main` passes it to
/// [`serve_stdio`](crate::serve_stdio).
#[derive(Clone)]
pub struct Plugin {
    name: &'static str,
    version: &'static str,
    kinds: Vec<Kind>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field(
                "kinds",
                &self.kinds.iter().map(|k| k.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Plugin {
    /// A plugin with no kinds yet.
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Self {
            name,
            version,
            kinds: Vec::new(),
        }
    }

    /// Adds agent kind `name`, implemented by `T`.
    #[must_use]
    pub fn agent<T: PluginAgent>(mut self, name: &'static str) -> Self {
        self.kinds.push(Kind {
            name,
            role: Role::Agent,
            description: T::DESCRIPTION,
            schema: T::CONFIG_SCHEMA,
            make: |config| {
                let config = parse_config::<T::Config>(config)?;
                Ok(Made::Agent(Arc::new(T::new(config)?)))
            },
        });
        self
    }

    /// Adds rule-provider kind `name`, implemented by `T`.
    #[must_use]
    pub fn rule_provider<T: PluginRuleProvider>(mut self, name: &'static str) -> Self {
        self.kinds.push(Kind {
            name,
            role: Role::RuleProvider,
            description: T::DESCRIPTION,
            schema: T::CONFIG_SCHEMA,
            make: |config| {
                let config = parse_config::<T::Config>(config)?;
                Ok(Made::Provider(Arc::new(T::new(config)?)))
            },
        });
        self
    }

    /// The plugin's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The plugin's version.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// What the plugin offers, as its declaration describes it.
    pub fn description(&self) -> Description {
        Description {
            kinds: self
                .kinds
                .iter()
                .map(|k| KindInfo {
                    name: k.name.to_owned(),
                    role: k.role,
                    description: k.description.to_owned(),
                    config_schema: serde_json::from_str(k.schema)
                        .unwrap_or_else(|_| serde_json::json!({"type": "object"})),
                })
                .collect(),
        }
    }

    pub(crate) fn make(&self, kind: &str, config: Value) -> Result<Made, MakeError> {
        let found = self
            .kinds
            .iter()
            .find(|k| k.name == kind)
            .ok_or_else(|| MakeError::UnknownKind(kind.to_owned()))?;
        let make = found.make;
        match std::panic::catch_unwind(move || make(config)) {
            Ok(made) => made.map_err(MakeError::Init),
            Err(panic) => Err(MakeError::Init(format!(
                "panicked while initialising: {}",
                crate::runtime::panic_message(&*panic)
            ))),
        }
    }
}

fn parse_config<C: DeserializeOwned>(config: Value) -> Result<C, String> {
    serde_json::from_value(config).map_err(|e| format!("bad init metadata: {e}"))
}

/// Runs one call to its end on the current runtime, catching a panic, and sends the end.
/// Holds `agent` until then, so the instance outlives every call on it even when the host
/// drops it meanwhile.
pub(crate) async fn run_call(agent: Arc<dyn DynAgent>, request: CallRequest, call: Call) {
    let future =
        match std::panic::catch_unwind(AssertUnwindSafe(|| agent.call(request, call.clone()))) {
            Ok(future) => future,
            Err(panic) => {
                call.finish(Emit::EndErr(CallError::Panicked {
                    message: crate::runtime::panic_message(&*panic),
                }));
                return;
            }
        };
    let end = match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(reply)) => Emit::EndOk(reply),
        Ok(Err(err)) => Emit::EndErr(err),
        Err(panic) => Emit::EndErr(CallError::Panicked {
            message: crate::runtime::panic_message(&*panic),
        }),
    };
    call.finish(end);
}
