//! Schema migrations, embedded in the binary; `PRAGMA user_version` records the last one
//! applied. Two processes opening a fresh file at once would both migrate it: they are
//! serialised by an OS lock on `<db>.migrate.lock` (not the engine's lock, so a CLI command
//! never waits behind a running engine). Databases made by earlier builds, whose migrator
//! (sqlx's) kept its own table instead, are recognised by that table.

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension};
use std::fs::{File, OpenOptions};
use std::path::Path;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "custom values",
        include_str!("../../../migrations/sqlite/0002_custom_values.sql"),
    ),
    (
        3,
        "api",
        include_str!("../../../migrations/sqlite/0003_api.sql"),
    ),
    (
        4,
        "lean indexes",
        include_str!("../../../migrations/sqlite/0004_lean_indexes.sql"),
    ),
    (
        5,
        "delivery bodies",
        include_str!("../../../migrations/sqlite/0005_delivery_bodies.sql"),
    ),
    (
        6,
        "shared bodies",
        include_str!("../../../migrations/sqlite/0006_shared_bodies.sql"),
    ),
    (
        7,
        "made bodies",
        include_str!("../../../migrations/sqlite/0007_made_bodies.sql"),
    ),
    (
        8,
        "superseded index",
        include_str!("../../../migrations/sqlite/0008_superseded_index.sql"),
    ),
    (
        9,
        "audit",
        include_str!("../../../migrations/sqlite/0009_audit.sql"),
    ),
    (
        10,
        "operational events",
        include_str!("../../../migrations/sqlite/0010_operational.sql"),
    ),
];

/// The schema this build creates and reads: its last migration.
pub const SCHEMA_VERSION: i64 = 10;

/// Holds the migration lock while alive.
pub struct MigrationLock {
    _file: File,
}

/// Blocks while another process migrates (milliseconds).
pub fn lock(db: &Path) -> Result<MigrationLock> {
    let mut path = db.as_os_str().to_owned();
    path.push(".migrate.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", Path::new(&path).display()))?;
    file.lock().context("cannot take the migration lock")?;
    Ok(MigrationLock { _file: file })
}

pub fn run(conn: &Connection) -> Result<()> {
    run_upto(conn, i64::MAX)
}

/// The last migration applied to this database.
fn applied(conn: &Connection) -> Result<i64> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version != 0 {
        return Ok(version);
    }
    let sqlx_table: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if sqlx_table.is_none() {
        return Ok(0);
    }
    let last: Option<i64> = conn.query_row(
        "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
        [],
        |r| r.get(0),
    )?;
    Ok(last.unwrap_or(0))
}

fn run_upto(conn: &Connection, last: i64) -> Result<()> {
    let applied = applied(conn).context("cannot read the database's schema version")?;
    let known = SCHEMA_VERSION;
    if applied > known {
        bail!(
            "the database's schema (version {applied}) is newer than this hookctl knows ({known}); use a newer hookctl"
        );
    }
    for (version, name, sql) in MIGRATIONS
        .iter()
        .filter(|(v, _, _)| *v > applied && *v <= last)
    {
        conn.execute_batch("BEGIN IMMEDIATE")
            .context("cannot apply database migrations")?;
        let done = conn
            .execute_batch(sql)
            .and_then(|()| conn.pragma_update(None, "user_version", version));
        match done {
            Ok(()) => conn
                .execute_batch("COMMIT")
                .context("cannot apply database migrations")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e).with_context(|| {
                    format!("cannot apply database migration {version} ({name})")
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_version_is_the_last_migration() {
        assert_eq!(
            super::MIGRATIONS.last().map(|m| m.0),
            Some(super::SCHEMA_VERSION)
        );
        assert!(crate::cli::args::VERSION.contains(&format!(" SQLite {},", super::SCHEMA_VERSION)));
    }

    use rusqlite::Connection;

    /// Every delivery's kept body, by delivery id.
    fn kept_bodies(conn: &Connection) -> Vec<(i64, Vec<u8>)> {
        let mut q = conn
            .prepare(
                "SELECT d.delivery_id, b.body FROM delivery_bodies d \
                 JOIN bodies b ON b.id = d.body_id ORDER BY d.delivery_id",
            )
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A database made before bodies moved to their own table keeps every body.
    #[test]
    fn upgrading_moves_kept_bodies_beside_their_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("old.db")).unwrap();
        super::run_upto(&conn, 4).unwrap();
        conn.execute_batch(
            "INSERT INTO events (seq, id, type, timestamp, data, received_at) VALUES (1, 'e', 'T', 0, '{}', 0); \
             INSERT INTO deliveries (id, event_seq, subscription_id, status, body, created_at, updated_at) \
             VALUES (7, 1, 's', 'dead', x'414243', 0, 0), (8, 1, 's', 'pending', NULL, 0, 0)",
        )
        .unwrap();
        super::run(&conn).unwrap();
        let rows = kept_bodies(&conn);
        assert_eq!(rows, vec![(7, b"ABC".to_vec())]);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }

    /// Bodies kept one per delivery (migration 5) stay readable through the shared table,
    /// and go with their event.
    #[test]
    fn upgrading_to_shared_bodies_keeps_every_body() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("v5.db")).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        super::run_upto(&conn, 5).unwrap();
        conn.execute_batch(
            "INSERT INTO events (seq, id, type, timestamp, data, received_at) VALUES (1, 'e', 'T', 0, '{}', 0); \
             INSERT INTO deliveries (id, event_seq, subscription_id, status, created_at, updated_at) \
             VALUES (7, 1, 'a', 'dead', 0, 0), (8, 1, 'b', 'delivered', 0, 0); \
             INSERT INTO delivery_bodies (delivery_id, body) VALUES (7, x'41'), (8, x'42');",
        )
        .unwrap();
        super::run(&conn).unwrap();
        let rows = kept_bodies(&conn);
        assert_eq!(rows, vec![(7, b"A".to_vec()), (8, b"B".to_vec())]);
        conn.execute("DELETE FROM events WHERE seq = 1", [])
            .unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM bodies) + (SELECT COUNT(*) FROM delivery_bodies)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

    /// Earlier builds recorded migrations in sqlx's table and left `user_version` at 0:
    /// such a database is upgraded from where it stands, not migrated again from scratch.
    #[test]
    fn a_database_migrated_by_sqlx_continues_from_its_last_migration() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("sqlx.db")).unwrap();
        super::run_upto(&conn, 3).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 0; \
             CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
               installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
               checksum BLOB NOT NULL, execution_time BIGINT NOT NULL); \
             INSERT INTO _sqlx_migrations VALUES (1, 'init', 0, 1, x'', 0), (2, 'custom values', 0, 1, x'', 0), \
               (3, 'api', 0, 1, x'', 0); \
             INSERT INTO events (seq, id, type, timestamp, data, received_at) VALUES (1, 'kept', 'T', 0, '{}', 0);",
        )
        .unwrap();
        super::run(&conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::MIGRATIONS.len() as i64);
        let id: String = conn
            .query_row("SELECT id FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(id, "kept");
        // Migrations 5 and 6 ran: bodies have tables of their own.
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'bodies'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("new.db")).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let err = super::run(&conn).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }

    #[test]
    fn every_migration_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "sql")
            })
            .count();
        assert_eq!(files, super::MIGRATIONS.len());
    }
}
