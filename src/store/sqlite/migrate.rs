//! Schema migrations, embedded in the binary. sqlx's SQLite migrator takes no lock of its
//! own, so two processes opening a fresh file at once would collide: they are serialised
//! here by an OS lock on `<db>.migrate.lock` (not the engine's lock, so a CLI command never
//! waits behind a running engine).

use anyhow::{Context, Result};
use sqlx::SqlStr;
use sqlx::SqliteConnection;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::path::Path;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../../migrations/0001_init.sql")),
    (
        2,
        "custom values",
        include_str!("../../../migrations/0002_custom_values.sql"),
    ),
    (3, "api", include_str!("../../../migrations/0003_api.sql")),
    (
        4,
        "lean indexes",
        include_str!("../../../migrations/0004_lean_indexes.sql"),
    ),
    (
        5,
        "delivery bodies",
        include_str!("../../../migrations/0005_delivery_bodies.sql"),
    ),
];

fn migrator() -> Migrator {
    migrator_upto(i64::MAX)
}

fn migrator_upto(last: i64) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .filter(|(version, _, _)| *version <= last)
        .map(|(version, name, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*name),
                MigrationType::Simple,
                SqlStr::from_static(sql),
                false,
            )
        })
        .collect();
    let mut m = Migrator::with_migrations(migrations);
    m.set_locking(false);
    m
}

/// Holds the migration lock while alive.
pub struct MigrationLock {
    _file: File,
}

pub async fn lock(db: &Path) -> Result<MigrationLock> {
    let mut path = db.as_os_str().to_owned();
    path.push(".migrate.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", Path::new(&path).display()))?;
    // Blocking wait: another process is migrating and will be done in milliseconds.
    let file = tokio::task::spawn_blocking(move || file.lock().map(|_| file))
        .await?
        .context("cannot take the migration lock")?;
    Ok(MigrationLock { _file: file })
}

pub async fn run(conn: &mut SqliteConnection) -> Result<()> {
    migrator()
        .run(conn)
        .await
        .context("cannot apply database migrations")
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, SqliteConnection};

    /// A database made before bodies moved to their own table keeps every body.
    #[tokio::test]
    async fn upgrading_moves_kept_bodies_beside_their_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        super::migrator_upto(4).run(&mut conn).await.unwrap();
        sqlx::query(
            "INSERT INTO events (seq, id, type, timestamp, data, received_at) VALUES (1, 'e', 'T', 0, '{}', 0); \
             INSERT INTO deliveries (id, event_seq, subscription_id, status, body, created_at, updated_at) \
             VALUES (7, 1, 's', 'dead', x'414243', 0, 0), (8, 1, 's', 'pending', NULL, 0, 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        super::run(&mut conn).await.unwrap();
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT delivery_id, body FROM delivery_bodies ORDER BY delivery_id")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(rows, vec![(7, b"ABC".to_vec())]);
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM deliveries")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn every_migration_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
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
