//! WAL checkpoints on a connection of their own. SQLite's automatic checkpoint runs inside
//! the committing connection, so it would stall the single writer (the engine's serial
//! bottleneck) for a fifth of its time under load; a PASSIVE checkpoint from another
//! connection copies the same pages on another thread while the writer keeps appending.
//! The writer keeps a much larger automatic threshold as a safety valve, for when this
//! task cannot keep up or could not open its connection.

use sqlx::SqliteConnection;
use std::time::Duration;
use tokio::sync::mpsc;

/// The writer's own automatic checkpoint threshold, in pages (~40 MB of WAL): reached only
/// if the background checkpoints fall behind.
pub const WRITER_AUTOCHECKPOINT_PAGES: &str = "10000";

/// Commits are coalesced: at most one checkpoint per interval. It bounds how much WAL a
/// burst leaves behind (tens of milliseconds of writes), not when anything is durable.
const INTERVAL: Duration = Duration::from_millis(25);

/// Runs until the writer drops its end of `commits` (one message per commit, coalesced).
pub async fn run(mut conn: SqliteConnection, mut commits: mpsc::Receiver<()>) {
    let mut failing = false;
    while commits.recv().await.is_some() {
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut conn)
            .await
        {
            Ok(_) => failing = false,
            Err(e) => {
                // A full disk or a read-only file: the writer's commits report it to the
                // user in one line; a second line from here would only repeat it (and a
                // CLI command's error must stay one line). Once per episode, for debugging.
                if !failing {
                    tracing::debug!("background WAL checkpoint failed: {e}");
                }
                failing = true;
            }
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
