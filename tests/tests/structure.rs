//! The workspace's structure: every crate at the repository root, no import circles between
//! the files of a crate, and no production file over `MAX_FILE_LINES` lines.

use std::path::Path;

use atamo_tests::structure::{describe, Analysis, Workspace, MAX_FILE_LINES};

fn workspace() -> Workspace {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Workspace::load(root).unwrap_or_else(|e| panic!("{}", describe(&e)))
}

fn analysis() -> Analysis {
    workspace()
        .analyze()
        .unwrap_or_else(|e| panic!("{}", describe(&e)))
}

#[test]
fn every_crate_sits_at_the_repository_root() {
    let problems = workspace()
        .layout_problems()
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
    assert!(
        problems.is_empty(),
        "the layout is off:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let circles = analysis().graph.circles();
    let told: Vec<String> = circles.iter().map(ToString::to_string).collect();
    assert!(
        circles.is_empty(),
        "{} import circles between files; break each by moving what both sides need into a \
         module that imports neither (a file -> file edge lists the lines that make it):\n\n{}",
        circles.len(),
        told.join("\n")
    );
}

#[test]
fn no_production_file_is_over_the_limit() {
    let analysis = analysis();
    let big = analysis.big_files(MAX_FILE_LINES);
    let told: Vec<String> = big
        .iter()
        .map(|f| match f.test_lines {
            0 => format!("{}: {} lines", f.path, f.lines),
            t => format!(
                "{}: {} lines ({} without its test module)",
                f.path,
                f.lines,
                f.lines - t
            ),
        })
        .collect();
    assert!(
        big.is_empty(),
        "{} production files are over {MAX_FILE_LINES} lines; split each by concern:\n  {}",
        big.len(),
        told.join("\n  ")
    );
}
