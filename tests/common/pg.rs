//! A throw-away PostgreSQL cluster on 127.0.0.1 (`scripts/pg-cluster.sh`, the server from
//! Debian's postgresql package), or the server `TEST_POSTGRES_URL` names.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A cluster for one test, stopped when dropped.
pub struct Cluster {
    _root: tempfile::TempDir,
    dir: PathBuf,
    pub url: String,
    pub port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster.sh")
}

impl Cluster {
    pub fn start() -> Cluster {
        let root = tempfile::tempdir().unwrap();
        // The server runs as the postgres user when the tests run as root.
        std::fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let dir = root.path().join("pg");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new(script())
            .args(["start", dir.to_str().unwrap(), &port.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Cluster {
            _root: root,
            dir,
            url,
            port,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .output();
    }
}

/// An environment on a fresh database of its own: on the server `TEST_POSTGRES_URL` names,
/// or on a cluster started for it (kept running while the guard lives).
pub fn env() -> (Option<Cluster>, super::Env) {
    let (cluster, admin) = match super::test_pg() {
        Some(url) => (None, url),
        None => {
            let c = Cluster::start();
            let url = c.url.clone();
            (Some(c), url)
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = PathBuf::from(super::fresh_pg_database(&admin));
    (cluster, super::Env { dir, db })
}
