//! Why the workspace's sources or manifests could not be read.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The sources or manifests could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    /// A file or folder could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// A Rust file is not valid Rust.
    #[error("cannot parse {path}, line {line}")]
    Parse {
        /// The file, from the repository root.
        path: String,
        /// Where the parser stopped.
        line: usize,
        /// What the parser said.
        #[source]
        source: syn::Error,
    },
    /// A manifest is not valid TOML.
    #[error("cannot parse {path}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What the TOML parser said.
        #[source]
        source: toml::de::Error,
    },
    /// A manifest lacks a field the checks need.
    #[error("{path} has no {field}")]
    MissingField {
        /// The manifest.
        path: PathBuf,
        /// The field, as a TOML key path.
        field: &'static str,
    },
}

/// `err` and every source under it, one per line: a test's panic message shows them all.
pub fn describe(err: &dyn Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        let _ = write!(out, "\n  caused by: {source}");
        next = source.source();
    }
    out
}
