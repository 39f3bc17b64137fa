//! Checks that keep the workspace's structure honest: every crate at the repository root,
//! no import circles between the files of a crate, and no production file over
//! [`MAX_FILE_LINES`] lines.
//!
//! The sources are read with `syn`. A file imports another when one of its `use` items, or a
//! path in its code (`crate::a::f()`, `super::Kind` in a type), names an item that the other
//! file defines; re-exports (`pub use`, and `use` bindings a child reaches through `super::`)
//! are followed to the defining file, so a `mod.rs` that only declares and re-exports its
//! children is never part of a circle. A `mod foo;` declaration is not an import. Production
//! code is what a crate's `src/` compiles outside `#[cfg(test)]`: test modules, `tests.rs`
//! files and the crates' `tests/`, `examples/` and `benches/` folders are left out.
//!
//! ```no_run
//! use atamo_tests::structure::Workspace;
//!
//! let workspace = Workspace::load("..")?;
//! let analysis = workspace.analyze()?;
//! for circle in analysis.graph.circles() {
//!     println!("{circle}");
//! }
//! # Ok::<(), atamo_tests::structure::StructureError>(())
//! ```

mod analysis;
mod error;
mod graph;
mod modtree;
mod refs;
mod resolve;
mod source;
mod workspace;

#[cfg(test)]
mod tests;

pub use analysis::{analyze, crate_roots, Analysis};
pub use error::{describe, StructureError};
pub use graph::{Circle, Edge, Evidence, ImportGraph};
pub use modtree::SourceFile;
pub use source::SourceTree;
pub use workspace::{layout_problems, Member, Workspace, MAX_FILE_LINES};
