//! Log lines reach stderr through one thread of their own.
//!
//! env_logger writes each record to stderr with one `write` under stderr's lock. Under load that
//! was about 7% of the server's CPU (`perf record` of `loadgen registration`: the `write` to the
//! pipe, the futex of two workers contending for stderr's lock, a copy to strip colours): a
//! request's line cost the worker answering it a system call and, now and then, a wait for the
//! other worker's. Here a worker only appends its line to a buffer under a short lock; the log
//! thread takes whatever has gathered and writes it with one call. While lines keep coming it
//! lets them gather for 2 ms first, so a busy server makes one wake-up and one `write` per
//! 2 ms rather than per line; after a quiet spell a line is written at once.
//!
//! Logs never hold up serving: when stderr stops draining (a pipe nobody reads) the buffer
//! stops at [`MAX_BUFFERED`] bytes and further lines are counted and dropped; once stderr
//! moves again the thread writes how many were lost. Lines are in the order they were logged.
//! [`LogSink::finish`] writes what is left and stops the thread, for the end of `main`; a
//! `kill -9` can lose the lines of the last write in flight, as with any buffered log.
//!
//! Whoever writes to stderr directly (the start-up summary of `serve`) calls [`flush`] first,
//! so that lines logged before it stay before it. Only `serve` logs through the thread: the
//! one-shot commands log little and print to stderr themselves.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of log lines held while stderr is slow; beyond this lines are dropped (and counted).
pub const MAX_BUFFERED: usize = 1 << 20;

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    /// Bytes accepted so far, and bytes of those written out: [`flush`] waits for the one to
    /// reach the other.
    appended: u64,
    written: u64,
    /// Callers waiting in [`flush`]: the thread does not linger to gather lines meanwhile.
    flushing: usize,
    /// Lines dropped since the last write, because the buffer was full.
    dropped: u64,
    /// The log thread is waiting for lines (so a writer must wake it).
    idle: bool,
    /// [`LogSink::finish`] was called: write what is left, then stop.
    closing: bool,
    /// The thread has stopped: nothing more will be written.
    stopped: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Signalled after each write, for [`flush`].
    drained: Condvar,
}

/// The running sink's shared state, for [`flush`].
static ACTIVE: OnceLock<Arc<Shared>> = OnceLock::new();

/// Waits until every line logged so far is written to stderr (returns at once without a log
/// thread, or once the thread has stopped).
pub fn flush() {
    if let Some(shared) = ACTIVE.get() {
        shared.flush();
    }
}

impl Shared {
    // A panic while the lock is held leaves nothing half-done worth refusing the lock for: at
    // worst a line is cut short.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flush(&self) {
        let mut state = self.lock();
        let target = state.appended;
        state.flushing += 1;
        if state.idle {
            state.idle = false;
            self.wake.notify_one();
        }
        while state.written < target && !state.stopped {
            state = self.drained.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.flushing -= 1;
    }
}

/// The `Write` end env_logger's records go to (its `Target::Pipe`).
pub struct LineWriter {
    shared: Arc<Shared>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if state.lines.len() + buf.len() > MAX_BUFFERED {
            state.dropped += 1;
        } else {
            state.lines.extend_from_slice(buf);
            state.appended += buf.len() as u64;
        }
        // Waking costs a system call: only when the thread sleeps, not while it is writing.
        if state.idle {
            state.idle = false;
            self.shared.wake.notify_one();
        }
        Ok(buf.len())
    }

    /// The log thread writes soon; a flush per record is what this module saves.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The log thread; [`LogSink::finish`] (or dropping it) writes the rest and stops it.
pub struct LogSink {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogSink {
    /// Starts the log thread writing to stderr and makes it the one [`flush`] waits for;
    /// returns it and the writer for env_logger, or `None` when the system refuses a thread
    /// (the caller then keeps env_logger's own stderr target).
    pub fn start_for_stderr() -> Option<(LogSink, LineWriter)> {
        let (sink, writer) = LogSink::start(io::stderr())?;
        // A second sink in one process (there is none) would simply not be flushed.
        let _ = ACTIVE.set(sink.shared.clone());
        Some((sink, writer))
    }

    /// Starts a log thread writing to `out`.
    pub fn start<W: Write + Send + 'static>(out: W) -> Option<(LogSink, LineWriter)> {
        let shared = Arc::new(Shared::default());
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tl-log".to_owned())
            .spawn(move || drain(&for_thread, out))
            .ok()?;
        let writer = LineWriter { shared: shared.clone() };
        Some((LogSink { shared, thread: Some(thread) }, writer))
    }

    /// Writes every line logged so far and stops the thread; later lines are kept, unwritten.
    /// (Dropping the sink does the same; this names the moment.)
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // The thread only writes; if it panicked there is nothing left to save.
            let _ = thread.join();
        }
        // Whatever ended the thread, nobody may wait in `flush` for it any more.
        self.shared.lock().stopped = true;
        self.shared.drained.notify_all();
    }
}

/// While lines come faster than one per this, the thread lets them gather for [`GATHER`]
/// before it writes: at thousands of requests a second, one wake-up and one `write` per
/// [`GATHER`] instead of one per line. After a quiet spell a line is written at once.
const BUSY: Duration = Duration::from_millis(1);
const GATHER: Duration = Duration::from_millis(2);

/// The log thread: waits for lines, writes them in one call, again.
fn drain<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    let mut last_write: Option<Instant> = None;
    loop {
        let (dropped, closing, taken) = {
            let mut state = shared.lock();
            while state.lines.is_empty() && state.dropped == 0 && !state.closing {
                state.idle = true;
                state = shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if !state.closing && state.flushing == 0 && last_write.is_some_and(|t| t.elapsed() < BUSY) {
                drop(state);
                std::thread::sleep(GATHER);
                state = shared.lock();
            }
            // The spare buffer goes back, so that steady logging allocates nothing.
            std::mem::swap(&mut state.lines, &mut batch);
            (std::mem::take(&mut state.dropped), state.closing, state.appended)
        };
        // stderr failing (closed) leaves nothing better to do with a log line than drop it.
        let _ = out.write_all(&batch);
        if dropped > 0 {
            let _ = writeln!(out, "taler-lite: {dropped} log lines dropped: stderr did not keep up");
        }
        let _ = out.flush();
        last_write = Some(Instant::now());
        batch.clear();
        // `stopped` is set by `LogSink::stop` once this thread has ended.
        let waiting = {
            let mut state = shared.lock();
            state.written = taken;
            state.flushing > 0
        };
        // A notification is a system call: only for someone in `flush`.
        if waiting {
            shared.drained.notify_all();
        }
        if closing {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` that records what reached it, and can be held shut to act as a stalled pipe.
    #[derive(Clone, Default)]
    struct Recorder {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_and_finish_writes_the_rest() {
        let out = Recorder::default();
        let (sink, mut writer) = LogSink::start(out.clone()).unwrap();
        let mut expected = Vec::new();
        for i in 0..10_000 {
            let line = format!("line {i}\n");
            writer.write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
        }
        sink.finish();
        assert_eq!(*out.bytes.lock().unwrap(), expected);
    }

    #[test]
    fn flush_returns_once_everything_logged_before_it_is_written() {
        let out = Recorder::default();
        let (sink, mut writer) = LogSink::start(out.clone()).unwrap();
        for round in 0..200 {
            let line = format!("round {round}\n");
            writer.write_all(line.as_bytes()).unwrap();
            sink.shared.flush();
            assert!(out.bytes.lock().unwrap().ends_with(line.as_bytes()), "round {round}");
        }
        sink.finish();
        // After the thread has stopped, a flush does not wait forever.
        let (sink, mut writer) = LogSink::start(out.clone()).unwrap();
        let shared = sink.shared.clone();
        sink.finish();
        writer.write_all(b"late\n").unwrap();
        shared.flush();
    }

    #[test]
    fn a_stalled_stderr_drops_lines_beyond_the_limit_and_says_so() {
        let out = Recorder::default();
        let stalled = out.gate.lock().unwrap();
        let (sink, mut writer) = LogSink::start(out.clone()).unwrap();
        let line = [b'x'; 1000];
        // Never blocks, however much is logged while stderr is stuck.
        for _ in 0..3 * MAX_BUFFERED / line.len() {
            writer.write_all(&line).unwrap();
        }
        drop(stalled);
        sink.finish();
        let written = out.bytes.lock().unwrap();
        // At most one batch was taken before the stall plus one full buffer after it.
        assert!(written.len() <= 2 * MAX_BUFFERED + 200, "{}", written.len());
        let text = String::from_utf8_lossy(&written);
        assert!(text.contains("log lines dropped: stderr did not keep up"), "no note of the drop");
    }
}
