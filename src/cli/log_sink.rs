//! Log lines reach stderr through one thread of their own.
//!
//! env_logger writes each record to stderr with one `write` under stderr's lock. Under load that
//! was about 7% of the server's CPU (`perf record` of `loadgen registration`: the `write` to the
//! pipe, the futex of two workers contending for stderr's lock, a copy to strip colours): a
//! request's line cost the worker answering it a system call and, now and then, a wait for the
//! other worker's. Here a worker only appends its line to a buffer under a short lock; the log
//! thread takes whatever has gathered and writes it with one call. While lines keep coming it
//! lets them gather for 2 ms first, so a busy server makes one wake-up and one `write` per
//! 2 ms rather than per line; after a quiet spell a line is written at once. Lines logged
//! through `log` keep their order; a line printed directly to stderr (the start-up summary)
//! can come before a log line logged a moment earlier.
//!
//! Logs never hold up serving: when stderr stops draining (a pipe nobody reads) the buffer
//! stops at [`MAX_BUFFERED`] bytes and further lines are counted and dropped; once stderr
//! moves again the thread writes how many were lost. Lines are in the order they were logged.
//! [`LogSink::finish`] writes what is left and stops the thread, for the end of `main`; a
//! `kill -9` can lose the lines of the last write in flight, as with any buffered log.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of log lines held while stderr is slow; beyond this lines are dropped (and counted).
pub const MAX_BUFFERED: usize = 1 << 20;

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    /// Lines dropped since the last write, because the buffer was full.
    dropped: u64,
    /// The log thread is waiting for lines (so a writer must wake it).
    idle: bool,
    /// [`LogSink::finish`] was called: write what is left, then stop.
    closing: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    // A panic while the lock is held leaves nothing half-done worth refusing the lock for: at
    // worst a line is cut short.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
    /// Starts the log thread writing to `out` (stderr in the binary); returns it and the
    /// writer for env_logger, or `None` when the system refuses a thread (the caller then
    /// keeps env_logger's own stderr target).
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
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // The thread only writes; if it panicked there is nothing left to save.
            let _ = thread.join();
        }
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        self.stop();
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
        let (dropped, closing) = {
            let mut state = shared.lock();
            while state.lines.is_empty() && state.dropped == 0 && !state.closing {
                state.idle = true;
                state = shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if !state.closing && last_write.is_some_and(|t| t.elapsed() < BUSY) {
                drop(state);
                std::thread::sleep(GATHER);
                state = shared.lock();
            }
            // The spare buffer goes back, so that steady logging allocates nothing.
            std::mem::swap(&mut state.lines, &mut batch);
            (std::mem::take(&mut state.dropped), state.closing)
        };
        // stderr failing (closed) leaves nothing better to do with a log line than drop it.
        let _ = out.write_all(&batch);
        if dropped > 0 {
            let _ = writeln!(out, "taler-lite: {dropped} log lines dropped: stderr did not keep up");
        }
        let _ = out.flush();
        last_write = Some(Instant::now());
        batch.clear();
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
