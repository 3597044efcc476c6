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

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;

/// Upper bound on jobs in one transaction, so that one commit's latency stays bounded.
const MAX_BATCH: usize = 256;

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

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Runs the job on the connection (or, with `None`, skips it because the
/// transaction already failed) and says whether to keep its changes.
type Run = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;

struct Job {
    run: Run,
    durability: Durability,
}

enum Message {
    Job(Job),
    /// Finish what is queued before this, checkpoint and stop.
    Close,
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Message>,
}

impl Writer {
    /// Starts the thread that owns `conn`. The thread ends when every `Writer` is
    /// dropped, after finishing what was queued.
    pub fn start(conn: Connection) -> Result<(Writer, JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel::<Message>();
        let handle = std::thread::Builder::new()
            .name("taler-lite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(StoreError::Io)?;
        Ok((Writer { tx }, handle))
    }

    /// Queues `f` to run inside a write transaction and returns a receiver for
    /// its answer, sent after the commit. `Err` from `f` rolls back its changes.
    fn submit<T, E, F>(&self, durability: Durability, f: F) -> oneshot::Receiver<Result<T, E>>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let run: Run = Box::new(move |conn: Option<&Connection>| {
            let result = conn.map(f);
            let keep = matches!(result, Some(Ok(_)));
            let complete: Completion = Box::new(move |commit: Result<(), StoreError>| {
                let outcome = match (result, commit) {
                    (Some(Err(e)), _) => Err(e),
                    (Some(Ok(v)), Ok(())) => Ok(v),
                    (_, Err(c)) => Err(E::from(c)),
                    (None, Ok(())) => Err(E::from(StoreError::Commit("the job was not run".into()))),
                };
                // The requester may have gone away (client disconnected): nothing to do.
                let _ = reply.send(outcome);
            });
            (keep, complete)
        });
        // If the thread is gone the job is dropped with its reply sender, and the
        // requester sees `Closed` at once instead of hanging.
        let _ = self.tx.send(Message::Job(Job { run, durability }));
        answer
    }

    /// Asks the thread to stop once the jobs queued so far are done.
    pub fn close(&self) {
        let _ = self.tx.send(Message::Close);
    }

    /// Queues `f` now (so jobs run in the order of these calls) and returns a
    /// future of its answer, which resolves once the change is committed with
    /// the asked durability (or rolled back if `f` failed).
    pub fn write<T, E, F>(
        &self,
        durability: Durability,
        f: F,
    ) -> impl Future<Output = Result<T, E>> + Send + use<T, E, F>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let answer = self.submit(durability, f);
        async move {
            match answer.await {
                Ok(outcome) => outcome,
                Err(_) => Err(E::from(StoreError::Closed)),
            }
        }
    }

    /// The same for threads outside the async runtime (the CLI).
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        match self.submit(Durability::Durable, f).blocking_recv() {
            Ok(outcome) => outcome,
            Err(_) => Err(E::from(StoreError::Closed)),
        }
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Message>) {
    // Room for every statement the write paths run (the default is 16).
    conn.set_prepared_statement_cache_capacity(64);
    let mut synchronous_full = true;
    let mut closing = false;
    while !closing {
        let mut batch = match rx.recv() {
            Ok(Message::Job(job)) => vec![job],
            Ok(Message::Close) | Err(_) => break,
        };
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Message::Job(job)) => batch.push(job),
                Ok(Message::Close) => {
                    closing = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|j| j.durability == Durability::Durable);
        if durable != synchronous_full {
            let pragma = if durable { "PRAGMA synchronous=FULL" } else { "PRAGMA synchronous=NORMAL" };
            match conn.execute_batch(pragma) {
                Ok(()) => synchronous_full = durable,
                Err(e) => log::error!("cannot set {pragma}: {e}"),
            }
        }
        run_batch(&conn, batch);
    }
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
    log::debug!("writer thread: closed");
}

/// Runs one transaction-control statement through the statement cache: the
/// writer runs several per job, and parsing them anew each time was a visible
/// share of the writer thread's time under load (perf, `loadgen registration`).
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
        let reason = StoreError::from(e).describe();
        log::error!("cannot begin a write transaction: {reason}");
        for job in batch {
            let (_, complete) = skip_job(job);
            complete(Err(StoreError::Commit(reason.clone())));
        }
        return;
    }
    let mut completions = Vec::with_capacity(batch.len());
    let mut aborted: Option<String> = None;
    for job in batch {
        if let Some(reason) = &aborted {
            // SQLite rolled the whole transaction back (disk full, I/O error):
            // the remaining jobs are not run and get the same error.
            let (_, complete) = skip_job(job);
            completions.push((complete, Some(reason.clone())));
            continue;
        }
        if let Err(e) = control(conn, "SAVEPOINT job") {
            let reason = StoreError::from(e).describe();
            let (_, complete) = skip_job(job);
            completions.push((complete, Some(reason)));
            continue;
        }
        let (keep, complete) = match catch_unwind(AssertUnwindSafe(|| (job.run)(Some(conn)))) {
            Ok(outcome) => outcome,
            Err(_) => {
                log::error!("a database job panicked; rolled back");
                // The reply sender died with the job: its requester sees a closed store.
                (false, Box::new(|_| ()) as Completion)
            }
        };
        if conn.is_autocommit() {
            let reason = "the transaction was rolled back by SQLite".to_string();
            log::error!("{reason}");
            aborted = Some(reason.clone());
            completions.push((complete, Some(reason)));
            continue;
        }
        let end = if keep {
            control(conn, "RELEASE job")
        } else {
            control(conn, "ROLLBACK TO job").and_then(|()| control(conn, "RELEASE job"))
        };
        match end {
            Ok(()) => completions.push((complete, None)),
            Err(e) => {
                let reason = StoreError::from(e).describe();
                log::error!("cannot end a job's savepoint: {reason}");
                completions.push((complete, Some(reason)));
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
    for (complete, own_failure) in completions {
        let result = match (&commit, own_failure) {
            (Ok(()), None) => Ok(()),
            (_, Some(reason)) => Err(StoreError::Commit(reason)),
            (Err(reason), None) => Err(StoreError::Commit(reason.clone())),
        };
        complete(result);
    }
}

/// A job that will not run: its completion still answers the requester, with
/// the error the completion is given.
fn skip_job(job: Job) -> (bool, Completion) {
    (job.run)(None)
}
