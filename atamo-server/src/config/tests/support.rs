//! Environments, temporary files and the errors of a text, for the configuration tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{file, load, ConfigErrors, ConfigIssue, Overrides, ServeConfig, Warning};

/// An environment that holds `vars` only.
pub(super) fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

/// A configuration file in a temporary directory.
pub(super) struct TempFile {
    _dir: tempfile::TempDir,
    pub(super) path: PathBuf,
}

pub(super) fn write(text: &str) -> TempFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atamo.toml");
    std::fs::write(&path, text).unwrap();
    TempFile { _dir: dir, path }
}

/// `text` loaded as a file, with no environment and no flags.
pub(super) fn load_text(text: &str) -> Result<(ServeConfig, Vec<Warning>), ConfigErrors> {
    let f = write(text);
    load(Some(&f.path), &no_env, &Overrides::default())
}

pub(super) fn ok(text: &str) -> ServeConfig {
    match load_text(text) {
        Ok((config, warnings)) => {
            assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
            config
        }
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

/// The errors of `text`, checked in memory.
pub(super) fn errors(text: &str) -> Vec<ConfigIssue> {
    let checked = file::check(text, Some(Path::new("atamo.toml")));
    assert!(
        !checked.errors.is_empty(),
        "expected errors in:\n{text}\nwarnings: {:?}",
        checked.warnings
    );
    checked.errors
}

/// The one error of `text`.
pub(super) fn one_error(text: &str) -> ConfigIssue {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

/// The line (from 1) of the first line of `text` holding `needle`.
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the text"))
        + 1
}

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
