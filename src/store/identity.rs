//! The files the writer writes are still the ones at the database's paths.
//!
//! A database deleted or replaced under a running server (an `rm`, a `mv` of a backup
//! over it, a copy renamed over its `-wal`) keeps working for the process that has it
//! open: SQLite writes on into a file nobody will open again, and every later answer
//! would be a 2xx for a change that is gone at the next start. So the writer compares,
//! before it answers a commit group and every few hundred milliseconds when idle, the
//! device and inode of descriptors it opened on the database and its WAL (read once, at
//! open) with those at the paths: one `stat` per file, a microsecond or two. A path that
//! still names the inode we hold open means that inode has a name, so it was neither
//! deleted nor replaced; and while we hold it open its inode number cannot be reused.
//!
//! The descriptors are opened once and closed only after SQLite has closed its own:
//! SQLite's locks are POSIX record locks, which a process loses when it closes any
//! descriptor of the file.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One watched file.
struct Watched {
    /// What the file is to the operator ("database", "WAL").
    role: &'static str,
    path: PathBuf,
    /// Held open so that the inode (and so its number) stays ours.
    _file: File,
    /// Device and inode of `_file`.
    id: (u64, u64),
}

impl Watched {
    fn open(role: &'static str, path: PathBuf) -> std::io::Result<Watched> {
        let file = File::open(&path)?;
        let opened = file.metadata()?;
        Ok(Watched { role, path, _file: file, id: (opened.dev(), opened.ino()) })
    }

    /// What happened to it, if anything.
    fn changed(&self) -> Option<Change> {
        let what = match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was deleted".to_owned(),
            Err(e) => format!("cannot be examined ({e})"),
            Ok(now) if (now.dev(), now.ino()) != self.id => "was replaced by another file".to_owned(),
            Ok(_) => return None,
        };
        Some(Change { role: self.role, path: self.path.clone(), what })
    }
}

/// A watched file that is no longer the one at its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub role: &'static str,
    pub path: PathBuf,
    pub what: String,
}

impl Change {
    /// Whether the database file itself (not its WAL) is gone from its path.
    pub fn is_database(&self) -> bool {
        self.role == "database"
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} {} {}", self.role, self.path.display(), self.what)
    }
}

/// The database's and its WAL's identity, as opened.
pub struct Identity {
    watched: Vec<Watched>,
}

impl Identity {
    /// Opens descriptors on the database at `database` and its WAL, which must exist
    /// (the writer's connection in WAL mode has made it). Symbolic links are followed,
    /// as SQLite follows them to find the WAL.
    pub fn open(database: &Path) -> std::io::Result<Identity> {
        let resolved = std::fs::canonicalize(database)?;
        let mut wal = resolved.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Identity {
            watched: vec![Watched::open("database", resolved)?, Watched::open("WAL", PathBuf::from(wal))?],
        })
    }

    /// The first watched file that changed: the database before its WAL.
    pub fn changed(&self) -> Option<Change> {
        self.watched.iter().find_map(Watched::changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_and_replacement_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.sqlite3");
        let wal = dir.path().join("t.sqlite3-wal");
        std::fs::write(&db, b"db").unwrap();
        std::fs::write(&wal, b"wal").unwrap();
        let identity = Identity::open(&db).unwrap();
        assert_eq!(identity.changed(), None);
        std::fs::remove_file(&wal).unwrap();
        let change = identity.changed().unwrap();
        assert!(!change.is_database());
        assert!(change.to_string().contains("WAL") && change.to_string().contains("deleted"), "{change}");
        std::fs::write(&wal, b"another").unwrap();
        assert!(identity.changed().unwrap().what.contains("replaced"));
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        std::fs::rename(dir.path().join("other"), &db).unwrap();
        let change = identity.changed().unwrap();
        assert!(change.is_database() && change.what.contains("replaced"), "{change}");
    }
}
