//! What [`export_plugin!`](crate::export_plugin) expands to calls into: not for direct use.
//!
//! The declaration is a `static`, so everything it points to is built at compile time: the C
//! strings and the JSON description are assembled by the `const fn`s below (no crate builds a
//! JSON document in a const context, hence by hand).

pub use crate::kinds::Plugin;
pub use crate::native::{call, cancel, credit, drop_instance, evaluate, health, init};
pub use atamo_plugin_abi::{
    AtamoBuffer, AtamoBytes, AtamoHostApi, AtamoPluginDeclaration, AtamoPluginHeader,
    AtamoPluginVTable, ExportedDeclaration, ATAMO_FLAG_PANIC_UNWIND, BUILD_TARGET,
};

use crate::kinds::{PluginAgent, PluginRuleProvider};

/// One kind, as the const description builder sees it.
#[derive(Debug, Clone, Copy)]
pub struct KindConst {
    name: &'static str,
    role: &'static str,
    description: &'static str,
    schema: &'static str,
}

impl KindConst {
    /// Agent kind `name` implemented by `T`.
    pub const fn agent<T: PluginAgent>(name: &'static str) -> Self {
        Self {
            name,
            role: "agent",
            description: T::DESCRIPTION,
            schema: T::CONFIG_SCHEMA,
        }
    }

    /// Rule-provider kind `name` implemented by `T`.
    pub const fn rule_provider<T: PluginRuleProvider>(name: &'static str) -> Self {
        Self {
            name,
            role: "rule_provider",
            description: T::DESCRIPTION,
            schema: T::CONFIG_SCHEMA,
        }
    }
}

/// `s` with a NUL byte appended, as an array of exactly `N = s.len() + 1` bytes.
pub const fn nul_terminated<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    assert!(
        bytes.len() + 1 == N,
        "wrong length for a NUL-terminated string"
    );
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i] != 0, "a declaration string must not contain NUL");
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Writes the description JSON into `out` (when given) and returns its length plus one (NUL).
const fn write_description(kinds: &[KindConst], mut out: Option<&mut [u8]>) -> usize {
    let mut w = Writer { at: 0 };
    w.raw(&mut out, b"{\"kinds\":[");
    let mut i = 0;
    while i < kinds.len() {
        if i > 0 {
            w.raw(&mut out, b",");
        }
        let k = kinds[i];
        w.raw(&mut out, b"{\"name\":");
        w.string(&mut out, k.name.as_bytes());
        w.raw(&mut out, b",\"role\":\"");
        w.raw(&mut out, k.role.as_bytes());
        w.raw(&mut out, b"\",\"description\":");
        w.string(&mut out, k.description.as_bytes());
        w.raw(&mut out, b",\"config_schema\":");
        // The schema is JSON already; the host parses and checks the whole description.
        w.raw(&mut out, k.schema.as_bytes());
        w.raw(&mut out, b"}");
        i += 1;
    }
    w.raw(&mut out, b"]}");
    w.at + 1
}

struct Writer {
    at: usize,
}

impl Writer {
    const fn raw(&mut self, out: &mut Option<&mut [u8]>, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            self.byte(out, bytes[i]);
            i += 1;
        }
    }

    const fn byte(&mut self, out: &mut Option<&mut [u8]>, b: u8) {
        if let Some(out) = out {
            out[self.at] = b;
        }
        self.at += 1;
    }

    /// A JSON string: quotes and backslashes escaped, control characters as spaces.
    const fn string(&mut self, out: &mut Option<&mut [u8]>, s: &[u8]) {
        self.byte(out, b'"');
        let mut i = 0;
        while i < s.len() {
            let b = s[i];
            if b == b'"' || b == b'\\' {
                self.byte(out, b'\\');
                self.byte(out, b);
            } else if b < 0x20 {
                self.byte(out, b' ');
            } else {
                self.byte(out, b);
            }
            i += 1;
        }
        self.byte(out, b'"');
    }
}

/// The length of the NUL-terminated description of `kinds`.
pub const fn description_len(kinds: &[KindConst]) -> usize {
    write_description(kinds, None)
}

/// The NUL-terminated description of `kinds`, `N = description_len(kinds)` bytes.
pub const fn description<const N: usize>(kinds: &[KindConst]) -> [u8; N] {
    let mut out = [0u8; N];
    let len = write_description(kinds, Some(&mut out));
    assert!(len == N, "wrong length for the description");
    out
}

/// The flags of a plugin compiled with the current panic strategy.
pub const fn flags(panic_unwind: bool) -> u32 {
    if panic_unwind {
        ATAMO_FLAG_PANIC_UNWIND
    } else {
        0
    }
}

/// Exports a plugin: its declaration, its vtable, and `plugin()` for [`serve_stdio`](crate::serve_stdio).
///
/// ```ignore
/// atamo_plugin_sdk::export_plugin! {
///     name: "weather",
///     version: env!("CARGO_PKG_VERSION"),
///     agents: { "forecast" => Forecast, "alerts" => Alerts },
///     rule_providers: { "storm-rules" => StormRules },
/// }
/// ```
///
/// The crate must allow `unsafe_code` (the default; `deny` is fine, `forbid` is not), because
/// the expansion exports a `#[no_mangle]` static and `extern "C"` functions.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr
        $(, agents: { $($akind:literal => $aty:ty),* $(,)? })?
        $(, rule_providers: { $($pkind:literal => $pty:ty),* $(,)? })?
        $(,)?
    ) => {
        /// The plugin's kinds, for `atamo_plugin_sdk::serve_stdio`.
        pub fn plugin() -> $crate::export::Plugin {
            $crate::export::Plugin::new($name, $version)
                $($( .agent::<$aty>($akind) )*)?
                $($( .rule_provider::<$pty>($pkind) )*)?
        }

        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod __atamo_plugin_export {
            use super::*;
            use $crate::export as x;

            const NAME: &str = $name;
            const VERSION: &str = $version;
            const KINDS: &[x::KindConst] = &[
                $($( x::KindConst::agent::<$aty>($akind), )*)?
                $($( x::KindConst::rule_provider::<$pty>($pkind), )*)?
            ];
            static NAME_C: [u8; NAME.len() + 1] = x::nul_terminated(NAME);
            static VERSION_C: [u8; VERSION.len() + 1] = x::nul_terminated(VERSION);
            static SDK_C: [u8; $crate::SDK_VERSION.len() + 1] =
                x::nul_terminated($crate::SDK_VERSION);
            static TARGET_C: [u8; x::BUILD_TARGET.len() + 1] = x::nul_terminated(x::BUILD_TARGET);
            static DESCRIPTION_C: [u8; x::description_len(KINDS)] = x::description(KINDS);

            fn registry() -> &'static x::Plugin {
                static PLUGIN: ::std::sync::OnceLock<x::Plugin> = ::std::sync::OnceLock::new();
                PLUGIN.get_or_init(super::plugin)
            }

            unsafe extern "C" fn init(
                host: *const x::AtamoHostApi,
                kind: x::AtamoBytes,
                config: x::AtamoBytes,
                instance: *mut *mut ::std::ffi::c_void,
                error: *mut x::AtamoBuffer,
            ) -> i32 {
                // SAFETY: the host calls this with the pointers the ABI describes.
                unsafe { x::init(registry(), host, kind, config, instance, error) }
            }

            static VTABLE: x::AtamoPluginVTable = x::AtamoPluginVTable {
                size: ::std::mem::size_of::<x::AtamoPluginVTable>() as u32,
                reserved: 0,
                init: Some(init),
                call: Some(x::call),
                credit: Some(x::credit),
                cancel: Some(x::cancel),
                evaluate: Some(x::evaluate),
                health: Some(x::health),
                drop_instance: Some(x::drop_instance),
            };

            #[no_mangle]
            #[allow(non_upper_case_globals)]
            pub static atamo_plugin_declaration: x::ExportedDeclaration =
                x::ExportedDeclaration(x::AtamoPluginDeclaration {
                    header: x::AtamoPluginHeader::current(),
                    flags: x::flags(cfg!(panic = "unwind")),
                    reserved: 0,
                    name: NAME_C.as_ptr().cast(),
                    version: VERSION_C.as_ptr().cast(),
                    sdk_version: SDK_C.as_ptr().cast(),
                    target: TARGET_C.as_ptr().cast(),
                    description: DESCRIPTION_C.as_ptr().cast(),
                    vtable: &VTABLE,
                });
        }
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct A;
    #[async_trait::async_trait]
    impl PluginAgent for A {
        type Config = serde_json::Value;
        const DESCRIPTION: &'static str = "says \"hi\"\\";
        const CONFIG_SCHEMA: &'static str = r#"{"type":"object","required":["x"]}"#;
        fn new(_: serde_json::Value) -> Result<Self, String> {
            Ok(A)
        }
        async fn call(
            &self,
            _: crate::CallRequest,
            _: crate::Call,
        ) -> Result<Option<serde_json::Value>, crate::CallError> {
            Ok(None)
        }
    }

    #[test]
    fn the_const_description_is_valid_json_with_every_kind() {
        const KINDS: &[KindConst] = &[KindConst::agent::<A>("a"), KindConst::agent::<A>("b\"")];
        const N: usize = description_len(KINDS);
        static D: [u8; N] = description(KINDS);
        assert_eq!(D[N - 1], 0);
        let parsed: atamo_plugin_protocol::Description =
            serde_json::from_slice(&D[..N - 1]).unwrap();
        assert_eq!(parsed.kinds.len(), 2);
        assert_eq!(parsed.kinds[1].name, "b\"");
        assert_eq!(parsed.kinds[0].description, "says \"hi\"\\");
        assert_eq!(parsed.kinds[0].config_schema["required"][0], "x");
    }
}
