//! The contract between the Atamo hub and native plugins, as a C ABI.
//!
//! Only `#[repr(C)]` structs, integers, pointers to bytes and `extern "C"` function pointers
//! cross the boundary; messages are JSON bytes; status codes are integers. No Rust type with
//! an unstable layout (`String`, `Vec`, trait objects, futures) ever crosses, so a plugin built
//! by another compiler version, or written in C against `include/atamo_plugin.h`, works.
//! The header and this crate are kept in step by a test that compiles C against the header
//! and compares every size, offset and constant.
//!
//! # The declaration
//! A plugin library exports one static, [`DECLARATION_SYMBOL`], of type
//! [`AtamoPluginDeclaration`]. Its first 16 bytes, [`AtamoPluginHeader`], never change in any
//! version: the magic bytes `ATAMOPLG`, the ABI major and minor version, and the declaration's
//! size. A host reads them before anything else, and refuses a plugin whose major version
//! differs or whose minor version is newer than its own.
//!
//! # Calls
//! The host creates an instance of one of the kinds the plugin describes with
//! [`AtamoPluginVTable::init`], then starts calls with [`AtamoPluginVTable::call`], which
//! returns at once. The plugin answers through the host's [`AtamoHostApi::emit`] callback: any
//! number of [`ATAMO_EMIT_DATA`], then one [`ATAMO_EMIT_END_OK`] or [`ATAMO_EMIT_END_ERR`].
//! Credits give backpressure: the plugin sends at most as many `DATA` as it has credits,
//! and the host grants more with [`AtamoPluginVTable::credit`]. [`AtamoPluginVTable::cancel`]
//! asks a call to stop (its client went away). No future, waker or runtime crosses: the plugin
//! runs its own.
//!
//! # Memory
//! Whoever allocates frees. Bytes passed into a function ([`AtamoBytes`]) are borrowed for the
//! duration of the call only. Bytes handed over ([`AtamoBuffer`]) carry the function that
//! releases them, which the receiver calls once when done.

#![no_std]

use core::ffi::{c_char, c_void};

/// The name of the exported declaration static.
pub const DECLARATION_SYMBOL: &str = "atamo_plugin_declaration";

/// The target triple this crate was compiled for (from Cargo's `TARGET`). A plugin and the host
/// that loads it must agree on it.
pub const BUILD_TARGET: &str = env!("ATAMO_BUILD_TARGET");

/// The first eight bytes of every declaration.
pub const ATAMO_PLUGIN_MAGIC: [u8; 8] = *b"ATAMOPLG";
/// The ABI's major version: a host loads only plugins of its own major version.
pub const ATAMO_ABI_MAJOR: u16 = 1;
/// The ABI's minor version: a host loads plugins of the same or an older minor version.
pub const ATAMO_ABI_MINOR: u16 = 0;

/// Flag: the plugin was built with `panic = "unwind"` (panics are caught at the boundary).
/// A plugin without it was built with `panic = "abort"`: a panic would end the host process.
pub const ATAMO_FLAG_PANIC_UNWIND: u32 = 1;

/// Success.
pub const ATAMO_OK: i32 = 0;
/// The plugin panicked; the panic was caught at the boundary.
pub const ATAMO_ERR_PANIC: i32 = -1;
/// An argument was invalid (bad JSON, a null pointer where one is required).
pub const ATAMO_ERR_INVALID: i32 = -2;
/// The plugin offers no kind of that name.
pub const ATAMO_ERR_UNKNOWN_KIND: i32 = -3;
/// Initialising an instance failed; the error buffer says why.
pub const ATAMO_ERR_INIT: i32 = -4;
/// No call with that key is running.
pub const ATAMO_ERR_UNKNOWN_CALL: i32 = -5;
/// The instance does not support that function (an agent asked to evaluate rules, say).
pub const ATAMO_ERR_UNSUPPORTED: i32 = -6;

/// `emit` kind: one answer of a call.
pub const ATAMO_EMIT_DATA: u32 = 1;
/// `emit` kind: the call ended successfully; the payload is its final reply (may be empty).
pub const ATAMO_EMIT_END_OK: u32 = 2;
/// `emit` kind: the call failed; the payload is a JSON error
/// (`{"kind": "retry" | "permanent" | ..., "reason": "..."}`).
pub const ATAMO_EMIT_END_ERR: u32 = 3;

/// Log level: error.
pub const ATAMO_LOG_ERROR: u32 = 1;
/// Log level: warning.
pub const ATAMO_LOG_WARN: u32 = 2;
/// Log level: information.
pub const ATAMO_LOG_INFO: u32 = 3;
/// Log level: debugging detail.
pub const ATAMO_LOG_DEBUG: u32 = 4;
/// Log level: tracing detail.
pub const ATAMO_LOG_TRACE: u32 = 5;

/// Bytes borrowed for the duration of one function call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AtamoBytes {
    /// The first byte (may be null when `len` is 0).
    pub ptr: *const u8,
    /// How many bytes.
    pub len: usize,
}

/// Bytes handed from one side to the other, with the function that frees them. The receiver
/// calls `release(owner)` exactly once when done (if `release` is not null).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AtamoBuffer {
    /// The first byte (may be null when `len` is 0).
    pub ptr: *const u8,
    /// How many bytes.
    pub len: usize,
    /// Whatever the allocating side needs to free the bytes.
    pub owner: *mut c_void,
    /// Frees the bytes; called once, by the receiver.
    pub release: Option<unsafe extern "C" fn(owner: *mut c_void)>,
}

/// The 16 bytes at the start of every declaration, the same in every ABI version.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AtamoPluginHeader {
    /// [`ATAMO_PLUGIN_MAGIC`].
    pub magic: [u8; 8],
    /// [`ATAMO_ABI_MAJOR`] of the ABI the plugin was built against.
    pub abi_major: u16,
    /// [`ATAMO_ABI_MINOR`] of the ABI the plugin was built against.
    pub abi_minor: u16,
    /// `size_of::<AtamoPluginDeclaration>()` as the plugin saw it.
    pub size: u32,
}

/// What the host gives a plugin instance: where to send answers and logs.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AtamoHostApi {
    /// `size_of::<AtamoHostApi>()` as the host saw it (later minor versions append fields).
    pub size: u32,
    /// Reserved; zero.
    pub reserved: u32,
    /// The host's context, passed back to every callback.
    pub host: *mut c_void,
    /// Sends an answer or the end of call `call_key` ([`ATAMO_EMIT_DATA`],
    /// [`ATAMO_EMIT_END_OK`], [`ATAMO_EMIT_END_ERR`]). The host takes the buffer. May be called
    /// from any thread.
    pub emit: Option<
        unsafe extern "C" fn(host: *mut c_void, call_key: u64, kind: u32, payload: AtamoBuffer),
    >,
    /// Writes one line to the host's log at `level` (`ATAMO_LOG_*`). May be called from any
    /// thread.
    pub log: Option<unsafe extern "C" fn(host: *mut c_void, level: u32, message: AtamoBytes)>,
}

/// The functions a plugin exports. Every function returns an `ATAMO_OK` or `ATAMO_ERR_*` code
/// unless said otherwise, and never unwinds.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AtamoPluginVTable {
    /// `size_of::<AtamoPluginVTable>()` as the plugin saw it.
    pub size: u32,
    /// Reserved; zero.
    pub reserved: u32,
    /// Creates an instance of kind `kind` (UTF-8) with init metadata `config` (JSON). On
    /// success writes the instance to `*instance`; on failure may write a UTF-8 message to
    /// `*error`, which the host releases.
    pub init: Option<
        unsafe extern "C" fn(
            host: *const AtamoHostApi,
            kind: AtamoBytes,
            config: AtamoBytes,
            instance: *mut *mut c_void,
            error: *mut AtamoBuffer,
        ) -> i32,
    >,
    /// Starts call `call_key` with action `request` (JSON) and `credits` answers allowed before
    /// more are granted. Returns at once; results come through `emit`.
    pub call: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            call_key: u64,
            request: AtamoBytes,
            credits: u32,
        ) -> i32,
    >,
    /// Grants call `call_key` `credits` more answers.
    pub credit:
        Option<unsafe extern "C" fn(instance: *mut c_void, call_key: u64, credits: u32) -> i32>,
    /// Asks call `call_key` to stop; it still ends with `END_OK` or `END_ERR`.
    pub cancel: Option<unsafe extern "C" fn(instance: *mut c_void, call_key: u64) -> i32>,
    /// For rule-provider kinds: evaluates `event` (JSON) and writes the proposals (JSON,
    /// `{"proposals": [...], "error": "..."}`) to `*out`, which the host releases. Synchronous.
    /// On `ATAMO_ERR_PANIC`, `*out` may still hold `{"error": "<panic message>"}`.
    pub evaluate: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            event: AtamoBytes,
            out: *mut AtamoBuffer,
        ) -> i32,
    >,
    /// Asks the instance a health question; writes a JSON answer to `*out`.
    pub health: Option<unsafe extern "C" fn(instance: *mut c_void, out: *mut AtamoBuffer) -> i32>,
    /// Destroys an instance once no call of it is running. Returns nothing.
    pub drop_instance: Option<unsafe extern "C" fn(instance: *mut c_void)>,
}

/// What a plugin library exports under [`DECLARATION_SYMBOL`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AtamoPluginDeclaration {
    /// Never changes layout: magic, versions, size.
    pub header: AtamoPluginHeader,
    /// `ATAMO_FLAG_*` bits.
    pub flags: u32,
    /// Reserved; zero.
    pub reserved: u32,
    /// The plugin's name (NUL-terminated UTF-8).
    pub name: *const c_char,
    /// The plugin's own version (NUL-terminated UTF-8).
    pub version: *const c_char,
    /// The version of the SDK it was built with, or of its author's ABI binding.
    pub sdk_version: *const c_char,
    /// The target triple it was built for (NUL-terminated).
    pub target: *const c_char,
    /// The kinds it offers (NUL-terminated JSON):
    /// `{"kinds": [{"name", "role": "agent" | "rule_provider", "config_schema": {...}}]}`.
    pub description: *const c_char,
    /// Its functions.
    pub vtable: *const AtamoPluginVTable,
}

/// An [`AtamoPluginDeclaration`] that can be a `static`: the declaration holds raw pointers,
/// which Rust does not share between threads without this promise.
#[repr(transparent)]
#[derive(Debug)]
pub struct ExportedDeclaration(pub AtamoPluginDeclaration);

// SAFETY: a declaration is immutable after it is built and every pointer in it points to
// 'static, immutable data (string literals and a static vtable), so reading it from several
// threads at once is sound.
#[allow(unsafe_code)]
unsafe impl Sync for ExportedDeclaration {}

impl AtamoPluginHeader {
    /// The header of a declaration built against this crate.
    pub const fn current() -> Self {
        Self {
            magic: ATAMO_PLUGIN_MAGIC,
            abi_major: ATAMO_ABI_MAJOR,
            abi_minor: ATAMO_ABI_MINOR,
            size: core::mem::size_of::<AtamoPluginDeclaration>() as u32,
        }
    }
}

const _: () = assert!(core::mem::size_of::<AtamoPluginHeader>() == 16);
