//! Records the target triple being built for, so that plugin and host can compare theirs.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=ATAMO_BUILD_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
