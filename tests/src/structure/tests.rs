//! The checker on small crates written in place, so that each rule is proven, not only the
//! verdict on the workspace.

use std::collections::BTreeSet;

use super::{analyze, crate_roots, layout_problems, Evidence, ImportGraph, Member, SourceTree};

/// The sources of crate `c`: paths are given from `c/src/`.
fn crate_c(files: &[(&str, &str)]) -> SourceTree {
    let mut tree = SourceTree::new();
    for (path, text) in files {
        tree.insert(format!("c/src/{path}"), *text);
    }
    tree
}

fn graph(files: &[(&str, &str)]) -> ImportGraph {
    analyze(&crate_c(files), &["c"]).unwrap().graph
}

/// Every edge as `from -> to`, paths from `c/src/`.
fn edges(files: &[(&str, &str)]) -> BTreeSet<String> {
    let g = graph(files);
    let short = |p: &str| p.trim_start_matches("c/src/").to_string();
    g.files()
        .flat_map(|from| {
            g.imports(from)
                .map(|to| format!("{} -> {}", short(from), short(to)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The files of each circle, from `c/src/`.
fn circles(files: &[(&str, &str)]) -> Vec<Vec<String>> {
    graph(files)
        .circles()
        .into_iter()
        .map(|c| {
            c.files
                .iter()
                .map(|f| f.trim_start_matches("c/src/").to_string())
                .collect()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_circle_through_a_re_export_joins_the_defining_files_not_the_re_exporter() {
    let files = [
        ("lib.rs", "mod a; mod types; pub use types::T;"),
        ("a.rs", "use crate::T; pub fn fa(_: T) {}"),
        ("types.rs", "pub struct T; pub fn f() { crate::a::fa(T) }"),
    ];
    assert_eq!(
        edges(&files),
        set(&["a.rs -> types.rs", "lib.rs -> types.rs", "types.rs -> a.rs"])
    );
    assert_eq!(circles(&files), vec![vec!["a.rs", "types.rs"]]);
}

#[test]
fn a_child_importing_its_parents_own_items_through_super_closes_a_circle() {
    let files = [
        ("lib.rs", "mod hub;"),
        (
            "hub/mod.rs",
            "mod worker; pub struct Shared; fn go() { worker::run() }",
        ),
        (
            "hub/worker.rs",
            "use super::Shared; pub fn run() { let _ = Shared; }",
        ),
    ];
    assert_eq!(circles(&files), vec![vec!["hub/mod.rs", "hub/worker.rs"]]);
    let circle = &graph(&files).circles()[0];
    let edge = circle
        .edges
        .iter()
        .find(|e| e.from.ends_with("worker.rs"))
        .unwrap();
    assert_eq!(
        edge.evidence,
        vec![Evidence {
            line: 1,
            text: "use super::Shared".into()
        }]
    );
}

#[test]
fn a_mod_rs_that_only_declares_and_re_exports_is_in_no_circle() {
    let files = [
        ("lib.rs", "mod hub; pub use hub::{A, B};"),
        (
            "hub/mod.rs",
            "mod a;\nmod b;\npub use a::A;\npub use b::B;\n",
        ),
        ("hub/a.rs", "pub struct A;"),
        (
            "hub/b.rs",
            "use super::A; pub struct B(A); fn f() -> super::A { A }",
        ),
    ];
    assert!(circles(&files).is_empty());
    assert!(edges(&files).contains("hub/b.rs -> hub/a.rs"));
    assert!(!edges(&files).contains("hub/b.rs -> hub/mod.rs"));
    // Two children that import each other through the re-exports are a circle of their own.
    let mut files = files.to_vec();
    files[2] = ("hub/a.rs", "use super::B; pub struct A(Option<Box<B>>);");
    assert_eq!(circles(&files), vec![vec!["hub/a.rs", "hub/b.rs"]]);
}

#[test]
fn a_mod_declaration_is_not_an_import() {
    let files = [
        ("lib.rs", "mod a; pub struct Root;"),
        ("a.rs", "use crate::Root; pub fn f(_: Root) {}"),
    ];
    assert_eq!(edges(&files), set(&["a.rs -> lib.rs"]));
    assert!(circles(&files).is_empty());
}

#[test]
fn paths_in_expressions_and_types_are_imports() {
    let files = [
        ("lib.rs", "mod a; mod b; mod x;"),
        ("a.rs", "pub fn f() {}"),
        (
            "b.rs",
            "fn g(_: super::x::Y) { crate::a::f(); self::h(); }\nfn h() {}",
        ),
        ("x.rs", "pub struct Y;"),
    ];
    assert_eq!(edges(&files), set(&["b.rs -> a.rs", "b.rs -> x.rs"]));
}

#[test]
fn relative_paths_name_child_modules_and_use_bindings() {
    let files = [
        (
            "lib.rs",
            "mod a; mod b; use b::B as Bee; fn f() { a::f(); Bee::new(); }",
        ),
        ("a.rs", "pub fn f() {}"),
        (
            "b.rs",
            "pub struct B; impl B { pub fn new() -> Self { B } }",
        ),
    ];
    assert_eq!(edges(&files), set(&["lib.rs -> a.rs", "lib.rs -> b.rs"]));
}

#[test]
fn naming_a_module_alone_imports_nothing_but_using_its_items_does() {
    let alone = [
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", "pub fn f() {}"),
        ("b.rs", "#[allow(unused_imports)] use crate::a;"),
    ];
    assert!(edges(&alone).is_empty());
    let used = [
        alone[0],
        alone[1],
        ("b.rs", "use crate::a; fn g() { a::f() }"),
    ];
    assert_eq!(edges(&used), set(&["b.rs -> a.rs"]));
}

#[test]
fn test_code_is_left_out() {
    let files = [
        ("lib.rs", "mod a; mod b; #[cfg(test)] mod tests;"),
        ("tests.rs", "this is not even Rust {"),
        (
            "a.rs",
            "pub fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::b::g;\n}\n",
        ),
        (
            "b.rs",
            "pub fn g() {}\n#[cfg(all(test, unix))] fn t() { crate::a::f() }\n\
             #[cfg(feature = \"extra\")] fn e() { crate::a::f() }",
        ),
    ];
    assert_eq!(edges(&files), set(&["b.rs -> a.rs"]));
    let analysis = analyze(&crate_c(&files), &["c"]).unwrap();
    let paths: Vec<&str> = analysis.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["c/src/a.rs", "c/src/b.rs", "c/src/lib.rs"]);
    let a = &analysis.files[0];
    assert_eq!((a.lines, a.test_lines), (5, 4));
}

#[test]
fn a_glob_re_export_is_followed_to_the_defining_file() {
    let files = [
        ("lib.rs", "mod m;"),
        ("m/mod.rs", "mod types; mod user; pub use self::types::*;"),
        ("m/types.rs", "pub struct T;"),
        ("m/user.rs", "use super::T; fn f(_: T) {}"),
    ];
    assert!(edges(&files).contains("m/user.rs -> m/types.rs"));
    assert!(circles(&files).is_empty());
}

#[test]
fn a_glob_of_a_module_with_items_imports_it() {
    let files = [
        ("lib.rs", "mod m;"),
        (
            "m/mod.rs",
            "mod child; pub fn helper() {} fn f() { child::g() }",
        ),
        ("m/child.rs", "use super::*; pub fn g() { helper() }"),
    ];
    assert_eq!(circles(&files), vec![vec!["m/child.rs", "m/mod.rs"]]);
}

#[test]
fn items_of_inline_modules_belong_to_their_file() {
    let files = [
        (
            "lib.rs",
            "mod a; mod inner { pub fn g() { crate::a::f() } }",
        ),
        ("a.rs", "pub fn f() {} fn h() { crate::inner::g() }"),
    ];
    assert_eq!(circles(&files), vec![vec!["a.rs", "lib.rs"]]);
    // `super` in an inline module is the file's own module.
    let files = [
        ("lib.rs", "mod a;"),
        ("a.rs", "pub fn f() {} mod inner { fn g() { super::f() } }"),
    ];
    assert!(edges(&files).is_empty());
}

#[test]
fn paths_inside_macros_and_derive_strings_are_imports() {
    let files = [
        ("lib.rs", "mod a; mod b; mod c; mod d;"),
        ("a.rs", "pub const NAME: &str = \"a\"; pub fn ser() {}"),
        (
            "b.rs",
            "fn g() -> String { format!(\"{}\", crate::a::NAME) }",
        ),
        (
            "c.rs",
            "#[derive(serde::Serialize)] struct S {\n    \
             #[serde(serialize_with = \"crate::a::ser\")]\n    x: u32,\n}",
        ),
        ("d.rs", "macro_rules! m { () => { $crate::a::ser() }; }"),
    ];
    assert_eq!(
        edges(&files),
        set(&["b.rs -> a.rs", "c.rs -> a.rs", "d.rs -> a.rs"])
    );
    let g = graph(&files);
    let edge = g.edge("c/src/c.rs", "c/src/a.rs").unwrap();
    assert_eq!(edge.evidence[0].line, 2);
}

#[test]
fn use_items_in_function_bodies_count() {
    let files = [
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", "pub struct Y;"),
        ("b.rs", "fn f() { use super::a::Y; let _ = Y; }"),
    ];
    assert_eq!(edges(&files), set(&["b.rs -> a.rs"]));
}

#[test]
fn other_crates_and_their_re_exports_import_nothing() {
    let files = [
        ("lib.rs", "mod a; mod b; pub use std::sync::Arc;"),
        (
            "a.rs",
            "use std::fmt; use crate::Arc; fn f(_: Arc<u8>, _: &dyn fmt::Debug) {}",
        ),
        ("b.rs", "use ::c::a::X;"),
    ];
    assert!(edges(&files).is_empty());
}

#[test]
fn super_super_and_nested_groups_resolve() {
    let files = [
        ("lib.rs", "mod x; mod y;"),
        ("x/mod.rs", "mod z;"),
        ("x/z/mod.rs", "mod w;"),
        (
            "x/z/w.rs",
            "use super::super::super::y::{self as why, inner::{K, L as _}};",
        ),
        ("y/mod.rs", "pub mod inner;"),
        ("y/inner.rs", "pub struct K; pub trait L {}"),
    ];
    assert_eq!(edges(&files), set(&["x/z/w.rs -> y/inner.rs"]));
}

#[test]
fn every_crate_root_of_a_source_folder_is_read() {
    let files = [
        ("lib.rs", "pub mod a;"),
        ("a.rs", "pub fn f() {}"),
        ("main.rs", "mod cli; fn main() { cli::run() }"),
        ("cli.rs", "pub fn run() { c::a::f() }"),
        ("bin/tool.rs", "fn main() {}"),
        ("bin/big/main.rs", "mod part; fn main() { part::go() }"),
        ("bin/big/part.rs", "pub fn go() {}"),
    ];
    let sources = crate_c(&files);
    assert_eq!(
        crate_roots(&sources, "c"),
        [
            "c/src/bin/big/main.rs",
            "c/src/bin/tool.rs",
            "c/src/lib.rs",
            "c/src/main.rs"
        ]
    );
    assert_eq!(
        edges(&files),
        set(&["bin/big/main.rs -> bin/big/part.rs", "main.rs -> cli.rs"])
    );
}

#[test]
fn a_circle_tells_its_files_edges_and_one_round_trip() {
    let mut g = ImportGraph::default();
    let ev = |line: usize, text: &str| Evidence {
        line,
        text: text.into(),
    };
    g.add_edge("k/src/a.rs", "k/src/b.rs", ev(3, "use crate::b::B"));
    g.add_edge("k/src/b.rs", "k/src/c.rs", ev(4, "crate::c::f"));
    g.add_edge("k/src/c.rs", "k/src/a.rs", ev(5, "use crate::a::A"));
    g.add_edge("k/src/c.rs", "k/src/a.rs", ev(5, "use crate::a::Z"));
    g.add_edge("k/src/c.rs", "k/src/b.rs", ev(9, "super::b::g"));
    g.add_edge("k/src/d.rs", "k/src/a.rs", ev(1, "use crate::a::A"));
    let circles = g.circles();
    assert_eq!(circles.len(), 1);
    let circle = &circles[0];
    assert_eq!(circle.files, ["k/src/a.rs", "k/src/b.rs", "k/src/c.rs"]);
    assert_eq!(circle.edges.len(), 4);
    assert_eq!(
        circle.example,
        ["k/src/a.rs", "k/src/b.rs", "k/src/c.rs", "k/src/a.rs"]
    );
    assert_eq!(
        circle.to_string(),
        "3 files import each other in k/src/:\n\
         \x20 for one: a.rs -> b.rs -> c.rs -> a.rs\n\
         \x20 a.rs -> b.rs  (line 3: use crate::b::B)\n\
         \x20 b.rs -> c.rs  (line 4: crate::c::f)\n\
         \x20 c.rs -> a.rs  (line 5: use crate::a::{A, Z})\n\
         \x20 c.rs -> b.rs  (line 9: super::b::g)\n"
    );
}

#[test]
fn big_files_are_told_largest_first() {
    let long = "fn f() {}\n".repeat(8);
    let longer = "fn g() {}\n".repeat(9);
    let files = [
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", &long),
        ("b.rs", &longer),
    ];
    let analysis = analyze(&crate_c(&files), &["c"]).unwrap();
    let big: Vec<(&str, usize)> = analysis
        .big_files(7)
        .iter()
        .map(|f| (f.path.as_str(), f.lines))
        .collect();
    assert_eq!(big, [("c/src/b.rs", 9), ("c/src/a.rs", 8)]);
}

#[test]
fn a_file_that_is_not_rust_is_an_error_that_names_it() {
    let err = analyze(
        &crate_c(&[("lib.rs", "mod a;"), ("a.rs", "\nfn {")]),
        &["c"],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "cannot parse c/src/a.rs, line 2");
}

fn member(path: &str, package: &str) -> Member {
    Member {
        path: path.into(),
        package: package.into(),
    }
}

#[test]
fn the_layout_wants_atamo_crates_at_the_root_beside_the_usual_folders() {
    let dirs = set(&[
        "atamo-core",
        "atamo-old",
        "examples",
        "guides",
        "plugins",
        "tests",
    ]);
    let files = set(&["README.md", "Cargo.toml"]);
    let good = [
        member("atamo-core", "atamo-core"),
        member("plugins/p", "p"),
        member("examples", "atamo-examples"),
        member("tests", "atamo-tests"),
    ];
    assert_eq!(
        layout_problems(&good, &dirs, &files),
        ["folder `atamo-old/` at the repository root is not a workspace member"]
    );
    let bad = [
        member("crates/atamo-core", "atamo-core"),
        member("tools", "tools"),
    ];
    let dirs = set(&["crates", "tools", "plugins"]);
    assert_eq!(
        layout_problems(&bad, &dirs, &set(&[])),
        [
            "crate `atamo-core` sits in `crates/atamo-core`: it belongs in `atamo-core/` at the \
             repository root",
            "member `tools` is package `tools`: only atamo-* crates, plugins/*, examples and \
             tests are members",
            "the repository root has no `examples/` folder",
            "the repository root has no `guides/` folder",
            "the repository root has no `tests/` folder",
            "the repository root has no `README.md`",
        ]
    );
}
