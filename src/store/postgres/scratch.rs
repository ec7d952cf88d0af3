//! Scratch databases on a server, for `hookctl bench`: one per workload, dropped after it.

use anyhow::{Context, Result};
use sqlx::Connection;

async fn admin(server: &str) -> Result<sqlx::PgConnection> {
    sqlx::PgConnection::connect(server)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", super::shown(server)))
}

/// Creates an empty database on the server `server`'s URL names; returns its URL and name.
pub async fn create(server: &str) -> Result<(String, String)> {
    let name = format!(
        "hookctl_bench_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut c = admin(server).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .with_context(|| {
            format!(
                "cannot create a scratch database on {}",
                super::shown(server)
            )
        })?;
    let mut url = url::Url::parse(server)?;
    url.set_path(&name);
    Ok((url.to_string(), name))
}

pub async fn drop(server: &str, name: &str) -> Result<()> {
    let mut c = admin(server).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await?;
    Ok(())
}

pub async fn bytes(server: &str, name: &str) -> Result<u64> {
    let mut c = admin(server).await?;
    let n: i64 = sqlx::query_scalar("SELECT pg_database_size($1)")
        .bind(name)
        .fetch_one(&mut c)
        .await?;
    Ok(n.max(0) as u64)
}
