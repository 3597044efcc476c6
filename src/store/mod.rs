//! The SQLite file: opening, schema versions, reads and writes.
//!
//! One file holds everything. Opening it sets WAL mode once (before any pool
//! exists: doing it per connection races), checks that the file is ours and not
//! from a newer taler-lite, and applies the forward migrations. Reads go through
//! an r2d2 pool of read-only connections on tokio's blocking threads; writes go
//! through the single [`writer`] thread, which commits concurrent requests
//! together with one fsync (`synchronous=FULL`): a 2xx means the change is on
//! disk.

mod sql_types;
pub mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

pub use writer::Durability;
use writer::Writer;

/// `PRAGMA application_id` of a taler-lite database ("TLit"): refuses to
/// migrate some other program's SQLite file by mistake.
pub const APPLICATION_ID: i32 = 0x544c_6974;

/// Forward migrations, applied in order; the file's `user_version` is the number
/// of the last one applied. Version 1 is `schema.sql`; later changes go here as
/// new numbered entries and are never edited once released.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../schema.sql"))];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// How long a connection waits for a lock held by another process (the CLI
/// writing while the server runs) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Readers; SQLite in WAL mode serves them concurrently with the writer.
const READ_POOL_SIZE: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "{path} has schema version {found}, newer than this taler-lite understands ({supported}): use a newer taler-lite"
    )]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("{path} is not a taler-lite database (application_id {found:#x})")]
    NotOurs { path: PathBuf, found: i32 },
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("database invariant violated: {0}")]
    Invariant(String),
    #[error("the database is closed")]
    Closed,
}

impl StoreError {
    /// One line for logs and for the jobs that share a failed commit.
    pub fn describe(&self) -> String {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, msg))
                if e.code == rusqlite::ErrorCode::DiskFull =>
            {
                format!("disk full: {}", msg.as_deref().unwrap_or("database or disk is full"))
            }
            other => other.to_string(),
        }
    }
}

/// Options fixed when the file is opened.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Cap on the file's pages (`PRAGMA max_page_count`), for tests of a full disk.
    pub max_page_count: Option<u64>,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    path: Arc<PathBuf>,
    pool: Pool<SqliteConnectionManager>,
    writer: Writer,
    writer_thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA foreign_keys=ON")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) and migrates the database. Blocking.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        let app_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let empty: bool = conn.query_row("SELECT count(*) = 0 FROM sqlite_schema", [], |r| r.get(0))?;
        if app_id != APPLICATION_ID && !(app_id == 0 && empty) {
            return Err(StoreError::NotOurs { path: path.to_owned(), found: app_id });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if empty {
            // 16 KiB pages, measured with `examples/loadgen` (README): against
            // 64 KiB, registrations +19% and mixed-load p99 111 -> 85 ms (random
            // index inserts dirty smaller pages), single uploads -16%, and a
            // third of the memory. Must precede WAL mode and the first table.
            conn.execute_batch("PRAGMA page_size=16384")?;
        }
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
        // Without a limit the WAL keeps the size of its largest upload.
        conn.execute_batch("PRAGMA journal_size_limit=67108864; PRAGMA synchronous=FULL")?;
        if let Some(max) = options.max_page_count {
            conn.query_row(&format!("PRAGMA max_page_count={max}"), [], |_| Ok(()))?;
        }
        migrate(&conn, version)?;

        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(|c| {
                configure(c)?;
                c.execute_batch("PRAGMA query_only=ON")
            });
        let pool = Pool::builder()
            .max_size(READ_POOL_SIZE)
            // Connections are opened on demand: start-up stays in milliseconds.
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(30))
            .build(manager)?;
        let (writer, handle) = Writer::start(conn)?;
        Ok(Store {
            path: Arc::new(path.to_owned()),
            pool,
            writer,
            writer_thread: Arc::new(Mutex::new(Some(handle))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a read on a pooled read-only connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        match tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            f(&conn)
        })
        .await
        {
            Ok(result) => result,
            Err(e) => Err(StoreError::Invariant(format!("read task failed: {e}"))),
        }
    }

    /// A pooled read-only connection, for blocking callers (CLI, blob streaming).
    pub fn reader(&self) -> Result<PooledConnection<SqliteConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Queues `f` to run inside a write transaction on the writer thread (now,
    /// not when the future is first polled). `Err` from `f` rolls back
    /// everything `f` did; `Ok` resolves after the durable commit.
    pub fn write<T, E, F>(&self, f: F) -> impl Future<Output = Result<T, E>> + Send + use<T, E, F>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.writer.write(Durability::Durable, f)
    }

    /// As [`Store::write`] with a chosen durability.
    pub fn write_with<T, E, F>(
        &self,
        durability: Durability,
        f: F,
    ) -> impl Future<Output = Result<T, E>> + Send + use<T, E, F>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.writer.write(durability, f)
    }

    /// [`Store::write`] for threads outside the async runtime.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.writer.write_blocking(f)
    }

    /// Finishes queued writes, checkpoints the WAL into the main file and
    /// closes. Other clones of this handle fail with `Closed` afterwards.
    pub fn close(self) {
        let handle = match self.writer_thread.lock() {
            Ok(mut guard) => guard.take(),
            Err(_) => None,
        };
        self.writer.close();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            log::error!("the writer thread panicked");
        }
    }
}

fn migrate(conn: &Connection, from: i64) -> Result<(), StoreError> {
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        log::info!("applying database schema version {version}");
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = conn
            .execute_batch(sql)
            .and_then(|()| {
                conn.execute_batch(&format!(
                    "PRAGMA user_version={version}; PRAGMA application_id={APPLICATION_ID}"
                ))
            })
            .and_then(|()| conn.execute_batch("COMMIT"));
        if let Err(e) = applied {
            // Best effort: the migration is the error worth reporting.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_gets_the_current_version_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        Store::open(&path, &OpenOptions::default()).unwrap().close();
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        conn.execute_batch(&format!("PRAGMA user_version={}", SCHEMA_VERSION + 1)).unwrap();
        drop(conn);
        let err = Store::open(&path, &OpenOptions::default()).err().unwrap();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
        assert!(err.to_string().contains("newer"));
    }

    #[test]
    fn foreign_sqlite_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        drop(conn);
        let err = Store::open(&path, &OpenOptions::default()).err().unwrap();
        assert!(matches!(err, StoreError::NotOurs { .. }), "{err}");
    }

    #[test]
    fn failed_jobs_leave_nothing_and_do_not_disturb_their_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.sqlite3"), &OpenOptions::default()).unwrap();
        store
            .write_blocking(|c| {
                c.execute_batch("CREATE TEMP TABLE IF NOT EXISTS x(v)").map_err(StoreError::from)
            })
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..50i64 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    store
                        .write(move |c| {
                            c.execute("INSERT INTO x(v) VALUES (?1)", [i])?;
                            if i % 2 == 1 {
                                return Err(StoreError::Invariant("odd".into()));
                            }
                            Ok(i)
                        })
                        .await
                }));
            }
            for (i, t) in tasks.into_iter().enumerate() {
                assert_eq!(t.await.unwrap().is_ok(), i % 2 == 0);
            }
        });
        let (n, odd): (i64, i64) = store
            .write_blocking(|c| {
                c.query_row("SELECT count(*), sum(v % 2) FROM x", [], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(StoreError::from)
            })
            .unwrap();
        assert_eq!((n, odd), (25, 0));
        store.close();
    }
}
