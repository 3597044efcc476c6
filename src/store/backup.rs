//! `taler-lite backup`: a consistent copy of the live database.
//!
//! The copy is made with SQLite's online backup API from one pooled read-only
//! connection that holds a single read transaction for the whole copy. In WAL
//! mode that transaction is a snapshot: the server keeps committing beside it,
//! the copy never restarts (SQLite restarts a backup whose source changes only
//! when the source connection sees the change), and it holds exactly what was
//! committed when the snapshot was taken, after the command started. So every
//! write acknowledged before the backup began is in the copy.
//!
//! The copy is written to `DEST.tmp` in rollback-journal mode (one
//! self-contained file: reading it later creates no `-wal` or `-shm`; `serve`
//! turns WAL on again when it opens it), loses the staged bodies of uploads
//! still streaming in (never acknowledged, and `serve` would drop them at start
//! anyway), is synced, must pass `PRAGMA integrity_check`, and only then is
//! renamed to `DEST`, whose folder is synced so that the rename survives a power
//! cut too. A failure leaves `DEST` as it was and removes `DEST.tmp`.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::{Db, Store, StoreError, stats};

/// Pages copied per step: progress is reported between steps.
const PAGES_PER_STEP: i32 = 256;

/// How long a step may keep finding the copy busy before the backup gives up.
const BUSY_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists already (pass --force to replace it)")]
    Exists(PathBuf),
    #[error("{} is {what}: a backup never writes over it", .dest.display())]
    Protected { dest: PathBuf, what: String },
    #[error("the copy fails PRAGMA integrity_check: {}", .0.join("; "))]
    Integrity(Vec<String>),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Store(StoreError::Sqlite(e))
    }
}

/// What a backup made.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    /// The copy's length on disk.
    pub bytes: u64,
    pub duration: Duration,
    /// Rows per table in the copy.
    pub rows: RowCounts,
    /// Staged bodies (uploads in progress) left out of the copy.
    pub staged_dropped: u64,
}

/// `DEST.tmp`, beside `DEST`.
pub fn temporary_path(dest: &Path) -> PathBuf {
    let mut name: OsString = dest.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_owned(), source }
}

/// Removes a file that may not exist.
fn remove_if_present(path: &Path) -> Result<(), BackupError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// A temporary copy and the journal files SQLite may leave beside it.
fn remove_temporary(tmp: &Path) -> Result<(), BackupError> {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut name: OsString = tmp.as_os_str().to_owned();
        name.push(suffix);
        remove_if_present(Path::new(&name))?;
    }
    Ok(())
}

/// The files a backup must never write over, beside those given by the caller: the
/// database and the files SQLite and the server keep beside it.
fn database_files(database: &Path) -> Vec<(String, PathBuf)> {
    let beside = |suffix: &str| {
        let mut name: OsString = database.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    vec![
        ("the database itself".to_owned(), database.to_owned()),
        ("the database's WAL".to_owned(), beside("-wal")),
        ("the database's shared-memory index".to_owned(), beside("-shm")),
        ("the database's rollback journal".to_owned(), beside("-journal")),
        ("the database's lock file".to_owned(), super::lock::lock_path(database)),
    ]
}

/// Whether `a` and `b` are one file: the same device and inode (through symbolic and
/// hard links) when both exist, else the same name in the same (resolved) folder.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return (x.dev(), x.ino()) == (y.dev(), y.ino());
    }
    let resolved = |p: &Path| -> Option<PathBuf> {
        let folder = match p.parent() {
            Some(f) if !f.as_os_str().is_empty() => f,
            _ => Path::new("."),
        };
        Some(std::fs::canonicalize(folder).ok()?.join(p.file_name()?))
    };
    match (resolved(a), resolved(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Copies the database of `store` to `dest` (see the module's doc). Neither `dest` nor
/// `DEST.tmp` may be the database, its `-wal`, `-shm`, `-journal` or lock file, or one of
/// `protected` (the key and token files: label and path), whatever links lead there.
/// `progress(done_bytes, total_bytes)` is called between steps of the copy.
pub fn backup(
    store: &Store,
    dest: &Path,
    overwrite: bool,
    protected: &[(String, PathBuf)],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let tmp = temporary_path(dest);
    // Renaming a copy over the live file or its WAL would cut the server off from what
    // it acknowledged: every later write, or every write since the last checkpoint, lost.
    let mut guarded = database_files(store.path());
    guarded.extend(protected.iter().cloned());
    for (what, path) in &guarded {
        for candidate in [dest, tmp.as_path()] {
            if same_file(candidate, path) {
                let what =
                    if candidate == dest { what.clone() } else { format!("{what} (as {})", tmp.display()) };
                return Err(BackupError::Protected { dest: dest.to_owned(), what });
            }
        }
    }
    if dest.exists() && !overwrite {
        return Err(BackupError::Exists(dest.to_owned()));
    }
    let folder = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder");
        return Err(io(folder)(missing));
    }
    // A `DEST.tmp` is ours: what an interrupted earlier backup left.
    remove_temporary(&tmp)?;
    let copied = copy_to(store, &tmp, progress).and_then(|staged_dropped| {
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, dest).map_err(io(dest))?;
        File::open(folder).and_then(|f| f.sync_all()).map_err(io(folder))?;
        Ok(staged_dropped)
    });
    let (staged_dropped, rows) = match copied {
        Ok(result) => result,
        Err(e) => {
            // Best effort: the failure is the news.
            let _ = remove_temporary(&tmp);
            return Err(e);
        }
    };
    let bytes = std::fs::metadata(dest).map_err(io(dest))?.len();
    Ok(BackupReport { path: dest.to_owned(), bytes, duration: started.elapsed(), rows, staged_dropped })
}

/// Rows per table.
type RowCounts = Vec<(String, u64)>;

/// The copy into `tmp`, checked; returns the staged bodies dropped and the
/// copy's row counts.
fn copy_to(
    store: &Store,
    tmp: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(u64, RowCounts), BackupError> {
    let source = store.reader()?;
    begin_snapshot(&source)?;
    let page_size: i64 = source.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let page_size = u64::try_from(page_size).unwrap_or(0);
    let mut copy = Connection::open(tmp)?;
    let copied = run_backup(&source, &mut copy, page_size, progress);
    // Ends the snapshot whatever happened; a failed copy is the error to report.
    let ended = source.execute_batch("COMMIT");
    copied?;
    ended?;
    drop(source);
    // One self-contained file, and durable commits on it.
    copy.query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))?;
    copy.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON")?;
    // The chunks go with them (ON DELETE CASCADE).
    let staged_dropped = copy.execute("DELETE FROM kyc_contents WHERE h_body IS NULL", [])?;
    // Their pages too: the copy is no larger than what it holds.
    super::space::give_back_all(&copy)?;
    let problems = integrity_problems(&copy)?;
    if !problems.is_empty() {
        return Err(BackupError::Integrity(problems));
    }
    let rows = stats::row_counts(&Db::new(&copy))?;
    copy.close().map_err(|(_, e)| BackupError::from(e))?;
    Ok((u64::try_from(staged_dropped).unwrap_or(0), rows))
}

fn run_backup(
    source: &Connection,
    copy: &mut Connection,
    page_size: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), BackupError> {
    let backup = Backup::new(source, copy)?;
    let mut busy_since: Option<Instant> = None;
    loop {
        let step = backup.step(PAGES_PER_STEP)?;
        let p = backup.progress();
        let total = u64::try_from(p.pagecount).unwrap_or(0);
        let remaining = u64::try_from(p.remaining).unwrap_or(0);
        progress(total.saturating_sub(remaining) * page_size, total * page_size);
        match step {
            StepResult::Done => return Ok(()),
            StepResult::More => busy_since = None,
            // Busy or Locked (the enum is non-exhaustive). Only the copy can
            // be locked, as the source's snapshot is held; nobody else should
            // open `DEST.tmp`, but wait a little if someone does.
            _ => {
                let since = *busy_since.get_or_insert_with(Instant::now);
                if since.elapsed() > BUSY_LIMIT {
                    return Err(BackupError::Store(StoreError::Invariant(format!(
                        "the copy stayed locked for {BUSY_LIMIT:?}"
                    ))));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Opens a read transaction on `conn` and makes sure it holds one: in WAL
/// mode, a snapshot of the file that later commits of other connections do
/// not change. A deferred `BEGIN` takes no snapshot by itself; the first read
/// of the file does.
pub(super) fn begin_snapshot(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN")?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
    match conn.transaction_state(Some(rusqlite::MAIN_DB))? {
        rusqlite::TransactionState::Read => Ok(()),
        other => Err(StoreError::Invariant(format!("expected a read transaction, not {other:?}"))),
    }
}

/// What `PRAGMA integrity_check` says other than "ok".
pub(super) fn integrity_problems(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut problems = Vec::new();
    for row in rows {
        let line = row?;
        if line != "ok" {
            problems.push(line);
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, OpenOptions, kyc};

    fn count(path: &Path, table: &str) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn copies_committed_rows_drops_staged_ones_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("live.sqlite3"), &OpenOptions::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let now = 1_700_000_000_000_000;
            let key = crate::crypto::EddsaPublicKey::from_bytes([1; 32]);
            store
                .write(Durability::Durable, move |tx| crate::store::extern_keys::upsert(tx, &key, "A", now))
                .await
                .unwrap();
            let staged = kyc::begin(&store, now).await.unwrap();
            // A whole chunk: its pages are freed in the copy when it is dropped.
            kyc::append(&store, staged, 0, bytes::Bytes::from(vec![b'%'; 1 << 20])).await.unwrap();
        });
        let dest = dir.path().join("copy.sqlite3");
        let mut calls = 0;
        let report = backup(&store, &dest, false, &[], &mut |done, total| {
            calls += 1;
            assert!(done <= total);
        })
        .unwrap();
        assert!(calls > 0);
        assert_eq!(report.staged_dropped, 1);
        assert_eq!(report.bytes, std::fs::metadata(&dest).unwrap().len());
        assert!(report.rows.contains(&("extern_keys".into(), 1)));
        assert!(report.rows.contains(&("kyc_chunks".into(), 0)));
        assert!(report.rows.contains(&("fixture_transfers".into(), 0)), "every table is reported");
        assert!(!temporary_path(&dest).exists());
        assert_eq!(count(&dest, "extern_keys"), 1);
        assert_eq!(count(&dest, "kyc_contents"), 0);
        // The live file still has its staged body.
        assert_eq!(store.read_blocking(stats::row_counts).unwrap()[3], ("kyc_chunks".into(), 1));
        let mode: String =
            Connection::open(&dest).unwrap().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete");
        // The dropped body's pages are not in the copy as free pages.
        let free: i64 =
            Connection::open(&dest).unwrap().query_row("PRAGMA freelist_count", [], |r| r.get(0)).unwrap();
        assert_eq!(free, 0);

        let err = backup(&store, &dest, false, &[], &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, BackupError::Exists(_)), "{err}");
        let nowhere = dir.path().join("no-such-folder").join("copy.sqlite3");
        let err = backup(&store, &nowhere, false, &[], &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("no-such-folder: no such folder"), "{err}");
        let live = dir.path().join(".").join("live.sqlite3");
        let err = backup(&store, &live, true, &[], &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, BackupError::Protected { .. }), "{err}");
        std::fs::write(temporary_path(&dest), b"left over").unwrap();
        backup(&store, &dest, true, &[], &mut |_, _| {}).unwrap();
        assert!(!temporary_path(&dest).exists());
        store.close();
        // A copy opens as a live database again, in WAL mode.
        Store::open(&dest, &OpenOptions::default()).unwrap().close();
    }

    /// Commits between the steps of the copy neither restart it nor reach it:
    /// the copy is the file as it was when the backup began.
    #[test]
    fn the_copy_is_the_snapshot_taken_at_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("live.sqlite3"), &OpenOptions::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let id = kyc::begin(&store, 1).await.unwrap();
            for seq in 0..12 {
                let chunk = bytes::Bytes::from(vec![seq as u8; kyc::CHUNK_SIZE]);
                kyc::append(&store, id, seq, chunk).await.unwrap();
            }
            // Committed (not staged), so that the copy keeps its pages.
            store
                .write(Durability::Durable, move |tx| {
                    tx.execute(
                        "UPDATE kyc_contents SET h_body = zeroblob(64) WHERE content_id = ?1",
                        [id.content.0],
                    )
                })
                .await
                .unwrap();
        });
        let dest = dir.path().join("copy.sqlite3");
        let mut steps = 0u8;
        backup(&store, &dest, false, &[], &mut |_, _| {
            assert!(steps < 100, "the backup keeps restarting: the source is not a snapshot");
            steps += 1;
            let key = crate::crypto::EddsaPublicKey::from_bytes([steps; 32]);
            store.write_blocking(move |tx| crate::store::extern_keys::upsert(tx, &key, "during", 1)).unwrap();
        })
        .unwrap();
        assert!(steps >= 3, "{steps} steps: the copy should take several");
        assert_eq!(count(&dest, "extern_keys"), 0);
        assert_eq!(count(&dest, "kyc_chunks"), 12);
        let live = store.read_blocking(stats::row_counts).unwrap();
        assert_eq!(live[1], ("extern_keys".into(), u64::from(steps)));
        store.close();
    }
}
