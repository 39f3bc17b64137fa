//! [`Checker`]: what every section checker shares. It records errors and warnings at the line
//! and column where a value starts, reads values into types, and walks tables and arrays of
//! tables, reporting unknown keys.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use std::time::Duration;

use atamo_core::bounded::OutOfRange;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeValue, ValueDeserializer};

use super::spans::{descend, find_path, has_datetime, join, list, locate, Value};
use crate::config::issue::ConfigIssue;
use crate::config::units::Dur;

/// The issues found so far in one file, and what is needed to place them.
pub(super) struct Checker<'s> {
    src: &'s str,
    /// The byte offset of each line's start: 0, then each one after a `\n`.
    line_starts: Vec<usize>,
    file: Option<PathBuf>,
    pub(super) errors: Vec<ConfigIssue>,
    pub(super) warnings: Vec<ConfigIssue>,
}

impl<'s> Checker<'s> {
    /// A checker of `text`, the file named `file` in the issues.
    pub(super) fn new(text: &'s str, file: Option<&Path>) -> Self {
        Self {
            src: text,
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            file: file.map(Path::to_owned),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl<'i> Checker<'_> {
    fn issue(&self, span: Range<usize>, path: &str, message: &str) -> ConfigIssue {
        let (line, column) = self.position(span.start);
        ConfigIssue {
            file: self.file.clone(),
            line: Some(line),
            column: Some(column),
            path: path.to_owned(),
            message: message.to_owned(),
        }
    }

    /// Line and column (from 1; the column in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        // The number of lines starting at or before the offset.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        (line, self.src[line_start..offset].chars().count() + 1)
    }

    pub(super) fn error(&mut self, span: Range<usize>, path: &str, message: impl AsRef<str>) {
        let issue = self.issue(span, path, message.as_ref());
        self.errors.push(issue);
    }

    pub(super) fn warn(&mut self, span: Range<usize>, path: &str, message: impl AsRef<str>) {
        let issue = self.issue(span, path, message.as_ref());
        self.warnings.push(issue);
    }

    /// The line of a span, for messages pointing at another place.
    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        self.position(span.start).0
    }

    /// `v` read as a `T`, or `None` with the error recorded where the offending value starts.
    pub(super) fn get<T: DeserializeOwned>(&mut self, path: &str, v: &Value<'i>) -> Option<T> {
        if has_datetime(v) {
            // Already reported by `reject_datetimes`.
            return None;
        }
        match T::deserialize(ValueDeserializer::from(v.clone())) {
            Ok(t) => Some(t),
            Err(e) => {
                let span = e.span().unwrap_or_else(|| v.span());
                let path = format!("{path}{}", find_path(v, &span).unwrap_or_default());
                self.error(span, &path, e.message());
                None
            }
        }
    }

    /// `v` read as a `T` by the API's body reader ([`crate::model::body`]): every bad field
    /// named, with the API's messages, each at the place it is written. With the `T` (when
    /// one could be read), the fields found bad: when there are some, the `T` holds stand-ins
    /// for them and serves only the caller's further checks.
    pub(super) fn get_all<T: DeserializeOwned>(
        &mut self,
        path: &str,
        v: &Value<'i>,
    ) -> (Option<T>, Vec<String>) {
        if has_datetime(v) {
            // Already reported by `reject_datetimes`.
            return (None, vec![String::new()]);
        }
        let json = match serde_json::Value::deserialize(ValueDeserializer::from(v.clone())) {
            Ok(json) => json,
            Err(e) => {
                let span = e.span().unwrap_or_else(|| v.span());
                self.error(span, path, e.message());
                return (None, vec![String::new()]);
            }
        };
        let (t, problems) = crate::model::body::read_all::<T>(json, "", true);
        let mut fields = Vec::with_capacity(problems.len());
        for (field, message) in problems {
            let (span, p) = if field == "body" {
                (v.span(), path.to_owned())
            } else {
                let dotted = field.replace('[', ".").replace(']', "");
                (descend(v, &dotted).0.span(), format!("{path}.{field}"))
            };
            self.error(span, &p, message);
            fields.push(field);
        }
        (t, fields)
    }

    /// A duration (`"250ms"`) read through the constructor of its bounded type, so that the
    /// file says what the API says of the same value out of range.
    pub(super) fn duration<T>(
        &mut self,
        path: &str,
        v: &Value<'i>,
        new: fn(Duration) -> Result<T, OutOfRange>,
    ) -> Option<T> {
        let d = self.get::<Dur>(path, v)?.0;
        match new(d) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(v.span(), path, e.to_string());
                None
            }
        }
    }

    /// The entries of table `v` whose keys are in `keys`, each with its path; unknown keys
    /// are reported.
    pub(super) fn table<'v>(
        &mut self,
        path: &str,
        v: &'v Value<'i>,
        keys: &[&str],
    ) -> Vec<(&'v str, &'v Value<'i>, String)> {
        let Some(table) = v.get_ref().as_table() else {
            self.error(
                v.span(),
                path,
                format!("must be a table, not {}", v.get_ref().type_str()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            let p = join(path, name);
            if keys.contains(&name) {
                out.push((name, value, p));
            } else {
                self.error(
                    key.span(),
                    &p,
                    format!("unknown key `{name}`; expected one of {}", list(keys)),
                );
            }
        }
        out
    }

    /// The entries of the array of tables `v`, each with its path (`agents[0]`).
    pub(super) fn array<'v>(
        &mut self,
        path: &str,
        v: &'v Value<'i>,
    ) -> Vec<(String, &'v Value<'i>)> {
        let Some(items) = v.get_ref().as_array() else {
            self.error(
                v.span(),
                path,
                format!(
                    "must be an array of tables (`[[{path}]]`), not {}",
                    v.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{path}[{i}]"), item))
            .collect()
    }

    /// Dates and times have no meaning anywhere in the file, and would reach free-form JSON
    /// (agent settings, templates) as odd objects.
    pub(super) fn reject_datetimes(&mut self, path: &str, v: &Value<'i>) {
        match v.get_ref() {
            DeValue::Datetime(_) => self.error(
                v.span(),
                path,
                "dates and times are not supported; write the value as a string",
            ),
            DeValue::Table(t) => {
                for (k, cv) in t.iter() {
                    self.reject_datetimes(&join(path, k.get_ref()), cv);
                }
            }
            DeValue::Array(a) => {
                for (i, cv) in a.iter().enumerate() {
                    self.reject_datetimes(&format!("{path}[{i}]"), cv);
                }
            }
            _ => {}
        }
    }

    /// The problems a model validator found, as `(field, message)`, each at its field
    /// (those in `reported` were reported already).
    pub(super) fn problems(
        &mut self,
        path: &str,
        entry: &Value<'i>,
        problems: Vec<(String, String)>,
        reported: &[String],
    ) {
        for (field, message) in problems {
            if reported.contains(&field) {
                continue;
            }
            let span = locate(entry, &field);
            self.error(span, &format!("{path}.{field}"), message);
        }
    }

    /// Reports `name` when `seen` has it already, else records it.
    pub(super) fn unique(
        &mut self,
        seen: &mut HashMap<String, usize>,
        what: &str,
        name: &str,
        at: &Range<usize>,
        path: &str,
    ) {
        match seen.get(name) {
            Some(first) => {
                let message =
                    format!("{what} `{name}` is declared more than once (first at line {first})");
                self.error(at.clone(), path, message);
            }
            None => {
                let line = self.line_of(at);
                seen.insert(name.to_owned(), line);
            }
        }
    }
}
