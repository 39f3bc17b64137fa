//! A crate's module tree, read from its root file by following `mod` declarations: which file
//! each module lives in, and what each module defines, binds with `use`, and names in its code.

use std::collections::{BTreeMap, BTreeSet};

use syn::visit::Visit;
use syn::{Item, ItemMod, Lit, Meta};

use super::error::StructureError;
use super::refs::{
    is_test_only, item_attrs, item_names, name, use_leaves, CodeRef, CodeRefs, UseLeaf,
};
use super::source::{file_name, join, parent, SourceTree};

/// A production file: its path from the repository root and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path from the repository root.
    pub path: String,
    /// Its lines, as `wc -l` counts them.
    pub lines: usize,
    /// How many of them are `#[cfg(test)]` modules written inline.
    pub test_lines: usize,
}

/// One module: a file, or a `mod name { ... }` block inside one.
#[derive(Debug, Default)]
pub(crate) struct Module {
    /// The index of its file in [`ModuleTree::files`].
    pub(crate) file: usize,
    /// The enclosing module; none for the crate root.
    pub(crate) parent: Option<usize>,
    /// Its child modules by name.
    pub(crate) children: BTreeMap<String, usize>,
    /// The names of the items it defines (functions, types, traits, constants, macros).
    pub(crate) items: BTreeSet<String>,
    /// Its module-level `use` bindings: name and path.
    pub(crate) bindings: Vec<(String, Vec<String>)>,
    /// The `use` bindings inside its function bodies: name and path.
    pub(crate) local_bindings: Vec<(String, Vec<String>)>,
    /// The paths of its glob imports.
    pub(crate) globs: Vec<Vec<String>>,
    /// Every `use` leaf in it, module-level or not.
    pub(crate) uses: Vec<UseLeaf>,
    /// Every path in its code.
    pub(crate) paths: Vec<CodeRef>,
}

/// The modules of one crate; module 0 is the crate root.
#[derive(Debug)]
pub(crate) struct ModuleTree {
    /// The modules.
    pub(crate) modules: Vec<Module>,
    /// The production files they live in.
    pub(crate) files: Vec<SourceFile>,
}

impl ModuleTree {
    /// Reads the crate whose root file is `root` (`lib.rs`, `main.rs` or a `src/bin/` file).
    /// A root that is itself test-only gives an empty tree.
    pub(crate) fn parse(sources: &SourceTree, root: &str) -> Result<Self, StructureError> {
        let mut builder = Builder {
            sources,
            modules: Vec::new(),
            files: Vec::new(),
        };
        builder.add_file(root, None)?;
        Ok(Self {
            modules: builder.modules,
            files: builder.files,
        })
    }
}

struct Builder<'a> {
    sources: &'a SourceTree,
    modules: Vec<Module>,
    files: Vec<SourceFile>,
}

impl Builder<'_> {
    /// Adds the module in file `path`; `None` when the file is missing or test-only.
    fn add_file(
        &mut self,
        path: &str,
        enclosing: Option<usize>,
    ) -> Result<Option<usize>, StructureError> {
        let Some(text) = self.sources.get(path) else {
            return Ok(None);
        };
        let file = syn::parse_file(text).map_err(|source| StructureError::Parse {
            path: path.to_string(),
            line: source.span().start().line,
            source,
        })?;
        if is_test_only(&file.attrs) {
            return Ok(None);
        }
        let file_index = self.files.len();
        self.files.push(SourceFile {
            path: path.to_string(),
            lines: text.lines().count(),
            test_lines: 0,
        });
        let module = self.new_module(file_index, enclosing);
        // A root, a `mod.rs`, or a `main.rs` holds its children beside it; `a.rs` in `a/`.
        let name = file_name(path);
        let dir = if enclosing.is_none() || name == "mod.rs" {
            parent(path).to_string()
        } else {
            join(parent(path), name.trim_end_matches(".rs"))
        };
        self.add_items(module, &file.items, path, &dir)?;
        Ok(Some(module))
    }

    fn new_module(&mut self, file: usize, parent: Option<usize>) -> usize {
        self.modules.push(Module {
            file,
            parent,
            ..Module::default()
        });
        self.modules.len() - 1
    }

    /// Records `items` as the contents of `module`, written in `path`, whose child modules'
    /// files sit in `dir`.
    fn add_items(
        &mut self,
        module: usize,
        items: &[Item],
        path: &str,
        dir: &str,
    ) -> Result<(), StructureError> {
        for item in items {
            if is_test_only(item_attrs(item)) {
                if let Item::Mod(m) = item {
                    let file = self.modules[module].file;
                    self.files[file].test_lines += inline_lines(m);
                }
                continue;
            }
            match item {
                Item::Use(u) => {
                    let m = &mut self.modules[module];
                    for leaf in use_leaves(u) {
                        if leaf.glob {
                            m.globs.push(leaf.segments.clone());
                        } else if let Some(b) = &leaf.binding {
                            m.bindings.push((b.clone(), leaf.segments.clone()));
                        }
                        m.uses.push(leaf);
                    }
                }
                Item::Mod(m) => self.add_mod(module, m, path, dir)?,
                Item::ExternCrate(e) => {
                    let target = if e.ident == "self" {
                        vec!["crate".to_string()]
                    } else {
                        vec!["::".to_string(), name(&e.ident)]
                    };
                    let bound = e.rename.as_ref().map_or(&e.ident, |(_, r)| r);
                    self.modules[module].bindings.push((name(bound), target));
                }
                other => {
                    let mut refs = CodeRefs::default();
                    refs.visit_item(other);
                    let m = &mut self.modules[module];
                    m.items.extend(item_names(other));
                    m.paths.extend(refs.paths);
                    for leaf in refs.uses {
                        if let (Some(b), false) = (&leaf.binding, leaf.glob) {
                            m.local_bindings.push((b.clone(), leaf.segments.clone()));
                        }
                        m.uses.push(leaf);
                    }
                }
            }
        }
        Ok(())
    }

    /// A `mod` item: a block, or a declaration of a file (`name.rs` or `name/mod.rs` in `dir`,
    /// or a `#[path]`). A `tests.rs` file is test code, and a missing file is left out.
    fn add_mod(
        &mut self,
        module: usize,
        m: &ItemMod,
        path: &str,
        dir: &str,
    ) -> Result<(), StructureError> {
        let child_name = name(&m.ident);
        let child = match &m.content {
            Some((_, items)) => {
                let file = self.modules[module].file;
                let child = self.new_module(file, Some(module));
                self.add_items(child, items, path, &join(dir, &child_name))?;
                Some(child)
            }
            None => {
                let file = path_attr(m).map(|p| join(parent(path), &p)).or_else(|| {
                    [format!("{child_name}.rs"), format!("{child_name}/mod.rs")]
                        .into_iter()
                        .map(|f| join(dir, &f))
                        .find(|f| self.sources.contains(f))
                });
                match file {
                    Some(file) if !is_test_file(&file) => self.add_file(&file, Some(module))?,
                    _ => None,
                }
            }
        };
        if let Some(child) = child {
            self.modules[module].children.insert(child_name, child);
        }
        Ok(())
    }
}

/// Whether a module file is a test module's: `tests.rs` or `tests/mod.rs`.
fn is_test_file(path: &str) -> bool {
    let name = file_name(path);
    name == "tests.rs" || (name == "mod.rs" && file_name(parent(path)) == "tests")
}

/// The value of a `#[path = "..."]` attribute.
fn path_attr(m: &ItemMod) -> Option<String> {
    m.attrs.iter().find_map(|attr| match &attr.meta {
        Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// The lines an inline module spans, from its first attribute to its closing brace.
fn inline_lines(m: &ItemMod) -> usize {
    let Some((brace, _)) = &m.content else {
        return 0;
    };
    let start = m.attrs.first().map_or(m.mod_token.span.start().line, |a| {
        a.pound_token.span.start().line
    });
    let end = brace.span.close().end().line;
    end.saturating_sub(start) + 1
}
