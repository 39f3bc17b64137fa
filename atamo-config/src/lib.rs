//! The default Atamo rule provider: rules that link an event type and a subject to an agent, an
//! action type and a JSON template.
//!
//! ```
//! use atamo_config::{Rule, RuleBook, Subject};
//! use atamo_core::message::{Event, Principal};
//! use atamo_core::rules::RuleProvider;
//! use serde_json::json;
//!
//! let book = RuleBook::with_rules(vec![Rule::new(
//!     "confirm-order",
//!     "order.created",
//!     "mailer",
//!     "email.send",
//!     json!({
//!         "to": "{{payload.customer.email}}",
//!         "subject": "Order {{payload.order.id}} received",
//!         "lines": "{{payload.order.lines}}",
//!     }),
//! )
//! .for_subject(Subject::Tenant("acme".into()))])?;
//!
//! let event = Event::new(
//!     "order.created",
//!     Principal::user("alice").in_group("sales").in_tenant("acme"),
//!     json!({
//!         "customer": {"email": "alice@example.com"},
//!         "order": {"id": 7, "lines": [{"sku": "A-1", "qty": 2}]},
//!     }),
//! );
//! let mut proposals = Vec::new();
//! book.evaluate(&event, event.principal(), &mut proposals);
//!
//! assert_eq!(proposals.len(), 1);
//! assert_eq!(proposals[0].rule.as_str(), "confirm-order");
//! let action = proposals[0].outcome.clone()?;
//! assert_eq!(action.agent.as_str(), "mailer");
//! assert_eq!(
//!     *action.payload,
//!     json!({
//!         "to": "alice@example.com",
//!         "subject": "Order 7 received",
//!         "lines": [{"sku": "A-1", "qty": 2}],
//!     }),
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Concepts
//!
//! - A [`Rule`] says: when an event of this type is published for this [`Subject`] (a user, the
//!   members of a group, the users of a tenant, or anyone), send this agent an action of this
//!   type, with this template as its payload. Rules read and write JSON in the REST shape
//!   `{"id", "event_type", "user" | "group" | "tenant", "agent", "action", "template"}`.
//! - An [`ActionTemplate`] is a rule's template compiled once, when the rule is added, and
//!   rendered for each matching event. `{{payload.customer.id}}`, `{{user}}`, `{{tenant}}`,
//!   `{{groups}}`, `{{event_type}}`, `{{event_id}}` and `{{correlation_id}}` are filled from the
//!   event; a field the event lacks makes the rule fail with
//!   [`RuleError::MissingField`](atamo_core::rules::RuleError::MissingField) rather than send an
//!   empty value. See [`template`] for the syntax.
//! - A [`RuleBook`] is the provider the hub calls. It holds an immutable [`RuleSet`] that changes
//!   ([`insert`](RuleBook::insert), [`upsert`](RuleBook::upsert), [`remove`](RuleBook::remove),
//!   [`replace_all`](RuleBook::replace_all)) swap atomically, so evaluation never waits for a
//!   change and never sees half of one.
//! - Adding rules that are not valid fails with a [`RuleSetError`] listing every
//!   [`RuleProblem`]: duplicate ids, invalid names, templates that do not compile (with the rule
//!   id and where in the template).

pub mod book;
pub mod rule;
pub mod template;

pub use book::{RuleBook, RuleProblem, RuleSet, RuleSetError};
pub use rule::{Rule, Subject};
pub use template::{ActionTemplate, TemplateError};
