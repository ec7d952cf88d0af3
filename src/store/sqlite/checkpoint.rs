//! WAL checkpoints on a connection of their own. SQLite's automatic checkpoint runs inside
//! the committing connection, so it would stall the single writer (the engine's serial
//! bottleneck) for a fifth of its time under load; a PASSIVE checkpoint from another
//! connection copies the same pages on another thread while the writer keeps appending.
//! The writer keeps a much larger automatic threshold. Under sustained writes it is reached
//! all the same: the WAL starts over from its beginning only when a write transaction
//! begins with every frame copied back, which a checkpoint on another thread seldom sees
//! while the writer keeps appending. The writer's own checkpoint, right after its commit,
//! catches the last frames up (in benchmark workload 1: about 5 % of the writer's profile
//! samples, and 21 fsyncs by the writer in 2 s, which it issues only in checkpoints); doing
//! that from here would need FULL or RESTART, which take the write lock and leave the
//! writer sleeping in its busy handler instead.

use rusqlite::Connection;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// The writer's own automatic checkpoint threshold, in pages (~40 MB of WAL): it bounds the
/// WAL's size, and under sustained load lets it start over (above).
pub const WRITER_AUTOCHECKPOINT_PAGES: i64 = 10000;

/// Commits are coalesced: at most one checkpoint per interval. It bounds how much WAL a
/// burst leaves behind (tens of milliseconds of writes), not when anything is durable.
const INTERVAL: Duration = Duration::from_millis(25);

/// Runs on a thread of its own until the writer drops its end of `commits` (one message
/// per commit, coalesced).
pub fn run(conn: Connection, commits: Receiver<()>) {
    let mut failing = false;
    while commits.recv().is_ok() {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => failing = false,
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
        // Pacing, not synchronisation: commits that arrive meanwhile share the next one.
        std::thread::sleep(INTERVAL);
    }
}
