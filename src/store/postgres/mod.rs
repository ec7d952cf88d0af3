//! The PostgreSQL backend: several engines on one database share its deliveries through
//! leases taken with `FOR UPDATE SKIP LOCKED`. This part opens the database — a pool, a
//! clear line for each way that fails, the embedded migrations applied under an advisory
//! lock — and refuses a schema newer than the binary knows.

mod admin;
mod batch;
mod maintenance;
pub mod operational;
mod read;
pub mod record;
mod rows;
pub mod scratch;
mod store;
pub mod work;
pub mod workers;

pub use store::{PgSettings, PgStore};

use anyhow::{Result, anyhow, bail};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// Embedded migrations: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../../../migrations/postgres/0001_init.sql"),
)];

/// The schema this build creates and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// The advisory lock key that serialises migrations between processes ("hookctl" in ASCII).
const MIGRATION_LOCK: i64 = 0x0068_6f6f_6b63_746c;

/// The URL without its password, for messages.
pub fn shown(url: &str) -> String {
    super::shown(std::path::Path::new(url))
}

/// Opens a pool on `url` and brings its schema up to date.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| anyhow!("{}: not a PostgreSQL URL ({e})", shown(url)))?
        .application_name("hookctl");
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.clone())
        .await
        .map_err(|e| explain(url, &options, e))?;
    migrate(&pool, url).await?;
    Ok(pool)
}

/// One line that says what went wrong opening the database.
fn explain(url: &str, o: &PgConnectOptions, e: sqlx::Error) -> anyhow::Error {
    let at = format!("{}:{}", o.get_host(), o.get_port());
    if let Some(db) = e.as_database_error() {
        return match db.code().as_deref() {
            Some("28P01") | Some("28000") => anyhow!(
                "PostgreSQL at {at} refused user '{}': wrong password, or the user may not log in",
                o.get_username()
            ),
            Some("3D000") => anyhow!(
                "PostgreSQL at {at} has no database '{}'",
                o.get_database().unwrap_or("?")
            ),
            _ => anyhow!("PostgreSQL at {at}: {}", db.message()),
        };
    }
    match e {
        sqlx::Error::Io(io) => anyhow!("cannot reach PostgreSQL at {at}: {io}"),
        sqlx::Error::PoolTimedOut => {
            anyhow!("cannot reach PostgreSQL at {at}: no answer within 5 s")
        }
        sqlx::Error::Tls(t) => anyhow!("PostgreSQL at {at}: TLS failed: {t}"),
        other => anyhow!("{}: {other}", shown(url)),
    }
}

async fn migrate(pool: &PgPool, url: &str) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = apply(&mut conn, url).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    result
}

async fn apply(conn: &mut sqlx::PgConnection, url: &str) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public.schema_version') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    let version: i64 = if exists {
        sqlx::query_scalar("SELECT max(version) FROM schema_version")
            .fetch_one(&mut *conn)
            .await
            .map(|v: Option<i64>| v.unwrap_or(0))?
    } else {
        0
    };
    if version > SCHEMA_VERSION {
        bail!(
            "{} has schema {version}, newer than this hookctl knows ({SCHEMA_VERSION}): \
             run a newer hookctl",
            shown(url)
        );
    }
    for (v, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > version) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(*sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| anyhow!("migration {v} ({name}) failed: {e}"))?;
        sqlx::query("UPDATE schema_version SET version = $1")
            .bind(*v)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
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
        assert!(
            crate::cli::args::VERSION.ends_with(&format!(" PostgreSQL {})", super::SCHEMA_VERSION))
        );
    }
}
