//! The one writer: a thread that owns SQLite's write side and commits in groups.
//!
//! SQLite admits one writer at a time, and a durable commit costs an fsync. If
//! every request took the write lock and synced on its own, concurrent requests
//! would queue for one fsync each. Instead requests send their change as a
//! closure down a channel; the thread takes every job waiting, runs each in its
//! own savepoint inside one transaction, commits once (one fsync for the whole
//! group) and only then answers each job. A job that fails is rolled back to its
//! savepoint alone, so nothing of it is stored and its neighbours are unaffected.
//! Having a single writer also means requests never meet "database is locked".
//!
//! Jobs see the transaction as a [`WriteTx`]: they can change data but not end
//! the transaction, and they cannot reach the writer again from inside a job
//! (that would wait for itself forever).
//!
//! Small durable jobs (registrations, auditors, the commit of an upload) go
//! ahead of bulk work (an upload's 1 MiB chunk writes and the deletion of
//! staged bodies, all [`Durability::Lazy`]): each group takes every small job
//! waiting and at most [`BULK_PER_GROUP`] bulk jobs, so a registration waits
//! behind a few milliseconds of chunk writes, not behind an upload. Reordering
//! the two kinds is safe because a client awaits each bulk job before it
//! submits one that depends on it, and bulk jobs stay in order among
//! themselves.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::db::WriteTx;
use super::identity::{Change, Identity};
use super::{Checkpoints, StoreError};

/// How often an idle writer checks that its files are still at their paths (a busy one
/// checks after every commit, before answering).
const IDENTITY_CHECK_EVERY: Duration = Duration::from_millis(250);

/// Upper bound on jobs in one transaction, so that one commit's latency stays bounded.
const MAX_BATCH: usize = 256;

/// Bulk jobs (1 MiB chunk writes, a few ms each) in one group: enough to keep
/// an upload streaming, few enough that the small jobs of the next group wait
/// milliseconds.
pub const BULK_PER_GROUP: usize = 2;

/// How a job wants its commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Synced to disk before the job is answered (`synchronous=FULL`).
    Durable,
    /// Written to the WAL but not synced: for intermediate work (staged upload
    /// chunks) whose loss in a power cut is harmless; the next durable commit
    /// syncs it anyway.
    Lazy,
}

/// What the writer has done, for metrics and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Jobs run in committed transactions.
    pub jobs: AtomicU64,
    /// Jobs queued and not yet taken up by the writer.
    pub queued: AtomicI64,
    /// Jobs per committed group, as a histogram: `group_sizes[i]` counts groups
    /// of at most `GROUP_BUCKETS[i]` jobs.
    pub group_sizes: [AtomicU64; GROUP_BUCKETS.len()],
}

/// Upper bounds of the buckets of [`WriterStats::group_sizes`].
pub const GROUP_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

impl WriterStats {
    fn record_group(&self, jobs: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.jobs.fetch_add(jobs as u64, Ordering::Relaxed);
        if let Some(i) = GROUP_BUCKETS.iter().position(|&b| jobs as u64 <= b) {
            self.group_sizes[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One queued change and the requester waiting for it.
trait Job: Send {
    /// Runs the change inside its savepoint; `true` keeps it.
    fn run(&mut self, tx: &WriteTx<'_>) -> bool;
    /// Answers the requester once the group's fate is known (a job that was
    /// never run, because its group failed first, is answered with that error).
    fn finish(self: Box<Self>, outcome: Result<(), StoreError>);
    fn durability(&self) -> Durability;
}

struct Pending<T, E, F> {
    change: Option<F>,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
    durability: Durability,
}

impl<T, E, F> Job for Pending<T, E, F>
where
    T: Send,
    E: From<StoreError> + Send,
    F: FnOnce(&WriteTx<'_>) -> Result<T, E> + Send,
{
    fn run(&mut self, tx: &WriteTx<'_>) -> bool {
        let Some(change) = self.change.take() else { return false };
        let result = change(tx);
        let keep = result.is_ok();
        self.result = Some(result);
        keep
    }

    fn finish(self: Box<Self>, outcome: Result<(), StoreError>) {
        let answer = match (self.result, outcome) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(failure)) => Err(E::from(failure)),
            (None, Ok(())) => Err(E::from(StoreError::Commit("the job was not run".into()))),
        };
        // The requester may have gone away (client disconnected): nothing to do.
        let _ = self.reply.send(answer);
    }

    fn durability(&self) -> Durability {
        self.durability
    }
}

/// A job that needs the connection itself, outside any transaction (a restore from a
/// snapshot): it runs alone, between two groups.
type Exclusive = Box<dyn FnOnce(&mut Connection) + Send>;

/// The queues of waiting jobs.
#[derive(Default)]
struct Queues {
    /// Whole-connection jobs, run before the next group.
    exclusive: VecDeque<Exclusive>,
    /// Small durable jobs, served first.
    urgent: VecDeque<Box<dyn Job>>,
    /// Bulk work (chunk writes, discards), in order.
    bulk: VecDeque<Box<dyn Job>>,
    /// Finish what is queued, checkpoint (unless external) and stop.
    closing: bool,
}

impl Queues {
    fn is_empty(&self) -> bool {
        self.urgent.is_empty() && self.bulk.is_empty() && self.exclusive.is_empty()
    }

    /// The next group: every small job waiting (up to the cap), then a few
    /// bulk jobs.
    fn next_group(&mut self) -> Vec<Box<dyn Job>> {
        let urgent = self.urgent.len().min(MAX_BATCH);
        let mut group: Vec<Box<dyn Job>> = self.urgent.drain(..urgent).collect();
        let bulk = self.bulk.len().min(BULK_PER_GROUP).min(MAX_BATCH - group.len());
        group.extend(self.bulk.drain(..bulk));
        group
    }
}

/// What the writer and its handles share.
#[derive(Default)]
struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
}

thread_local! {
    /// Set on the writer thread: a job that asks the writer for more work
    /// would wait for itself.
    static ON_WRITER_THREAD: Cell<bool> = const { Cell::new(false) };
    /// How many times the whole database was replaced (restored from a snapshot) under
    /// the writer: a job begun in one generation must not touch rows of another (an
    /// upload staged before a restore writes into a body id that may now be another's).
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// The writer's generation, read inside a job (see `GENERATION`).
pub(super) fn generation() -> u64 {
    GENERATION.get()
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
    stats: Arc<WriterStats>,
    /// Closes the queue when the last handle goes, so that the thread ends
    /// after finishing what was queued even without [`Writer::close`].
    _handles: Arc<LastHandle>,
}

struct LastHandle(Arc<Shared>);

impl Drop for LastHandle {
    fn drop(&mut self) {
        self.0.queues.lock().unwrap_or_else(PoisonError::into_inner).closing = true;
        self.0.wake.notify_one();
    }
}

impl Writer {
    /// Starts the thread that owns `conn`, which watches `identity` (the files `conn`
    /// writes). The thread ends when every `Writer` is dropped, after finishing what was
    /// queued.
    pub fn start(
        conn: Connection,
        checkpoints: Checkpoints,
        identity: Arc<Identity>,
    ) -> Result<(Writer, JoinHandle<()>), StoreError> {
        let shared = Arc::new(Shared::default());
        let stats = Arc::new(WriterStats::default());
        let (thread_shared, thread_stats) = (shared.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name("taler-lite-writer".into())
            .spawn(move || writer_loop(conn, checkpoints, identity, &thread_shared, &thread_stats))
            .map_err(StoreError::Io)?;
        let handles = Arc::new(LastHandle(shared.clone()));
        Ok((Writer { shared, stats, _handles: handles }, handle))
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Queues `change` now (so jobs run in the order of these calls) and
    /// returns the receiver of its answer, sent after the commit.
    pub fn submit<T, E, F>(&self, durability: Durability, change: F) -> oneshot::Receiver<Result<T, E>>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        if ON_WRITER_THREAD.get() {
            let _ = reply.send(Err(E::from(StoreError::Invariant(
                "a write job asked the writer for more work".into(),
            ))));
            return answer;
        }
        let job: Box<dyn Job> = Box::new(Pending { change: Some(change), result: None, reply, durability });
        {
            let mut queues = self.shared.queues.lock().unwrap_or_else(PoisonError::into_inner);
            // Once closing, the job is dropped with its reply sender, and the
            // requester sees `Closed` at once instead of hanging.
            if queues.closing {
                return answer;
            }
            match durability {
                Durability::Durable => queues.urgent.push_back(job),
                Durability::Lazy => queues.bulk.push_back(job),
            }
        }
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.shared.wake.notify_one();
        answer
    }

    /// Queues `job` to run on the writer's connection outside any transaction, before the
    /// next group; when it `replaces` the database, the writer's generation goes up after it
    /// (whatever it did).
    pub fn submit_exclusive<T, F>(&self, replaces: bool, job: F) -> oneshot::Receiver<Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        if ON_WRITER_THREAD.get() {
            let _ =
                reply.send(Err(StoreError::Invariant("a write job asked the writer for more work".into())));
            return answer;
        }
        let run: Exclusive = Box::new(move |conn: &mut Connection| {
            let result = job(conn);
            if replaces {
                GENERATION.set(GENERATION.get() + 1);
            }
            let _ = reply.send(result);
        });
        {
            let mut queues = self.shared.queues.lock().unwrap_or_else(PoisonError::into_inner);
            if queues.closing {
                return answer;
            }
            queues.exclusive.push_back(run);
        }
        self.shared.wake.notify_one();
        answer
    }

    /// Asks the thread to stop once the jobs queued so far are done.
    pub fn close(&self) {
        self.shared.queues.lock().unwrap_or_else(PoisonError::into_inner).closing = true;
        self.shared.wake.notify_one();
    }
}

/// What the writer does next.
enum Next {
    Exclusive(Exclusive),
    Group(Vec<Box<dyn Job>>),
}

fn writer_loop(
    mut conn: Connection,
    checkpoints: Checkpoints,
    identity: Arc<Identity>,
    shared: &Shared,
    stats: &WriterStats,
) {
    ON_WRITER_THREAD.set(true);
    // Room for every statement the write paths run (the default is 16).
    conn.set_prepared_statement_cache_capacity(64);
    let mut synchronous_full = true;
    // Set once the files are no longer the ones at their paths: every job fails from then on.
    let mut lost: Option<String> = None;
    loop {
        let batch = {
            let mut queues = shared.queues.lock().unwrap_or_else(PoisonError::into_inner);
            while queues.is_empty() && !queues.closing {
                let (guard, waited) = shared
                    .wake
                    .wait_timeout(queues, IDENTITY_CHECK_EVERY)
                    .unwrap_or_else(PoisonError::into_inner);
                queues = guard;
                if waited.timed_out() && queues.is_empty() {
                    break;
                }
            }
            if queues.is_empty() && queues.closing {
                break;
            }
            match queues.exclusive.pop_front() {
                Some(job) => Next::Exclusive(job),
                None => Next::Group(queues.next_group()),
            }
        };
        let batch = match batch {
            Next::Group(batch) => batch,
            Next::Exclusive(job) => {
                if !synchronous_full {
                    match conn.execute_batch("PRAGMA synchronous=FULL") {
                        Ok(()) => synchronous_full = true,
                        Err(e) => log::error!("cannot set PRAGMA synchronous=FULL: {e}"),
                    }
                }
                if catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() {
                    log::error!("a whole-database job panicked");
                }
                continue;
            }
        };
        if batch.is_empty() {
            // Idle: check the files anyway, so that `/healthz` tells before a write does.
            if lost.is_none() {
                lost = identity.changed().map(|change| lose(&conn, &change));
            }
            continue;
        }
        if let Some(reason) = &lost {
            stats.queued.fetch_sub(batch.len() as i64, Ordering::Relaxed);
            for job in batch {
                job.finish(Err(StoreError::Lost(reason.clone())));
            }
            continue;
        }
        let durable = batch.iter().any(|j| j.durability() == Durability::Durable);
        if durable != synchronous_full {
            let pragma = if durable { "PRAGMA synchronous=FULL" } else { "PRAGMA synchronous=NORMAL" };
            match conn.execute_batch(pragma) {
                Ok(()) => synchronous_full = durable,
                Err(e) => log::error!("cannot set {pragma}: {e}"),
            }
        }
        run_batch(&conn, batch, stats, &mut || {
            if let Some(change) = identity.changed() {
                lost = Some(lose(&conn, &change));
            }
            lost.clone()
        });
    }
    if checkpoints == Checkpoints::External {
        // The replicator folds the WAL once it has read it; a TRUNCATE here could
        // restart the WAL under it (and would wait on its read transaction).
        log::debug!("the WAL is left to the external checkpointer");
    } else if lost.is_none() {
        // Fold the WAL back into the main file so that a closed database is one
        // file, but without waiting: when another process (the server, for a CLI
        // command) is using the database, it will checkpoint later itself.
        let folded = conn
            .busy_timeout(std::time::Duration::ZERO)
            .and_then(|()| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)));
        match folded {
            Ok(0) => {}
            Ok(_) => log::debug!("final checkpoint deferred: the database is in use"),
            Err(e) => log::debug!("final checkpoint deferred: {e}"),
        }
    }
    // SQLite's descriptors first, then the watching ones (see `identity`).
    drop(conn);
    drop(identity);
    log::debug!("writer thread: closed");
}

/// The files changed under the server: says so in the log, saves what the connection
/// still reaches, and returns the reason every later job is refused with.
///
/// - The WAL deleted or replaced: its committed frames (every acknowledged write since
///   the last checkpoint) are copied into the database file, which is still the one at
///   its path, so that nothing acknowledged is lost at the next start.
/// - The database deleted or replaced: its content as of the last acknowledged write is
///   copied (`VACUUM INTO`) to a new file beside its path, never over an existing one.
fn lose(conn: &Connection, change: &Change) -> String {
    log::error!(
        "{change} while the server was running: no write is acknowledged from now on; restart the server"
    );
    if change.is_database() {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut name = change.path.as_os_str().to_owned();
        name.push(format!(".rescued-{unix}"));
        let rescue = std::path::PathBuf::from(name);
        if rescue.exists() {
            log::error!("not saving the database: {} exists already", rescue.display());
        } else {
            match conn.execute("VACUUM INTO ?1", [rescue.to_string_lossy()]) {
                Ok(_) => log::error!(
                    "saved every acknowledged write of the lost database to {}: stop the server and move it back to {} to keep them",
                    rescue.display(),
                    change.path.display()
                ),
                Err(e) => log::error!("cannot save the lost database to {}: {e}", rescue.display()),
            }
        }
    } else {
        match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
            Ok(0) => log::error!("copied the lost WAL's acknowledged writes into the database"),
            Ok(_) => {
                log::error!("the lost WAL could only be partly copied into the database (readers were busy)")
            }
            Err(e) => log::error!("cannot copy the lost WAL into the database: {e}"),
        }
    }
    format!("{change}: the server no longer writes to it; restart it")
}

/// Runs one transaction-control statement through the statement cache: the
/// writer runs several per job, and parsing them anew each time was a visible
/// share of the writer thread's time under load (perf, `loadgen registration`).
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs a group in one transaction and answers every job. The statistics
/// are updated before the answers go out, so that whoever got an answer
/// sees its commit counted. After the commit and before any answer, `lost` says
/// whether the files committed to are still the database's (`Some(reason)` when
/// not): a commit into a deleted file is no commit.
fn run_batch(
    conn: &Connection,
    batch: Vec<Box<dyn Job>>,
    stats: &WriterStats,
    lost: &mut dyn FnMut() -> Option<String>,
) {
    let jobs = batch.len();
    stats.queued.fetch_sub(jobs as i64, Ordering::Relaxed);
    if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
        let reason = StoreError::from(e).describe();
        log::error!("cannot begin a write transaction: {reason}");
        for job in batch {
            job.finish(Err(StoreError::Commit(reason.clone())));
        }
        return;
    }
    let tx = WriteTx::new(conn);
    let mut done: Vec<(Box<dyn Job>, Option<String>)> = Vec::with_capacity(batch.len());
    let mut aborted: Option<String> = None;
    for mut job in batch {
        if let Some(reason) = &aborted {
            // SQLite rolled the whole transaction back (disk full, I/O error):
            // the remaining jobs are not run and get the same error.
            let reason = reason.clone();
            done.push((job, Some(reason)));
            continue;
        }
        if let Err(e) = control(conn, "SAVEPOINT job") {
            done.push((job, Some(StoreError::from(e).describe())));
            continue;
        }
        let keep = match catch_unwind(AssertUnwindSafe(|| job.run(&tx))) {
            Ok(keep) => keep,
            Err(_) => {
                log::error!("a database job panicked; rolled back");
                false
            }
        };
        if conn.is_autocommit() {
            let reason = "the transaction was rolled back by SQLite".to_string();
            log::error!("{reason}");
            aborted = Some(reason.clone());
            done.push((job, Some(reason)));
            continue;
        }
        let end = if keep {
            control(conn, "RELEASE job")
        } else {
            control(conn, "ROLLBACK TO job").and_then(|()| control(conn, "RELEASE job"))
        };
        match end {
            Ok(()) => done.push((job, None)),
            Err(e) => {
                let reason = StoreError::from(e).describe();
                log::error!("cannot end a job's savepoint: {reason}");
                done.push((job, Some(reason)));
            }
        }
    }
    let commit = if conn.is_autocommit() {
        Err(aborted.unwrap_or_else(|| "the transaction ended early".into()))
    } else {
        control(conn, "COMMIT").map_err(|e| {
            let reason = StoreError::from(e).describe();
            log::error!("commit failed: {reason}");
            if !conn.is_autocommit()
                && let Err(e) = conn.execute_batch("ROLLBACK")
            {
                log::error!("rollback after a failed commit failed too: {e}");
            }
            reason
        })
    };
    let commit = commit.and_then(|()| lost().map_or(Ok(()), Err));
    if commit.is_ok() {
        stats.record_group(jobs);
    }
    for (job, own_failure) in done {
        let outcome = match (&commit, own_failure) {
            (Ok(()), None) => Ok(()),
            (_, Some(reason)) => Err(StoreError::Commit(reason)),
            (Err(reason), None) => Err(StoreError::Commit(reason.clone())),
        };
        job.finish(outcome);
    }
}
