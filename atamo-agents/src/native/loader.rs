//! Opening plugin libraries and checking their declarations.

use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use atamo_core::{Control, TelemetryKind};
use atamo_plugin_abi::{
    AtamoPluginDeclaration, AtamoPluginHeader, AtamoPluginVTable, ATAMO_ABI_MAJOR, ATAMO_ABI_MINOR,
    ATAMO_FLAG_PANIC_UNWIND, ATAMO_PLUGIN_MAGIC, BUILD_TARGET, DECLARATION_SYMBOL,
};
use atamo_plugin_protocol::{Description, Role};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::LoadError;

/// What a plugin declares about itself; printed by `atamo plugin inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginInfo {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The SDK (or ABI binding) version it was built with.
    pub sdk_version: String,
    /// The plugin ABI version it was built against, `major.minor`.
    pub abi: String,
    /// Its target triple.
    pub target: String,
    /// Whether it was built with panic=unwind, so its panics are caught at the boundary.
    pub panic_unwind: bool,
    /// The kinds it offers, with their config schemas.
    pub kinds: Vec<atamo_plugin_protocol::KindInfo>,
}

/// A loaded plugin library. Libraries are never unloaded: code of a plugin may still be running
/// (a detached task, a thread it started) long after its last instance is gone, and unloading
/// would pull that code out from under it.
pub struct NativePlugin {
    pub(super) info: PluginInfo,
    pub(super) vtable: AtamoPluginVTable,
    _library: libloading::Library,
}

impl std::fmt::Debug for NativePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePlugin")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl NativePlugin {
    /// What the plugin declares.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The kind `kind` with role `role`, or the error naming what the plugin offers.
    pub(super) fn kind(
        &self,
        kind: &str,
        role: Role,
    ) -> Result<&atamo_plugin_protocol::KindInfo, LoadError> {
        self.info
            .kinds
            .iter()
            .find(|k| k.name == kind && k.role == role)
            .ok_or_else(|| LoadError::UnknownKind {
                file: self.info.path.clone(),
                plugin: self.info.name.clone(),
                version: self.info.version.clone(),
                role: match role {
                    Role::Agent => "agent",
                    Role::RuleProvider => "rule provider",
                },
                kind: kind.to_owned(),
                offered: self
                    .info
                    .kinds
                    .iter()
                    .map(|k| format!("{} ({:?})", k.name, k.role))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Loads native plugins from one directory, with the checks and records a service needs.
///
/// ```no_run
/// use atamo_agents::native::PluginLoader;
/// # fn f() -> Result<(), atamo_agents::native::LoadError> {
/// let loader = PluginLoader::new("/opt/atamo/plugins")
///     .pin("libweather.so", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
/// let plugin = loader.load("libweather.so")?;
/// println!("{} {}", plugin.info().name, plugin.info().version);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PluginLoader {
    dir: PathBuf,
    allow_panic_abort: bool,
    pins: HashMap<PathBuf, String>,
    control: Option<Control>,
}

impl PluginLoader {
    /// A loader for libraries in `dir` (and its subdirectories) only.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            allow_panic_abort: false,
            pins: HashMap::new(),
            control: None,
        }
    }

    /// Allows plugins built with panic=abort (a panic in one ends the hub). Off by default.
    #[must_use]
    pub fn allow_panic_abort(mut self, allow: bool) -> Self {
        self.allow_panic_abort = allow;
        self
    }

    /// Pins `file` (relative to the plugins directory, or absolute) to a SHA-256, hex. The
    /// hash is checked on the very bytes that are loaded.
    #[must_use]
    pub fn pin(mut self, file: impl AsRef<Path>, sha256_hex: impl Into<String>) -> Self {
        let path = self.dir.join(file.as_ref());
        self.pins
            .insert(path, sha256_hex.into().to_ascii_lowercase());
        self
    }

    /// Records every load, and every failed one, in this hub's telemetry.
    #[must_use]
    pub fn telemetry(mut self, control: Control) -> Self {
        self.control = Some(control);
        self
    }

    /// The plugins directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads `file` (relative to the plugins directory, or absolute inside it), checking it
    /// in order: inside the directory, readable, its pin, a shared library, the declaration
    /// symbol, the magic, the ABI version, the declaration's strings, the target, the panic
    /// strategy. Loading the same bytes again gives the same plugin (checked again against
    /// this loader's pin and panic rule); a file whose bytes changed since it was loaded is
    /// refused, since a library is never unloaded: give the new version a new file name, or
    /// restart.
    pub fn load(&self, file: impl AsRef<Path>) -> Result<Arc<NativePlugin>, LoadError> {
        let requested = self.dir.join(file.as_ref());
        let result = self.load_inner(&requested);
        if let Some(control) = &self.control {
            control.record(match &result {
                Ok(plugin) => TelemetryKind::PluginLoaded {
                    plugin: plugin.info.name.clone(),
                    version: plugin.info.version.clone(),
                    abi: plugin.info.abi.clone(),
                    path: plugin.info.path.display().to_string(),
                    sha256: plugin.info.sha256.clone(),
                },
                Err(err) => TelemetryKind::PluginLoadFailed {
                    path: requested.display().to_string(),
                    error: err.to_string(),
                },
            });
        }
        match &result {
            Ok(plugin) => tracing::info!(
                plugin = %plugin.info.name, version = %plugin.info.version,
                path = %plugin.info.path.display(), "plugin loaded"
            ),
            Err(err) => tracing::warn!("{err}"),
        }
        result
    }

    fn load_inner(&self, requested: &Path) -> Result<Arc<NativePlugin>, LoadError> {
        let cannot_open = |reason: String| LoadError::CannotOpen {
            file: requested.to_owned(),
            reason,
        };
        let dir = self
            .dir
            .canonicalize()
            .map_err(|e| cannot_open(format!("plugins directory {}: {e}", self.dir.display())))?;
        let path = requested
            .canonicalize()
            .map_err(|e| cannot_open(e.to_string()))?;
        if !path.starts_with(&dir) {
            return Err(LoadError::OutsideDirectory {
                file: requested.to_owned(),
                dir,
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| cannot_open(e.to_string()))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let pin = self
            .pins
            .iter()
            .find(|(pinned, _)| pinned.canonicalize().ok().as_deref() == Some(&path))
            .map(|(_, hash)| hash.clone());
        if let Some(expected) = pin {
            if expected != sha256 {
                return Err(LoadError::HashMismatch {
                    file: requested.to_owned(),
                    expected,
                    actual: sha256,
                });
            }
        }
        let mut loaded = loaded().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plugin) = loaded.get(&path) {
            // Loaded before (by this or another loader): the same bytes give the same plugin,
            // checked again against this loader's rules; other bytes need a restart.
            if plugin.info.sha256 != sha256 {
                return Err(LoadError::ChangedSinceLoaded {
                    file: requested.to_owned(),
                    plugin: plugin.info.name.clone(),
                    loaded: plugin.info.sha256.clone(),
                    now: sha256,
                });
            }
            check_panic_strategy(&plugin.info, self.allow_panic_abort)?;
            return Ok(plugin.clone());
        }
        let plugin = Arc::new(open(
            &path,
            &bytes,
            sha256,
            Checks::load(self.allow_panic_abort),
        )?);
        Ok(loaded.entry(path).or_insert(plugin).clone())
    }
}

/// Which declaration checks refuse a library.
#[derive(Clone, Copy)]
struct Checks {
    target: bool,
    panic_abort_allowed: bool,
}

impl Checks {
    fn load(panic_abort_allowed: bool) -> Self {
        Self {
            target: true,
            panic_abort_allowed,
        }
    }

    /// Inspecting reports the target and panic strategy rather than refusing them.
    fn inspect() -> Self {
        Self {
            target: false,
            panic_abort_allowed: true,
        }
    }
}

fn check_panic_strategy(info: &PluginInfo, allowed: bool) -> Result<(), LoadError> {
    if !info.panic_unwind && !allowed {
        return Err(LoadError::PanicAbort {
            file: info.path.clone(),
            plugin: info.name.clone(),
            version: info.version.clone(),
        });
    }
    Ok(())
}

/// Every library loaded in this process, by canonical path; never emptied.
fn loaded() -> &'static Mutex<HashMap<PathBuf, Arc<NativePlugin>>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<NativePlugin>>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

/// Reads a plugin's declaration without creating any instance, from any path: what `atamo
/// plugin inspect` prints. The library is loaded into this process (reading its declaration
/// needs that) but nothing in it runs except its static initialisers.
pub fn inspect(path: impl AsRef<Path>) -> Result<PluginInfo, LoadError> {
    let path = path.as_ref();
    let cannot_open = |e: std::io::Error| LoadError::CannotOpen {
        file: path.to_owned(),
        reason: e.to_string(),
    };
    let path = path.canonicalize().map_err(cannot_open)?;
    let bytes = std::fs::read(&path).map_err(cannot_open)?;
    let sha256 = hex(&Sha256::digest(&bytes));
    open(&path, &bytes, sha256, Checks::inspect()).map(|plugin| plugin.info.clone())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens and checks one library from `bytes`, the contents of `path` just read and hashed.
///
/// The library is loaded from a private copy of those bytes, never from `path` itself: what
/// runs is exactly what was hashed even if the file is replaced meanwhile, and the dynamic
/// loader cannot hand back an older library it already mapped from the same path.
fn open(
    path: &Path,
    bytes: &[u8],
    sha256: String,
    checks: Checks,
) -> Result<NativePlugin, LoadError> {
    let file = path.to_owned();
    let copy = private_copy(bytes).map_err(|e| LoadError::CannotOpen {
        file: file.clone(),
        reason: format!("cannot make a private copy to load: {e}"),
    })?;
    let library = dlopen(&file, copy.path());
    drop(copy);
    let library = library?;
    let declaration = declaration(&file, &library)?;
    let info = read_info(&file, sha256, declaration)?;
    if checks.target && info.target != BUILD_TARGET {
        return Err(LoadError::WrongTarget {
            file,
            plugin: info.name,
            version: info.version,
            plugin_target: info.target,
            host_target: BUILD_TARGET.to_owned(),
        });
    }
    check_panic_strategy(&info, checks.panic_abort_allowed)?;
    let bad = |reason: &str| LoadError::BadDeclaration {
        file: file.clone(),
        plugin: info.name.clone(),
        reason: reason.to_owned(),
    };
    // SAFETY: `declaration` points into the library, which stays loaded; its size was checked.
    let vtable_ptr = unsafe { (*declaration).vtable };
    if vtable_ptr.is_null() {
        return Err(bad("the vtable is null"));
    }
    // SAFETY: non-null and inside the loaded library; the size field is first in every version.
    let vtable_size = unsafe { (*vtable_ptr).size } as usize;
    if vtable_size < std::mem::size_of::<AtamoPluginVTable>() {
        return Err(bad("the vtable is shorter than ABI 1.0's"));
    }
    // SAFETY: the vtable is at least as large as ours.
    let vtable = unsafe { *vtable_ptr };
    if vtable.init.is_none() || vtable.drop_instance.is_none() {
        return Err(bad("the vtable lacks `init` or `drop_instance`"));
    }
    Ok(NativePlugin {
        info,
        vtable,
        _library: library,
    })
}

fn private_copy(bytes: &[u8]) -> std::io::Result<TempFile> {
    let path = std::env::temp_dir().join(format!(
        "atamo-plugin-{}-{:016x}.so",
        std::process::id(),
        fastrand::u64(..)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o500 | 0o200);
    }
    let mut file = options.open(&path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(TempFile(path))
}

/// A file removed when dropped (the loaded library stays mapped).
struct TempFile(PathBuf);

impl TempFile {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn dlopen(file: &Path, load_from: &Path) -> Result<libloading::Library, LoadError> {
    // SAFETY: loading a library runs its initialisers. That is the trust a plugins directory
    // (and an optional pin) expresses; nothing else of the library runs before its
    // declaration is checked.
    unsafe { libloading::Library::new(load_from) }.map_err(|e| LoadError::CannotOpen {
        file: file.to_owned(),
        // The system names the private copy it was given; name the user's file instead.
        reason: e.to_string().replace(
            &load_from.display().to_string(),
            &file.display().to_string(),
        ),
    })
}

fn declaration(
    file: &Path,
    library: &libloading::Library,
) -> Result<*const AtamoPluginDeclaration, LoadError> {
    // SAFETY: the symbol is a static (data, not a function); we take its address only.
    let symbol = unsafe { library.get::<*const AtamoPluginHeader>(DECLARATION_SYMBOL.as_bytes()) }
        .map_err(|_| LoadError::NotAPlugin {
            file: file.to_owned(),
            symbol: DECLARATION_SYMBOL,
        })?;
    // For a data symbol, the `Symbol<*const T>` holds the symbol's address: the declaration.
    let header_ptr: *const AtamoPluginHeader = *symbol;
    if header_ptr.is_null() {
        return Err(LoadError::NotAPlugin {
            file: file.to_owned(),
            symbol: DECLARATION_SYMBOL,
        });
    }
    // SAFETY: every declaration starts with the 16-byte header, in every ABI version.
    let header = unsafe { header_ptr.read_unaligned() };
    if header.magic != ATAMO_PLUGIN_MAGIC {
        return Err(LoadError::BadMagic {
            file: file.to_owned(),
            found: String::from_utf8_lossy(&header.magic).into_owned(),
        });
    }
    if header.abi_major != ATAMO_ABI_MAJOR {
        return Err(LoadError::AbiMajor {
            file: file.to_owned(),
            plugin_major: header.abi_major,
            plugin_minor: header.abi_minor,
            host_major: ATAMO_ABI_MAJOR,
            host_minor: ATAMO_ABI_MINOR,
        });
    }
    if header.abi_minor > ATAMO_ABI_MINOR {
        return Err(LoadError::AbiMinor {
            file: file.to_owned(),
            plugin_major: header.abi_major,
            plugin_minor: header.abi_minor,
            host_major: ATAMO_ABI_MAJOR,
            host_minor: ATAMO_ABI_MINOR,
        });
    }
    if (header.size as usize) < std::mem::size_of::<AtamoPluginDeclaration>() {
        return Err(LoadError::BadDeclaration {
            file: file.to_owned(),
            plugin: "(name not read)".to_owned(),
            reason: format!(
                "it declares {} bytes, ABI 1.0 needs {}",
                header.size,
                std::mem::size_of::<AtamoPluginDeclaration>()
            ),
        });
    }
    Ok(header_ptr.cast())
}

fn read_info(
    file: &Path,
    sha256: String,
    declaration: *const AtamoPluginDeclaration,
) -> Result<PluginInfo, LoadError> {
    // SAFETY: the header said the declaration is at least as large as ours.
    let d = unsafe { &*declaration };
    let mut name = String::new();
    let text = |ptr: *const c_char, what: &str, name: &str| -> Result<String, LoadError> {
        if ptr.is_null() {
            return Err(LoadError::BadDeclaration {
                file: file.to_owned(),
                plugin: name.to_owned(),
                reason: format!("its {what} is null"),
            });
        }
        // SAFETY: a declaration's strings are NUL-terminated statics of the library.
        let s = unsafe { CStr::from_ptr(ptr) };
        s.to_str()
            .map(str::to_owned)
            .map_err(|_| LoadError::BadDeclaration {
                file: file.to_owned(),
                plugin: name.to_owned(),
                reason: format!("its {what} is not UTF-8"),
            })
    };
    name = text(d.name, "name", &name)?;
    let version = text(d.version, "version", &name)?;
    let sdk_version = text(d.sdk_version, "SDK version", &name)?;
    let target = text(d.target, "target", &name)?;
    let description = text(d.description, "description", &name)?;
    let description: Description =
        serde_json::from_str(&description).map_err(|e| LoadError::BadDeclaration {
            file: file.to_owned(),
            plugin: name.clone(),
            reason: format!("its description is not the expected JSON: {e}"),
        })?;
    Ok(PluginInfo {
        path: file.to_owned(),
        sha256,
        name,
        version,
        sdk_version,
        abi: format!("{}.{}", d.header.abi_major, d.header.abi_minor),
        target,
        panic_unwind: d.flags & ATAMO_FLAG_PANIC_UNWIND != 0,
        kinds: description.kinds,
    })
}
