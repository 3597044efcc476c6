//! One process writes a database file at a time: an exclusive advisory lock on a file
//! beside it (`DATABASE.lock`), held for as long as the process writes.
//!
//! Two servers on one file would both accept writes, and the second one's start-up
//! clean-up of staged uploads would delete the chunks of bodies the first one is
//! committing. The lock is a `flock` on its own file rather than on the database: SQLite
//! locks the database with POSIX record locks, which a process loses when it closes *any*
//! descriptor of that file, so the database must never be opened and closed beside
//! SQLite. The kernel drops a `flock` when its holder exits in any way (`kill -9`
//! included), so a lock is never left behind; the file itself stays (removing it on exit
//! would let a starting server lock a file that a third one is about to replace).
//! The holder writes its process id into the file, so that whoever is refused can say who
//! holds it.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file of the database at `database`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DbLock {
    /// Kept open: closing it releases the lock.
    _file: File,
    path: PathBuf,
    created: bool,
}

impl DbLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether taking the lock made its file (a start-up that then fails removes it).
    pub fn created(&self) -> bool {
        self.created
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "in use by another taler-lite process ({}), which holds {}: one process writes a database at a time",
        match .pid { Some(pid) => format!("pid {pid}"), None => "pid unknown".to_owned() },
        .lock.display()
    )]
    Held { lock: PathBuf, pid: Option<u32> },
    #[error("cannot lock {}: {source}", .lock.display())]
    Io { lock: PathBuf, source: std::io::Error },
}

/// Takes the lock of the database at `database` without waiting. Creates the lock file if
/// it is missing (nothing else: a refused caller leaves the folder as it was, since the
/// holder made the file already).
pub fn acquire(database: &Path) -> Result<DbLock, LockError> {
    let path = lock_path(database);
    let io = |source| LockError::Io { lock: path.clone(), source };
    let open =
        |create_new| std::fs::OpenOptions::new().read(true).write(true).create_new(create_new).open(&path);
    let (mut file, created) = match open(true) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (open(false).map_err(io)?, false),
        Err(e) => return Err(io(e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(LockError::Held { pid: holder(&mut file), lock: path }),
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // Ours now: say who holds it.
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .map_err(io)?;
    Ok(DbLock { _file: file, path, created })
}

/// The holder's process id, as it wrote it. A holder that has just taken the lock may not
/// have written it yet: a few short tries.
fn holder(file: &mut File) -> Option<u32> {
    for _ in 0..10 {
        let mut text = String::new();
        if file.seek(SeekFrom::Start(0)).is_ok()
            && file.read_to_string(&mut text).is_ok()
            && let Ok(pid) = text.trim().parse()
        {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.sqlite3");
        let held = acquire(&db).unwrap();
        assert_eq!(held.path(), dir.path().join("t.sqlite3.lock"));
        // A second open file description of the same file: what another process has.
        match acquire(&db) {
            Err(LockError::Held { pid, lock }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(lock, dir.path().join("t.sqlite3.lock"));
            }
            other => panic!("{other:?}"),
        }
        let message = acquire(&db).unwrap_err().to_string();
        assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
        drop(held);
        acquire(&db).unwrap();
    }
}
