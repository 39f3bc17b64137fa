//! Every way `PluginLoader::load` (and `NativeAgent::new`) refuses a library, each error
//! checked for its variant and for a message that names the file, the plugin once known, the
//! versions involved and the fix; every load and failed load recorded in telemetry; and the C
//! agent of `plugins/c-agent`, built from source here, answering requests in a hub.
//!
//! The libraries are compiled at test time from C with the system compiler (`$CC`, or `cc`):
//! `tests/fixtures/bad_plugin.c` shaped by `-D` defines into each bad declaration, and
//! `plugins/c-agent/hello_agent.c`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use atamo_agents::native::{inspect, LoadError, NativeAgent, NativeRuleProvider, PluginLoader};
use atamo_core::request::RequestState;
use atamo_core::{Hub, TelemetryKind};
use atamo_plugin_sdk::abi::{
    ATAMO_ABI_MAJOR, ATAMO_ABI_MINOR, ATAMO_ERR_INIT, BUILD_TARGET, DECLARATION_SYMBOL,
};
use atamo_plugin_sdk::protocol::Role;
use serde_json::{json, Value};
use support::tempdir::Dir;
use support::{ask, hub_with, library_file};

const WAIT: Duration = Duration::from_secs(20);

use atamo_tests::plugins::{compile_c as compile, repo_file};

/// Builds `tests/fixtures/bad_plugin.c` with `defines` into `dir` as library `name`; returns
/// the file name.
fn fixture(dir: &Path, name: &str, defines: &[&str]) -> String {
    fixture_for(dir, name, BUILD_TARGET, defines)
}

fn fixture_for(dir: &Path, name: &str, target: &str, defines: &[&str]) -> String {
    let file = library_file(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad_plugin.c");
    compile(&source, &dir.join(&file), target, defines);
    file
}

/// Builds the C agent `plugins/c-agent/hello_agent.c` into `dir`; returns the file name.
fn c_agent(dir: &Path) -> String {
    let file = library_file("hello_c");
    compile(
        &repo_file("plugins/c-agent/hello_agent.c"),
        &dir.join(&file),
        BUILD_TARGET,
        &[],
    );
    file
}

/// Asserts that `text` contains every one of `parts`.
#[track_caller]
fn says(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "`{part}` is missing from: {text}");
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// The canonical path of `file` in `dir`: what errors found after the path check name.
fn at(dir: &Dir, file: &str) -> PathBuf {
    dir.path().join(file).canonicalize().unwrap()
}

#[test]
fn a_missing_file_or_one_that_is_not_a_library_cannot_be_opened() {
    let dir = Dir::new();
    let loader = PluginLoader::new(dir.path());

    let err = loader.load("libmissing.so").unwrap_err();
    let LoadError::CannotOpen { file, .. } = &err else {
        panic!("expected CannotOpen, got {err:?}")
    };
    assert_eq!(file, &dir.path().join("libmissing.so"));
    says(
        &err.to_string(),
        &[
            &shown(file),
            "cannot open",
            "check that the file exists, is readable and is a shared library",
        ],
    );

    let text_file = library_file("not_a_library");
    std::fs::write(
        dir.path().join(&text_file),
        "this is text, not machine code\n",
    )
    .unwrap();
    let err = loader.load(&text_file).unwrap_err();
    let LoadError::CannotOpen { file, reason } = &err else {
        panic!("expected CannotOpen, got {err:?}")
    };
    // The reason is the system loader's own (e.g. "invalid ELF header"), naming the file.
    assert!(reason.contains(&text_file), "{reason}");
    says(
        &err.to_string(),
        &[
            &shown(file),
            "cannot open",
            "a shared library built for this platform",
        ],
    );
}

#[test]
fn a_library_without_the_declaration_is_not_an_atamo_plugin() {
    let dir = Dir::new();
    let file = fixture(dir.path(), "no_declaration", &["-DFIXTURE_NO_DECLARATION"]);
    let err = PluginLoader::new(dir.path()).load(&file).unwrap_err();
    let LoadError::NotAPlugin { symbol, .. } = &err else {
        panic!("expected NotAPlugin, got {err:?}")
    };
    assert_eq!(*symbol, DECLARATION_SYMBOL);
    says(
        &err.to_string(),
        &[
            &shown(&at(&dir, &file)),
            "not an Atamo plugin",
            "exports no `atamo_plugin_declaration`",
            "export_plugin!",
            "atamo_plugin.h",
        ],
    );
}

#[test]
fn a_declaration_with_other_magic_bytes_is_refused() {
    let dir = Dir::new();
    let file = fixture(dir.path(), "bad_magic", &["-DFIXTURE_BAD_MAGIC"]);
    let err = PluginLoader::new(dir.path()).load(&file).unwrap_err();
    assert_eq!(
        err,
        LoadError::BadMagic {
            file: at(&dir, &file),
            found: "NOTATAMO".to_owned(),
        }
    );
    says(
        &err.to_string(),
        &[
            &shown(&at(&dir, &file)),
            "not an Atamo plugin",
            "\"NOTATAMO\"",
            "\"ATAMOPLG\"",
            "rebuild it against atamo-plugin-abi",
        ],
    );
}

#[test]
fn another_abi_major_version_is_refused_naming_both_versions() {
    let dir = Dir::new();
    let major = ATAMO_ABI_MAJOR + 1;
    let file = fixture(
        dir.path(),
        "abi_major",
        &[&format!("-DFIXTURE_ABI_MAJOR={major}")],
    );
    let err = PluginLoader::new(dir.path()).load(&file).unwrap_err();
    assert_eq!(
        err,
        LoadError::AbiMajor {
            file: at(&dir, &file),
            plugin_major: major,
            plugin_minor: ATAMO_ABI_MINOR,
            host_major: ATAMO_ABI_MAJOR,
            host_minor: ATAMO_ABI_MINOR,
        }
    );
    says(
        &err.to_string(),
        &[
            &shown(&at(&dir, &file)),
            &format!("plugin built for plugin ABI {major}.{ATAMO_ABI_MINOR}"),
            &format!("this host speaks ABI {ATAMO_ABI_MAJOR}.{ATAMO_ABI_MINOR}"),
            &format!("rebuild the plugin against atamo-plugin-abi {ATAMO_ABI_MAJOR}.x"),
        ],
    );
}

#[test]
fn a_newer_abi_minor_version_is_refused_naming_both_versions() {
    let dir = Dir::new();
    let minor = ATAMO_ABI_MINOR + 1;
    let file = fixture(
        dir.path(),
        "abi_minor",
        &[&format!("-DFIXTURE_ABI_MINOR={minor}")],
    );
    let err = PluginLoader::new(dir.path()).load(&file).unwrap_err();
    assert_eq!(
        err,
        LoadError::AbiMinor {
            file: at(&dir, &file),
            plugin_major: ATAMO_ABI_MAJOR,
            plugin_minor: minor,
            host_major: ATAMO_ABI_MAJOR,
            host_minor: ATAMO_ABI_MINOR,
        }
    );
    says(
        &err.to_string(),
        &[
            &shown(&at(&dir, &file)),
            &format!("plugin built for plugin ABI {ATAMO_ABI_MAJOR}.{minor}"),
            &format!("newer than this host's {ATAMO_ABI_MAJOR}.{ATAMO_ABI_MINOR}"),
            "upgrade the hub",
        ],
    );
}

#[test]
fn a_plugin_for_another_target_is_refused_naming_both_targets() {
    let dir = Dir::new();
    let other = if BUILD_TARGET == "riscv64gc-unknown-linux-gnu" {
        "aarch64-unknown-linux-gnu"
    } else {
        "riscv64gc-unknown-linux-gnu"
    };
    let file = fixture_for(
        dir.path(),
        "wrong_target",
        other,
        &["-DFIXTURE_NAME=\"cross-built\""],
    );
    let err = PluginLoader::new(dir.path()).load(&file).unwrap_err();
    assert_eq!(
        err,
        LoadError::WrongTarget {
            file: at(&dir, &file),
            plugin: "cross-built".to_owned(),
            version: "0.0.1".to_owned(),
            plugin_target: other.to_owned(),
            host_target: BUILD_TARGET.to_owned(),
        }
    );
    says(
        &err.to_string(),
        &[
            &shown(&at(&dir, &file)),
            "plugin `cross-built` 0.0.1",
            &format!("was built for {other}"),
            &format!("this host runs on {BUILD_TARGET}"),
            &format!("`cargo build --target {BUILD_TARGET}`"),
        ],
    );
}

#[test]
fn a_panic_abort_plugin_is_refused_unless_allowed() {
    let dir = Dir::new();
    let file = fixture(
        dir.path(),
        "panic_abort",
        &["-DFIXTURE_FLAGS=0", "-DFIXTURE_NAME=\"aborter\""],
    );
    let err = PluginLoader::new(dir.path()).load(&file).unwrap_err();
    assert_eq!(
        err,
        LoadError::PanicAbort {
            file: at(&dir, &file),
            plugin: "aborter".to_owned(),
            version: "0.0.1".to_owned(),
        }
    );
    says(
        &err.to_string(),
        &[
            &shown(&at(&dir, &file)),
            "plugin `aborter` 0.0.1",
            "built with panic=abort",
            "rebuild it with panic=unwind",
            "allow_panic_abort",
        ],
    );

    // `inspect` reports the strategy without refusing.
    let info = inspect(dir.path().join(&file)).unwrap();
    assert!(!info.panic_unwind);

    let plugin = PluginLoader::new(dir.path())
        .allow_panic_abort(true)
        .load(&file)
        .unwrap();
    assert_eq!(plugin.info().name, "aborter");
    assert!(!plugin.info().panic_unwind);
}

#[test]
fn a_failing_init_passes_its_message_through() {
    let dir = Dir::new();
    const MESSAGE: &str = "the licence file /etc/fixture.lic is missing";
    let file = fixture(
        dir.path(),
        "init_fails",
        &[&format!("-DFIXTURE_INIT_ERROR=\"{MESSAGE}\"")],
    );
    let plugin = PluginLoader::new(dir.path()).load(&file).unwrap();
    let err = NativeAgent::new(plugin, "fixture", &json!({}), "a").unwrap_err();
    assert_eq!(
        err,
        LoadError::InitFailed {
            file: at(&dir, &file),
            plugin: "bad-fixture".to_owned(),
            version: "0.0.1".to_owned(),
            kind: "fixture".to_owned(),
            code: ATAMO_ERR_INIT,
            message: MESSAGE.to_owned(),
        }
    );
    says(
        &err.to_string(),
        &[
            &shown(&at(&dir, &file)),
            "plugin `bad-fixture` 0.0.1, kind `fixture`",
            &format!("init failed (code {ATAMO_ERR_INIT})"),
            MESSAGE,
        ],
    );
}

#[test]
fn only_libraries_inside_the_plugins_directory_are_loaded() {
    let plugins = Dir::new();
    let elsewhere = Dir::new();
    let file = c_agent(elsewhere.path());
    let loader = PluginLoader::new(plugins.path());
    let plugins_canonical = plugins.path().canonicalize().unwrap();

    // An absolute path elsewhere.
    let outside = elsewhere.path().join(&file);
    let err = loader.load(&outside).unwrap_err();
    assert_eq!(
        err,
        LoadError::OutsideDirectory {
            file: outside.clone(),
            dir: plugins_canonical.clone(),
        }
    );
    says(
        &err.to_string(),
        &[
            &shown(&outside),
            &format!(
                "not inside the plugins directory {}",
                shown(&plugins_canonical)
            ),
            "copy the library there",
        ],
    );

    // A relative path climbing out with `..` (both directories sit side by side).
    let climbing = Path::new("..")
        .join(elsewhere.path().file_name().unwrap())
        .join(&file);
    let err = loader.load(&climbing).unwrap_err();
    assert!(
        matches!(&err, LoadError::OutsideDirectory { file, .. } if file == &plugins.path().join(&climbing)),
        "{err:?}"
    );
    says(&err.to_string(), &["not inside the plugins directory"]);

    // A symbolic link inside pointing outside is judged by where it points.
    #[cfg(unix)]
    {
        let link = library_file("linked");
        std::os::unix::fs::symlink(&outside, plugins.path().join(&link)).unwrap();
        let err = loader.load(&link).unwrap_err();
        assert!(matches!(err, LoadError::OutsideDirectory { .. }), "{err:?}");
    }

    // The same library copied inside loads.
    std::fs::copy(&outside, plugins.path().join(&file)).unwrap();
    assert_eq!(loader.load(&file).unwrap().info().name, "hello-c");
}

#[test]
fn a_pinned_hash_is_checked_on_the_bytes_loaded() {
    let dir = Dir::new();
    let file = c_agent(dir.path());
    let path = dir.path().join(&file);
    // `inspect` hashes the file without loading it into any loader.
    let sha256 = inspect(&path).unwrap().sha256;
    assert_eq!(sha256.len(), 64);
    assert!(sha256
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

    let wrong = "0".repeat(64);
    let err = PluginLoader::new(dir.path())
        .pin(&file, &wrong)
        .load(&file)
        .unwrap_err();
    assert_eq!(
        err,
        LoadError::HashMismatch {
            file: at(&dir, &file),
            expected: wrong.clone(),
            actual: sha256.clone(),
        }
    );
    says(
        &err.to_string(),
        &[
            &file,
            &format!("sha256 is {sha256}, but the configuration pins {wrong}"),
            "verify it and update the pin",
        ],
    );

    // The right pin loads, whatever the case of its hex digits.
    let plugin = PluginLoader::new(dir.path())
        .pin(&file, sha256.to_ascii_uppercase())
        .load(&file)
        .unwrap();
    assert_eq!(plugin.info().sha256, sha256);
    assert_eq!(plugin.info().name, "hello-c");
}

#[test]
fn an_unknown_kind_or_a_kind_of_the_other_role_is_refused_naming_what_is_offered() {
    let dir = Dir::new();
    let file = c_agent(dir.path());
    let plugin = PluginLoader::new(dir.path()).load(&file).unwrap();

    let err =
        NativeAgent::new(plugin.clone(), "goodbye", &json!({"greeting": "hi"}), "a").unwrap_err();
    assert_eq!(
        err,
        LoadError::UnknownKind {
            file: at(&dir, &file),
            plugin: "hello-c".to_owned(),
            version: "1.0.0".to_owned(),
            role: "agent",
            kind: "goodbye".to_owned(),
            offered: "hello (Agent)".to_owned(),
        }
    );
    says(
        &err.to_string(),
        &[
            &file,
            "plugin `hello-c` 1.0.0 offers no agent kind `goodbye`",
            "it offers: hello (Agent)",
        ],
    );

    // `hello` exists, but as an agent.
    let err =
        NativeRuleProvider::new(plugin, "hello", &json!({"greeting": "hi"}), "rules").unwrap_err();
    assert!(
        matches!(&err, LoadError::UnknownKind { role: "rule provider", kind, .. } if kind == "hello"),
        "{err:?}"
    );
    says(&err.to_string(), &["offers no rule provider kind `hello`"]);
}

#[test]
fn init_metadata_not_matching_the_schema_is_refused_naming_each_field() {
    let dir = Dir::new();
    let file = c_agent(dir.path());
    let plugin = PluginLoader::new(dir.path()).load(&file).unwrap();

    let err =
        NativeAgent::new(plugin.clone(), "hello", &json!({"greting": "hi"}), "a").unwrap_err();
    let LoadError::BadConfig {
        plugin: name,
        version,
        kind,
        problems,
        ..
    } = &err
    else {
        panic!("expected BadConfig, got {err:?}")
    };
    assert_eq!(
        (name.as_str(), version.as_str(), kind.as_str()),
        ("hello-c", "1.0.0", "hello")
    );
    assert_eq!(
        problems,
        &vec![
            "field `greeting`: required but missing".to_owned(),
            "field `greting`: unknown field (expected one of: greeting)".to_owned(),
        ]
    );
    says(
        &err.to_string(),
        &[
            &file,
            "plugin `hello-c` 1.0.0, kind `hello`",
            "field `greeting`: required but missing",
            "field `greting`: unknown field",
            "fix the registration's config",
        ],
    );

    let err = NativeAgent::new(plugin, "hello", &json!({"greeting": 7}), "a").unwrap_err();
    assert!(
        matches!(&err, LoadError::BadConfig { problems, .. }
            if problems == &vec!["field `greeting`: expected string, got integer".to_owned()]),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_load_and_every_failed_load_is_recorded_in_telemetry() {
    let dir = Dir::new();
    let good = c_agent(dir.path());
    let bad = fixture(dir.path(), "bad_magic_telemetry", &["-DFIXTURE_BAD_MAGIC"]);
    let hub = Hub::builder().build().unwrap();
    let control = hub.control();
    let mut telemetry = control.subscribe();
    let loader = PluginLoader::new(dir.path()).telemetry(control.clone());

    let plugin = loader.load(&good).unwrap();
    let missing = loader.load("libmissing.so").unwrap_err();
    let bad_magic = loader.load(&bad).unwrap_err();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(WAIT, telemetry.recv())
            .await
            .unwrap()
            .unwrap();
        match event.kind {
            TelemetryKind::PluginLoaded { .. } | TelemetryKind::PluginLoadFailed { .. } => {
                seen.push(event.kind)
            }
            _ => {}
        }
    }
    let TelemetryKind::PluginLoaded {
        plugin: name,
        version,
        abi,
        path,
        sha256,
    } = &seen[0]
    else {
        panic!("expected plugin_loaded first, got {seen:?}")
    };
    assert_eq!(name, "hello-c");
    assert_eq!(version, "1.0.0");
    assert_eq!(abi, &format!("{ATAMO_ABI_MAJOR}.{ATAMO_ABI_MINOR}"));
    assert_eq!(path, &shown(&plugin.info().path));
    assert!(path.ends_with(&good), "{path}");
    assert_eq!(sha256, &plugin.info().sha256);

    for (kind, err, file) in [
        (&seen[1], &missing, "libmissing.so"),
        (&seen[2], &bad_magic, bad.as_str()),
    ] {
        let TelemetryKind::PluginLoadFailed { path, error } = kind else {
            panic!("expected plugin_load_failed, got {kind:?}")
        };
        assert_eq!(path, &shown(&dir.path().join(file)));
        assert_eq!(error, &err.to_string());
    }
    hub.shutdown().await;
}

/// The payload size (in bytes) of `ask("echo", json!({"text": text}))`'s action.
fn text_payload_len(text: &str) -> usize {
    serde_json::to_vec(&json!({"text": text})).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_agent_answers_requests_in_a_hub() {
    let lines = support::log_lines();
    let dir = Dir::new();
    let file = c_agent(dir.path());
    let plugin = PluginLoader::new(dir.path()).load(&file).unwrap();

    let info = plugin.info();
    assert_eq!(
        (
            info.name.as_str(),
            info.version.as_str(),
            info.sdk_version.as_str(),
            info.target.as_str()
        ),
        ("hello-c", "1.0.0", "c-header-1.0", BUILD_TARGET)
    );
    assert_eq!(info.abi, format!("{ATAMO_ABI_MAJOR}.{ATAMO_ABI_MINOR}"));
    assert!(info.panic_unwind);
    assert_eq!(info.kinds.len(), 1);
    assert_eq!(info.kinds[0].name, "hello");
    assert_eq!(info.kinds[0].role, Role::Agent);
    assert_eq!(
        info.kinds[0].config_schema,
        json!({
            "type": "object",
            "properties": {"greeting": {"type": "string"}},
            "required": ["greeting"],
            "additionalProperties": false
        })
    );

    let config = json!({"greeting": "hello from Rust"});
    let agent = NativeAgent::new(plugin, "hello", &config, "hello")
        .unwrap()
        .credits(3);
    assert_eq!(agent.health(), json!({"ok": true}));
    // init said hello through the host's log.
    let logged = lines.0.lock().unwrap().clone();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("hello-c instance created with config")
                && l.contains("hello from Rust")
                && l.contains("hello-c/hello")),
        "{logged:?}"
    );

    let hub = hub_with(Arc::new(agent.clone()));
    let h = hub.handle();
    let mut request_bytes = Vec::new();
    for text in ["a", "a much longer text than the first one"] {
        let r = h.request(ask("echo", json!({"text": text}))).await.unwrap();
        let done = h.wait(r.request_id, WAIT).await.unwrap();
        assert_eq!(done.state, RequestState::Complete);
        let answers: Vec<(u64, bool, Value)> = done
            .answers
            .iter()
            .map(|a| (a.seq, a.last, a.payload.as_ref().clone()))
            .collect();
        assert_eq!(answers.len(), 2, "{answers:?}");
        // One DATA answer, sent within the call's credits...
        assert_eq!(answers[0], (1, false, json!({"from": "c", "credits": 3})));
        // ...then the END_OK reply, with the config as init received it.
        let (seq, last, reply) = &answers[1];
        assert_eq!((*seq, *last), (2, true));
        assert_eq!(reply["from"], "c");
        assert_eq!(reply["config"], config);
        request_bytes.push(reply["request_bytes"].as_u64().unwrap() as usize);
    }
    // The C side measured the whole request it was handed: two requests differing only in
    // their payload differ by exactly the payload's growth.
    assert!(
        request_bytes[0] > text_payload_len("a"),
        "{request_bytes:?}"
    );
    assert_eq!(
        request_bytes[1] - request_bytes[0],
        text_payload_len("a much longer text than the first one") - text_payload_len("a")
    );
    assert_eq!(agent.health(), json!({"ok": true}));
    hub.shutdown().await;
}

#[test]
fn a_library_loaded_before_is_checked_again_and_never_silently_replaced() {
    let dir = Dir::new();
    let file = fixture(
        dir.path(),
        "reloaded",
        &["-DFIXTURE_FLAGS=0", "-DFIXTURE_NAME=\"first\""],
    );
    // Loaded once by a lenient loader...
    let first = PluginLoader::new(dir.path())
        .allow_panic_abort(true)
        .load(&file)
        .unwrap();
    // ...a strict loader still refuses it, and a wrong pin still fails.
    let err = PluginLoader::new(dir.path()).load(&file).unwrap_err();
    assert!(matches!(err, LoadError::PanicAbort { .. }), "{err}");
    let err = PluginLoader::new(dir.path())
        .allow_panic_abort(true)
        .pin(&file, "0".repeat(64))
        .load(&file)
        .unwrap_err();
    assert!(matches!(err, LoadError::HashMismatch { .. }), "{err}");

    // The same bytes give the same plugin.
    let again = PluginLoader::new(dir.path())
        .allow_panic_abort(true)
        .load(&file)
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again));

    // Other bytes under the same name are refused: a loaded library is never replaced.
    let replacement = fixture(dir.path(), "replacement", &["-DFIXTURE_NAME=\"second\""]);
    std::fs::rename(dir.path().join(&replacement), dir.path().join(&file)).unwrap();
    let err = PluginLoader::new(dir.path())
        .allow_panic_abort(true)
        .load(&file)
        .unwrap_err();
    let LoadError::ChangedSinceLoaded {
        plugin,
        loaded,
        now,
        ..
    } = &err
    else {
        panic!("expected ChangedSinceLoaded, got {err}")
    };
    assert_eq!(plugin, "first");
    assert_eq!(loaded, &first.info().sha256);
    assert_ne!(loaded, now);
    says(
        &err.to_string(),
        &[&file, "give the new version a new file name"],
    );

    // `inspect` reads the new file itself, not the library mapped before.
    let info = inspect(dir.path().join(&file)).unwrap();
    assert_eq!(info.name, "second");
    assert_eq!(&info.sha256, now);
}
