//! `atamo config check FILE [--json]`: every error and warning in a configuration file.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{json, Value};

use super::issue::{ConfigIssue, Warning};
use super::load::gather;
use super::settings::Overrides;

/// What a check of one file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Every error, in file order.
    pub errors: Vec<ConfigIssue>,
    /// Every warning, in file order.
    pub warnings: Vec<Warning>,
}

impl CheckReport {
    /// Whether the file has no error (warnings allowed).
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// One line per error (`error: atamo.toml:12:5: agents[1].kind: ...`), one per warning,
    /// then a summary naming `file`.
    pub fn text(&self, file: &Path) -> String {
        let mut out = String::new();
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let summary = match (self.errors.len(), self.warnings.len()) {
            (0, 0) => "ok".to_owned(),
            (0, w) => format!("ok, {}", count(w, "warning")),
            (e, 0) => count(e, "error"),
            (e, w) => format!("{}, {}", count(e, "error"), count(w, "warning")),
        };
        out.push_str(&format!("{}: {summary}\n", file.display()));
        out
    }

    /// `{"ok": bool, "errors": [{"line", "column", "path", "message"}], "warnings": [...]}`.
    pub fn json(&self) -> Value {
        let issues = |list: &[ConfigIssue]| -> Vec<Value> {
            list.iter()
                .map(|i| {
                    json!({
                        "line": i.line,
                        "column": i.column,
                        "path": i.path,
                        "message": i.message,
                    })
                })
                .collect()
        };
        json!({
            "ok": self.ok(),
            "errors": issues(&self.errors),
            "warnings": issues(&self.warnings),
        })
    }
}

/// Checks the file at `path` alone: the environment and the command line are not read, so the
/// result is the same on every machine.
pub fn check_file(path: &Path) -> CheckReport {
    let gathered = gather(Some(path), &|_| None, &Overrides::default());
    CheckReport {
        errors: gathered.errors,
        warnings: gathered.warnings,
    }
}

/// Checks the file at `path`, prints the errors and warnings (as JSON with `json`) on
/// standard output, and exits with 0 when there is no error, 1 otherwise.
pub fn check_command(path: &Path, json: bool) -> ExitCode {
    let report = check_file(path);
    if json {
        println!("{:#}", report.json());
    } else {
        print!("{}", report.text(path));
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
