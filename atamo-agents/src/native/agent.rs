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
use atamo_plugin_protocol::{CallError, Role};
use serde_json::Value;

use super::error::LoadError;
use super::host::{CallSlot, Emitted, Instance};
use super::loader::NativePlugin;
use crate::wire::{agent_error, encode_request};

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
