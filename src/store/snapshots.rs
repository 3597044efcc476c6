//! Snapshots of a development server's database (`PUT /private/snapshots/{name}`) and
//! restoring one (`POST /private/snapshots/{name}/restore`).
//!
//! Taking one is `taler-lite backup`'s copy without its checks and syncs: SQLite's online
//! backup from one pooled read-only connection holding a single read transaction, so the
//! copy is exactly what was committed when it began, while writes go on. Staged bodies of
//! uploads still streaming in are left out (never acknowledged).
//!
//! Restoring copies the snapshot back over the live file with the same API, on the writer's
//! own connection, in one step: one write transaction, as every other write. Readers in WAL
//! mode see the file before or after it, never between; writes queued meanwhile run after
//! it, on the restored state. The writer's generation goes up: an upload that was staging a
//! body before the restore has its next chunk refused ([`StoreError::Restored`]) instead of
//! writing into a body id that may now be another's.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::backup::begin_snapshot;
use super::{Store, StoreError};

/// How long a step may find the destination busy (another process writing) before giving up.
const BUSY_LIMIT: Duration = Duration::from_secs(10);

/// Copies `source` into `dest` in one step, waiting out a busy destination.
fn copy_all(source: &Connection, dest: &mut Connection) -> Result<(), StoreError> {
    let backup = Backup::new(source, dest)?;
    let started = Instant::now();
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            // Busy or Locked (non-exhaustive).
            _ if started.elapsed() > BUSY_LIMIT => {
                return Err(StoreError::Invariant(format!("the database stayed locked for {BUSY_LIMIT:?}")));
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Saves the committed state into a new file `dest` (replacing one there); returns its
/// size. Blocking.
pub fn take(store: &Store, dest: &Path) -> Result<u64, StoreError> {
    let tmp = dest.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let copied = (|| {
        let source = store.reader()?;
        begin_snapshot(&source)?;
        let mut copy = Connection::open(&tmp)?;
        let result = copy_all(&source, &mut copy);
        let ended = source.execute_batch("COMMIT");
        result?;
        ended?;
        drop(source);
        // One self-contained file; the staged bodies' chunks go with them (cascade).
        copy.query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))?;
        copy.execute_batch("PRAGMA foreign_keys=ON; DELETE FROM kyc_contents WHERE h_body IS NULL")?;
        super::space::give_back_all(&copy)?;
        copy.close().map_err(|(_, e)| StoreError::from(e))?;
        std::fs::rename(&tmp, dest)?;
        Ok(std::fs::metadata(dest)?.len())
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}

/// Makes the live database exactly the snapshot in `src`, through the writer (see the
/// module's doc).
pub async fn restore(store: &Store, src: &Path) -> Result<(), StoreError> {
    let src = src.to_owned();
    store
        .exclusive(move |conn| {
            let source = Connection::open_with_flags(&src, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            copy_all(&source, conn)
        })
        .await
}

/// One snapshot kept.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotInfo {
    pub name: String,
    pub bytes: u64,
    pub taken: crate::timestamp::Timestamp,
}

/// Where a server keeps its snapshots, and which it has.
#[derive(Debug, Default)]
pub struct Shelf {
    /// In a development server's ephemeral folder; else made on first use and removed on exit.
    given: Option<std::path::PathBuf>,
    made: Option<tempfile::TempDir>,
    kept: std::collections::BTreeMap<String, SnapshotInfo>,
}

impl Shelf {
    /// Snapshots in `folder` (created when first needed), or in a new temporary folder.
    pub fn new(folder: Option<std::path::PathBuf>) -> Shelf {
        Shelf { given: folder, ..Shelf::default() }
    }

    /// The file of snapshot `name` (a checked name: letters, digits, `.`, `_`, `-`).
    pub fn path_of(&mut self, name: &str) -> Result<std::path::PathBuf, StoreError> {
        let folder = match (&self.given, &self.made) {
            (Some(dir), _) => {
                std::fs::create_dir_all(dir)?;
                dir.clone()
            }
            (None, Some(dir)) => dir.path().to_owned(),
            (None, None) => {
                let dir = tempfile::Builder::new().prefix("taler-lite-snapshots-").tempdir()?;
                self.made.insert(dir).path().to_owned()
            }
        };
        Ok(folder.join(format!("{name}.snapshot")))
    }

    pub fn get(&self, name: &str) -> Option<&SnapshotInfo> {
        self.kept.get(name)
    }

    pub fn list(&self) -> Vec<SnapshotInfo> {
        self.kept.values().cloned().collect()
    }

    /// Bytes of every snapshot but `except`.
    pub fn bytes_besides(&self, except: &str) -> u64 {
        self.kept.values().filter(|s| s.name != except).map(|s| s.bytes).sum()
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    pub fn insert(&mut self, info: SnapshotInfo) {
        self.kept.insert(info.name.clone(), info);
    }

    /// Forgets `name` and removes its file; whether it existed.
    pub fn remove(&mut self, name: &str) -> Result<bool, StoreError> {
        if self.kept.remove(name).is_none() {
            return Ok(false);
        }
        let path = self.path_of(name)?;
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::EddsaPublicKey;
    use crate::store::{OpenOptions, extern_keys, kyc, stats};

    #[test]
    fn a_restore_brings_back_exactly_the_snapshot_and_fences_off_staged_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("live.sqlite3"), &OpenOptions::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let add = |n: u8| {
            let key = EddsaPublicKey::from_bytes([n; 32]);
            store.write_blocking(move |tx| extern_keys::upsert(tx, &key, "A", 1)).unwrap()
        };
        add(1);
        let snapshot = dir.path().join("one.snapshot");
        take(&store, &snapshot).unwrap();
        add(2);
        rt.block_on(async {
            let staged = kyc::begin(&store, 1).await.unwrap();
            kyc::append(&store, staged, 0, bytes::Bytes::from_static(b"%PDF-")).await.unwrap();
            restore(&store, &snapshot).await.unwrap();
            let late = kyc::append(&store, staged, 1, bytes::Bytes::from_static(b"more")).await;
            assert!(matches!(late, Err(StoreError::Restored)), "{late:?}");
            // A new upload after the restore works as ever.
            let fresh = kyc::begin(&store, 2).await.unwrap();
            kyc::append(&store, fresh, 0, bytes::Bytes::from_static(b"%PDF-")).await.unwrap();
            // The old one's clean-up touches nothing of the new one.
            kyc::discard(&store, staged).await.unwrap();
            let chunks = store.read_blocking(stats::row_counts).unwrap();
            assert!(chunks.contains(&("kyc_chunks".to_owned(), 1)), "{chunks:?}");
        });
        let keys = store.read_blocking(extern_keys::list).unwrap();
        assert_eq!(keys.len(), 1);
        store.close();
    }
}
