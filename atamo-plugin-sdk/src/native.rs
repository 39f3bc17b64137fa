//! The `extern "C"` side of a native plugin: the functions of its vtable.
//!
//! Every function here catches panics (a panic must never unwind into the host) and reports
//! them as `ATAMO_ERR_PANIC`. Calls run on the plugin's own runtime and report through the
//! host's `emit` callback; buffers this side allocates carry a release function from this side,
//! so no allocation is ever freed by the other side's allocator.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use atamo_plugin_abi::{
    AtamoBuffer, AtamoBytes, AtamoHostApi, ATAMO_EMIT_DATA, ATAMO_EMIT_END_ERR, ATAMO_EMIT_END_OK,
    ATAMO_ERR_INIT, ATAMO_ERR_INVALID, ATAMO_ERR_PANIC, ATAMO_ERR_UNKNOWN_CALL,
    ATAMO_ERR_UNKNOWN_KIND, ATAMO_ERR_UNSUPPORTED, ATAMO_LOG_DEBUG, ATAMO_LOG_ERROR,
    ATAMO_LOG_INFO, ATAMO_LOG_TRACE, ATAMO_LOG_WARN, ATAMO_OK,
};
use atamo_plugin_protocol::{CallRequest, EvaluateOut, EventIn};
use serde_json::Value;

use crate::call::{Call, Emit, Sink};
use crate::kinds::{run_call, DynAgent, DynProvider, Made, MakeError, Plugin};

/// The host's callbacks, copied out of the `AtamoHostApi` given to `init`.
struct HostApi {
    host: *mut c_void,
    emit: Option<unsafe extern "C" fn(*mut c_void, u64, u32, AtamoBuffer)>,
    log: Option<unsafe extern "C" fn(*mut c_void, u32, AtamoBytes)>,
}

// SAFETY: the ABI requires the host's callbacks to be callable from any thread, with the
// `host` context they were given alongside, for as long as the instance lives.
unsafe impl Send for HostApi {}
// SAFETY: as above; the struct is never mutated after it is built.
unsafe impl Sync for HostApi {}

impl HostApi {
    /// # Safety
    /// `api` is null or points to a valid `AtamoHostApi` whose `size` field is truthful.
    unsafe fn read(api: *const AtamoHostApi) -> Option<Self> {
        if api.is_null() {
            return None;
        }
        // SAFETY: non-null and valid per the caller; `size` is the first field of every version.
        let size = unsafe { (*api).size } as usize;
        if size < std::mem::size_of::<AtamoHostApi>() {
            // An older host with fewer callbacks than this SDK knows: refuse rather than read
            // past its struct.
            return None;
        }
        // SAFETY: the struct is at least as large as ours, so every field we read exists.
        let api = unsafe { &*api };
        Some(Self {
            host: api.host,
            emit: api.emit,
            log: api.log,
        })
    }

    fn emit(&self, key: u64, kind: u32, bytes: Vec<u8>) {
        let buffer = into_buffer(bytes);
        match self.emit {
            // SAFETY: the host's callback, with its own context; it takes the buffer.
            Some(emit) => unsafe { emit(self.host, key, kind, buffer) },
            // SAFETY: nobody took the buffer, so it is released here, once.
            None => unsafe { release(buffer) },
        }
    }

    fn log(&self, level: u32, message: &str) {
        if let Some(log) = self.log {
            let bytes = AtamoBytes {
                ptr: message.as_ptr(),
                len: message.len(),
            };
            // SAFETY: the host's callback; the bytes live for the duration of the call.
            unsafe { log(self.host, level, bytes) }
        }
    }
}

/// Hands bytes to the host, with the function that frees them in this library.
fn into_buffer(bytes: Vec<u8>) -> AtamoBuffer {
    let boxed = Box::new(bytes);
    AtamoBuffer {
        ptr: boxed.as_ptr(),
        len: boxed.len(),
        owner: Box::into_raw(boxed).cast(),
        release: Some(release_vec),
    }
}

unsafe extern "C" fn release_vec(owner: *mut c_void) {
    if !owner.is_null() {
        // SAFETY: `owner` came from `Box::into_raw` in `into_buffer` and is released once.
        drop(unsafe { Box::from_raw(owner.cast::<Vec<u8>>()) });
    }
}

/// # Safety
/// `buffer` came from `into_buffer` and was not released yet.
unsafe fn release(buffer: AtamoBuffer) {
    if let Some(release) = buffer.release {
        // SAFETY: per the caller.
        unsafe { release(buffer.owner) }
    }
}

/// # Safety
/// `bytes` is empty or points to `len` readable bytes that outlive `'a`.
unsafe fn slice<'a>(bytes: AtamoBytes) -> &'a [u8] {
    if bytes.ptr.is_null() || bytes.len == 0 {
        &[]
    } else {
        // SAFETY: per the caller.
        unsafe { std::slice::from_raw_parts(bytes.ptr, bytes.len) }
    }
}

/// What `init` returns to the host as `*instance`.
enum Instance {
    Agent {
        agent: Arc<dyn DynAgent>,
        sink: Sink,
        calls: Arc<Mutex<HashMap<u64, Call>>>,
    },
    Provider(Arc<dyn DynProvider>),
}

/// Creates an instance of `kind`.
///
/// # Safety
/// The pointers are those the host passes to the vtable's `init`, valid as the ABI says.
pub unsafe fn init(
    plugin: &Plugin,
    host: *const AtamoHostApi,
    kind: AtamoBytes,
    config: AtamoBytes,
    instance: *mut *mut c_void,
    error: *mut AtamoBuffer,
) -> i32 {
    let fail = |code: i32, message: String| {
        if !error.is_null() {
            // SAFETY: the host gave a writable out-pointer.
            unsafe { error.write(into_buffer(message.into_bytes())) };
        }
        code
    };
    if instance.is_null() {
        return fail(ATAMO_ERR_INVALID, "no instance out-pointer".to_owned());
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per this function's contract.
        let host = unsafe { HostApi::read(host) }.ok_or_else(|| {
            (
                ATAMO_ERR_INVALID,
                "the host API is missing or too old".to_owned(),
            )
        })?;
        // SAFETY: per this function's contract.
        let kind = std::str::from_utf8(unsafe { slice(kind) })
            .map_err(|_| (ATAMO_ERR_INVALID, "the kind is not UTF-8".to_owned()))?;
        // SAFETY: per this function's contract.
        let config_bytes = unsafe { slice(config) };
        let config: Value = if config_bytes.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(config_bytes)
                .map_err(|e| (ATAMO_ERR_INVALID, format!("init metadata is not JSON: {e}")))?
        };
        let host = Arc::new(host);
        install_logger(&host);
        let made = plugin.make(kind, config).map_err(|e| match e {
            MakeError::UnknownKind(k) => (
                ATAMO_ERR_UNKNOWN_KIND,
                format!("plugin `{}` offers no kind `{k}`", plugin.name()),
            ),
            MakeError::Init(message) => (ATAMO_ERR_INIT, message),
        })?;
        Ok(match made {
            Made::Agent(agent) => {
                let calls: Arc<Mutex<HashMap<u64, Call>>> = Arc::default();
                let sink = native_sink(host, calls.clone());
                Instance::Agent { agent, sink, calls }
            }
            Made::Provider(provider) => Instance::Provider(provider),
        })
    }));
    match outcome {
        Ok(Ok(made)) => {
            // SAFETY: checked non-null above; the host owns the pointer until `drop_instance`.
            unsafe { instance.write(Box::into_raw(Box::new(made)).cast()) };
            ATAMO_OK
        }
        Ok(Err((code, message))) => fail(code, message),
        Err(panic) => fail(
            ATAMO_ERR_PANIC,
            format!("panicked: {}", crate::runtime::panic_message(&*panic)),
        ),
    }
}

fn native_sink(host: Arc<HostApi>, calls: Arc<Mutex<HashMap<u64, Call>>>) -> Sink {
    Arc::new(move |key, emit| {
        let (kind, bytes) = match emit {
            Emit::Data(value) => (ATAMO_EMIT_DATA, to_json(&value)),
            Emit::EndOk(value) => {
                forget_call(&calls, key);
                (
                    ATAMO_EMIT_END_OK,
                    value.map(|v| to_json(&v)).unwrap_or_default(),
                )
            }
            Emit::EndErr(err) => {
                forget_call(&calls, key);
                (ATAMO_EMIT_END_ERR, to_json(&err))
            }
        };
        host.emit(key, kind, bytes);
    })
}

fn forget_call(calls: &Mutex<HashMap<u64, Call>>, key: u64) {
    calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing a `Value` or one of the protocol types cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// # Safety
/// `instance` came from `init` and was not dropped.
unsafe fn instance<'a>(instance: *mut c_void) -> Option<&'a Instance> {
    // SAFETY: per the caller.
    unsafe { instance.cast::<Instance>().as_ref() }
}

fn guarded(f: impl FnOnce() -> i32) -> i32 {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(ATAMO_ERR_PANIC)
}

/// The vtable's `call`.
///
/// # Safety
/// As the ABI says: `instance` from `init`, `request` readable for the duration of the call.
pub unsafe extern "C" fn call(
    instance_ptr: *mut c_void,
    key: u64,
    request: AtamoBytes,
    credits: u32,
) -> i32 {
    guarded(|| {
        // SAFETY: per this function's contract.
        let Some(Instance::Agent { agent, sink, calls }) = (unsafe { instance(instance_ptr) })
        else {
            return ATAMO_ERR_UNSUPPORTED;
        };
        // SAFETY: per this function's contract.
        let request: CallRequest = match serde_json::from_slice(unsafe { slice(request) }) {
            Ok(request) => request,
            Err(_) => return ATAMO_ERR_INVALID,
        };
        let call = Call::new(key, credits, sink.clone());
        let handle = crate::runtime::handle();
        let _context = handle.enter();
        let mut future = Box::pin(run_call(agent.clone(), request, call.clone()));
        // First poll here, on the calling thread: a call that finishes without waiting (a
        // lookup in memory, a validation error) costs no thread hop, and its end reaches the
        // host before `call` returns. Only a call that has to wait is registered (for
        // `credit` and `cancel`, which the host cannot send before `call` returns) and handed
        // to the runtime, whose task polls it again at once with its own waker.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if std::future::Future::poll(future.as_mut(), &mut cx).is_pending() {
            calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, call);
            handle.spawn(future);
        }
        ATAMO_OK
    })
}

fn with_call(instance_ptr: *mut c_void, key: u64, f: impl FnOnce(&Call)) -> i32 {
    // SAFETY: the vtable functions that use this have the contract of `call`.
    let Some(Instance::Agent { calls, .. }) = (unsafe { instance(instance_ptr) }) else {
        return ATAMO_ERR_UNSUPPORTED;
    };
    let found = calls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    match found {
        Some(call) => {
            f(&call);
            ATAMO_OK
        }
        None => ATAMO_ERR_UNKNOWN_CALL,
    }
}

/// The vtable's `credit`.
///
/// # Safety
/// `instance` came from `init`.
pub unsafe extern "C" fn credit(instance_ptr: *mut c_void, key: u64, credits: u32) -> i32 {
    guarded(|| with_call(instance_ptr, key, |call| call.grant(credits)))
}

/// The vtable's `cancel`.
///
/// # Safety
/// `instance` came from `init`.
pub unsafe extern "C" fn cancel(instance_ptr: *mut c_void, key: u64) -> i32 {
    guarded(|| with_call(instance_ptr, key, Call::cancel))
}

/// The vtable's `evaluate`.
///
/// # Safety
/// `instance` came from `init`; `event` is readable; `out` is writable.
pub unsafe extern "C" fn evaluate(
    instance_ptr: *mut c_void,
    event: AtamoBytes,
    out: *mut AtamoBuffer,
) -> i32 {
    if out.is_null() {
        return ATAMO_ERR_INVALID;
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per this function's contract.
        let Some(Instance::Provider(provider)) = (unsafe { instance(instance_ptr) }) else {
            return Err(ATAMO_ERR_UNSUPPORTED);
        };
        // SAFETY: per this function's contract.
        let event: EventIn =
            serde_json::from_slice(unsafe { slice(event) }).map_err(|_| ATAMO_ERR_INVALID)?;
        Ok(match provider.evaluate(&event) {
            Ok(proposals) => EvaluateOut {
                proposals,
                error: None,
            },
            Err(error) => EvaluateOut {
                proposals: Vec::new(),
                error: Some(error),
            },
        })
    }));
    let (code, result) = match outcome {
        Ok(Ok(result)) => (ATAMO_OK, result),
        Ok(Err(code)) => return code,
        // The panic's message travels in the output, so the host can report it.
        Err(panic) => (
            ATAMO_ERR_PANIC,
            EvaluateOut {
                proposals: Vec::new(),
                error: Some(crate::runtime::panic_message(&*panic)),
            },
        ),
    };
    // SAFETY: checked non-null; the host releases the buffer.
    unsafe { out.write(into_buffer(to_json(&result))) };
    code
}

/// The vtable's `health`.
///
/// # Safety
/// `instance` came from `init`; `out` is writable.
pub unsafe extern "C" fn health(instance_ptr: *mut c_void, out: *mut AtamoBuffer) -> i32 {
    guarded(|| {
        if out.is_null() {
            return ATAMO_ERR_INVALID;
        }
        // SAFETY: per this function's contract.
        let answer = match unsafe { instance(instance_ptr) } {
            Some(Instance::Agent { agent, .. }) => match agent.health() {
                Ok(detail) => serde_json::json!({"ok": true, "detail": detail}),
                Err(error) => serde_json::json!({"ok": false, "error": error}),
            },
            Some(Instance::Provider(_)) => serde_json::json!({"ok": true}),
            None => return ATAMO_ERR_INVALID,
        };
        // SAFETY: checked non-null; the host releases the buffer.
        unsafe { out.write(into_buffer(to_json(&answer))) };
        ATAMO_OK
    })
}

/// The vtable's `drop_instance`.
///
/// # Safety
/// `instance` came from `init`, no call of it runs, and it is not used afterwards.
pub unsafe extern "C" fn drop_instance(instance_ptr: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !instance_ptr.is_null() {
            // SAFETY: per this function's contract; the pointer came from `Box::into_raw`.
            let instance = unsafe { Box::from_raw(instance_ptr.cast::<Instance>()) };
            if let Instance::Agent { calls, .. } = &*instance {
                for call in calls.lock().unwrap_or_else(|p| p.into_inner()).values() {
                    call.cancel();
                }
            }
            drop(instance);
        }
    }));
}

/// Forwards the plugin's `tracing` events to the host's log. The first instance's host
/// context receives them; a plugin that installed its own subscriber keeps it.
fn install_logger(host: &Arc<HostApi>) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let layer = HostLog { host: host.clone() };
        let subscriber = tracing_subscriber::registry().with(layer);
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

struct HostLog {
    host: Arc<HostApi>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for HostLog {
    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        *metadata.level() <= tracing::Level::DEBUG
    }

    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut text = LineVisitor(String::new());
        event.record(&mut text);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => ATAMO_LOG_ERROR,
            tracing::Level::WARN => ATAMO_LOG_WARN,
            tracing::Level::INFO => ATAMO_LOG_INFO,
            tracing::Level::DEBUG => ATAMO_LOG_DEBUG,
            tracing::Level::TRACE => ATAMO_LOG_TRACE,
        };
        self.host.log(level, &text.0);
    }
}

/// Renders an event as `message key=value ...`.
struct LineVisitor(String);

impl tracing::field::Visit for LineVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}
