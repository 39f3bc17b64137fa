//! The file-level import graph and its circles (strongly connected components of more than
//! one file), told so that a reader sees which imports to remove.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// How many references an edge shows before it only counts the rest.
const SHOWN_EVIDENCE: usize = 3;

/// A reference that makes one file import another: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Evidence {
    /// The line in the importing file.
    pub line: usize,
    /// The path as written: `use crate::hub::Control`, `super::Kind`.
    pub text: String,
}

/// Files (by path from the repository root) and which files each one imports.
#[derive(Debug, Clone, Default)]
pub struct ImportGraph {
    edges: BTreeMap<String, BTreeMap<String, BTreeSet<Evidence>>>,
}

/// One import edge with the references behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The importing file.
    pub from: String,
    /// The imported file.
    pub to: String,
    /// The references in `from` that name items of `to`, in line order.
    pub evidence: Vec<Evidence>,
}

/// Files that import each other, directly or through one another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circle {
    /// The files, in order.
    pub files: Vec<String>,
    /// Every edge between two of them.
    pub edges: Vec<Edge>,
    /// One shortest round trip through the first file, which closes on that file.
    pub example: Vec<String>,
}

impl ImportGraph {
    /// Adds a file with no edges (or keeps the one there).
    pub fn add_file(&mut self, file: &str) {
        self.edges.entry(file.to_string()).or_default();
    }

    /// Records that `from` imports `to` because of `evidence`.
    pub fn add_edge(&mut self, from: &str, to: &str, evidence: Evidence) {
        self.add_file(to);
        self.edges
            .entry(from.to_string())
            .or_default()
            .entry(to.to_string())
            .or_default()
            .insert(evidence);
    }

    /// Every file, in order.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.edges.keys().map(String::as_str)
    }

    /// The files `from` imports.
    pub fn imports(&self, from: &str) -> impl Iterator<Item = &str> {
        self.edges
            .get(from)
            .into_iter()
            .flat_map(|to| to.keys().map(String::as_str))
    }

    /// The edge from `from` to `to`, if there is one.
    pub fn edge(&self, from: &str, to: &str) -> Option<Edge> {
        let evidence = self.edges.get(from)?.get(to)?;
        Some(Edge {
            from: from.to_string(),
            to: to.to_string(),
            evidence: evidence.iter().cloned().collect(),
        })
    }

    /// Every strongly connected component of more than one file, in order of its first file.
    pub fn circles(&self) -> Vec<Circle> {
        let mut circles: Vec<Circle> = self
            .components()
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|files| self.circle(files))
            .collect();
        circles.sort_by(|a, b| a.files.cmp(&b.files));
        circles
    }

    fn circle(&self, files: BTreeSet<String>) -> Circle {
        let mut edges = Vec::new();
        for from in &files {
            for to in self.imports(from).filter(|to| files.contains(*to)) {
                edges.extend(self.edge(from, to));
            }
        }
        let example = self.round_trip(&files);
        Circle {
            files: files.into_iter().collect(),
            edges,
            example,
        }
    }

    /// A shortest path from the first file of `files` back to it, inside `files`.
    fn round_trip(&self, files: &BTreeSet<String>) -> Vec<String> {
        let Some(start) = files.first() else {
            return Vec::new();
        };
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start.as_str()]);
        while let Some(at) = queue.pop_front() {
            for next in self.imports(at).filter(|f| files.contains(*f)) {
                if next == start {
                    let mut path = vec![start.clone(), at.to_string()];
                    let mut cur = at;
                    while let Some(&prev) = came_from.get(cur) {
                        path.push(prev.to_string());
                        cur = prev;
                    }
                    path.reverse();
                    return path;
                }
                if next != start && !came_from.contains_key(next) {
                    came_from.insert(next, at);
                    queue.push_back(next);
                }
            }
        }
        Vec::new()
    }

    /// Tarjan's strongly connected components.
    fn components(&self) -> Vec<BTreeSet<String>> {
        struct Tarjan<'g> {
            graph: &'g ImportGraph,
            index: BTreeMap<&'g str, usize>,
            low: BTreeMap<&'g str, usize>,
            stack: Vec<&'g str>,
            on_stack: BTreeSet<&'g str>,
            out: Vec<BTreeSet<String>>,
        }
        impl<'g> Tarjan<'g> {
            fn visit(&mut self, v: &'g str) {
                let i = self.index.len();
                self.index.insert(v, i);
                self.low.insert(v, i);
                self.stack.push(v);
                self.on_stack.insert(v);
                for w in self.graph.imports(v) {
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let low = self.low[v].min(self.low[w]);
                        self.low.insert(v, low);
                    } else if self.on_stack.contains(w) {
                        let low = self.low[v].min(self.index[w]);
                        self.low.insert(v, low);
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut component = BTreeSet::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack.remove(w);
                        component.insert(w.to_string());
                        if w == v {
                            break;
                        }
                    }
                    self.out.push(component);
                }
            }
        }
        let mut tarjan = Tarjan {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for v in self.files() {
            if !tarjan.index.contains_key(v) {
                tarjan.visit(v);
            }
        }
        tarjan.out
    }
}

impl fmt::Display for Circle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = common_dir(&self.files);
        let short = |path: &str| path.strip_prefix(base.as_str()).unwrap_or(path).to_string();
        writeln!(f, "{} files import each other in {base}:", self.files.len())?;
        let example: Vec<String> = self.example.iter().map(|p| short(p)).collect();
        writeln!(f, "  for one: {}", example.join(" -> "))?;
        for edge in &self.edges {
            let lines = by_line(&edge.evidence);
            let shown: Vec<String> = lines
                .iter()
                .take(SHOWN_EVIDENCE)
                .map(|(line, text)| format!("line {line}: {text}"))
                .collect();
            let more = match lines.len().saturating_sub(SHOWN_EVIDENCE) {
                0 => String::new(),
                1 => "; 1 more line".to_string(),
                n => format!("; {n} more lines"),
            };
            writeln!(
                f,
                "  {} -> {}  ({}{more})",
                short(&edge.from),
                short(&edge.to),
                shown.join("; ")
            )?;
        }
        Ok(())
    }
}

/// The references of one edge by line; the leaves of one `use` item on a line are told as one
/// (`use super::{A, B}`).
fn by_line(evidence: &[Evidence]) -> Vec<(usize, String)> {
    let mut lines: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for e in evidence {
        lines.entry(e.line).or_default().push(&e.text);
    }
    lines
        .into_iter()
        .map(|(line, texts)| {
            let uses: Option<Vec<(&str, &str)>> = texts
                .iter()
                .map(|t| t.strip_prefix("use ").and_then(|p| p.rsplit_once("::")))
                .collect();
            let text = match uses.as_deref() {
                Some([(prefix, _), rest @ ..])
                    if !rest.is_empty() && rest.iter().all(|(p, _)| p == prefix) =>
                {
                    let mut names: Vec<&str> = uses.iter().flatten().map(|(_, n)| *n).collect();
                    names.dedup();
                    format!("use {prefix}::{{{}}}", names.join(", "))
                }
                _ => texts.join(", "),
            };
            (line, text)
        })
        .collect()
}

/// The longest folder (ending in `/`) that holds every path.
fn common_dir(paths: &[String]) -> String {
    let Some(first) = paths.first() else {
        return String::new();
    };
    let mut prefix: &str = first.rsplit_once('/').map_or("", |(dir, _)| dir);
    while !prefix.is_empty()
        && !paths
            .iter()
            .all(|p| p.starts_with(prefix) && p[prefix.len()..].starts_with('/'))
    {
        prefix = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
    }
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}
