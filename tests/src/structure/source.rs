//! The Rust sources the checks read, in memory and keyed by their path from the repository
//! root (`/`-separated), so that the checks run the same on the disk and on examples in tests.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::error::StructureError;

/// Rust files by their `/`-separated path from the repository root.
#[derive(Debug, Clone, Default)]
pub struct SourceTree {
    files: BTreeMap<String, String>,
}

impl SourceTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of the given `(path, text)` pairs.
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut tree = Self::new();
        for (path, text) in files {
            tree.insert(path, text);
        }
        tree
    }

    /// Adds (or replaces) the file at `path`.
    pub fn insert(&mut self, path: impl Into<String>, text: impl Into<String>) {
        self.files.insert(path.into(), text.into());
    }

    /// The text of the file at `path`.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Whether the tree holds a file at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// Every path, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Adds every `.rs` file under `root/dir` (recursively), keyed by its path from `root`.
    /// A missing folder adds nothing.
    pub fn add_dir(&mut self, root: &Path, dir: &str) -> Result<(), StructureError> {
        let full = root.join(dir);
        if !full.is_dir() {
            return Ok(());
        }
        let read_err = |source| StructureError::Read {
            path: full.clone(),
            source,
        };
        let mut entries = Vec::new();
        for entry in fs::read_dir(&full).map_err(read_err)? {
            entries.push(entry.map_err(read_err)?);
        }
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = join(dir, &name);
            let path = entry.path();
            if path.is_dir() {
                self.add_dir(root, &rel)?;
            } else if name.ends_with(".rs") {
                let text = fs::read_to_string(&path)
                    .map_err(|source| StructureError::Read { path, source })?;
                self.insert(rel, text);
            }
        }
        Ok(())
    }
}

/// `dir/name`, or `name` when `dir` is empty.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The folder of a `/`-separated path (empty at the top).
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The last component of a `/`-separated path.
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}
