//! A problem or a warning in the configuration, with where it is.

use std::fmt;
use std::path::PathBuf;

/// One problem (or warning) in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file it is in; `None` for the environment.
    pub file: Option<PathBuf>,
    /// The line (from 1) where the offending value or key starts.
    pub line: Option<usize>,
    /// The column (from 1, in characters) where it starts.
    pub column: Option<usize>,
    /// Which setting: `hub.lease`, `agents[1].kind` (entries count from 0), or the environment
    /// variable's name.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A warning: something that works but is probably not what was meant.
pub type Warning = ConfigIssue;

impl ConfigIssue {
    /// An issue with an environment variable.
    pub(super) fn env(var: &str, message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            column: None,
            path: var.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    /// `atamo.toml:12:5: agents[1].kind: unknown variant ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let Some(file) = &self.file {
            place.push(file.display().to_string());
        }
        place.extend(self.line.map(|l| l.to_string()));
        place.extend(self.column.map(|c| c.to_string()));
        if !place.is_empty() {
            write!(f, "{}: ", place.join(":"))?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in the configuration, in file order, then the environment's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    /// One issue a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
