//! A real PostgreSQL server for the SQL agent's tests.
//!
//! `ATAMO_TEST_POSTGRES_URL` set (scripts/test sets it): that server is used. Otherwise one is
//! started for the test: `initdb` in a temporary directory, `postgres` on a free 127.0.0.1
//! port (as `nobody` when running as root, since PostgreSQL refuses root), stopped on drop.
//! Each test works in its own schema, so tests sharing one server do not meet.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const URL_VAR: &str = "ATAMO_TEST_POSTGRES_URL";

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL server: the shared one, or one of this test's own.
pub struct Pg {
    pub url: String,
    own: Option<OwnServer>,
}

struct OwnServer {
    dir: PathBuf,
    bin: PathBuf,
    as_nobody: bool,
}

impl Pg {
    pub fn start() -> Pg {
        if let Ok(url) = std::env::var(URL_VAR) {
            if !url.trim().is_empty() {
                return Pg { url, own: None };
            }
        }
        let bin = find_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in \
                 /usr/lib/postgresql/*/bin): run scripts/test, which installs and starts it, or \
                 set {URL_VAR} to a server's connection string"
            )
        });
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "atamo-sql-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let as_nobody = is_root();
        if as_nobody {
            run(Command::new("chown").arg("nobody").arg(&dir), "chown");
        }
        let own = OwnServer {
            dir: dir.clone(),
            bin: bin.clone(),
            as_nobody,
        };
        let data = dir.join("data");
        run(
            own.command("initdb").arg("-D").arg(&data).args([
                "-U",
                "atamo",
                "--auth=trust",
                "-E",
                "UTF8",
            ]),
            "initdb",
        );
        let port = free_port();
        run(
            own.command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-t", "30", "-o"])
                .arg(format!(
                    "-p {port} -h 127.0.0.1 -k {} -c fsync=off",
                    dir.display()
                ))
                .arg("start"),
            "pg_ctl start",
        );
        Pg {
            url: format!("host=127.0.0.1 port={port} user=atamo dbname=postgres"),
            own: Some(own),
        }
    }

    /// A client for setting up and checking.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

impl OwnServer {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(own) = self.own.take() {
            let _ = own
                .command("pg_ctl")
                .arg("-D")
                .arg(own.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .output();
            let _ = std::fs::remove_dir_all(&own.dir);
        }
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn find_bin() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has(&dir) {
                // Debian links into /usr/lib/postgresql/N/bin; use the real directory.
                let real = std::fs::canonicalize(dir.join("initdb")).ok()?;
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|d| has(d))
        .collect();
    dirs.sort();
    dirs.pop()
}
