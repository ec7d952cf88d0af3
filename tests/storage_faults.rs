//! Storage faults: a read-only filesystem, a database locked by another writer beyond the
//! busy timeout, a full disk, a corrupt file. Each gets one clear error line, no crash and
//! no retry storm, and nothing committed before is lost. Filesystems are small tmpfs
//! mounts of the test's own (the tests run as root; CI does too).

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(dir.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

fn on(env: &Env, db: &Path, args: &[&str]) -> std::process::Output {
    env.cmd().env("HOOKCTL_DB", db).args(args).output().unwrap()
}

fn one_line_error(out: &std::process::Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected a failure: {err}");
    assert!(err.to_lowercase().contains(want), "'{err}' lacks '{want}'");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"));
}

fn events(env: &Env, db: &Path) -> usize {
    let out = on(env, db, &["--json", "event", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn read_only_filesystem() {
    let env = Env::new();
    let m = Mount::tmpfs(&env.path("ro"), "8m");
    let db = m.0.join("h.db");
    for i in 0..5 {
        assert!(
            on(
                &env,
                &db,
                &["emit", "TaskCreate", "--id", &format!("before-{i}")]
            )
            .status
            .success()
        );
    }
    m.remount("ro");
    one_line_error(&on(&env, &db, &["emit", "TaskCreate"]), "read");
    one_line_error(
        &on(&env, &db, &["serve", "--listen", "127.0.0.1:0"]),
        "read",
    );
    m.remount("rw");
    assert_eq!(events(&env, &db), 5);
}

#[test]
fn locked_beyond_the_busy_timeout() {
    let env = Env::new();
    env.ok(&["emit", "TaskCreate", "--id", "before"]);
    let holder = rusqlite::Connection::open(&env.db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = std::time::Instant::now();
    let out = env
        .cmd()
        .env("HOOKCTL_BUSY_TIMEOUT_MS", "300")
        .args(["emit", "TaskCreate", "--id", "during"])
        .output()
        .unwrap();
    one_line_error(&out, "locked");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    env.ok(&["emit", "TaskCreate", "--id", "after"]);
    let ids: Vec<String> = env
        .json(&["event", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["after", "before"]);
}

#[test]
fn full_disk() {
    let env = Env::new();
    let m = Mount::tmpfs(&env.path("small"), "600k");
    let db = m.0.join("h.db");
    assert!(
        on(&env, &db, &["emit", "TaskCreate", "--id", "first"])
            .status
            .success()
    );
    // Fill the disk with big events until a write is refused.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(60_000));
    let mut stored = 1;
    let mut refused = None;
    for i in 0..100 {
        let out = on(
            &env,
            &db,
            &[
                "emit",
                "TaskCreate",
                "--id",
                &format!("big-{i}"),
                "--data",
                &big,
            ],
        );
        if out.status.success() {
            stored += 1;
        } else {
            refused = Some(out);
            break;
        }
    }
    let out = refused.expect("the disk never filled");
    one_line_error(&out, "full");
    // Everything acknowledged before is there.
    assert_eq!(events(&env, &db), stored);
}

#[test]
fn corrupt_database() {
    let env = Env::new();
    env.ok(&["emit", "TaskCreate"]);
    // The header says what SQLite will not open.
    let mut bytes = std::fs::read(&env.db).unwrap();
    bytes[..16].copy_from_slice(b"not a database!!");
    std::fs::write(&env.db, &bytes).unwrap();
    let _ = std::fs::remove_file(env.db.with_extension("db-wal"));
    let _ = std::fs::remove_file(env.db.with_extension("db-shm"));
    one_line_error(&env.run(&["event", "list"]), "not a database");
    one_line_error(
        &env.run(&["serve", "--listen", "127.0.0.1:0"]),
        "not a database",
    );
}
