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
//!
//! That catch-up ends with an fsync of the database file, which waits for every page the
//! checkpoints here wrote since the file was last synced: 30–117 ms at a time in workload 1
//! of `hookctl bench`, on the writer's thread, so nothing was claimed or recorded
//! meanwhile (about 4 % of the workload's time). Here the file is synced every few
//! megabytes of pages copied, off the writer's path, and the writer's threshold is high
//! enough that it catches up once every few seconds of sustained load.

use rusqlite::Connection;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// The writer's own automatic checkpoint threshold, in pages (~160 MB of WAL): it bounds the
/// WAL's size, and under sustained load lets it start over (above).
pub const WRITER_AUTOCHECKPOINT_PAGES: i64 = 40_000;

/// WAL frames copied back (a page each, ~8 MB) between two syncs of the database file from
/// this thread: about what the writer's own checkpoint may find left to sync.
const SYNC_AFTER_FRAMES: i64 = 2_000;

/// Commits are coalesced: at most one checkpoint per interval. It bounds how much WAL a
/// burst leaves behind (tens of milliseconds of writes), not when anything is durable.
const INTERVAL: Duration = Duration::from_millis(25);

/// Runs on a thread of its own until the writer drops its end of `commits` (one message
/// per commit, coalesced).
pub fn run(conn: Connection, commits: Receiver<()>) {
    let mut failing = false;
    // Frames copied back in the current WAL (it counts from zero again once the WAL starts
    // over), and frames copied since the database file was last synced from here.
    let (mut copied, mut unsynced) = (0i64, 0i64);
    while commits.recv().is_ok() {
        // Its row: busy, frames in the WAL, frames copied back.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(2)) {
            Ok(now) => {
                failing = false;
                unsynced += if now >= copied {
                    now - copied
                } else {
                    now.max(0)
                };
                copied = now;
                if unsynced >= SYNC_AFTER_FRAMES {
                    unsynced = 0;
                    sync_database_file(&conn);
                }
            }
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

/// Syncs the database file through SQLite's own handle of it. A second descriptor of our
/// own would do the same fsync, but closing it would drop every POSIX lock this process
/// holds on the file, SQLite's included. A failure is left to the next checkpoint's own
/// sync to report: this one only moves work earlier.
fn sync_database_file(conn: &Connection) {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `conn` is open and used by this thread alone, so its handle is valid and
    // nothing else uses the file object while we do. SQLITE_FCNTL_FILE_POINTER writes the
    // main database's `sqlite3_file` pointer into `file` and keeps ownership of it; its
    // methods table is SQLite's, and `xSync` is how SQLite syncs that file itself.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
            return;
        }
        if let Some(sync) = (*(*file).pMethods).xSync {
            sync(file, ffi::SQLITE_SYNC_NORMAL);
        }
    }
}
