//! The workspace on the disk: its members, its layout, and its sources.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::analysis::{analyze, Analysis};
use super::error::StructureError;
use super::source::SourceTree;

/// The most lines a production file may have.
pub const MAX_FILE_LINES: usize = 600;

/// What the repository root must hold: folders, then files.
const ROOT_DIRS: [&str; 4] = ["examples", "guides", "tests", "plugins"];
const ROOT_FILES: [&str; 1] = ["README.md"];

/// One workspace member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its folder, from the repository root (`atamo-core`, `plugins/test-plugin`).
    pub path: String,
    /// Its package name.
    pub package: String,
}

/// A Cargo workspace on the disk.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    members: Vec<Member>,
}

impl Workspace {
    /// Reads the workspace whose root manifest is `root/Cargo.toml`.
    pub fn load(root: impl AsRef<Path>) -> Result<Self, StructureError> {
        let root = root.as_ref().to_path_buf();
        let manifest = read_manifest(&root.join("Cargo.toml"))?;
        let missing = |field| StructureError::MissingField {
            path: root.join("Cargo.toml"),
            field,
        };
        let patterns = manifest
            .get("workspace")
            .and_then(|w| w.get("members"))
            .and_then(|m| m.as_array())
            .ok_or_else(|| missing("workspace.members"))?;
        let mut members = Vec::new();
        for pattern in patterns.iter().filter_map(|p| p.as_str()) {
            for path in expand_member(&root, pattern)? {
                let manifest_path = root.join(&path).join("Cargo.toml");
                let package = read_manifest(&manifest_path)?
                    .get("package")
                    .and_then(|p| p.get("name"))
                    .and_then(|n| n.as_str())
                    .map(str::to_string)
                    .ok_or(StructureError::MissingField {
                        path: manifest_path,
                        field: "package.name",
                    })?;
                members.push(Member { path, package });
            }
        }
        Ok(Self { root, members })
    }

    /// The members, in the manifest's order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// What is wrong with the layout (see [`layout_problems`]); empty when nothing is.
    pub fn layout_problems(&self) -> Result<Vec<String>, StructureError> {
        let mut dirs = BTreeSet::new();
        let mut files = BTreeSet::new();
        for entry in list_dir(&self.root)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                dirs.insert(name);
            } else {
                files.insert(name);
            }
        }
        Ok(layout_problems(&self.members, &dirs, &files))
    }

    /// Every `.rs` file under the members' `src/` folders.
    pub fn sources(&self) -> Result<SourceTree, StructureError> {
        let mut sources = SourceTree::new();
        for member in &self.members {
            sources.add_dir(&self.root, &format!("{}/src", member.path))?;
        }
        Ok(sources)
    }

    /// The import graph and production files of every member.
    pub fn analyze(&self) -> Result<Analysis, StructureError> {
        let members: Vec<&str> = self.members.iter().map(|m| m.path.as_str()).collect();
        analyze(&self.sources()?, &members)
    }
}

/// What is wrong with a workspace's layout, given its members and the folders and files at its
/// root: every member but the plugins (`plugins/*`), `examples` and `tests` is an `atamo-*`
/// crate in a root folder named after its package, every `atamo-*` root folder is a member, and
/// the root holds `examples/`, `guides/`, `tests/`, `plugins/` and `README.md`.
pub fn layout_problems(
    members: &[Member],
    root_dirs: &BTreeSet<String>,
    root_files: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for m in members {
        let exception = m.path.starts_with("plugins/") || m.path == "examples" || m.path == "tests";
        if exception {
            continue;
        }
        if !m.package.starts_with("atamo-") {
            problems.push(format!(
                "member `{}` is package `{}`: only atamo-* crates, plugins/*, examples and \
                 tests are members",
                m.path, m.package
            ));
        } else if m.path != m.package {
            problems.push(format!(
                "crate `{}` sits in `{}`: it belongs in `{}/` at the repository root",
                m.package, m.path, m.package
            ));
        }
    }
    for dir in root_dirs.iter().filter(|d| d.starts_with("atamo-")) {
        if !members.iter().any(|m| &m.path == dir) {
            problems.push(format!(
                "folder `{dir}/` at the repository root is not a workspace member"
            ));
        }
    }
    for dir in ROOT_DIRS.iter().filter(|d| !root_dirs.contains(**d)) {
        problems.push(format!("the repository root has no `{dir}/` folder"));
    }
    for file in ROOT_FILES.iter().filter(|f| !root_files.contains(**f)) {
        problems.push(format!("the repository root has no `{file}`"));
    }
    problems
}

fn read_manifest(path: &Path) -> Result<toml::Table, StructureError> {
    let text = fs::read_to_string(path).map_err(|source| StructureError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse().map_err(|source| StructureError::Manifest {
        path: path.to_path_buf(),
        source,
    })
}

fn list_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, StructureError> {
    let read_err = |source| StructureError::Read {
        path: dir.to_path_buf(),
        source,
    };
    fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map_err(read_err))
        .collect()
}

/// A member entry: a folder, or `dir/*` for every folder in `dir` with a `Cargo.toml`.
fn expand_member(root: &Path, pattern: &str) -> Result<Vec<String>, StructureError> {
    let Some(dir) = pattern.strip_suffix("/*") else {
        return Ok(vec![pattern.trim_end_matches('/').to_string()]);
    };
    let mut paths: Vec<String> = list_dir(&root.join(dir))?
        .into_iter()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
        .collect();
    paths.sort();
    Ok(paths)
}
