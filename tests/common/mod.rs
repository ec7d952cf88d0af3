//! Drives the real `hookctl` binary as a user would: a temp database, a sink process on
//! 127.0.0.1, `serve` as a child process. Every wait is on a condition with a deadline.
#![allow(dead_code)]

#[cfg(feature = "postgres")]
pub mod pg;
pub mod tmux;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtZm9yLWhvb2tjdGw=";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hookctl")
}

/// Polls `cond` until it holds or `timeout` passes; panics with `what` on timeout.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A scratch directory with a database and the environment every command gets. The
/// database is a SQLite file in the directory, or, when `TEST_POSTGRES_URL` names a
/// PostgreSQL server (`scripts/test.sh` starts one), a fresh database on it: the same
/// tests run against either backend.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// A file path, or a `postgres://` URL.
    pub db: PathBuf,
}

/// The PostgreSQL server the tests run against, if any (an URL of a database on it that
/// may create databases).
pub fn test_pg() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A new, empty database on the test server; returns its URL.
#[cfg(feature = "postgres")]
pub fn fresh_pg_database(admin: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand_suffix()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .expect("create a test database");
    });
    let mut url = url::Url::parse(admin).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// Two counts from one query on a PostgreSQL database.
#[cfg(feature = "postgres")]
pub fn pg_query_pair(url: &str, sql: &'static str) -> (i64, i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_as(sql).fetch_one(&mut c).await.expect("query")
    })
}

#[cfg(feature = "postgres")]
pub fn pg_query_one(url: &str, sql: &'static str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(sql)
            .fetch_one(&mut c)
            .await
            .expect("query")
    })
}

#[cfg(not(feature = "postgres"))]
pub fn pg_query_one(_url: &str, _sql: &'static str) -> i64 {
    panic!("this build has no PostgreSQL (feature `postgres`)")
}

#[cfg(not(feature = "postgres"))]
pub fn pg_query_pair(_url: &str, _sql: &'static str) -> (i64, i64) {
    panic!("this build has no PostgreSQL (feature `postgres`)")
}

#[cfg(not(feature = "postgres"))]
pub fn fresh_pg_database(_admin: &str) -> String {
    panic!("TEST_POSTGRES_URL is set but this build has no PostgreSQL (feature `postgres`)")
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = match test_pg() {
            Some(admin) => PathBuf::from(fresh_pg_database(&admin)),
            None => dir.path().join("hookctl.db"),
        };
        Env { dir, db }
    }

    /// A SQLite file whatever the backend under test: for what only a file has (its
    /// directory, its lock, its pages).
    pub fn sqlite_only() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("hookctl.db");
        Env { dir, db }
    }

    /// The database is a SQLite file (the default backend).
    pub fn sqlite(&self) -> bool {
        !self.db.to_string_lossy().starts_with("postgres")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("HOOKCTL_DB", &self.db)
            .env("HOOKCTL_ALLOW_NETWORKS", "127.0.0.0/8")
            .env_remove("HOOKCTL_CONFIG")
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path())
            .env_remove("HOOKCTL_LOG")
            .env("NO_COLOR", "1");
        c
    }

    /// How many bodies the database keeps, and how many deliveries point at one.
    pub fn stored_bodies(&self) -> (i64, i64) {
        const SQL: &str =
            "SELECT (SELECT COUNT(*) FROM bodies), (SELECT COUNT(*) FROM delivery_bodies)";
        if !self.sqlite() {
            return pg_query_pair(&self.db.to_string_lossy(), SQL);
        }
        rusqlite::Connection::open(&self.db)
            .expect("open the database")
            .query_row(SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("count bodies")
    }

    /// A count the database answers, whichever backend it is.
    pub fn count_sql(&self, sql: &'static str) -> i64 {
        if !self.sqlite() {
            return pg_query_one(&self.db.to_string_lossy(), sql);
        }
        rusqlite::Connection::open(&self.db)
            .expect("open the database")
            .query_row(sql, [], |r| r.get(0))
            .expect("count")
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run hookctl")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hookctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs with --json and parses stdout whatever the exit code (e.g. `status` exits 1).
    pub fn json_any(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let text = String::from_utf8_lossy(&out.stdout);
        let v = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), v)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// Adds a subscription and returns its id.
    pub fn sub_add(&self, args: &[&str]) -> String {
        let mut all = vec!["sub", "add"];
        all.extend_from_slice(args);
        self.json(&all)["id"].as_str().expect("id").to_string()
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("none.toml")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Reads a child's stream line by line on a thread, keeping every line.
fn collect_lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    collect_timed(stream, Arc::new(Mutex::new(Vec::new())))
}

/// Like `collect_lines`, also noting when each line arrived.
fn collect_timed(
    stream: impl std::io::Read + Send + 'static,
    times: Arc<Mutex<Vec<Instant>>>,
) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => {
                    times.lock().unwrap().push(Instant::now());
                    sink.lock().unwrap().push(l)
                }
                Err(_) => break,
            }
        }
    });
    lines
}

fn wait_for_addr(lines: &Arc<Mutex<Vec<String>>>, marker: &str, child: &mut Child) -> String {
    let mut addr = None;
    wait_until(
        &format!("a line with '{marker}'"),
        Duration::from_secs(30),
        || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "process exited ({status}) before listening: {:?}",
                    lines.lock().unwrap()
                );
            }
            addr = lines.lock().unwrap().iter().find_map(|l| {
                l.split(marker)
                    .nth(1)
                    .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
            });
            addr.is_some()
        },
    );
    addr.unwrap()
}

/// `hookctl --json sink` as a child process; every request it prints is kept.
pub struct Sink {
    pub child: Child,
    pub addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    times: Arc<Mutex<Vec<Instant>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Sink {
    pub fn start(env: &Env, extra: &[&str]) -> Sink {
        Sink::start_on(env, "127.0.0.1:0", extra)
    }

    pub fn start_on(env: &Env, listen: &str, extra: &[&str]) -> Sink {
        let mut child = env
            .cmd()
            .args(["--json", "sink", "--listen", listen, "--secret", SECRET])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sink");
        let times = Arc::new(Mutex::new(Vec::new()));
        let lines = collect_timed(child.stdout.take().unwrap(), times.clone());
        let stderr = collect_lines(child.stderr.take().unwrap());
        let addr = wait_for_addr(&stderr, "listening on http://", &mut child);
        Sink {
            child,
            addr,
            lines,
            times,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("sink line not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// When each request was printed, in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.times.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn count_path(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r["path"] == path).count()
    }

    pub fn wait_count(&self, n: usize, timeout: Duration) {
        wait_until(&format!("{n} requests at the sink"), timeout, || {
            self.count() >= n
        });
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hookctl serve` as a child process.
pub struct Serve {
    pub child: Child,
    pub addr: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    pub fn start(env: &Env) -> Serve {
        Serve::start_with(env, &[])
    }

    pub fn start_with(env: &Env, envs: &[(&str, &str)]) -> Serve {
        let mut cmd = env.cmd();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = collect_lines(child.stderr.take().unwrap());
        let addr = wait_for_addr(&stderr, "API listening on http://", &mut child);
        Serve {
            child,
            addr,
            stderr,
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn terminate(mut self, timeout: Duration) -> Option<i32> {
        // SAFETY: sending a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let mut status = None;
        wait_until("serve to exit after SIGTERM", timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status.and_then(|s| s.code())
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `n` events of mixed catalog types as NDJSON and returns the file and the ids.
pub fn ndjson(env: &Env, name: &str, n: usize, prefix: &str) -> (PathBuf, Vec<String>) {
    const TYPES: &[&str] = &[
        "ContactCreate",
        "InvoicePaid",
        "OpportunityStageUpdate",
        "AppointmentCreate",
        "FormSubmitted",
        "TaskCreate",
    ];
    let path = env.path(name);
    let mut text = String::new();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        text.push_str(&serde_json::json!({"type": TYPES[i % TYPES.len()], "id": id, "locationId": "loc1", "data": {"n": i}}).to_string());
        text.push('\n');
        ids.push(id);
    }
    std::fs::write(&path, text).unwrap();
    (path, ids)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The status of every delivery of every listed event.
pub fn delivery_statuses(env: &Env) -> Vec<String> {
    env.json(&["event", "list", "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["deliveries"].as_array().unwrap().clone())
        .map(|d| d["status"].as_str().unwrap().to_string())
        .collect()
}

/// Stores API tokens with the scope to publish, each named `id` (hash `hash-{id}`).
pub async fn add_publish_tokens(store: &dyn hookctl::store::Store, ids: &[&str]) {
    use hookctl::store::ApiToken;
    for id in ids {
        let token = ApiToken {
            id: id.to_string(),
            scopes: vec!["events:write".into()],
            location_id: None,
            created_at: 1,
            revoked_at: None,
        };
        store
            .add_token(token, format!("hash-{id}"), None)
            .await
            .expect("add token");
    }
}
