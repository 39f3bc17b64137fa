//! The import graph and the production files of a set of crates.

use std::collections::BTreeMap;

use super::error::StructureError;
use super::graph::ImportGraph;
use super::modtree::{ModuleTree, SourceFile};
use super::source::SourceTree;

/// What the checks found in the sources: who imports whom, and every production file.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// The file-level import graph.
    pub graph: ImportGraph,
    /// Every production file, by path.
    pub files: Vec<SourceFile>,
}

impl Analysis {
    /// The production files over `limit` lines, largest first.
    pub fn big_files(&self, limit: usize) -> Vec<&SourceFile> {
        let mut big: Vec<&SourceFile> = self.files.iter().filter(|f| f.lines > limit).collect();
        big.sort_by(|a, b| b.lines.cmp(&a.lines).then_with(|| a.path.cmp(&b.path)));
        big
    }
}

/// The crate roots in a member's `src/`: `lib.rs`, `main.rs`, and each binary of `src/bin/`
/// (`src/bin/name.rs` or `src/bin/name/main.rs`).
pub fn crate_roots(sources: &SourceTree, member: &str) -> Vec<String> {
    let src = format!("{member}/src/");
    let bin = format!("{src}bin/");
    sources
        .paths()
        .filter(|path| {
            let Some(rest) = path.strip_prefix(&src) else {
                return false;
            };
            if rest == "lib.rs" || rest == "main.rs" {
                return true;
            }
            let Some(bin_file) = path.strip_prefix(&bin) else {
                return false;
            };
            match bin_file.split_once('/') {
                None => bin_file.ends_with(".rs"),
                Some((_, rest)) => rest == "main.rs",
            }
        })
        .map(str::to_string)
        .collect()
}

/// Reads the crates of `members` (folders from the repository root) out of `sources`.
pub fn analyze(sources: &SourceTree, members: &[&str]) -> Result<Analysis, StructureError> {
    let mut graph = ImportGraph::default();
    let mut files = BTreeMap::new();
    for member in members {
        for root in crate_roots(sources, member) {
            let tree = ModuleTree::parse(sources, &root)?;
            tree.add_edges(&mut graph);
            for file in tree.files {
                files.insert(file.path.clone(), file);
            }
        }
    }
    Ok(Analysis {
        graph,
        files: files.into_values().collect(),
    })
}
