//! `NativeAgent`: a plugin's agent kind behind the hub's `Agent` trait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_core::agent::{AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::request::AnswerError;
use atamo_core::Action;
use atamo_plugin_abi::{
    AtamoBytes, ATAMO_EMIT_DATA, ATAMO_EMIT_END_ERR, ATAMO_EMIT_END_OK, ATAMO_ERR_PANIC, ATAMO_OK,
};
use atamo_plugin_protocol::{CallError, CallRequest, Role};
use serde_json::Value;

use super::error::LoadError;
use super::host::{CallSlot, Emitted, Instance};
use super::loader::NativePlugin;

/// How long a cancelled call may take to end before the host stops waiting for it.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// An agent implemented by a native plugin.
///
/// Each call crosses the C ABI once to start, and the plugin's answers come back through the
/// host's `emit` callback into a channel the call's future reads. Answers are paced by credits:
/// the plugin may run `credits` answers ahead of the client, and gets one more credit for each
/// answer the client takes. Dropping the call's future (its request was cancelled, the hub is
/// stopping) cancels the call in the plugin.
#[derive(Clone)]
pub struct NativeAgent {
    inner: Arc<Inner>,
}

struct Inner {
    instance: Instance,
    kind: String,
    next_key: AtomicU64,
    credits: u32,
}

impl std::fmt::Debug for NativeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeAgent")
            .field("plugin", &self.inner.instance.plugin.info().name)
            .field("kind", &self.inner.kind)
            .finish_non_exhaustive()
    }
}

impl NativeAgent {
    /// Creates an instance of agent kind `kind` of `plugin` with init metadata `config`,
    /// checked against the kind's schema first. `label` names it in logs (the agent id).
    pub fn new(
        plugin: Arc<NativePlugin>,
        kind: &str,
        config: &Value,
        label: impl Into<String>,
    ) -> Result<Self, LoadError> {
        let label = format!("{}/{}", plugin.info().name, label.into());
        let instance = Instance::create(plugin, kind, Role::Agent, config, label)?;
        Ok(Self {
            inner: Arc::new(Inner {
                instance,
                kind: kind.to_owned(),
                next_key: AtomicU64::new(1),
                credits: 32,
            }),
        })
    }

    /// How many answers a call may send ahead of its client (default 32).
    #[must_use]
    pub fn credits(self, credits: u32) -> Self {
        let inner = Arc::try_unwrap(self.inner);
        match inner {
            Ok(mut inner) => {
                inner.credits = credits.max(1);
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Self { inner },
        }
    }

    /// The plugin behind the agent.
    pub fn plugin(&self) -> &Arc<NativePlugin> {
        &self.inner.instance.plugin
    }

    /// Asks the instance how it is (`{"ok": true, ...}` or `{"ok": false, "error": ...}`).
    pub fn health(&self) -> Value {
        let Some(health) = self.inner.instance.plugin.vtable.health else {
            return serde_json::json!({"ok": true});
        };
        let mut out = super::host::PluginBuffer::empty();
        // SAFETY: the instance is alive; `out` is writable.
        let code = unsafe { health(self.inner.instance.ptr, &mut out) };
        let out = super::host::PluginBuffer::take(out);
        if code != ATAMO_OK {
            return serde_json::json!({"ok": false, "error": format!("health failed with code {code}")});
        }
        serde_json::from_slice(out.bytes())
            .unwrap_or_else(|e| serde_json::json!({"ok": false, "error": e.to_string()}))
    }
}

/// Builds what the plugin sees of an action. `encode_request` writes the same JSON directly;
/// a test checks that they agree.
pub(crate) fn call_request(action: &Action, ctx: &CallContext) -> CallRequest {
    let meta = action.meta();
    let event = &meta.event;
    CallRequest {
        action_id: meta.id.to_string(),
        action_type: meta.action_type.to_string(),
        attempt: meta.attempt,
        event_id: event.id.to_string(),
        event_type: event.event_type.to_string(),
        correlation_id: event.correlation_id.to_string(),
        user: event.principal.user.to_string(),
        groups: event
            .principal
            .groups
            .iter()
            .map(ToString::to_string)
            .collect(),
        tenant: event.principal.tenant.as_ref().map(ToString::to_string),
        request_id: ctx.request_id().map(|r| r.to_string()),
        payload: action.payload().clone(),
    }
}

/// The JSON of [`call_request`], written straight from the action's fields: no owned copy of
/// each id and name is made on the way (this runs once per native call).
fn encode_request(action: &Action, ctx: &CallContext) -> serde_json::Result<Vec<u8>> {
    use serde::ser::{SerializeSeq, SerializeStruct, Serializer};

    /// Serializes a `Display` value as a JSON string without building a `String` first.
    struct Text<'a, T: std::fmt::Display>(&'a T);
    impl<T: std::fmt::Display> serde::Serialize for Text<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self.0)
        }
    }
    struct Groups<'a>(&'a [atamo_core::GroupId]);
    impl serde::Serialize for Groups<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for g in self.0 {
                seq.serialize_element(g.as_str())?;
            }
            seq.end()
        }
    }
    struct Request<'a>(&'a Action, &'a CallContext);
    impl serde::Serialize for Request<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let meta = self.0.meta();
            let event = &meta.event;
            let mut st = s.serialize_struct("CallRequest", 11)?;
            st.serialize_field("action_id", &Text(&meta.id))?;
            st.serialize_field("action_type", meta.action_type.as_str())?;
            st.serialize_field("attempt", &meta.attempt)?;
            st.serialize_field("event_id", &Text(&event.id))?;
            st.serialize_field("event_type", event.event_type.as_str())?;
            st.serialize_field("correlation_id", &Text(&event.correlation_id))?;
            st.serialize_field("user", event.principal.user.as_str())?;
            st.serialize_field("groups", &Groups(&event.principal.groups))?;
            if let Some(tenant) = &event.principal.tenant {
                st.serialize_field("tenant", tenant.as_str())?;
            }
            if let Some(request) = self.1.request_id() {
                st.serialize_field("request_id", &Text(&request))?;
            }
            st.serialize_field("payload", self.0.payload())?;
            st.end()
        }
    }
    serde_json::to_vec(&Request(action, ctx))
}

/// Maps a plugin's error onto the hub's.
pub(crate) fn agent_error(error: CallError) -> AgentError {
    match error {
        CallError::Retry { reason, after_ms } => AgentError::Retry {
            reason,
            after: after_ms.map(Duration::from_millis),
        },
        CallError::Permanent { reason } => AgentError::Permanent { reason },
        CallError::Timeout { after_ms } => AgentError::Timeout {
            after: Duration::from_millis(after_ms),
        },
        CallError::Panicked { message } => AgentError::Panicked { message },
        CallError::Crashed { reason } => AgentError::Crashed { reason },
        CallError::Cancelled => AgentError::Cancelled,
    }
}

/// Cancels the call in the plugin if its future is dropped before the call ended.
struct CallGuard {
    inner: Arc<Inner>,
    key: u64,
    ended: bool,
}

impl CallGuard {
    fn cancel(&self) {
        if let Some(cancel) = self.inner.instance.plugin.vtable.cancel {
            // SAFETY: the instance is alive (the guard holds it).
            unsafe { cancel(self.inner.instance.ptr, self.key) };
        }
    }

    fn credit(&self, n: u32) {
        if let Some(credit) = self.inner.instance.plugin.vtable.credit {
            // SAFETY: the instance is alive (the guard holds it).
            unsafe { credit(self.inner.instance.ptr, self.key, n) };
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.ended {
            // Forget the call first, so its late answers are released as they arrive.
            self.inner.instance.ctx.calls.remove(&self.key);
            self.cancel();
        }
    }
}

#[async_trait]
impl atamo_core::Agent for NativeAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let inner = self.inner.clone();
        let Some(call) = inner.instance.plugin.vtable.call else {
            return Err(AgentError::permanent(
                "the plugin does not implement `call`",
            ));
        };
        let request = encode_request(&action, &ctx)
            .map_err(|e| AgentError::permanent(format!("cannot encode the action: {e}")))?;
        let key = inner.next_key.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(CallSlot::default());
        inner.instance.ctx.calls.insert(key, slot.clone());
        let mut guard = CallGuard {
            inner: inner.clone(),
            key,
            ended: false,
        };
        // SAFETY: the instance is alive; the request bytes outlive the call.
        let code = unsafe {
            call(
                inner.instance.ptr,
                key,
                AtamoBytes {
                    ptr: request.as_ptr(),
                    len: request.len(),
                },
                inner.credits,
            )
        };
        drop(request);
        if code != ATAMO_OK {
            inner.instance.ctx.calls.remove(&key);
            guard.ended = true;
            return Err(if code == ATAMO_ERR_PANIC {
                AgentError::Panicked {
                    message: "the plugin panicked starting the call".to_owned(),
                }
            } else {
                AgentError::permanent(format!("the plugin refused the call (code {code})"))
            });
        }
        let mut cancelled_at: Option<tokio::time::Instant> = None;
        loop {
            let emitted = if let Some(at) = cancelled_at {
                match tokio::time::timeout_at(at + CANCEL_GRACE, slot.recv()).await {
                    Ok(emitted) => emitted,
                    Err(_) => return Err(AgentError::Cancelled),
                }
            } else {
                tokio::select! {
                    biased;
                    emitted = slot.recv() => emitted,
                    _ = ctx.cancelled() => {
                        guard.cancel();
                        cancelled_at = Some(tokio::time::Instant::now());
                        continue;
                    }
                }
            };
            let Emitted { kind, payload } = emitted;
            match kind {
                ATAMO_EMIT_DATA => {
                    let value: Value = serde_json::from_slice(payload.bytes())
                        .map_err(|e| AgentError::permanent(format!("bad answer JSON: {e}")))?;
                    drop(payload);
                    if let Err(AnswerError::Ended) = ctx.answer(value).await {
                        // Nobody takes answers any more: stop the call.
                        guard.cancel();
                        cancelled_at.get_or_insert_with(tokio::time::Instant::now);
                    } else {
                        // Answered, or nobody asked (an event's call): either way the
                        // plugin may send one more.
                        guard.credit(1);
                    }
                }
                ATAMO_EMIT_END_OK => {
                    guard.ended = true;
                    let bytes = payload.bytes();
                    return if bytes.is_empty() {
                        Ok(Reply::done())
                    } else {
                        serde_json::from_slice(bytes)
                            .map(Reply::with)
                            .map_err(|e| AgentError::permanent(format!("bad reply JSON: {e}")))
                    };
                }
                ATAMO_EMIT_END_ERR => {
                    guard.ended = true;
                    let error: CallError =
                        serde_json::from_slice(payload.bytes()).unwrap_or_else(|e| {
                            CallError::Permanent {
                                reason: format!("unreadable error from the plugin: {e}"),
                            }
                        });
                    return Err(agent_error(error));
                }
                other => {
                    tracing::warn!(kind = other, "ignoring an unknown emit kind");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use atamo_core::ids::RuleId;
    use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
    use atamo_core::{agent_fn, ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal};
    use atamo_plugin_protocol::CallRequest;
    use serde_json::json;

    #[tokio::test]
    async fn the_direct_encoding_is_the_call_request() {
        let seen: Arc<Mutex<Vec<(CallRequest, CallRequest)>>> = Arc::default();
        let agent = {
            let seen = seen.clone();
            agent_fn(move |action, ctx| {
                let direct: CallRequest =
                    serde_json::from_slice(&super::encode_request(&action, &ctx).unwrap()).unwrap();
                seen.lock()
                    .unwrap()
                    .push((direct, super::call_request(&action, &ctx)));
                std::future::ready(Ok(atamo_core::Reply::done()))
            })
        };
        let hub = Hub::builder()
            .event_type(EventTypeDef::new("e"))
            .action_type(ActionTypeDef::new("a"))
            .agent(AgentSpec::new("x", agent).handles(["a"]))
            .provider(
                "p",
                |e: &Event, _: &Principal, out: &mut Vec<Proposal>| {
                    out.push(Proposal::action(
                        RuleId::from("r"),
                        PlannedAction::new("x", "a", e.payload().clone()),
                    ))
                },
                ProviderScope::EventTypes(vec!["e".into()]),
            )
            .build()
            .unwrap();
        let h = hub.handle();
        let who = Principal::user("alice")
            .in_group("ops")
            .in_group("vip")
            .in_tenant("acme");
        let r = h
            .request(Event::new(
                "e",
                who.clone(),
                json!({"q": "\"quoted\"", "n": [1, 2]}),
            ))
            .await
            .unwrap();
        h.wait(r.request_id, std::time::Duration::from_secs(10))
            .await
            .unwrap();
        h.publish(Event::new("e", Principal::user("bob"), json!({})))
            .await
            .unwrap();
        hub.shutdown().await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        for (direct, owned) in seen.iter() {
            assert_eq!(direct, owned);
        }
        assert_eq!(seen[0].0.groups, vec!["ops".to_owned(), "vip".to_owned()]);
        assert!(seen[0].0.request_id.is_some() && seen[1].0.request_id.is_none());
    }
}
