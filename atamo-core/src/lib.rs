//! Atamo's hub: clients publish events, rules decide which agents act on them, agents do the
//! work, and every step is reported as telemetry.
//!
//! ```
//! use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
//! use atamo_core::{agent_fn, ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply};
//! use serde_json::json;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A rule provider as a closure: every order goes to the mailer.
//! let rules = |event: &Event, _: &Principal, out: &mut Vec<Proposal>| {
//!     let to = json!({"to": event.principal().user.as_str()});
//!     out.push(Proposal::action("mail-orders".into(), PlannedAction::new("mailer", "email.send", to)));
//! };
//! let hub = Hub::builder()
//!     .event_type(EventTypeDef::new("order.created").requiring(["order.id"])?)
//!     .action_type(ActionTypeDef::new("email.send"))
//!     .agent(AgentSpec::new("mailer", agent_fn(|action, _ctx| async move {
//!         println!("mailing {}", action.payload()["to"]);
//!         Ok(Reply::done())
//!     })).handles(["email.send"]))
//!     .provider("orders", rules, ProviderScope::AllEvents)
//!     .build()?;
//!
//! let event = Event::new("order.created", Principal::user("alice"), json!({"order": {"id": 7}}));
//! let (_receipt, steps) = hub.handle().publish_monitored(event).await?;
//! let names: Vec<_> = steps.collect().await.iter().map(|s| s.name()).collect();
//! assert_eq!(names, ["accepted", "rule_matched", "action_dispatched", "action_succeeded"]);
//! hub.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Concepts
//! - [`Event`]: what a client publishes: a type, a [`Principal`] (user, groups, tenant), a
//!   correlation id and a JSON payload. Event types are registered with a [`MessageTemplate`]
//!   naming the fields their events must carry; an invalid event is rejected with every problem.
//! - [`rules::RuleProvider`]: turns an event into actions. The default provider, with rules
//!   linking (event type, user | group | tenant | anyone) to (agent, action, template), is in
//!   `atamo-config`.
//! - [`agent::Agent`]: does the work of an [`Action`]. In-process agents are closures
//!   ([`agent_fn`]) or types implementing the trait with [`async_trait`](macro@async_trait).
//! - [`Hub`] owns the running tasks; [`HubHandle`] publishes; [`Control`] registers, lists,
//!   reports health and subscribes to telemetry.
//! - [`telemetry`]: one typed event for every step.
//!
//! # Which way to publish
//! - [`HubHandle::publish`]: fire and forget. Returns once the event is accepted; the
//!   controller sees what happens through telemetry.
//! - [`HubHandle::publish_monitored`]: fire and monitor. The client also gets the event's own
//!   steps until all its actions have ended.
//! - [`HubHandle::try_publish`]: never waits; hands the event back when the hub is full.
//! - [`HubHandle::dry_run`]: what would happen, with nothing sent.
//! - [`blocking::BlockingHub`]: the same from a thread that is not async (a desktop UI, a C
//!   host, a script), with telemetry and answers on crossbeam receivers.
//!
//! # How work flows
//! Publishers validate against the current registry snapshot and push onto a bounded ingress
//! queue. One router task takes events in batches, asks the providers, merges identical
//! proposals and queues each action on its agent's bounded queue. One long-lived worker per
//! agent runs its calls, up to the agent's concurrency. Telemetry is buffered per batch and
//! broadcast; a slow subscriber misses events (and is told how many) rather than slowing the hub.

pub mod agent;
pub mod alerts;
pub mod blocking;
pub mod bounded;
pub mod failure;
pub mod hub;
pub mod ids;
pub mod message;
mod outcome;
pub mod policy;
mod publish;
pub mod request;
pub mod rules;
mod serde_ms;
pub mod status;
pub mod store;
pub mod telemetry;

pub use agent::{agent_fn, Agent, AgentError, AgentSpec, CallContext, Reply};
/// Implements the hub's async traits ([`Agent`], [`hub::EventProvider`]) without naming
/// `async-trait` as a dependency of your own.
pub use async_trait::async_trait;
pub use hub::{
    ActionTypeDef, Control, DryRun, EventTypeDef, Hub, HubBuilder, HubHandle, PublishError,
    Receipt, TryPublishError,
};
pub use ids::{
    ActionId, ActionType, AgentId, CorrelationId, EventId, EventType, GroupId, ProviderId,
    RequestId, RuleId, TenantId, UserId,
};
pub use message::{Action, Event, MessageTemplate, Principal};
pub use request::{
    Answer, AnswerError, PartStatus, RequestOptions, RequestReceipt, RequestSnapshot, RequestState,
    RequestStatus, RequestUpdate, WaitError,
};
pub use telemetry::{TelemetryEvent, TelemetryKind};
