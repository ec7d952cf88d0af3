//! The PostgreSQL backend against a real, throw-away cluster on 127.0.0.1
//! (`scripts/pg-cluster.sh`; the server from Debian's postgresql package).
#![cfg(feature = "postgres")]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A cluster for one test, stopped when dropped.
struct Cluster {
    _root: tempfile::TempDir,
    dir: PathBuf,
    url: String,
    port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster.sh")
}

impl Cluster {
    fn start() -> Cluster {
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

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_fresh_database_gets_the_schema_and_bad_targets_get_one_line() {
    use hookctl::store::postgres;
    let c = Cluster::start();
    rt().block_on(async {
        let pool = postgres::connect(&c.url, 4).await.expect("connect");
        let v: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(v, postgres::SCHEMA_VERSION);
        // Opening again applies nothing twice.
        postgres::connect(&c.url, 4).await.expect("reconnect");

        let wrong = c.url.replace("hookctl:hookctl@", "hookctl:nope@");
        let e = postgres::connect(&wrong, 2).await.unwrap_err().to_string();
        assert!(e.contains("refused user 'hookctl'"), "{e}");
        assert!(!e.contains("nope"), "the password is not shown: {e}");

        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let nobody = c
            .url
            .replace(&format!(":{}/", c.port), &format!(":{free}/"));
        let e = postgres::connect(&nobody, 2).await.unwrap_err().to_string();
        assert!(
            e.starts_with("cannot reach PostgreSQL at 127.0.0.1:"),
            "{e}"
        );

        let missing = format!("{}/nosuch", c.url.rsplit_once('/').unwrap().0);
        let e = postgres::connect(&missing, 2)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no database 'nosuch'"), "{e}");

        sqlx::query("UPDATE schema_version SET version = 99")
            .execute(&pool)
            .await
            .unwrap();
        let e = postgres::connect(&c.url, 2).await.unwrap_err().to_string();
        assert!(
            e.contains("schema 99, newer than this hookctl knows"),
            "{e}"
        );
        assert!(!e.contains(":hookctl@"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    });
}
