//! What every case uses: opening a fresh backend on a manual clock, and records to write.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::ids::ActionId;
use crate::message::{Principal, Timestamp};
use crate::store::{
    AcceptEvent, ActionRecord, AuditRecord, Clock, DefinitionRegistry, EventRecord, ManualClock,
    NewAction, NodeId, Settle, Settlement, Store, WriteBatch,
};

/// Opens a fresh, empty backend reading the time from `clock`.
#[async_trait]
pub trait Open: Send + Sync {
    /// The backend's store and registry.
    async fn open(&self, clock: Arc<dyn Clock>) -> Opened;
}

/// A backend opened for one case: its store, and its definitions registry.
pub struct Opened {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The same backend's definitions registry.
    pub registry: Arc<dyn DefinitionRegistry>,
    /// Kept until the case ends, dropped after the store and the registry.
    keep: Option<Box<dyn Any + Send + Sync>>,
}

impl Opened {
    /// The store and the registry of `backend`.
    pub fn new<B: Store + DefinitionRegistry>(backend: B) -> Self {
        let backend = Arc::new(backend);
        Self {
            store: backend.clone(),
            registry: backend,
            keep: None,
        }
    }

    /// Keeps `keep` (a temporary directory holding the backend's files, say) until the case
    /// ends, after the backend is gone.
    #[must_use]
    pub fn keeping(mut self, keep: impl Any + Send + Sync) -> Self {
        self.keep = Some(Box::new(keep));
        self
    }
}

/// A case's backend: fresh, empty, on a manual clock. Its fields drop in order, what the
/// backend keeps last.
pub(super) struct Case {
    pub(super) clock: Arc<ManualClock>,
    pub(super) store: Arc<dyn Store>,
    pub(super) registry: Arc<dyn DefinitionRegistry>,
    _keep: Option<Box<dyn Any + Send + Sync>>,
}

pub(super) fn node(name: &str) -> NodeId {
    NodeId::new(name)
}

fn start() -> Arc<ManualClock> {
    ManualClock::new(Timestamp::from_unix_micros(1_800_000_000_000_000))
}

pub(super) async fn fresh(open: &dyn Open) -> Case {
    let clock = start();
    let opened = open.open(clock.clone()).await;
    Case {
        clock,
        store: opened.store,
        registry: opened.registry,
        _keep: opened.keep,
    }
}

/// An event of type `order.created` for `user` (and `tenant`).
pub fn event(user: &str, tenant: Option<&str>, at: Timestamp) -> EventRecord {
    let mut principal = Principal::user(user);
    if let Some(t) = tenant {
        principal = principal.in_tenant(t);
    }
    EventRecord::new(
        "order.created",
        principal,
        json!({"order": {"id": 7, "note": "ünïcode ✓"}}),
        at,
    )
}

/// An action of `event` for `agent`.
pub fn action(event: &EventRecord, agent: &str) -> ActionRecord {
    let to = event.principal.user.as_str();
    ActionRecord {
        rule: Some("mail-orders".into()),
        provider: Some("rules".into()),
        retry: Some(crate::policy::RetryPolicy::attempts(3)),
        ..ActionRecord::new(
            event,
            agent,
            "email.send",
            json!({"to": to, "n": [1, 2, 3]}),
        )
    }
}

/// One accepted event (for `alice` in `acme`) with one ready action for `mailer`: the unit of
/// the backends' write-rate measurements.
pub fn accept_one() -> WriteBatch {
    let e = event("alice", Some("acme"), Timestamp::now());
    let a = action(&e, "mailer");
    WriteBatch::accepting(vec![AcceptEvent::new(e, vec![NewAction::ready(a)])])
}

pub(super) fn accept(event: EventRecord, actions: Vec<NewAction>) -> WriteBatch {
    WriteBatch {
        accepts: vec![AcceptEvent {
            event,
            dedupe_window: Duration::from_secs(60),
            actions,
        }],
        ..WriteBatch::default()
    }
}

pub(super) fn ready_action(record: ActionRecord) -> NewAction {
    NewAction {
        record,
        lease: None,
    }
}

/// Enqueues `n` ready actions for `agent`, one event each; returns their ids in order.
pub(super) async fn enqueue_ready(
    store: &dyn Store,
    clock: &ManualClock,
    agent: &str,
    n: usize,
) -> Vec<ActionId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let e = event("alice", None, clock.now());
        let a = action(&e, agent);
        ids.push(a.id);
        store
            .write(accept(e, vec![ready_action(a)]))
            .await
            .expect("write");
        clock.advance(Duration::from_millis(1));
    }
    ids
}

pub(super) fn settle(
    action: ActionId,
    attempt: u32,
    node: &NodeId,
    outcome: Settlement,
) -> WriteBatch {
    WriteBatch {
        settles: vec![Settle {
            action,
            attempt,
            node: node.clone(),
            outcome,
        }],
        ..WriteBatch::default()
    }
}

pub(super) fn audit(
    step: &str,
    e: &EventRecord,
    action: Option<&ActionRecord>,
    at: Timestamp,
) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at,
        step: step.to_owned(),
        event_id: Some(e.id),
        correlation_id: Some(e.correlation_id),
        request_id: e.request,
        action_id: action.map(|a| a.id),
        event_type: Some(e.event_type.clone()),
        user: Some(e.principal.user.clone()),
        tenant: e.principal.tenant.clone(),
        agent: action.map(|a| a.agent.clone()),
        detail: json!({"kind": step, "n": 1}),
    }
}
