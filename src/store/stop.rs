//! A request to stop that reaches work already under way: `serve`'s start-up can take long
//! (a fixture naming a file of gigabytes is read and hashed twice, an older database is
//! converted with a `VACUUM`, staged uploads left by a crash are deleted), and a signal or
//! the end of standard input must stop it then too, not only once it serves.
//!
//! Whoever loops over a long piece of work asks [`Stop::check`] between two pieces; a
//! long SQLite statement is interrupted (`sqlite3_interrupt`) through the connection
//! registered with [`Stop::interrupting`] while it runs; and async code waits for
//! [`Stop::wait`] beside its work.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, InterruptHandle};
use tokio::sync::watch;

/// Cheap to clone; every clone sees the same request. The default one is never stopped
/// unless asked.
#[derive(Clone)]
pub struct Stop(Arc<Inner>);

struct Inner {
    stopped: watch::Sender<bool>,
    /// The connection whose statement to interrupt, while one is registered.
    interrupt: Mutex<Option<InterruptHandle>>,
}

impl Default for Stop {
    fn default() -> Stop {
        Stop(Arc::new(Inner { stopped: watch::Sender::new(false), interrupt: Mutex::new(None) }))
    }
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop").field("stopped", &self.is_stopped()).finish()
    }
}

/// The answer of [`Stop::check`] once stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped")]
pub struct Stopped;

impl Stop {
    /// Asks every holder to stop, and interrupts the registered connection's statement.
    pub fn stop(&self) {
        self.0.stopped.send_replace(true);
        if let Some(handle) = self.0.interrupt.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            handle.interrupt();
        }
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.stopped.borrow()
    }

    /// `Err` once stopped: for loops over long work, between two pieces.
    pub fn check(&self) -> Result<(), Stopped> {
        if self.is_stopped() { Err(Stopped) } else { Ok(()) }
    }

    /// Resolves once stopped.
    pub async fn wait(&self) {
        let mut stopped = self.0.stopped.subscribe();
        // An error means the sender is gone, which it cannot be while `self` holds it.
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Registers `conn`, whose statements a stop interrupts until the guard is dropped
    /// (only while it does work worth stopping: afterwards a stop must not interrupt the
    /// server's writes). `Err` when stopped already.
    pub(in crate::store) fn interrupting(&self, conn: &Connection) -> Result<Interrupting<'_>, Stopped> {
        *self.0.interrupt.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn.get_interrupt_handle());
        // Checked after registering: a stop from before is seen here, one from after
        // interrupts the statement.
        let guard = Interrupting(self);
        self.check()?;
        Ok(guard)
    }
}

/// Unregisters the connection when dropped.
pub(in crate::store) struct Interrupting<'s>(&'s Stop);

impl Drop for Interrupting<'_> {
    fn drop(&mut self) {
        self.0.0.interrupt.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_interrupts_a_long_statement_and_is_seen_after() {
        let conn = Connection::open_in_memory().unwrap();
        let stop = Stop::default();
        let guard = stop.interrupting(&conn).unwrap();
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                stop.stop();
            })
        };
        // Counts for far longer than the test may take, unless interrupted.
        let counted = conn.query_row(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            [],
            |r| r.get::<_, i64>(0),
        );
        stopper.join().unwrap();
        let Err(rusqlite::Error::SqliteFailure(e, _)) = counted else { panic!("{counted:?}") };
        assert_eq!(e.code, rusqlite::ErrorCode::OperationInterrupted);
        drop(guard);
        assert_eq!(stop.check(), Err(Stopped));
        assert!(stop.interrupting(&conn).is_err());
    }
}
