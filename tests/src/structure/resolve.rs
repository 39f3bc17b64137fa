//! Name resolution over a module tree, close to the compiler's: a path is followed through
//! child modules, `use` bindings (re-exports included) and glob imports to the module whose
//! file defines the item it names. Each resolved reference to another file is an import edge.

use super::graph::{Evidence, ImportGraph};
use super::modtree::ModuleTree;

/// How deep re-exports and globs are followed before giving up (they can form loops).
const MAX_DEPTH: usize = 32;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Res {
    /// A module (a namespace: naming it alone imports nothing).
    Module(usize),
    /// An item defined in the module (or a part of one: a variant, an associated item).
    Item(usize),
    /// Something from another crate.
    External,
}

impl ModuleTree {
    /// What `segments`, written in module `ctx`, names; `None` when its first segment is not
    /// a name in scope (another crate, the prelude, a local variable).
    pub(crate) fn resolve(&self, ctx: usize, segments: &[String], depth: usize) -> Option<Res> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (first, rest) = segments.split_first()?;
        match first.as_str() {
            "crate" => Some(self.walk(0, rest, depth)),
            "self" | "super" => {
                let mut module = ctx;
                let mut rest = segments;
                while let Some((seg, tail)) = rest.split_first() {
                    match seg.as_str() {
                        "self" => {}
                        "super" => module = self.modules[module].parent?,
                        _ => break,
                    }
                    rest = tail;
                }
                Some(self.walk(module, rest, depth))
            }
            _ => match self.lookup(ctx, first, true, depth)? {
                Res::Module(child) => Some(self.walk(child, rest, depth)),
                other => Some(other),
            },
        }
    }

    /// Follows `rest` down from `module`. A name the module does not visibly hold is taken to
    /// be defined there all the same (a macro's output, say).
    fn walk(&self, module: usize, rest: &[String], depth: usize) -> Res {
        let Some((first, tail)) = rest.split_first() else {
            return Res::Module(module);
        };
        match self.lookup(module, first, false, depth) {
            Some(Res::Module(child)) => self.walk(child, tail, depth + 1),
            Some(other) => other,
            None => Res::Item(module),
        }
    }

    /// `name` in the scope of `module`: a child module, an item it defines, a `use` binding
    /// (with `local`, also those inside its function bodies), or a name a glob brings in.
    fn lookup(&self, module: usize, name: &str, local: bool, depth: usize) -> Option<Res> {
        if depth > MAX_DEPTH {
            return None;
        }
        let m = &self.modules[module];
        if let Some(&child) = m.children.get(name) {
            return Some(Res::Module(child));
        }
        if m.items.contains(name) {
            return Some(Res::Item(module));
        }
        let locals = if local { &m.local_bindings[..] } else { &[] };
        let mut bound = false;
        for (binding, path) in m.bindings.iter().chain(locals) {
            if binding == name {
                bound = true;
                if let Some(res) = self.resolve(module, path, depth + 1) {
                    if res != Res::External {
                        return Some(res);
                    }
                }
            }
        }
        if bound {
            return Some(Res::External);
        }
        for glob in &m.globs {
            if let Some(Res::Module(source)) = self.resolve(module, glob, depth + 1) {
                if source != module {
                    if let Some(res) = self.lookup(source, name, false, depth + 1) {
                        return Some(res);
                    }
                }
            }
        }
        None
    }

    /// Adds this crate's files and the edges between them to `graph`.
    pub(crate) fn add_edges(&self, graph: &mut ImportGraph) {
        for file in &self.files {
            graph.add_file(&file.path);
        }
        for (index, module) in self.modules.iter().enumerate() {
            let from = &self.files[module.file].path;
            let mut edge = |target: usize, line: usize, text: String| {
                let to = &self.files[self.modules[target].file].path;
                if to != from {
                    graph.add_edge(from, to, Evidence { line, text });
                }
            };
            for leaf in &module.uses {
                let text = if leaf.glob {
                    format!("use {}::*", leaf.segments.join("::"))
                } else {
                    format!("use {}", leaf.segments.join("::"))
                };
                match self.resolve(index, &leaf.segments, 0) {
                    Some(Res::Item(target)) => edge(target, leaf.line, text),
                    // A glob takes in a module's own items too.
                    Some(Res::Module(target))
                        if leaf.glob && !self.modules[target].items.is_empty() =>
                    {
                        edge(target, leaf.line, text)
                    }
                    _ => {}
                }
            }
            for path in &module.paths {
                let Some(Res::Item(target)) = self.resolve(index, &path.segments, 0) else {
                    continue;
                };
                // `Kind::A` after `use super::Kind`: the `use` already tells this edge.
                let first = &path.segments[..1];
                let via_use = module
                    .bindings
                    .iter()
                    .chain(&module.local_bindings)
                    .any(|(b, _)| {
                        *b == first[0]
                            && !module.children.contains_key(b)
                            && !module.items.contains(b)
                    });
                if via_use && self.resolve(index, first, 0) == Some(Res::Item(target)) {
                    continue;
                }
                edge(target, path.line, path.segments.join("::"));
            }
        }
    }
}
