//! The host's side of the C ABI: the callbacks a plugin instance calls, and instances.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use atamo_plugin_abi::{
    AtamoBuffer, AtamoBytes, AtamoHostApi, ATAMO_EMIT_DATA, ATAMO_LOG_DEBUG, ATAMO_LOG_ERROR,
    ATAMO_LOG_INFO, ATAMO_LOG_WARN, ATAMO_OK,
};
use atamo_plugin_protocol::Role;
use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use serde_json::Value;

use super::error::LoadError;
use super::loader::NativePlugin;

/// Bytes a plugin handed over; released through the plugin's own function when dropped, so
/// the plugin's allocator frees what it allocated.
pub(super) struct PluginBuffer(AtamoBuffer);

// SAFETY: the ABI lets the receiver release a buffer from any thread.
unsafe impl Send for PluginBuffer {}

impl PluginBuffer {
    pub(super) fn bytes(&self) -> &[u8] {
        if self.0.ptr.is_null() || self.0.len == 0 {
            &[]
        } else {
            // SAFETY: the plugin keeps `len` bytes at `ptr` until the buffer is released.
            unsafe { std::slice::from_raw_parts(self.0.ptr, self.0.len) }
        }
    }

    pub(super) fn empty() -> AtamoBuffer {
        AtamoBuffer {
            ptr: std::ptr::null(),
            len: 0,
            owner: std::ptr::null_mut(),
            release: None,
        }
    }

    pub(super) fn take(raw: AtamoBuffer) -> Self {
        Self(raw)
    }
}

impl Drop for PluginBuffer {
    fn drop(&mut self) {
        if let Some(release) = self.0.release {
            // SAFETY: released once, with the owner the plugin gave.
            unsafe { release(self.0.owner) }
        }
    }
}

/// One thing a plugin sent for a call.
pub(super) struct Emitted {
    pub(super) kind: u32,
    pub(super) payload: PluginBuffer,
}

/// Where a running call's emissions wait for its future: a queue and one waker. Lighter than
/// a channel (created per call, it must be cheap), and an end emitted synchronously inside
/// `call` is simply found in the queue with no wake-up at all.
#[derive(Default)]
pub(super) struct CallSlot {
    queue: std::sync::Mutex<std::collections::VecDeque<Emitted>>,
    waker: AtomicWaker,
}

impl CallSlot {
    fn push(&self, emitted: Emitted) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(emitted);
        self.waker.wake();
    }

    fn pop(&self) -> Option<Emitted> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// The next emission of the call.
    pub(super) async fn recv(&self) -> Emitted {
        std::future::poll_fn(|cx| {
            if let Some(emitted) = self.pop() {
                return std::task::Poll::Ready(emitted);
            }
            self.waker.register(cx.waker());
            match self.pop() {
                Some(emitted) => std::task::Poll::Ready(emitted),
                None => std::task::Poll::Pending,
            }
        })
        .await
    }
}

/// Call keys are small sequential integers chosen by the host: a fast non-cryptographic hash
/// is enough.
pub(super) type CallMap = DashMap<u64, Arc<CallSlot>, rustc_hash::FxBuildHasher>;

/// The context behind an instance's `AtamoHostApi::host`: where emitted answers go, and whose
/// logs these are. Never freed (see [`HostCtx::leak`]).
pub(super) struct HostCtx {
    pub(super) calls: CallMap,
    pub(super) label: String,
}

impl HostCtx {
    /// A context that lives for the rest of the process: a plugin may call `log` from a thread
    /// of its own at any time, even after its instance is dropped, so the pointer it holds
    /// must stay valid. One small allocation per registration.
    pub(super) fn leak(label: String) -> &'static HostCtx {
        Box::leak(Box::new(HostCtx {
            calls: CallMap::default(),
            label,
        }))
    }
}

unsafe extern "C" fn host_emit(host: *mut c_void, key: u64, kind: u32, payload: AtamoBuffer) {
    let payload = PluginBuffer::take(payload);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `host` is the leaked `HostCtx` given at init.
        let ctx = unsafe { &*host.cast::<HostCtx>() };
        let slot = if kind == ATAMO_EMIT_DATA {
            ctx.calls.get(&key).map(|s| s.clone())
        } else {
            ctx.calls.remove(&key).map(|(_, s)| s)
        };
        // No slot: the call was dropped (cancelled); the buffer is released right here.
        if let Some(slot) = slot {
            slot.push(Emitted { kind, payload });
        }
    }));
}

unsafe extern "C" fn host_log(host: *mut c_void, level: u32, message: AtamoBytes) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `host` is the leaked `HostCtx` given at init.
        let ctx = unsafe { &*host.cast::<HostCtx>() };
        let text = if message.ptr.is_null() {
            std::borrow::Cow::Borrowed("")
        } else {
            // SAFETY: the plugin passes `len` readable bytes for the duration of the call.
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(message.ptr, message.len) })
        };
        let who = ctx.label.as_str();
        match level {
            ATAMO_LOG_ERROR => tracing::error!(target: "atamo::plugin", plugin = who, "{text}"),
            ATAMO_LOG_WARN => tracing::warn!(target: "atamo::plugin", plugin = who, "{text}"),
            ATAMO_LOG_INFO => tracing::info!(target: "atamo::plugin", plugin = who, "{text}"),
            ATAMO_LOG_DEBUG => tracing::debug!(target: "atamo::plugin", plugin = who, "{text}"),
            _ => tracing::trace!(target: "atamo::plugin", plugin = who, "{text}"),
        }
    }));
}

/// An instance of one of a plugin's kinds. Dropping it calls the plugin's `drop_instance`.
pub(super) struct Instance {
    pub(super) plugin: Arc<NativePlugin>,
    pub(super) ptr: *mut c_void,
    pub(super) ctx: &'static HostCtx,
}

// SAFETY: the ABI requires every vtable function to be callable from any thread on an instance.
unsafe impl Send for Instance {}
// SAFETY: as above; the host never mutates the pointer.
unsafe impl Sync for Instance {}

impl Instance {
    /// Checks `config` against the kind's schema, then creates the instance.
    pub(super) fn create(
        plugin: Arc<NativePlugin>,
        kind: &str,
        role: Role,
        config: &Value,
        label: String,
    ) -> Result<Self, LoadError> {
        let info = plugin.kind(kind, role)?;
        let problems = crate::schema::check(config, &info.config_schema);
        let meta = &plugin.info;
        if !problems.is_empty() {
            return Err(LoadError::BadConfig {
                file: meta.path.clone(),
                plugin: meta.name.clone(),
                version: meta.version.clone(),
                kind: kind.to_owned(),
                problems,
            });
        }
        let ctx = HostCtx::leak(label);
        let api = AtamoHostApi {
            size: std::mem::size_of::<AtamoHostApi>() as u32,
            reserved: 0,
            host: std::ptr::from_ref(ctx).cast_mut().cast(),
            emit: Some(host_emit),
            log: Some(host_log),
        };
        let config_bytes = serde_json::to_vec(config).unwrap_or_default();
        let mut ptr: *mut c_void = std::ptr::null_mut();
        let mut error = PluginBuffer::empty();
        let init = plugin
            .vtable
            .init
            .ok_or_else(|| LoadError::BadDeclaration {
                file: meta.path.clone(),
                plugin: meta.name.clone(),
                reason: "the vtable lacks `init`".to_owned(),
            })?;
        // SAFETY: the plugin's `init`, with arguments valid for the duration of the call.
        let code = unsafe {
            init(
                &api,
                AtamoBytes {
                    ptr: kind.as_ptr(),
                    len: kind.len(),
                },
                AtamoBytes {
                    ptr: config_bytes.as_ptr(),
                    len: config_bytes.len(),
                },
                &mut ptr,
                &mut error,
            )
        };
        let error = PluginBuffer::take(error);
        if code != ATAMO_OK || ptr.is_null() {
            return Err(LoadError::InitFailed {
                file: meta.path.clone(),
                plugin: meta.name.clone(),
                version: meta.version.clone(),
                kind: kind.to_owned(),
                code,
                message: String::from_utf8_lossy(error.bytes()).into_owned(),
            });
        }
        Ok(Self { plugin, ptr, ctx })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(drop_instance) = self.plugin.vtable.drop_instance {
            // SAFETY: no call of the instance runs (every call holds the instance), and the
            // pointer is not used again.
            unsafe { drop_instance(self.ptr) }
        }
    }
}
