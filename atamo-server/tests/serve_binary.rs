//! The `atamo` binary itself: `atamo serve` with only a data directory and a free port, its
//! admin key file, JSON logs, SIGTERM ending it with 0; `atamo keys create` making a key the
//! service accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ATAMO: &str = env!("CARGO_BIN_EXE_atamo");

/// Starts `atamo serve` in `dir` and returns it with the address it printed.
fn serve(dir: &std::path::Path, extra: &[&str]) -> (Child, String) {
    serve_with(dir, extra, None)
}

fn serve_with(dir: &std::path::Path, extra: &[&str], admin_token: Option<&str>) -> (Child, String) {
    let mut command = Command::new(ATAMO);
    match admin_token {
        Some(t) => command.env("ATAMO_ADMIN_TOKEN", t),
        None => command.env_remove("ATAMO_ADMIN_TOKEN"),
    };
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("atamo listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < until, "atamo serve did not stop in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_with_no_setup_and_stops_on_sigterm_with_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(dir.path(), &["--log-format", "json"]);
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // The first admin key: in a file only its owner can read, and it works.
    let token_file = dir.path().join("admin.token");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let r = http
        .get(format!("http://{addr}/v1/event-types"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        dir.path().join("atamo.db").is_file(),
        "SQLite store in the data directory"
    );

    // `atamo keys create` writes to the same store; the running service finds the new key.
    let out = Command::new(ATAMO)
        .args(["keys", "create", "--role", "reader", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = http
        .get(format!("http://{addr}/v1/event-types"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("http://{addr}/v1/keys"))
        .bearer_auth(&reader)
        .json(&serde_json::json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"));
        assert!(v.get("level").is_some(), "{l}");
    }

    // A second start keeps the key (no new file is written) and the data.
    let (mut again, addr) = serve(dir.path(), &[]);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    let r = http
        .get(format!("http://{addr}/v1/keys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let keys: serde_json::Value = r.json().await.unwrap();
    assert_eq!(keys["items"].as_array().unwrap().len(), 2);
    sigterm(&again);
    assert_eq!(
        wait_exit(&mut again, Duration::from_secs(30)).code(),
        Some(0)
    );
}

#[test]
fn a_bad_configuration_stops_serve_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("atamo.toml");
    std::fs::write(
        &file,
        "listen = \"nowhere\"\n[hub]\nkeep_alive = \"soon\"\n",
    )
    .unwrap();
    let out = Command::new(ATAMO)
        .args(["serve", "--config"])
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":1:"), "{err}");
    assert!(err.contains(":3:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_key_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let token = "a-long-admin-token-from-the-environment";
    let (mut child, addr) = serve_with(dir.path(), &[], Some(token));
    assert!(
        !dir.path().join("admin.token").exists(),
        "no key file when the environment gives the key"
    );
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{addr}/v1/keys"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("http://{addr}/v1/keys"))
        .bearer_auth("a-long-admin-token-from-the-environmenT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Ctrl-C (SIGINT) stops it as SIGTERM does.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(30)).code(),
        Some(0)
    );
}
