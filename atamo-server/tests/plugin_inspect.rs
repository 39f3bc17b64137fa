//! `atamo plugin inspect <path>`, run as the real binary: a C agent built here from
//! `plugins/c-agent/hello_agent.c` is described as JSON on stdout with exit code 0; a file that
//! is not a plugin gets the load error on stderr, naming the file, and exit code 2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atamo_plugin_abi::{ATAMO_ABI_MAJOR, ATAMO_ABI_MINOR, BUILD_TARGET};
use serde_json::{json, Value};

/// A fresh directory under cargo's temp dir for this test target, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("plugin-inspect-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

use atamo_tests::plugins::{library_file, repo_file};

/// Compiles the C file `source` into the shared library `out`, declaring this host's target.
fn compile(source: &Path, out: &Path) {
    atamo_tests::plugins::compile_c(source, out, BUILD_TARGET, &[]);
}

fn inspect(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atamo"))
        .args(["plugin", "inspect"])
        .arg(path)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn inspect_prints_a_c_plugins_declaration_as_json() {
    let dir = TempDir::new("c-agent");
    let library = dir.0.join(library_file("hello_c"));
    compile(&repo_file("plugins/c-agent/hello_agent.c"), &library);

    let out = inspect(&library);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.is_empty(), "{stderr}");
    // Pretty: one field per line.
    assert!(stdout.starts_with("{\n  \""), "{stdout}");
    let mut info: Value = serde_json::from_str(&stdout).unwrap();

    let sha256 = info["sha256"].take();
    let sha256 = sha256.as_str().unwrap();
    assert_eq!(sha256.len(), 64, "{sha256}");
    assert!(sha256.bytes().all(|b| b.is_ascii_hexdigit()), "{sha256}");
    let path = info["path"].take();
    assert_eq!(
        Path::new(path.as_str().unwrap()),
        library.canonicalize().unwrap()
    );
    assert_eq!(
        info,
        json!({
            "path": null,
            "sha256": null,
            "name": "hello-c",
            "version": "1.0.0",
            "sdk_version": "c-header-1.0",
            "abi": format!("{ATAMO_ABI_MAJOR}.{ATAMO_ABI_MINOR}"),
            "target": BUILD_TARGET,
            "panic_unwind": true,
            "kinds": [{
                "name": "hello",
                "role": "agent",
                "description": "answers every call with its config and the request's size",
                "config_schema": {
                    "type": "object",
                    "properties": {"greeting": {"type": "string"}},
                    "required": ["greeting"],
                    "additionalProperties": false
                }
            }]
        })
    );

    // The hash is of the bytes: the same file hashes the same.
    let again: Value = serde_json::from_slice(&inspect(&library).stdout).unwrap();
    assert_eq!(again["sha256"], sha256);
}

#[test]
fn inspect_refuses_what_is_not_a_plugin_on_stderr_with_exit_code_2() {
    let dir = TempDir::new("not-plugins");

    // A file that is not a shared library at all.
    let text = dir.0.join(library_file("notes"));
    std::fs::write(&text, "not machine code\n").unwrap();
    // A shared library, but without the declaration.
    let source = dir.0.join("plain.c");
    std::fs::write(&source, "int plain(void) { return 1; }\n").unwrap();
    let plain = dir.0.join(library_file("plain"));
    compile(&source, &plain);
    // A file that does not exist.
    let missing = dir.0.join(library_file("missing"));

    for (file, says) in [
        (&text, "cannot open"),
        (
            &plain,
            "not an Atamo plugin: it exports no `atamo_plugin_declaration`",
        ),
        (&missing, "cannot open"),
    ] {
        let out = inspect(file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", file.display());
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            stderr.starts_with("error: ") && stderr.contains(name) && stderr.contains(says),
            "expected `{says}` about {name}, got: {stderr}"
        );
    }
}
