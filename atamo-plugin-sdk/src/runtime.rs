//! The tokio runtime a plugin's calls run on, and panic payloads as text.

use std::sync::OnceLock;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The runtime the plugin's calls run on: the current one when there is one (a process
/// agent's), otherwise the plugin's own.
pub(crate) fn handle() -> tokio::runtime::Handle {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return handle;
    }
    RUNTIME.get_or_init(build).handle().clone()
}

fn build() -> tokio::runtime::Runtime {
    let threads = std::env::var("ATAMO_PLUGIN_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2);
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("atamo-plugin")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        // Without a runtime the plugin cannot work at all; the panic is caught at the
        // boundary and the host reports `init` as failed.
        Err(err) => panic!("cannot start the plugin's runtime: {err}"),
    }
}

/// Panic payload as text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}
