//! Why a native plugin could not be loaded or instantiated. Every message names the file, the
//! plugin (once known), the versions involved and what to do about it.

use std::path::PathBuf;

/// A native plugin failed to load, or an instance of one failed to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file is not inside the configured plugins directory.
    #[error(
        "{}: not inside the plugins directory {}; copy the library there (native code is only \
         loaded from the configured plugins directory)",
        .file.display(), .dir.display()
    )]
    OutsideDirectory {
        /// The file asked for.
        file: PathBuf,
        /// The plugins directory.
        dir: PathBuf,
    },
    /// The file could not be read or opened as a shared library.
    #[error(
        "{}: cannot open: {reason}; check that the file exists, is readable and is a shared \
         library built for this platform",
        .file.display()
    )]
    CannotOpen {
        /// The file.
        file: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// The file's SHA-256 differs from the pinned one.
    #[error(
        "{}: sha256 is {actual}, but the configuration pins {expected}; the file changed since \
         it was pinned: verify it and update the pin",
        .file.display()
    )]
    HashMismatch {
        /// The file.
        file: PathBuf,
        /// The pinned hash.
        expected: String,
        /// The hash of the bytes read.
        actual: String,
    },
    /// The file was loaded before with other bytes; libraries are never unloaded.
    #[error(
        "{}: plugin `{plugin}` was loaded with sha256 {loaded}, the file now has {now}; a \
         loaded library is never replaced: give the new version a new file name, or restart \
         the hub",
        .file.display()
    )]
    ChangedSinceLoaded {
        /// The file.
        file: PathBuf,
        /// The plugin loaded from it.
        plugin: String,
        /// The hash of the bytes loaded then.
        loaded: String,
        /// The hash of the bytes now.
        now: String,
    },
    /// The library does not export the declaration symbol.
    #[error(
        "{}: not an Atamo plugin: it exports no `{symbol}`; build it with \
         `atamo_plugin_sdk::export_plugin!` (Rust) or define it with `ATAMO_PLUGIN_DECLARATION` \
         from atamo_plugin.h (C)",
        .file.display()
    )]
    NotAPlugin {
        /// The file.
        file: PathBuf,
        /// The symbol looked for.
        symbol: &'static str,
    },
    /// The declaration does not start with the magic bytes.
    #[error(
        "{}: not an Atamo plugin: its declaration starts with {found:?}, not \"ATAMOPLG\"; \
         rebuild it against atamo-plugin-abi",
        .file.display()
    )]
    BadMagic {
        /// The file.
        file: PathBuf,
        /// The bytes found.
        found: String,
    },
    /// The plugin was built for another major version of the ABI.
    #[error(
        "{}: plugin built for plugin ABI {plugin_major}.{plugin_minor}, this host speaks ABI \
         {host_major}.{host_minor}; major versions must match: rebuild the plugin against \
         atamo-plugin-abi {host_major}.x",
        .file.display()
    )]
    AbiMajor {
        /// The file.
        file: PathBuf,
        /// The plugin's ABI major version.
        plugin_major: u16,
        /// The plugin's ABI minor version.
        plugin_minor: u16,
        /// The host's.
        host_major: u16,
        /// The host's.
        host_minor: u16,
    },
    /// The plugin needs a newer minor version of the ABI than the host has.
    #[error(
        "{}: plugin built for plugin ABI {plugin_major}.{plugin_minor}, newer than this host's \
         {host_major}.{host_minor}; upgrade the hub, or rebuild the plugin against ABI \
         {host_major}.{host_minor}",
        .file.display()
    )]
    AbiMinor {
        /// The file.
        file: PathBuf,
        /// The plugin's ABI major version.
        plugin_major: u16,
        /// The plugin's ABI minor version.
        plugin_minor: u16,
        /// The host's.
        host_major: u16,
        /// The host's.
        host_minor: u16,
    },
    /// The declaration is malformed (a null or non-UTF-8 string, bad description JSON, a short
    /// vtable).
    #[error("{}: plugin `{plugin}` has a malformed declaration: {reason}; rebuild it with a released SDK", .file.display())]
    BadDeclaration {
        /// The file.
        file: PathBuf,
        /// The plugin's name, if it could be read.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// The plugin was built for another target.
    #[error(
        "{}: plugin `{plugin}` {version} was built for {plugin_target}, this host runs on \
         {host_target}; build it for the host's target (`cargo build --target {host_target}`, \
         or `-DATAMO_TARGET='\"{host_target}\"'` for a C plugin)",
        .file.display()
    )]
    WrongTarget {
        /// The file.
        file: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// Its version.
        version: String,
        /// Its target.
        plugin_target: String,
        /// The host's.
        host_target: String,
    },
    /// The plugin was built with `panic = "abort"` and the host does not allow that.
    #[error(
        "{}: plugin `{plugin}` {version} was built with panic=abort: a panic in it would end \
         the whole hub; rebuild it with panic=unwind (the default), or allow such plugins \
         explicitly with `allow_panic_abort`",
        .file.display()
    )]
    PanicAbort {
        /// The file.
        file: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// Its version.
        version: String,
    },
    /// The plugin offers no kind of that name, or it has another role.
    #[error(
        "{}: plugin `{plugin}` {version} offers no {role} kind `{kind}`; it offers: {offered}",
        .file.display()
    )]
    UnknownKind {
        /// The file.
        file: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// Its version.
        version: String,
        /// `agent` or `rule provider`.
        role: &'static str,
        /// The kind asked for.
        kind: String,
        /// What it offers, `name (role)` comma-separated.
        offered: String,
    },
    /// The init metadata does not match the kind's schema.
    #[error(
        "{}: plugin `{plugin}` {version}, kind `{kind}`: the init metadata does not match the \
         kind's schema: {}; fix the registration's config",
        .file.display(), .problems.join("; ")
    )]
    BadConfig {
        /// The file.
        file: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// Its version.
        version: String,
        /// The kind.
        kind: String,
        /// Every problem, each naming its field.
        problems: Vec<String>,
    },
    /// The plugin's `init` failed.
    #[error(
        "{}: plugin `{plugin}` {version}, kind `{kind}`: init failed (code {code}): {message}",
        .file.display()
    )]
    InitFailed {
        /// The file.
        file: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// Its version.
        version: String,
        /// The kind.
        kind: String,
        /// The `ATAMO_ERR_*` code.
        code: i32,
        /// The plugin's message.
        message: String,
    },
}
