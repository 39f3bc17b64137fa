//! A real PostgreSQL server for Atamo's tests: the one `scripts/test` started, or one of the
//! test process's own.
//!
//! ```no_run
//! # async fn demo() {
//! let pg = atamo_test_pg::Pg::start();
//! let schema = atamo_test_pg::fresh_schema("claims");
//! let client = pg.client().await;
//! client
//!     .batch_execute(&format!("CREATE SCHEMA {schema}"))
//!     .await
//!     .unwrap();
//! # }
//! ```
//!
//! # Which server
//! - [`URL_VAR`] (`ATAMO_TEST_POSTGRES_URL`) set and not empty: that server (`scripts/test` sets
//!   it after starting one for the whole run).
//! - Otherwise a server of this process: `initdb` in a temporary directory and `postgres` on a
//!   free 127.0.0.1 port, with `fsync=off` (run as `nobody` when the process is root, since
//!   PostgreSQL refuses to run as root). It is shared by every [`Pg`] of the process that is alive
//!   at the same time, and stopped (its directory removed) when the last one is dropped.
//!
//! The binaries are found on `PATH` or in `/usr/lib/postgresql/*/bin` (the newest there).
//!
//! # One schema per test
//! Tests sharing a server keep apart by working in their own schema: [`fresh_schema`] names one
//! no other test of any process uses.
//!
//! Everything here panics when something is missing or fails: a test helper that cannot provide
//! its server fails the test, with the reason.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The environment variable naming a running server's connection string.
pub const URL_VAR: &str = "ATAMO_TEST_POSTGRES_URL";

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// A schema name no other test uses: `t_<prefix>_<pid>_<n>_<random>`, lower case, at most 63
/// bytes (`prefix` is cut, and anything but ASCII letters, digits and `_` in it becomes `_`).
/// The schema is not created.
pub fn fresh_schema(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let prefix: String = prefix
        .chars()
        .take(24)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "t_{prefix}_{}_{}_{:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

/// A PostgreSQL server for a test: the shared one named by [`URL_VAR`], or the process's own.
pub struct Pg {
    /// The connection string (`host=127.0.0.1 port=… user=… dbname=…`, or [`URL_VAR`]'s value).
    pub url: String,
    /// Keeps the process's own server running while this handle lives.
    _own: Option<Arc<OwnServer>>,
}

impl Pg {
    /// The server to use: [`URL_VAR`]'s, or the process's own (started now unless one is
    /// running already). Blocks while a server starts (a few seconds).
    ///
    /// # Panics
    /// When PostgreSQL is not installed or does not start.
    pub fn start() -> Pg {
        if let Ok(url) = std::env::var(URL_VAR) {
            if !url.trim().is_empty() {
                return Pg { url, _own: None };
            }
        }
        static RUNNING: Mutex<Weak<OwnServer>> = Mutex::new(Weak::new());
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        let own = match running.upgrade() {
            Some(own) => own,
            None => {
                let own = Arc::new(OwnServer::start());
                *running = Arc::downgrade(&own);
                own
            }
        };
        Pg {
            url: own.url.clone(),
            _own: Some(own),
        }
    }

    /// A client for setting up and checking (its connection runs on a spawned task).
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test server ({}): {e}", self.url));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

/// A server this process started; stopped and removed on drop.
struct OwnServer {
    url: String,
    dir: PathBuf,
    bin: PathBuf,
    as_nobody: bool,
}

impl OwnServer {
    fn start() -> OwnServer {
        let bin = find_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in \
                 /usr/lib/postgresql/*/bin): run scripts/test, which installs and starts it, or \
                 set {URL_VAR} to a server's connection string"
            )
        });
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "atamo-test-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let as_nobody = is_root();
        if as_nobody {
            run(Command::new("chown").arg("nobody").arg(&dir), "chown");
        }
        let port = free_port();
        // Built before the server runs, so a failure below still removes the directory.
        let own = OwnServer {
            url: format!("host=127.0.0.1 port={port} user=atamo dbname=postgres"),
            dir,
            bin,
            as_nobody,
        };
        let data = own.dir.join("data");
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
        run(
            own.command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(own.dir.join("server.log"))
                .args(["-w", "-t", "30", "-o"])
                .arg(format!(
                    "-p {port} -h 127.0.0.1 -k {} -c fsync=off",
                    own.dir.display()
                ))
                .arg("start"),
            "pg_ctl start",
        );
        own
    }

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

impl Drop for OwnServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
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
