//! `atamo`: the Atamo command line (see `atamo --help`).

fn main() -> anyhow::Result<std::process::ExitCode> {
    atamo_server::cli::main()
}
