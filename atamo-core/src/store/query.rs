//! Queries of the audit log and the event log, and their pages.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::StoreError;
use super::records::{AuditRecord, EventRecord};
use crate::ids::{
    ActionId, AgentId, CorrelationId, EventId, EventType, RequestId, TenantId, UserId,
};
use crate::message::Timestamp;

/// The largest page a query returns.
pub const MAX_PAGE: usize = 1000;

/// `limit` as a page size: 100 when 0, at most [`MAX_PAGE`].
pub fn page_size(limit: usize) -> usize {
    if limit == 0 {
        100
    } else {
        limit.min(MAX_PAGE)
    }
}

/// Where a page ended: the next page starts after it. Opaque to clients (it prints as a
/// number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub u64);

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Cursor {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        s.parse()
            .map(Cursor)
            .map_err(|_| StoreError::invalid(format!("`{s}` is not a cursor")))
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The entries, newest first.
    pub items: Vec<T>,
    /// Pass this as the cursor for the next page; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Filters for [`AuditLog::audit`](super::AuditLog::audit). Every field set must match; the newest entries come first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    /// The event's user.
    pub user: Option<UserId>,
    /// The tenant.
    pub tenant: Option<TenantId>,
    /// The agent.
    pub agent: Option<AgentId>,
    /// The event type.
    pub event_type: Option<EventType>,
    /// The step name (`action_dead_lettered`, ...).
    pub step: Option<String>,
    /// The event.
    pub event_id: Option<EventId>,
    /// The correlation id.
    pub correlation_id: Option<CorrelationId>,
    /// The request.
    pub request_id: Option<RequestId>,
    /// The action.
    pub action_id: Option<ActionId>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries before this time.
    pub until: Option<Timestamp>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
    /// The page size (at most [`MAX_PAGE`]; 100 when 0).
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `r` matches every filter but the cursor.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        fn eq<T: PartialEq>(want: &Option<T>, have: &Option<T>) -> bool {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        }
        eq(&self.user, &r.user)
            && eq(&self.tenant, &r.tenant)
            && eq(&self.agent, &r.agent)
            && eq(&self.event_type, &r.event_type)
            && self.step.as_ref().is_none_or(|s| *s == r.step)
            && eq(&self.event_id, &r.event_id)
            && eq(&self.correlation_id, &r.correlation_id)
            && eq(&self.request_id, &r.request_id)
            && eq(&self.action_id, &r.action_id)
            && self.since.is_none_or(|s| r.at >= s)
            && self.until.is_none_or(|u| r.at < u)
            && self.cursor.is_none_or(|c| r.seq < c.0)
    }

    /// The page size to use.
    pub fn page_size(&self) -> usize {
        page_size(self.limit)
    }
}

/// Filters for [`EventLog::events`](super::EventLog::events). Every field set must match; the newest events come first.
///
/// Only stored events are listed: an event the hub kept in memory only
/// ([`Durability::Memory`](super::Durability::Memory)) is not in the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventQuery {
    /// The event type.
    pub event_type: Option<EventType>,
    /// The event's user.
    pub user: Option<UserId>,
    /// The event's tenant.
    pub tenant: Option<TenantId>,
    /// Events accepted at or after this time.
    pub since: Option<Timestamp>,
    /// Events accepted before this time.
    pub until: Option<Timestamp>,
    /// Conditions on the payload; all must match (at most [`MAX_PAYLOAD_FILTERS`]).
    pub payload: Vec<PayloadFilter>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
    /// The page size (at most [`MAX_PAGE`]; 100 when 0).
    pub limit: usize,
}

/// The most payload filters one [`EventQuery`] may have.
pub const MAX_PAYLOAD_FILTERS: usize = 16;

/// The most field names in one [`PayloadFilter::path`].
pub const MAX_PAYLOAD_PATH: usize = 32;

impl EventQuery {
    /// Whether `e` matches every filter but the cursor.
    pub fn matches(&self, e: &EventRecord) -> bool {
        self.event_type.as_ref().is_none_or(|t| *t == e.event_type)
            && self.user.as_ref().is_none_or(|u| *u == e.principal.user)
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| e.principal.tenant.as_ref() == Some(t))
            && self.since.is_none_or(|s| e.accepted_at >= s)
            && self.until.is_none_or(|u| e.accepted_at < u)
            && self.payload.iter().all(|f| f.matches(&e.payload))
    }

    /// The page size to use.
    pub fn page_size(&self) -> usize {
        page_size(self.limit)
    }

    /// Checks what every backend refuses with [`StoreError::Invalid`]: more than
    /// [`MAX_PAYLOAD_FILTERS`] payload filters, a path of more than [`MAX_PAYLOAD_PATH`] names,
    /// and NUL characters in field names or values (SQL text cannot hold them).
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.payload.len() > MAX_PAYLOAD_FILTERS {
            return Err(StoreError::invalid(format!(
                "{} payload filters, at most {MAX_PAYLOAD_FILTERS} are allowed",
                self.payload.len()
            )));
        }
        for f in &self.payload {
            if f.path.len() > MAX_PAYLOAD_PATH {
                return Err(StoreError::invalid(format!(
                    "a payload path of {} names, at most {MAX_PAYLOAD_PATH} are allowed",
                    f.path.len()
                )));
            }
            if f.path.iter().any(|name| name.contains('\0')) || f.value.contains('\0') {
                return Err(StoreError::invalid(
                    "payload filters cannot contain NUL characters",
                ));
            }
        }
        Ok(())
    }
}

/// A condition on a field of an event's payload: the value at `path` is a JSON string equal to
/// `value`, or a number or boolean whose JSON text is `value` (`5`, `2.5`, `true`). Null,
/// objects, arrays and missing fields never match, and the path only goes through objects
/// (never into arrays).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadFilter {
    /// Field names below `payload`, outermost first; any text (dots, quotes, `$`...). An empty
    /// path is the payload itself.
    pub path: Vec<String>,
    /// The value the field must have.
    pub value: String,
}

impl PayloadFilter {
    /// A filter on the field `path`, whose names are separated by dots (`order.state`). Build
    /// the [`path`](Self::path) by hand for names that contain dots.
    pub fn parse(path: &str, value: impl Into<String>) -> Self {
        Self {
            path: path.split('.').map(str::to_owned).collect(),
            value: value.into(),
        }
    }

    /// Whether `payload` matches.
    pub fn matches(&self, payload: &Value) -> bool {
        let mut at = payload;
        for name in &self.path {
            match at {
                Value::Object(fields) => match fields.get(name) {
                    Some(v) => at = v,
                    None => return false,
                },
                _ => return false,
            }
        }
        match at {
            Value::String(s) => *s == self.value,
            Value::Number(n) => n.to_string() == self.value,
            Value::Bool(b) => (if *b { "true" } else { "false" }) == self.value,
            Value::Null | Value::Array(_) | Value::Object(_) => false,
        }
    }
}
