//! The test plugin as a process agent, for the host's process-agent tests.
//!
//! Without arguments it serves the plugin's `test` kind over stdin and stdout with
//! `atamo_plugin_sdk::serve_stdio`. One argument selects a misbehaviour, written with plain
//! stdin and stdout rather than the SDK:
//!
//! - `--garbage`: answers the hello and pings, then writes a line that is not JSON when the
//!   first call comes.
//! - `--wrong-version`: answers the hello with protocol 999.
//! - `--hang`: answers the hello, then never reads stdin again (no pongs, no goodbye).
//! - `--exit-after-hello`: answers the hello, then exits with code 3.

use std::io::{BufRead, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mode = std::env::args().nth(1);
    match mode.as_deref() {
        None => atamo_plugin_sdk::serve_stdio(atamo_test_plugin::plugin()),
        Some("--garbage") => garbage(),
        Some("--wrong-version") => wrong_version(),
        Some("--hang") => hang(),
        Some("--exit-after-hello") => exit_after_hello(),
        Some(other) => {
            eprintln!("unknown mode {other}; expected --garbage, --wrong-version, --hang or --exit-after-hello");
            ExitCode::from(2)
        }
    }
}

/// Reads the host's hello (the first line) and answers it with `protocol`.
fn hello(protocol: u32) -> Option<std::io::Lines<std::io::StdinLock<'static>>> {
    let mut lines = std::io::stdin().lock().lines();
    let first = lines.next()?.ok()?;
    eprintln!("INFO got {first}");
    say(&serde_json::json!({
        "type": "hello",
        "protocol": protocol,
        "name": "atamo-test-process-agent",
        "version": env!("CARGO_PKG_VERSION"),
    })
    .to_string());
    Some(lines)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn garbage() -> ExitCode {
    let Some(lines) = hello(1) else {
        return ExitCode::FAILURE;
    };
    for line in lines.map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        match message["type"].as_str() {
            Some("ping") => {
                say(&serde_json::json!({"type": "pong", "id": message["id"]}).to_string())
            }
            Some("call") => {
                eprintln!("WARN about to write garbage");
                say("this is not JSON {");
            }
            Some("goodbye") => return ExitCode::SUCCESS,
            _ => {}
        }
    }
    ExitCode::SUCCESS
}

fn wrong_version() -> ExitCode {
    let Some(lines) = hello(999) else {
        return ExitCode::FAILURE;
    };
    for _ in lines {}
    ExitCode::SUCCESS
}

fn hang() -> ExitCode {
    let Some(_lines) = hello(1) else {
        return ExitCode::FAILURE;
    };
    eprintln!("WARN hanging now");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn exit_after_hello() -> ExitCode {
    if hello(1).is_none() {
        return ExitCode::FAILURE;
    }
    ExitCode::from(3)
}
