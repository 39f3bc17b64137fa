//! Identical requests share one call (coalescing): a request joins an identical call in
//! flight, or is answered from a recent identical call's answers when its rule keeps results.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::settle::Settler;
use crate::hub::dispatch::Dispatch;
use crate::hub::routing::AgentStats;
use crate::ids::{ActionId, ActionType, TenantId, UserId};
use crate::outcome::{AgentError, Reply};
use crate::request::{CallGroup, RequestEntry};
use crate::rules::ShareScope;
use crate::telemetry::{Sink, TelemetryKind};

/// A request call's group and the key it is found under.
pub(super) struct GroupRef {
    pub(super) group: Arc<CallGroup>,
    pub(super) key: Option<u64>,
}

/// A recent call's answers, reusable until `until`.
struct Recent {
    until: Instant,
    from: ActionId,
    answers: Vec<Arc<Value>>,
    last: Option<Value>,
}

/// The most recent results kept per agent; beyond it, expired ones are pruned and new ones are
/// not kept until there is room.
const RECENT_CAP: usize = 10_000;

/// One agent's shared calls. Owned by its worker task, so joining a call needs no lock.
#[derive(Default)]
pub(super) struct Coalescer {
    /// Calls in flight that identical requests may join, by coalescing key.
    calls: HashMap<u64, (Identity, Arc<CallGroup>)>,
    /// The dispatches of requests that joined a call in flight, by its key.
    waiting: HashMap<u64, Vec<Dispatch>>,
    /// Answers of recent successful shareable calls, for rules with a result TTL.
    recent: HashMap<u64, (Identity, Recent)>,
}

impl Coalescer {
    /// For a shareable request: answers it from a recent identical call, or joins it to an
    /// identical call in flight. Returns the dispatch back when it needs a call of its own,
    /// with the key a new call is to be found under.
    pub(super) fn share(
        &mut self,
        d: Dispatch,
        entry: &Arc<RequestEntry>,
        stats: &AgentStats,
        settler: &mut Settler,
        sink: &mut Sink,
    ) -> Option<(Dispatch, Option<(u64, Identity)>)> {
        let Some((key, identity)) = Identity::of(&d) else {
            return Some((d, None));
        };
        let now = Instant::now();
        let recent = self
            .recent
            .get(&key)
            .filter(|(id, r)| r.until > now && *id == identity)
            .map(|(_, r)| r);
        if let Some(recent) = recent {
            for answer in &recent.answers {
                entry.replay_answer(d.action.id(), answer.clone());
            }
            let reply: Result<Reply, AgentError> = Ok(Reply {
                payload: recent.last.clone(),
            });
            entry.end_part(d.action.id(), &reply);
            settler.served_from_cache(&d, &recent.answers, &reply);
            sink.emit(
                TelemetryKind::ActionServedFromCache {
                    action: d.action.meta.clone(),
                    from: recent.from,
                },
                d.monitor.as_ref(),
            );
            stats.succeeded.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if let Some((_, group)) = self.calls.get(&key).filter(|(id, _)| *id == identity) {
            if group.join(entry, d.action.id()) {
                sink.emit(
                    TelemetryKind::ActionCoalesced {
                        action: d.action.meta.clone(),
                        into: group.leader,
                    },
                    d.monitor.as_ref(),
                );
                // The follower's dispatch (and its monitor) lives until the shared call ends.
                self.waiting.entry(key).or_default().push(d);
                return None;
            }
        }
        Some((d, Some((key, identity))))
    }

    /// Makes a new call joinable under `key`. A colliding call already in the map keeps it;
    /// this one is simply not joinable.
    pub(super) fn open(&mut self, key: u64, identity: Identity, group: &Arc<CallGroup>) {
        self.calls
            .entry(key)
            .or_insert_with(|| (identity, group.clone()));
    }

    /// The call of `group` under `key` has ended: nobody joins it any more. Returns its
    /// identity (when it was the joinable one) and the dispatches of the requests that joined.
    pub(super) fn close(
        &mut self,
        key: u64,
        group: &Arc<CallGroup>,
    ) -> (Option<Identity>, Vec<Dispatch>) {
        if !self
            .calls
            .get(&key)
            .is_some_and(|(_, g)| Arc::ptr_eq(g, group))
        {
            return (None, Vec::new());
        }
        let identity = self.calls.remove(&key).map(|(id, _)| id);
        (identity, self.waiting.remove(&key).unwrap_or_default())
    }

    /// Keeps a successful shared call's answers for identical requests within `ttl`.
    pub(super) fn remember(
        &mut self,
        key: u64,
        identity: Identity,
        group: &CallGroup,
        reply: &Reply,
        ttl: Duration,
    ) {
        let Some(answers) = group.history() else {
            return;
        };
        let now = Instant::now();
        if self.recent.len() >= RECENT_CAP {
            self.recent.retain(|_, (_, r)| r.until > now);
            if self.recent.len() >= RECENT_CAP {
                return;
            }
        }
        self.recent.insert(
            key,
            (
                identity,
                Recent {
                    until: now.checked_add(ttl).unwrap_or(now),
                    from: group.leader,
                    answers,
                    last: reply.payload.clone(),
                },
            ),
        );
    }

    /// The dispatches of every request waiting on a shared call (the hub is stopping).
    pub(super) fn drain_waiting(&mut self) -> impl Iterator<Item = Dispatch> + '_ {
        self.waiting.drain().flat_map(|(_, v)| v)
    }
}

/// What makes two shareable requests identical for one agent: the action type, who may share
/// (per the rule's scope) and the payload. Looked up by a 64-bit hash and then compared in
/// full, so a hash collision can never hand one request another's data.
#[derive(PartialEq)]
pub(super) struct Identity {
    action_type: ActionType,
    scope: ShareScope,
    user: Option<UserId>,
    tenant: Option<TenantId>,
    payload: Arc<Value>,
}

impl Identity {
    fn of(d: &Dispatch) -> Option<(u64, Self)> {
        let p = d.action.principal();
        let (user, tenant) = match d.sharing.scope {
            ShareScope::Off => return None,
            ShareScope::User => (Some(p.user.clone()), p.tenant.clone()),
            ShareScope::Tenant => (None, p.tenant.clone()),
            ShareScope::Global => (None, None),
        };
        let id = Self {
            action_type: d.action.action_type().clone(),
            scope: d.sharing.scope,
            user,
            tenant,
            payload: d.action.payload.clone(),
        };
        let mut h = std::hash::DefaultHasher::new();
        id.action_type.hash(&mut h);
        id.scope.hash(&mut h);
        id.user.hash(&mut h);
        id.tenant.hash(&mut h);
        hash_value(&id.payload, &mut h);
        Some((h.finish(), id))
    }
}

/// Hashes a JSON value by content (serde_json's maps iterate in key order, so equal values
/// hash alike). `serde_json::Value` does not implement `Hash`, and serializing it to a string
/// for a key cost more than routing the request.
fn hash_value(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            if let Some(i) = n.as_i64() {
                i.hash(h);
            } else if let Some(u) = n.as_u64() {
                u.hash(h);
            } else if let Some(f) = n.as_f64() {
                f.to_bits().hash(h);
            }
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            for item in items {
                hash_value(item, h);
            }
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(h);
            for (k, v) in map {
                k.hash(h);
                hash_value(v, h);
            }
        }
    }
}
