//! The bench plugin as a process agent.

fn main() -> std::process::ExitCode {
    atamo_plugin_sdk::serve_stdio(atamo_bench_plugin::plugin())
}
