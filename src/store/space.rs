//! Giving the space of discarded bodies back to the file system.
//!
//! A staged body that is refused (a bad signature once whole, an upload cut off or
//! abandoned, one left by a crash and removed at start) frees its pages inside the file.
//! SQLite reuses free pages, but without more the file keeps the size of its peak: a
//! stranger who sends a few large bodies that are refused would leave the disk that
//! much fuller for good. The file is `auto_vacuum = INCREMENTAL` (schema version 4), and
//! after every discard [`reclaim_later`] runs `PRAGMA incremental_vacuum` on the writer,
//! [`STEP_PAGES`] pages per bulk job: each is a short write transaction like a chunk write,
//! so small durable writes (registrations, an upload's commit) go ahead of the steps
//! between two of them (`writer`'s bulk queue) and one commit's latency stays bounded.
//! When no free page is left, a passive checkpoint copies the shortened file's pages from
//! the WAL, which is when the main file is truncated (with `--checkpoints external`, the
//! replicator's next checkpoint does it). A copy (`backup`, a snapshot) from which staged
//! bodies are dropped gives their pages back at once ([`give_back_all`]).

use std::sync::atomic::{AtomicBool, Ordering};

use super::{Checkpoints, Durability, Store, StoreError};

/// Free pages given back per write job: 4 MiB at 4 KiB pages. Giving back pages at the
/// file's end costs little; moving a page from the end into a hole costs about a page
/// write, so a step takes tens of milliseconds at most, less than a discard's batch.
pub const STEP_PAGES: u32 = 1024;

/// Whether a reclaim is running, and whether another was asked for meanwhile.
#[derive(Default)]
pub struct Reclaiming {
    running: AtomicBool,
    asked: AtomicBool,
}

/// Gives the file's free pages back on a task of its own (one at a time per store: a
/// discard that ends while one runs has its pages taken by the running one).
pub fn reclaim_later(store: &Store) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let flags = store.reclaiming.clone();
    flags.asked.store(true, Ordering::SeqCst);
    if flags.running.swap(true, Ordering::SeqCst) {
        return;
    }
    let store = store.clone();
    runtime.spawn(async move {
        loop {
            while flags.asked.swap(false, Ordering::SeqCst) {
                match reclaim(&store).await {
                    Ok(0) => {}
                    Ok(pages) => log::debug!("gave {pages} free pages back to the file system"),
                    Err(StoreError::Closed) => {
                        flags.running.store(false, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => log::warn!("cannot give free pages back to the file system: {}", e.describe()),
                }
            }
            flags.running.store(false, Ordering::SeqCst);
            // Asked again between the last check and now: take it up, unless another
            // task has already.
            if !flags.asked.load(Ordering::SeqCst) || flags.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    });
}

/// Gives every free page back, [`STEP_PAGES`] per bulk write job, then checkpoints (unless
/// checkpoints are external); returns the pages given back.
pub async fn reclaim(store: &Store) -> Result<u64, StoreError> {
    let mut given = 0u64;
    loop {
        let (freed, left) = store.write(Durability::Lazy, |tx| tx.incremental_vacuum(STEP_PAGES)).await?;
        given += u64::try_from(freed).unwrap_or(0);
        // A step that gave nothing back (a file without auto-vacuum) ends it too.
        if left == 0 || freed <= 0 {
            break;
        }
    }
    if given > 0 && store.checkpoints == Checkpoints::Auto {
        store
            .between_groups(|conn| {
                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(StoreError::from)
            })
            .await?;
    }
    Ok(given)
}

/// Gives every free page of a copy back at once (`backup`'s and a snapshot's copy, once
/// the staged bodies are deleted from it): nobody else uses that file yet.
pub(in crate::store) fn give_back_all(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    // One empty row per page given back (see `WriteTx::incremental_vacuum`).
    let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenOptions;

    fn file_size(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn discarded_pages_go_back_to_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let store = Store::open(&path, &OpenOptions::default()).unwrap();
        let made: Result<usize, StoreError> =
            store.write_blocking(|tx| tx.execute("CREATE TABLE filler(b BLOB)", []));
        made.unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            // Nothing free yet: nothing given back, no checkpoint.
            assert_eq!(reclaim(&store).await.unwrap(), 0);
            for _ in 0..48 {
                let wrote: Result<usize, StoreError> = store
                    .write(Durability::Lazy, |tx| {
                        tx.execute("INSERT INTO filler(b) VALUES (zeroblob(1048576))", [])
                    })
                    .await;
                wrote.unwrap();
            }
            // Every other one kept: the pages of the others are holes to be filled from the end.
            let deleted: Result<usize, StoreError> = store
                .write(Durability::Durable, |tx| tx.execute("DELETE FROM filler WHERE rowid % 2 = 0", []))
                .await;
            assert_eq!(deleted.unwrap(), 24);
            let peak = file_size(&path);
            assert!(peak > 48 << 20, "{peak}");
            let given = reclaim(&store).await.unwrap();
            assert!((24 * 256..24 * 260).contains(&given), "{given} pages");
            let after = file_size(&path);
            assert!(after < 26 << 20, "the file stayed at {after} bytes of {peak}");
            let free: i64 =
                store.read(|db| db.query_one("PRAGMA freelist_count", [], |r| r.get(0))).await.unwrap();
            assert_eq!(free, 0);
            let kept: i64 = store
                .read(|db| {
                    db.query_one("SELECT count(*) FROM filler WHERE length(b) = 1048576", [], |r| r.get(0))
                })
                .await
                .unwrap();
            assert_eq!(kept, 24);
        });
        store.close();
    }
}
