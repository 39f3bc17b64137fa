//! Agents: the components that do the work an action asks for.
//!
//! An [`Agent`] is small and object-safe: one async method, [`Agent::call`], that receives an
//! [`Action`] and a [`CallContext`]; implement it with [`async_trait`](crate::async_trait). For
//! a closure, use [`agent_fn`].
//!
//! ```
//! use atamo_core::agent::{agent_fn, AgentError, Reply};
//!
//! let mailer = agent_fn(|action, _ctx| async move {
//!     let to = action.payload()["to"].as_str().ok_or_else(|| AgentError::permanent("no `to`"))?;
//!     println!("mail to {to}");
//!     Ok(Reply::done())
//! });
//! # let _ = mailer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::bounded::{Concurrency, Interval, QueueCapacity, Timeout};
use crate::ids::{ActionType, AgentId, RequestId};
use crate::message::{Action, ActionMeta, Event, MessageTemplate, Origin};
pub use crate::outcome::{AgentError, Reply};
pub use crate::policy::HealthCheck;
use crate::policy::{BreakerPolicy, RetryPolicy};
pub use crate::publish::Publisher;
use crate::publish::{PublishError, Receipt};
use crate::request::{AnswerError, RequestSink};

/// Something that performs actions.
///
/// Implement it with [`async_trait`](crate::async_trait): `call` borrows `self`, so state can
/// live in the agent itself. The hub may run many calls of one agent at once, up to the
/// concurrency the agent was registered with. A panic in `call` fails that call with
/// [`AgentError::Panicked`]; the hub keeps serving.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
/// use atamo_core::{async_trait, Action};
///
/// struct Counter {
///     calls: AtomicU64,
/// }
///
/// #[async_trait]
/// impl Agent for Counter {
///     async fn call(&self, action: Action, _ctx: CallContext) -> Result<Reply, AgentError> {
///         let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
///         Ok(Reply::with(serde_json::json!({ "call": n, "action": action.action_type().as_str() })))
///     }
/// }
/// # let _ = Counter { calls: AtomicU64::new(0) };
/// ```
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    /// Performs `action`.
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError>;

    /// A health probe, if the agent has one: `None` says it has none (the default), and the hub
    /// stops asking. The hub runs it at the interval given at registration
    /// ([`AgentSpec::health_check`]), with a timeout, and counts its outcome like a call's (it
    /// feeds the circuit breaker and the agent's status).
    async fn health(&self) -> Option<Result<Value, AgentError>> {
        None
    }

    /// Handles a control message from the controller (for example "reload your components"
    /// or "update to version X"): acknowledge with an answer, or fail. The default refuses.
    async fn control(&self, message: Value) -> Result<Value, AgentError> {
        let _ = message;
        Err(AgentError::permanent(
            "this agent takes no control messages",
        ))
    }
}

/// The future `async_trait` gives each method of [`Agent`].
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// Written out rather than with `#[async_trait]`, which would box a second future around the
// inner agent's on every call: an `Arc`'s methods hand the inner future back as it is.
impl<A: Agent + ?Sized> Agent for Arc<A> {
    fn call<'life0, 'async_trait>(
        &'life0 self,
        action: Action,
        ctx: CallContext,
    ) -> Boxed<'async_trait, Result<Reply, AgentError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        (**self).call(action, ctx)
    }

    fn health<'life0, 'async_trait>(
        &'life0 self,
    ) -> Boxed<'async_trait, Option<Result<Value, AgentError>>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        (**self).health()
    }

    fn control<'life0, 'async_trait>(
        &'life0 self,
        message: Value,
    ) -> Boxed<'async_trait, Result<Value, AgentError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        (**self).control(message)
    }
}

/// An agent made from a closure; see [`agent_fn`].
#[derive(Clone)]
pub struct AgentFn<F>(F);

/// Makes an agent from an async closure taking the action and the call context.
pub fn agent_fn<F, Fut>(f: F) -> AgentFn<F>
where
    F: Fn(Action, CallContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, AgentError>> + Send + 'static,
{
    AgentFn(f)
}

// Written out: the closure's future is boxed as it is, without a second state machine.
impl<F, Fut> Agent for AgentFn<F>
where
    F: Fn(Action, CallContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, AgentError>> + Send + 'static,
{
    fn call<'life0, 'async_trait>(
        &'life0 self,
        action: Action,
        ctx: CallContext,
    ) -> Boxed<'async_trait, Result<Reply, AgentError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin((self.0)(action, ctx))
    }
}

/// What an agent knows about itself and the call it is making.
#[derive(Clone)]
pub struct CallContext {
    pub(crate) agent: Arc<AgentInfo>,
    pub(crate) action: Arc<ActionMeta>,
    pub(crate) publisher: Publisher,
    pub(crate) cancel: Arc<CancellationToken>,
    pub(crate) request: Option<RequestSink>,
}

impl CallContext {
    /// The id the agent is registered under.
    pub fn agent_id(&self) -> &AgentId {
        &self.agent.id
    }

    /// The init metadata the agent was registered with (for a generic agent: its destination).
    pub fn metadata(&self) -> &Value {
        &self.agent.metadata
    }

    /// Whether the call has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the call is cancelled; `select!` on it around long work.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Publishes a follow-up event. It keeps the correlation id of the event that caused this
    /// action, records this agent and action as its origin, and is never routed back to this
    /// agent.
    pub async fn publish(&self, mut event: Event) -> Result<Receipt, PublishError> {
        let meta = event.meta_mut();
        meta.correlation_id = self.action.event.correlation_id;
        meta.origin = Some(Origin {
            agent: self.agent.id.clone(),
            action: self.action.id,
        });
        self.publisher.publish(event).await
    }

    /// The request this call answers, when it answers one.
    pub fn request_id(&self) -> Option<RequestId> {
        self.request.as_ref().map(|r| r.request_id)
    }

    /// Sends one answer to the request this call serves; call it many times for a feed, and
    /// return the last answer (if any) as the [`Reply`] payload. Waits while the requester's
    /// buffer is full (backpressure). Fails with [`AnswerError::Ended`] once the request has
    /// ended (cancelled, deadline passed): stop producing then.
    pub async fn answer(&self, payload: Value) -> Result<(), AnswerError> {
        match &self.request {
            Some(sink) => sink.group.answer(payload).await,
            None => Err(AnswerError::NotARequest),
        }
    }

    /// The handle [`publish`](Self::publish) uses, for work that outlives the call (keep a
    /// clone). It publishes as it is told: correlation id and origin are left as the event has
    /// them.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }
}

/// A registered agent's description: what it handles and how it was configured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentInfo {
    /// Its id.
    pub id: AgentId,
    /// The action types it handles.
    pub handles: Vec<ActionType>,
    /// Its init metadata.
    pub metadata: Value,
    /// The fields every action sent to it must carry.
    pub action_template: MessageTemplate,
    /// How many calls may run at once.
    pub concurrency: usize,
    /// How many dispatched actions may wait for it.
    pub queue_capacity: usize,
    /// How failed calls are tried again (unless the action type or the rule says otherwise).
    pub retry: RetryPolicy,
    /// The longest a call may take; it then fails as `Timeout` (retryable).
    #[serde(rename = "call_timeout_ms", skip_serializing_if = "Option::is_none")]
    pub call_timeout: Option<Timeout>,
    /// The circuit breaker guarding it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerPolicy>,
    /// Who to tell when it fails (an e-mail address, a team, a user id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its version, as its registration says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How often its health probe runs, and how long it may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

/// How to register an agent: its id, the agent itself, and what it handles.
///
/// ```
/// use atamo_core::agent::{agent_fn, AgentSpec, Reply};
/// use serde_json::json;
///
/// let spec = AgentSpec::new("mailer", agent_fn(|_, _| async { Ok(Reply::done()) }))
///     .handles(["email.send"])
///     .metadata(json!({"smtp": "127.0.0.1:2525"}))
///     .concurrency(8);
/// assert_eq!(spec.info().handles.len(), 1);
/// ```
#[must_use]
pub struct AgentSpec {
    pub(crate) info: AgentInfo,
    pub(crate) agent: Arc<dyn Agent>,
}

/// Default number of concurrent calls per agent.
pub const DEFAULT_AGENT_CONCURRENCY: usize = 64;
/// Default capacity of an agent's queue.
pub const DEFAULT_AGENT_QUEUE: usize = 4096;

impl AgentSpec {
    /// An agent registered as `id`.
    pub fn new(id: impl Into<AgentId>, agent: impl Agent) -> Self {
        Self::from_arc(id, Arc::new(agent))
    }

    /// An agent already behind an `Arc`.
    pub fn from_arc(id: impl Into<AgentId>, agent: Arc<dyn Agent>) -> Self {
        Self {
            info: AgentInfo {
                id: id.into(),
                handles: Vec::new(),
                metadata: Value::Null,
                action_template: MessageTemplate::any(),
                concurrency: DEFAULT_AGENT_CONCURRENCY,
                queue_capacity: DEFAULT_AGENT_QUEUE,
                retry: RetryPolicy::default(),
                call_timeout: None,
                breaker: None,
                owner: None,
                version: None,
                health_check: None,
            },
            agent,
        }
    }

    /// Adds action types the agent handles.
    pub fn handles<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<ActionType>,
    {
        self.info.handles.extend(types.into_iter().map(Into::into));
        self
    }

    /// Sets the init metadata.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.info.metadata = metadata;
        self
    }

    /// Sets the fields every action sent to this agent must carry.
    pub fn action_template(mut self, template: MessageTemplate) -> Self {
        self.info.action_template = template;
        self
    }

    /// How many calls may run at once (default 64; registering 0 fails, more than
    /// [`Concurrency::MAX`] is brought down to it).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.info.concurrency = n.min(Concurrency::MAX.get());
        self
    }

    /// How many dispatched actions may wait (default 4096; registering 0 fails, more than
    /// [`QueueCapacity::MAX`] is brought down to it). When full, routing waits, and so in turn
    /// does `publish`: backpressure rather than unbounded memory.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.info.queue_capacity = n.min(QueueCapacity::MAX.get());
        self
    }

    /// How failed calls are tried again (default [`RetryPolicy::default`]: 8 attempts with
    /// backoff, for at most 5 minutes; [`RetryPolicy::none`] for one attempt). An action
    /// type's or a rule's policy overrides it. A retry re-sends the same action: the agent
    /// should treat the action id as an idempotency key.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.info.retry = policy;
        self
    }

    /// The longest a call may take before it fails as `Timeout` (default: no limit; brought
    /// into [`Timeout`]'s range).
    pub fn call_timeout(mut self, limit: Duration) -> Self {
        self.info.call_timeout = Some(Timeout::saturating(limit));
        self
    }

    /// Guards the agent with a circuit breaker (default: none).
    pub fn breaker(mut self, policy: BreakerPolicy) -> Self {
        self.info.breaker = Some(policy);
        self
    }

    /// Who to tell about the agent's failures and status changes.
    pub fn owner(mut self, contact: impl Into<String>) -> Self {
        self.info.owner = Some(contact.into());
        self
    }

    /// Runs the agent's health probe ([`Agent::health`]) every `interval`, failing it after
    /// `timeout` (each brought into its range: [`Interval`], [`Timeout`]).
    pub fn health_check(mut self, interval: Duration, timeout: Duration) -> Self {
        self.info.health_check = Some(HealthCheck {
            interval: Interval::saturating(interval),
            timeout: Timeout::saturating(timeout),
        });
        self
    }

    /// The agent's version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.info.version = Some(version.into());
        self
    }

    /// The description that will be registered.
    pub fn info(&self) -> &AgentInfo {
        &self.info
    }
}

impl std::fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSpec")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}
