//! The SQLite file: opening, schema versions, reads and writes.
//!
//! One file holds everything. Opening it sets WAL mode once (before any pool
//! exists: doing it per connection races), checks that the file is ours and not
//! from a newer taler-lite, and applies the forward migrations. Reads go through
//! an r2d2 pool of read-only connections on tokio's blocking threads; writes go
//! through the single [`writer`] thread, which commits concurrent requests
//! together with one fsync (`synchronous=FULL`): a 2xx means the change is on
//! disk.

pub mod auditors;
pub mod backup;
pub mod check;
pub mod console;
mod db;
pub mod extern_keys;
pub mod fixtures;
pub mod gateway;
mod identity;
pub mod kyc;
pub mod lock;
pub mod page;
pub mod registrations;
pub mod snapshots;
pub mod space;
mod sql_types;
pub mod stats;
pub mod stop;
pub mod transfers;
pub mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

pub use db::{Db, WriteTx};
use identity::Identity;
use lock::{DbLock, LockError};
pub use page::Page;
use writer::Writer;
pub use writer::{Durability, WriterStats};

/// `PRAGMA application_id` of a taler-lite database ("TLit"): refuses to
/// migrate some other program's SQLite file by mistake.
pub const APPLICATION_ID: i32 = 0x544c_6974;

/// Forward migrations, applied in order; the file's `user_version` is the number
/// of the last one applied. Version 1 is `schema.sql`; later changes go here as
/// new numbered entries and are never edited once released.
const MIGRATIONS: &[(i64, Migration)] = &[
    (1, Migration::Sql(include_str!("../../schema.sql"))),
    (2, Migration::Sql(FIXTURE_TRANSFERS)),
    (3, Migration::Sql(OUTGOING_TRANSFERS)),
    (4, Migration::IncrementalVacuum),
];

/// One step of [`MIGRATIONS`].
enum Migration {
    /// Statements run in one transaction with the new `user_version`.
    Sql(&'static str),
    /// Version 4: `auto_vacuum = INCREMENTAL`, so that the pages of discarded bodies go back
    /// to the file system ([`space`]). Files made from version 4 on have it from their
    /// creation ([`open_writer_connection`]); an older file is rebuilt once with `VACUUM`,
    /// which SQLite runs only outside a transaction (it is atomic by itself), and only then
    /// is the version written: a conversion interrupted (a signal, a crash) leaves the file
    /// as it was, at version 3, to be converted at the next start.
    IncrementalVacuum,
}

/// Version 2: which incoming transfers `--fixtures` made, so that applying the same
/// file again adds none twice ([`fixtures`]). A table of its own rather than a column:
/// the transfers' insert statements, shared with the API, stay as they are.
const FIXTURE_TRANSFERS: &str = "
CREATE TABLE fixture_transfers (
  row_id INTEGER PRIMARY KEY REFERENCES incoming_transfers (row_id) ON DELETE CASCADE
);";

/// Version 3: the Wire Gateway's outgoing transfers (`POST transfer`), and the indexes that
/// read each account's histories. Row ids of incoming and outgoing transfers come from one
/// sequence ([`transfers::next_row_id`]), so that a `row_id` names one transaction of an
/// account's whole history.
const OUTGOING_TRANSFERS: &str = "
CREATE TABLE outgoing_transfers (
  row_id INTEGER PRIMARY KEY,
  request_uid BLOB NOT NULL UNIQUE CHECK (length(request_uid) = 64),
  wtid BLOB NOT NULL UNIQUE CHECK (length(wtid) = 32),
  date_us INTEGER NOT NULL,
  amount TEXT NOT NULL,
  exchange_base_url TEXT NOT NULL,
  metadata TEXT,
  -- The exchange's account as configured, and the payee as sent.
  debit_account TEXT NOT NULL,
  credit_account TEXT NOT NULL,
  -- Made by an [[outgoing]] fixture.
  fixture INTEGER NOT NULL DEFAULT 0 CHECK (fixture IN (0, 1))
);
CREATE INDEX outgoing_by_account ON outgoing_transfers (debit_account, row_id);
CREATE INDEX incoming_by_account ON incoming_transfers (credit_account, row_id) WHERE status = 'credited';";

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Page size of files this binary creates.
const PAGE_SIZE: u64 = 4096;

/// Page size of files made before [`PAGE_SIZE`] was lowered: the unit of
/// [`OpenOptions::max_page_count`].
const LEGACY_PAGE_SIZE: u64 = 16384;

/// How long a connection waits for a lock held by another process (the CLI
/// writing while the server runs) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Readers; SQLite in WAL mode serves them concurrently with the writer.
const READ_POOL_SIZE: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A failed read (answered 500 with code 53, not 52).
    #[error("SQLite read: {0}")]
    Read(rusqlite::Error),
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
    #[error(
        "{path} has schema version {found}, not {supported}: start this taler-lite's `serve` once to migrate it"
    )]
    SchemaNotCurrent { path: PathBuf, found: i64, supported: i64 },
    #[error("the database is closed")]
    Closed,
    #[error("the database is open read-only")]
    ReadOnly,
    /// Another process writes the file (`serve`, or a CLI command that writes).
    #[error("{0}")]
    Locked(#[from] LockError),
    /// The database or its WAL was deleted or replaced under the running server: nothing
    /// more is acknowledged.
    #[error("{0}")]
    Lost(String),
    /// Opening was stopped (a signal during `serve`'s start-up): the file is as it was.
    #[error("stopped while opening")]
    Stopped,
    /// The job belongs to work begun before the database was restored from a snapshot.
    #[error("the database was restored from a snapshot since this work began")]
    Restored,
}

impl StoreError {
    /// The same failure, as one of a read.
    fn in_read(self) -> StoreError {
        match self {
            StoreError::Sqlite(e) => StoreError::Read(e),
            other => other,
        }
    }

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
    /// Cap on the file's size in 16 KiB pages (`PRAGMA max_page_count`, scaled
    /// to the file's page size), for tests of a full disk.
    pub max_page_count: Option<u64>,
    /// Who folds the WAL back into the main file.
    pub checkpoints: Checkpoints,
    /// Stops a long opening (a migration, the conversion's `VACUUM`): `serve`'s signals.
    pub stop: stop::Stop,
}

/// Who runs checkpoints (copies the WAL's pages into the main file and restarts the WAL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checkpoints {
    /// SQLite's own: a passive checkpoint after a commit leaves the WAL above 1000
    /// pages, and a TRUNCATE checkpoint when the writer closes, so that a stopped
    /// server leaves one file.
    #[default]
    Auto,
    /// Someone else's, for a replicator (Litestream) that must read every WAL frame
    /// before it is folded and the WAL restarted: the writer's automatic checkpoint
    /// is off (`wal_autocheckpoint=0`), no connection checkpoints when it closes
    /// (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`), and the store never runs
    /// `wal_checkpoint` itself, not even at shutdown. The WAL then grows until the
    /// replicator checkpoints it (README, "Replicate it").
    External,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    path: Arc<PathBuf>,
    pool: Pool<SqliteConnectionManager>,
    /// `None` for a store opened read-only (the CLI's read-outs).
    writer: Option<Writer>,
    writer_thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// The lock that makes this process the file's only writer (`None` read-only);
    /// released by [`Store::close`].
    lock: Arc<Mutex<Option<DbLock>>>,
    /// Who folds the WAL into the main file ([`space`] checkpoints only when it is us).
    checkpoints: Checkpoints,
    /// Whether free pages are being given back ([`space`]: one reclaim at a time).
    reclaiming: Arc<space::Reclaiming>,
    /// Descriptors on the database and its WAL, shared with the writer thread. Declared
    /// after `pool`: closed after the pool's connections, never before SQLite's own.
    _identity: Option<Arc<Identity>>,
}

fn configure(conn: &Connection, checkpoints: Checkpoints) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA foreign_keys=ON")?;
    if checkpoints == Checkpoints::External {
        // The last connection to close would otherwise checkpoint and delete the WAL.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    }
    Ok(())
}

/// What `open` does about the schema version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `serve`: create or migrate the file, start the writer.
    Serve,
    /// A CLI command that writes: the writer, but never a migration (a newer
    /// CLI must not migrate a file that an older server holds).
    Edit,
    /// A read-out: no writer, read-only connections.
    ReadOnly,
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts the
    /// writer, once it holds the file's lock ([`lock`]). Blocking. For `serve`.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<Store, StoreError> {
        Store::open_locked(path, options, lock::acquire(path)?)
    }

    /// [`Store::open`] with the file's lock taken already (`serve` takes it before it
    /// creates anything, so that a second server creates nothing).
    pub fn open_locked(path: &Path, options: &OpenOptions, lock: DbLock) -> Result<Store, StoreError> {
        Store::open_as(path, options, Mode::Serve, Some(lock))
    }

    /// Opens an existing database of the current schema version for a CLI
    /// command that writes; never creates or migrates. It takes the file's lock as a server
    /// does ([`lock`]): one process writes a file at a time, so beside a running server it
    /// is refused ([`StoreError::Locked`], naming the server's pid), and a server started
    /// while it writes is refused in turn.
    pub fn open_for_edit(path: &Path, checkpoints: Checkpoints) -> Result<Store, StoreError> {
        let lock = lock::acquire(path)?;
        Store::open_as(path, &OpenOptions { checkpoints, ..OpenOptions::default() }, Mode::Edit, Some(lock))
    }

    /// Opens an existing database read-only: no writer, no migration, and a
    /// schema version this binary does not read is refused.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        Store::open_as(path, &OpenOptions::default(), Mode::ReadOnly, None)
    }

    fn open_as(
        path: &Path,
        options: &OpenOptions,
        mode: Mode,
        lock: Option<DbLock>,
    ) -> Result<Store, StoreError> {
        let mut identity = None;
        let writer = match mode {
            Mode::Serve | Mode::Edit => {
                let conn = open_writer_connection(path, options, mode)?;
                let watched = Arc::new(Identity::open(path)?);
                identity = Some(watched.clone());
                Some(Writer::start(conn, options.checkpoints, watched)?)
            }
            Mode::ReadOnly => {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn, options.checkpoints)?;
                check_version(&conn, path, mode)?;
                None
            }
        };
        let checkpoints = options.checkpoints;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| {
                configure(c, checkpoints)?;
                c.set_prepared_statement_cache_capacity(64);
                c.execute_batch("PRAGMA query_only=ON")
            });
        let pool = Pool::builder()
            .max_size(READ_POOL_SIZE)
            // Connections are opened on demand: start-up stays in milliseconds.
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(30))
            .build(manager)?;
        let (writer, handle) = match writer {
            Some((writer, handle)) => (Some(writer), Some(handle)),
            None => (None, None),
        };
        Ok(Store {
            path: Arc::new(path.to_owned()),
            pool,
            writer,
            writer_thread: Arc::new(Mutex::new(handle)),
            lock: Arc::new(Mutex::new(lock)),
            checkpoints,
            reclaiming: Arc::default(),
            _identity: identity,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the writer has done (zeros for a read-only store).
    pub fn writer_stats(&self) -> Option<&WriterStats> {
        self.writer.as_ref().map(Writer::stats)
    }

    /// Runs a read on a pooled read-only connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        match tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            f(&Db::new(&conn))
        })
        .await
        {
            Ok(result) => result.map_err(StoreError::in_read),
            Err(e) => Err(StoreError::Invariant(format!("read task failed: {e}"))),
        }
    }

    /// Runs a read on a pooled connection from a thread that may block (the
    /// CLI, the ZIP check on a blocking thread).
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.pool.get()?;
        f(&Db::new(&conn)).map_err(StoreError::in_read)
    }

    /// A pooled read-only connection held by a blocking reader (a body read
    /// chunk by chunk through `Read + Seek`).
    pub(crate) fn reader(&self) -> Result<PooledConnection<SqliteConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Queues `change` to run inside a write transaction on the writer thread
    /// (now, not when the future is first polled). `Err` from `change` rolls
    /// back everything it did; `Ok` resolves after the commit, synced to disk
    /// when `durability` says so.
    pub fn write<T, E, F>(
        &self,
        durability: Durability,
        change: F,
    ) -> impl Future<Output = Result<T, E>> + Send + use<T, E, F>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
    {
        let answer = self.writer.as_ref().map(|w| w.submit(durability, change));
        async move {
            match answer {
                Some(answer) => answer.await.unwrap_or_else(|_| Err(E::from(StoreError::Closed))),
                None => Err(E::from(StoreError::ReadOnly)),
            }
        }
    }

    /// Runs `job` on the writer's connection outside any transaction, alone (between two
    /// groups of writes): for what replaces the whole database ([`snapshots::restore`]).
    pub(crate) fn exclusive<T, F>(
        &self,
        job: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let answer = self.writer.as_ref().map(|w| w.submit_exclusive(true, job));
        async move {
            match answer {
                Some(answer) => answer.await.unwrap_or(Err(StoreError::Closed)),
                None => Err(StoreError::ReadOnly),
            }
        }
    }

    /// Runs `job` on the writer's connection outside any transaction, between two groups
    /// of writes, without replacing the database (a checkpoint).
    fn between_groups<T, F>(&self, job: F) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let answer = self.writer.as_ref().map(|w| w.submit_exclusive(false, job));
        async move {
            match answer {
                Some(answer) => answer.await.unwrap_or(Err(StoreError::Closed)),
                None => Err(StoreError::ReadOnly),
            }
        }
    }

    /// A durable [`Store::write`] for threads outside the async runtime (the CLI).
    pub fn write_blocking<T, E, F>(&self, change: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
    {
        match &self.writer {
            Some(w) => w
                .submit(Durability::Durable, change)
                .blocking_recv()
                .unwrap_or_else(|_| Err(E::from(StoreError::Closed))),
            None => Err(E::from(StoreError::ReadOnly)),
        }
    }

    /// Finishes queued writes, checkpoints the WAL into the main file (unless
    /// checkpoints are [`Checkpoints::External`]) and closes. Other clones of this handle fail with `Closed` afterwards.
    pub fn close(self) {
        let handle = match self.writer_thread.lock() {
            Ok(mut guard) => guard.take(),
            Err(_) => None,
        };
        if let Some(writer) = &self.writer {
            writer.close();
        }
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            log::error!("the writer thread panicked");
        }
        // The writer is done: another process may write the file now.
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
    }
}

/// The writer's connection: WAL mode, full sync, the schema checked (and for
/// `serve`, created or migrated).
fn open_writer_connection(path: &Path, options: &OpenOptions, mode: Mode) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if mode == Mode::Serve {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    // Until the file is ready, a stop interrupts the statement running (a migration).
    let _interrupting = options.stop.interrupting(&conn).map_err(|_| StoreError::Stopped)?;
    configure(&conn, options.checkpoints)?;
    let (version, empty) = check_version(&conn, path, mode)?;
    if empty {
        // 4 KiB pages, measured with `examples/loadgen` (README): every
        // registration inserts into three indexes on random keys and so dirties
        // three leaf pages that the commit writes whole to the WAL (copied,
        // checksummed, later checkpointed); the writer's time per registration
        // follows the page size. Must precede WAL mode and the first table.
        // Files made before keep their page size (changing it needs a VACUUM
        // outside WAL mode: `taler-lite` does not do that behind the operator's back).
        conn.execute_batch(&format!("PRAGMA page_size={PAGE_SIZE}"))?;
        // The pages of discarded bodies go back to the file system ([`space`]); like the
        // page size, only settable before the first table and before WAL mode.
        conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL")?;
    }
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    // A read transaction opens (and if need be creates) the WAL, whose identity the
    // writer then watches.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
    // Without a limit the WAL keeps the size of its largest upload.
    conn.execute_batch("PRAGMA journal_size_limit=67108864; PRAGMA synchronous=FULL")?;
    if options.checkpoints == Checkpoints::External {
        conn.execute_batch("PRAGMA wal_autocheckpoint=0")?;
    }
    if let Some(max) = options.max_page_count {
        // The cap is given in 16 KiB pages (the page size of earlier files), so
        // that the same cap means the same bytes whatever this file's page size.
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let max = max.saturating_mul(LEGACY_PAGE_SIZE) / u64::try_from(page_size).unwrap_or(1).max(1);
        conn.query_row(&format!("PRAGMA max_page_count={max}"), [], |_| Ok(()))?;
    }
    if mode == Mode::Serve {
        migrate(&conn, path, version)
            .map_err(|e| if options.stop.is_stopped() { StoreError::Stopped } else { e })?;
    }
    Ok(conn)
}

/// Checks that the file is ours and of a version `mode` may use; returns the
/// version and whether the file is empty.
fn check_version(conn: &Connection, path: &Path, mode: Mode) -> Result<(i64, bool), StoreError> {
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
    if mode != Mode::Serve && version != SCHEMA_VERSION {
        return Err(StoreError::SchemaNotCurrent {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok((version, empty))
}

fn migrate(conn: &Connection, path: &Path, from: i64) -> Result<(), StoreError> {
    for (version, migration) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        log::info!("applying database schema version {version}");
        let sql = match migration {
            Migration::Sql(sql) => sql,
            Migration::IncrementalVacuum => {
                to_incremental_vacuum(conn, path)?;
                conn.execute_batch(&format!(
                    "PRAGMA user_version={version}; PRAGMA application_id={APPLICATION_ID}"
                ))?;
                continue;
            }
        };
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

/// `PRAGMA auto_vacuum` of a file that gives free pages back on `incremental_vacuum`.
const AUTO_VACUUM_INCREMENTAL: i64 = 2;

/// Makes the file `auto_vacuum = INCREMENTAL` ([`Migration::IncrementalVacuum`]); nothing
/// when it is already.
fn to_incremental_vacuum(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == AUTO_VACUUM_INCREMENTAL {
        return Ok(());
    }
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    log::info!(
        "converting {} ({}) to incremental auto-vacuum, once: VACUUM rewrites the whole file (it needs about twice its size free on disk; a signal stops it and leaves the file as it was)",
        path.display(),
        bytesize::ByteSize(bytes)
    );
    let started = std::time::Instant::now();
    conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL; VACUUM")?;
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != AUTO_VACUUM_INCREMENTAL {
        return Err(StoreError::Invariant(format!("VACUUM left auto_vacuum at {mode}")));
    }
    log::info!("converted {} in {:.1?}", path.display(), started.elapsed());
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

    /// A file as schema version 3 made it: no auto-vacuum, WAL mode.
    fn version_3_file(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(&format!("PRAGMA page_size={PAGE_SIZE}")).unwrap();
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(())).unwrap();
        for (_, migration) in &MIGRATIONS[..3] {
            let Migration::Sql(sql) = migration else { panic!("version 1-3 are SQL") };
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(&format!(
            "PRAGMA user_version=3; PRAGMA application_id={APPLICATION_ID};
             INSERT INTO extern_keys (extern_pub, name, is_active, created_us) VALUES (zeroblob(32), 'Kept', 1, 0);"
        ))
        .unwrap();
        let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, 0);
    }

    #[test]
    fn new_files_have_incremental_auto_vacuum_and_older_ones_are_converted() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("new.sqlite3");
        Store::open(&fresh, &OpenOptions::default()).unwrap().close();
        let older = dir.path().join("old.sqlite3");
        version_3_file(&older);
        Store::open(&older, &OpenOptions::default()).unwrap().close();
        for path in [&fresh, &older] {
            let conn = Connection::open(path).unwrap();
            let (mode, version): (i64, i64) = conn
                .query_row("SELECT * FROM pragma_auto_vacuum, pragma_user_version", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!((mode, version), (AUTO_VACUUM_INCREMENTAL, SCHEMA_VERSION), "{}", path.display());
        }
        let conn = Connection::open(&older).unwrap();
        let name: String = conn.query_row("SELECT name FROM extern_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(name, "Kept");
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

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.sqlite3"), &OpenOptions::default()).unwrap();
        store
            .write_blocking(|tx| tx.execute("CREATE TEMP TABLE IF NOT EXISTS x(v)", []).map(|_| ()))
            .unwrap();
        (dir, store)
    }

    fn count_x(store: &Store) -> (i64, i64) {
        // The temp table lives on the writer's connection: read it there.
        store
            .write_blocking(|tx| {
                tx.query_one("SELECT count(*), coalesce(sum(v % 2), 0) FROM x", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .unwrap()
    }

    #[test]
    fn failed_jobs_leave_nothing_and_do_not_disturb_their_batch() {
        let (_dir, store) = temp_store();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..50i64 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    store
                        .write(Durability::Durable, move |tx| {
                            tx.execute("INSERT INTO x(v) VALUES (?1)", [i])?;
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
        assert_eq!(count_x(&store), (25, 0));
        store.close();
    }

    /// Proves the grouping itself: the writer is held inside a job while 20
    /// more are queued, so they can only have run together; one commit for
    /// the 20, not 20 commits.
    #[test]
    fn jobs_queued_while_the_writer_is_busy_share_one_commit() {
        let (_dir, store) = temp_store();
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let blocker = store.write(Durability::Durable, move |_tx| {
            let _ = entered_tx.send(());
            released.recv().map_err(|e| StoreError::Invariant(e.to_string()))
        });
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        entered.recv().unwrap();
        let stats = store.writer_stats().unwrap();
        let commits_before = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
        let queued: Vec<_> = (0..20i64)
            .map(|i| {
                store
                    .write(Durability::Durable, move |tx| tx.execute("INSERT INTO x(v) VALUES (?1)", [i * 2]))
            })
            .collect();
        release.send(()).unwrap();
        rt.block_on(async {
            blocker.await.unwrap();
            for q in queued {
                assert_eq!(q.await.unwrap(), 1);
            }
        });
        let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed) - commits_before;
        // The blocker's own group, then one group for the twenty.
        assert_eq!(commits, 2, "twenty queued jobs took {} commits", commits - 1);
        assert_eq!(count_x(&store), (20, 0));
        store.close();
    }

    /// The priority rule, by ordering: with the writer held, ten bulk chunk
    /// writes and then one small durable job are queued; the small job runs
    /// before all but at most `BULK_PER_GROUP` of them.
    #[test]
    fn a_small_durable_job_goes_ahead_of_queued_bulk_writes() {
        let (_dir, store) = temp_store();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let blocker = store.write(Durability::Durable, move |_tx| {
            let _ = entered_tx.send(());
            released.recv().map_err(|e| StoreError::Invariant(e.to_string()))
        });
        entered.recv().unwrap();
        let job = |name: &'static str, durability| {
            let order = order.clone();
            store.write(durability, move |tx| {
                tx.execute("INSERT INTO x(v) VALUES (?1)", [zeroblob_len(name)])?;
                order.lock().unwrap().push(name);
                Ok::<_, StoreError>(())
            })
        };
        let bulk: Vec<_> = (0..10).map(|_| job("chunk", Durability::Lazy)).collect();
        let small = job("registration", Durability::Durable);
        release.send(()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            blocker.await.unwrap();
            small.await.unwrap();
            for b in bulk {
                b.await.unwrap();
            }
        });
        let order = order.lock().unwrap().clone();
        let position = order.iter().position(|n| *n == "registration").unwrap();
        assert!(
            position <= writer::BULK_PER_GROUP,
            "the registration ran after {position} chunk writes: {order:?}"
        );
        assert_eq!(order.len(), 11);
        store.close();
    }

    fn zeroblob_len(name: &str) -> i64 {
        name.len() as i64
    }

    #[test]
    fn a_job_cannot_call_the_writer() {
        let (_dir, store) = temp_store();
        let inner = store.clone();
        let result: Result<(), StoreError> =
            store.write_blocking(move |_tx| inner.write_blocking(|_| Ok(())));
        assert!(matches!(result, Err(StoreError::Invariant(_))), "{result:?}");
        store.close();
    }

    #[test]
    fn read_only_stores_refuse_writes_and_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        Store::open(&path, &OpenOptions::default()).unwrap().close();
        let ro = Store::open_read_only(&path).unwrap();
        let r: Result<(), StoreError> = ro.write_blocking(|_| Ok(()));
        assert!(matches!(r, Err(StoreError::ReadOnly)));
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version=0").unwrap();
        drop(conn);
        assert!(matches!(Store::open_read_only(&path), Err(StoreError::SchemaNotCurrent { .. })));
        assert!(matches!(
            Store::open_for_edit(&path, Checkpoints::Auto),
            Err(StoreError::SchemaNotCurrent { .. })
        ));
    }

    /// Writes about 6 MiB (over SQLite's 1000-page automatic checkpoint) in
    /// separate commits, closes, and returns the WAL's size and how many of
    /// the main file's, and how many of the rows a fresh reader sees.
    fn write_and_close(checkpoints: Checkpoints) -> (u64, u64, i64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let store = Store::open(&path, &OpenOptions { checkpoints, ..OpenOptions::default() }).unwrap();
        let made: Result<usize, StoreError> =
            store.write_blocking(|tx| tx.execute("CREATE TABLE filler(b BLOB)", []));
        made.unwrap();
        let autocheckpoint: i64 =
            store.read_blocking(|db| db.query_one("PRAGMA wal_autocheckpoint", [], |r| r.get(0))).unwrap();
        // A reader's own setting stays SQLite's; only the writer's is turned off.
        assert_eq!(autocheckpoint, 1000);
        for _ in 0..24 {
            let wrote: Result<usize, StoreError> =
                store.write_blocking(|tx| tx.execute("INSERT INTO filler(b) VALUES (zeroblob(262144))", []));
            wrote.unwrap();
        }
        store.close();
        let wal = std::fs::metadata(dir.path().join("t.sqlite3-wal")).map_or(0, |m| m.len());
        let main = std::fs::metadata(&path).unwrap().len();
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let rows: i64 = conn.query_row("SELECT count(*) FROM filler", [], |r| r.get(0)).unwrap();
        (wal, main, rows)
    }

    #[test]
    fn external_checkpoints_leave_the_wal_to_someone_else() {
        let (wal, main, rows) = write_and_close(Checkpoints::Auto);
        assert_eq!((wal, rows), (0, 24), "auto: folded at close (TRUNCATE)");
        assert!(main > 24 * 262_144, "auto: main file of {main} bytes");
        let (wal, main, rows) = write_and_close(Checkpoints::External);
        // Nothing folded: every page of every commit is still in the WAL.
        assert!(wal > 24 * 262_144, "external: WAL of {wal} bytes");
        assert_eq!(rows, 24);
        assert!(main < 1 << 20, "external: the main file grew to {main} bytes without a checkpoint");
    }

    #[test]
    fn external_checkpoints_hold_for_cli_edits_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        Store::open(&path, &OpenOptions::default()).unwrap().close();
        let store = Store::open_for_edit(&path, Checkpoints::External).unwrap();
        let wrote: Result<usize, StoreError> = store.write_blocking(|tx| tx.execute("CREATE TABLE x(y)", []));
        wrote.unwrap();
        store.close();
        let wal = std::fs::metadata(dir.path().join("t.sqlite3-wal")).map_or(0, |m| m.len());
        assert!(wal > 0, "the edit's commit was folded at close");
    }
}
