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
];

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
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
