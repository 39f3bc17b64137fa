//! One agent call serving one or more identical requests (level-2 cache: coalescing).
//!
//! The first request's call is made; identical requests arriving while it runs join it. Each
//! joiner first gets the answers already given (kept up to a bound; past it the call stops
//! taking joiners), then the live ones. The call is cancelled only when every member request
//! has ended early.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::entry::{RequestEntry, SharedCall};
use crate::ids::{ActionId, RequestId};
use crate::message::request::AnswerError;

/// How many answers a call keeps for requests that join it late.
const HISTORY_CAP: usize = 1024;

pub(crate) struct CallGroup {
    pub(crate) leader: ActionId,
    pub(crate) cancel: Arc<CancellationToken>,
    inner: Mutex<GroupInner>,
}

struct GroupInner {
    members: Vec<(Arc<RequestEntry>, ActionId)>,
    history: Vec<Arc<Value>>,
    /// Every answer is in `history` (the cap was not reached).
    history_complete: bool,
    /// The call has ended: nobody may join any more.
    closed: bool,
}

impl CallGroup {
    pub(crate) fn new(
        entry: &Arc<RequestEntry>,
        action: ActionId,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let group = Arc::new(Self {
            leader: action,
            cancel: Arc::new(cancel),
            inner: Mutex::new(GroupInner {
                members: vec![(entry.clone(), action)],
                history: Vec::new(),
                history_complete: true,
                closed: false,
            }),
        });
        entry.watch(Self::as_shared(&group));
        group
    }

    fn as_shared(group: &Arc<Self>) -> std::sync::Weak<dyn SharedCall> {
        let weak: std::sync::Weak<Self> = Arc::downgrade(group);
        weak
    }

    fn lock(&self) -> MutexGuard<'_, GroupInner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds an identical request to the call. Returns false when the call no longer takes
    /// joiners (it has given more answers than it keeps).
    pub(crate) fn join(self: &Arc<Self>, entry: &Arc<RequestEntry>, action: ActionId) -> bool {
        let mut inner = self.lock();
        if inner.closed || !inner.history_complete {
            return false;
        }
        for answer in &inner.history {
            entry.replay_answer(action, answer.clone());
        }
        inner.members.push((entry.clone(), action));
        drop(inner);
        entry.watch(Self::as_shared(self));
        true
    }

    /// One answer for every member. Fails with `Ended` once no member wants more.
    pub(crate) async fn answer(&self, payload: Value) -> Result<(), AnswerError> {
        let payload = Arc::new(payload);
        let members = {
            let mut inner = self.lock();
            if inner.history_complete {
                if inner.history.len() < HISTORY_CAP {
                    inner.history.push(payload.clone());
                } else {
                    inner.history_complete = false;
                    inner.history = Vec::new();
                }
            }
            inner.members.clone()
        };
        let mut delivered = false;
        for (entry, action) in members {
            // The slowest member paces the call: backpressure, not loss.
            if entry.answer(action, payload.clone()).await.is_ok() {
                delivered = true;
            }
        }
        if delivered {
            Ok(())
        } else {
            Err(AnswerError::Ended)
        }
    }

    /// The answers given so far, if the call kept all of them.
    pub(crate) fn history(&self) -> Option<Vec<Arc<Value>>> {
        let inner = self.lock();
        inner.history_complete.then(|| inner.history.clone())
    }

    /// Closes the call to joiners and returns every member (the leader first).
    pub(crate) fn close(&self) -> Vec<(Arc<RequestEntry>, ActionId)> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.members.clone()
    }
}

impl SharedCall for CallGroup {
    /// A member request ended early: cancel the call once no member is left running.
    fn member_ended(&self) {
        let all_ended = self.lock().members.iter().all(|(e, _)| e.is_final());
        if all_ended {
            self.cancel.cancel();
        }
    }
}

/// The answer side of one agent call: what [`CallContext::answer`](crate::CallContext::answer)
/// writes to. It fans out to every request sharing the call.
#[derive(Clone)]
pub(crate) struct RequestSink {
    pub(crate) group: Arc<CallGroup>,
    pub(crate) request_id: RequestId,
}
