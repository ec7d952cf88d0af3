//! One engine per database: an OS file lock on `<db>.lock`, released by the kernel even on
//! `kill -9`. The file is never deleted (deleting it would let two engines lock two files).

use crate::store::EngineRunning;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct EngineLock {
    // Held for the life of the engine; dropping it releases the lock.
    _file: File,
    pub path: PathBuf,
}

pub fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Takes the lock, or says which process holds it.
pub fn try_acquire(db: &Path) -> Result<Result<EngineLock, EngineRunning>> {
    let path = lock_path(db);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())?;
            file.flush()?;
            Ok(Ok(EngineLock { _file: file, path }))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim().to_string();
            Ok(Err(EngineRunning {
                db: db.display().to_string(),
                pid: (!pid.is_empty()).then_some(pid),
            }))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The pid of the process holding the engine lock, if any. Reads the kernel's lock table
/// rather than trying the lock: a probe that took the lock, even for an instant, could make
/// an engine that is starting at that moment refuse to run.
pub fn holder(db: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(lock_path(db)).ok()?;
    let inode = meta.ino();
    let table = lock_table()?;
    // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (major:minor:inode)
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let at = f.iter().position(|w| *w == "FLOCK")?;
        let pid: u32 = f.get(at + 3)?.parse().ok()?;
        let ino: u64 = f.get(at + 4)?.rsplit(':').next()?.parse().ok()?;
        (ino == inode).then_some(pid)
    })
}

/// The kernel's lock table in one `read`: it lists the table under its lock per call, so a
/// table read in pieces can skip a line when another lock (any SQLite file's, any process's)
/// comes or goes between them — which made a held engine lock look free.
fn lock_table() -> Option<String> {
    let mut size = 1 << 16;
    loop {
        let mut buf = vec![0u8; size];
        let n = File::open("/proc/locks").ok()?.read(&mut buf).ok()?;
        if n < size {
            buf.truncate(n);
            return String::from_utf8(buf).ok();
        }
        // Filled the buffer: there may be more; read it all again into a larger one.
        size *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let first = try_acquire(&db).unwrap().unwrap();
        let second = try_acquire(&db).unwrap();
        let err = second.err().unwrap();
        assert_eq!(
            err.pid.as_deref(),
            Some(std::process::id().to_string().as_str())
        );
        assert_eq!(holder(&db), Some(std::process::id()));
        drop(first);
        assert_eq!(holder(&db), None);
        assert!(try_acquire(&db).unwrap().is_ok());
    }
}
