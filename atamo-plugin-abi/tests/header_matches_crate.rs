//! The C header and the crate describe the same ABI: compile a C program against
//! `include/atamo_plugin.h` that prints every struct size, field offset and constant, and
//! compare with what Rust computes from the crate. A change to one without the other fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use atamo_plugin_abi::*;

/// (struct, [fields]) in the order the header declares them; used for both sides.
macro_rules! layout {
    ($( $ty:ident { $($field:ident),* $(,)? } )*) => {
        fn rust_layout() -> BTreeMap<String, i64> {
            let mut m = BTreeMap::new();
            $(
                m.insert(format!("sizeof {}", stringify!($ty)), size_of::<$ty>() as i64);
                $( m.insert(
                    format!("offsetof {}.{}", stringify!($ty), stringify!($field)),
                    offset_of!($ty, $field) as i64,
                ); )*
            )*
            m
        }

        fn c_layout_lines() -> String {
            let mut out = String::new();
            $(
                out += &format!(
                    "    printf(\"sizeof {0} %zu\\n\", sizeof({0}));\n",
                    stringify!($ty)
                );
                $( out += &format!(
                    "    printf(\"offsetof {0}.{1} %zu\\n\", offsetof({0}, {1}));\n",
                    stringify!($ty), stringify!($field)
                ); )*
            )*
            out
        }
    };
}

layout! {
    AtamoBytes { ptr, len }
    AtamoBuffer { ptr, len, owner, release }
    AtamoPluginHeader { magic, abi_major, abi_minor, size }
    AtamoHostApi { size, reserved, host, emit, log }
    AtamoPluginVTable { size, reserved, init, call, credit, cancel, evaluate, health, drop_instance }
    AtamoPluginDeclaration { header, flags, reserved, name, version, sdk_version, target, description, vtable }
}

const CONSTANTS: &[(&str, i64)] = &[
    ("ATAMO_ABI_MAJOR", ATAMO_ABI_MAJOR as i64),
    ("ATAMO_ABI_MINOR", ATAMO_ABI_MINOR as i64),
    ("ATAMO_FLAG_PANIC_UNWIND", ATAMO_FLAG_PANIC_UNWIND as i64),
    ("ATAMO_OK", ATAMO_OK as i64),
    ("ATAMO_ERR_PANIC", ATAMO_ERR_PANIC as i64),
    ("ATAMO_ERR_INVALID", ATAMO_ERR_INVALID as i64),
    ("ATAMO_ERR_UNKNOWN_KIND", ATAMO_ERR_UNKNOWN_KIND as i64),
    ("ATAMO_ERR_INIT", ATAMO_ERR_INIT as i64),
    ("ATAMO_ERR_UNKNOWN_CALL", ATAMO_ERR_UNKNOWN_CALL as i64),
    ("ATAMO_ERR_UNSUPPORTED", ATAMO_ERR_UNSUPPORTED as i64),
    ("ATAMO_EMIT_DATA", ATAMO_EMIT_DATA as i64),
    ("ATAMO_EMIT_END_OK", ATAMO_EMIT_END_OK as i64),
    ("ATAMO_EMIT_END_ERR", ATAMO_EMIT_END_ERR as i64),
    ("ATAMO_LOG_ERROR", ATAMO_LOG_ERROR as i64),
    ("ATAMO_LOG_WARN", ATAMO_LOG_WARN as i64),
    ("ATAMO_LOG_INFO", ATAMO_LOG_INFO as i64),
    ("ATAMO_LOG_DEBUG", ATAMO_LOG_DEBUG as i64),
    ("ATAMO_LOG_TRACE", ATAMO_LOG_TRACE as i64),
];

#[test]
fn the_c_header_and_the_crate_agree_on_every_size_offset_and_constant() {
    let include = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi-header-check");
    std::fs::create_dir_all(&dir).unwrap();

    let mut program = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"atamo_plugin.h\"\nint main(void) {\n",
    );
    program += &c_layout_lines();
    for (name, _) in CONSTANTS {
        program += &format!("    printf(\"const {name} %lld\\n\", (long long)({name}));\n");
    }
    program += "    printf(\"magic %s\\n\", ATAMO_PLUGIN_MAGIC);\n";
    program += "    printf(\"symbol %s\\n\", ATAMO_DECLARATION_SYMBOL);\n";
    program += "    return 0;\n}\n";
    let source = dir.join("layout.c");
    let binary = dir.join("layout");
    std::fs::write(&source, program).unwrap();

    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let compiled = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(&include)
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .output()
        .unwrap_or_else(|e| panic!("running the C compiler `{cc}`: {e}"));
    assert!(
        compiled.status.success(),
        "the header does not compile:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let run = Command::new(&binary).output().unwrap();
    assert!(run.status.success());
    let text = String::from_utf8(run.stdout).unwrap();

    let mut c = BTreeMap::new();
    let mut strings = BTreeMap::new();
    for line in text.lines() {
        let (key, value) = line.rsplit_once(' ').unwrap();
        match key {
            "magic" | "symbol" => {
                strings.insert(key.to_owned(), value.to_owned());
            }
            _ => {
                c.insert(key.to_owned(), value.parse::<i64>().unwrap());
            }
        }
    }
    let mut rust = rust_layout();
    for (name, value) in CONSTANTS {
        rust.insert(format!("const {name}"), *value);
    }
    let keys: std::collections::BTreeSet<_> = c.keys().chain(rust.keys()).collect();
    let differences: Vec<String> = keys
        .into_iter()
        .filter(|k| c.get(*k) != rust.get(*k))
        .map(|k| format!("{k}: header {:?}, crate {:?}", c.get(k), rust.get(k)))
        .collect();
    assert!(
        differences.is_empty(),
        "the header and the crate differ:\n{}",
        differences.join("\n")
    );
    assert_eq!(strings["magic"].as_bytes(), &ATAMO_PLUGIN_MAGIC);
    assert_eq!(strings["symbol"], DECLARATION_SYMBOL);
}

#[test]
fn the_header_never_changes_size() {
    assert_eq!(size_of::<AtamoPluginHeader>(), 16);
    let h = AtamoPluginHeader::current();
    assert_eq!(h.magic, *b"ATAMOPLG");
    assert_eq!(h.size as usize, size_of::<AtamoPluginDeclaration>());
}
