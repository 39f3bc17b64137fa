//! `atamo`: the Atamo command line (see `atamo --help`).

// The service allocates and frees small buffers on every request, often on another thread than
// the one that allocated them; glibc's allocator spent a fifth of the service's time on that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    atamo_server::cli::main()
}
