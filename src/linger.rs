//! Lingering close: what is left of a request body after an early answer is
//! read and thrown away before the connection closes, as nginx does.
//!
//! Most clients send the whole body before they read the answer. If the server
//! closes a socket that still holds unread bytes, the kernel answers with a
//! reset, and the client reports `EPIPE`/`ECONNRESET` instead of the answer it
//! was sent. Reading the body to its end first lets the close be an orderly
//! FIN after which the client finds the whole answer.
//!
//! How this works with hyper 1's HTTP/1 dispatcher (`proto/h1/dispatch.rs`):
//! while a request's [`Incoming`] is alive and wants data, the dispatcher reads
//! the body from the socket into it, and it writes the response meanwhile, so
//! the answer goes out at once and the draining runs beside it. When the
//! `Incoming` is dropped early, the dispatcher reads what it can without
//! waiting (`poll_drain_or_close_read`, which also skips a `100 Continue` not
//! yet sent) and then closes the read side, so the socket is closed, unread
//! bytes and all, as soon as the answer is written. The connection service therefore
//! hands an unread `Incoming` to [`drain`] instead of dropping it, and hyper
//! closes the connection when the body has ended and the answer (which says
//! `Connection: close`) is written.
//!
//! Bounds: hyper's decoder never reads past the declared `Content-Length` (what
//! follows would be the next request), discarded bytes are never kept, and each
//! drain ends after [`MAX_LINGER`] in all or the idle limit between two reads;
//! dropping the `Incoming` then falls back to hyper's close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Buf;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use tokio::time::{Instant, timeout_at};

/// The longest a connection lingers after an early answer, whatever the client's pace.
pub const MAX_LINGER: Duration = Duration::from_secs(30);

/// How long a drain may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest pause between two reads (`--request-timeout`).
    pub idle: Duration,
    /// The longest the whole drain may take.
    pub total: Duration,
}

/// Drains under way, for the log: each holds a connection open.
static IN_PROGRESS: AtomicUsize = AtomicUsize::new(0);

/// How many bodies are being drained right now.
pub fn in_progress() -> usize {
    IN_PROGRESS.load(Ordering::Relaxed)
}

/// Counts one drain for as long as it lives, also if its task is dropped at
/// shutdown.
struct Counted;

impl Counted {
    fn enter() -> (Counted, usize) {
        (Counted, IN_PROGRESS.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        IN_PROGRESS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a drain ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The body ended; the connection closes cleanly.
    Drained,
    Idle,
    TooLong,
    /// The client went away or sent a malformed body.
    Failed(String),
}

/// Reads and discards the rest of `body` on a task of its own. `last_read` is
/// when the handler last got a piece of it: the idle limit runs from there, so
/// a body that already stalled past the limit is not waited for again.
pub fn drain(body: Incoming, last_read: Instant, limits: Limits) {
    // Only reachable outside a runtime, where no connection is served: dropping
    // the body is then hyper's plain close.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let (counted, now_in_progress) = Counted::enter();
    log::debug!("draining an unread request body ({now_in_progress} drains in progress)");
    runtime.spawn(async move {
        let _counted = counted;
        let (outcome, bytes) = discard(body, last_read, limits).await;
        match outcome {
            Outcome::Drained => log::debug!("drained {bytes} unread body bytes"),
            Outcome::Failed(e) => log::debug!("draining stopped after {bytes} bytes: {e}"),
            Outcome::Idle => {
                log::info!("stopped draining an unread body after {bytes} bytes: idle for {:?}", limits.idle)
            }
            Outcome::TooLong => {
                log::info!("stopped draining an unread body after {bytes} bytes: {:?} in all", limits.total)
            }
        }
    });
}

/// Generic over the body so that the limits can be tested without a socket.
async fn discard<B>(mut body: B, last_read: Instant, limits: Limits) -> (Outcome, u64)
where
    B: Body + Unpin,
    B::Error: std::fmt::Display,
{
    let give_up = Instant::now() + limits.total;
    let mut idle_until = last_read + limits.idle;
    let mut bytes = 0u64;
    loop {
        let until = idle_until.min(give_up);
        match timeout_at(until, body.frame()).await {
            Err(_) if until == give_up => return (Outcome::TooLong, bytes),
            Err(_) => return (Outcome::Idle, bytes),
            Ok(None) => return (Outcome::Drained, bytes),
            Ok(Some(Err(e))) => return (Outcome::Failed(e.to_string()), bytes),
            Ok(Some(Ok(frame))) => {
                bytes += frame.data_ref().map_or(0, |d| d.remaining() as u64);
                idle_until = Instant::now() + limits.idle;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use futures_util::stream;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    use super::*;

    const LIMITS: Limits = Limits { idle: Duration::from_millis(300), total: Duration::from_millis(1500) };

    /// A body sending `pieces` bytes, one every `every`, then ending.
    fn trickle(pieces: usize, every: Duration) -> impl Body<Data = Bytes, Error = Infallible> + Unpin {
        let s = stream::unfold(0, move |n| async move {
            if n == pieces {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Frame::data(Bytes::from_static(b"x"))), n + 1))
        });
        StreamBody::new(Box::pin(s))
    }

    #[tokio::test]
    async fn a_body_that_ends_is_drained_to_its_end() {
        let (outcome, bytes) = discard(trickle(5, Duration::from_millis(10)), Instant::now(), LIMITS).await;
        assert_eq!((outcome, bytes), (Outcome::Drained, 5));
    }

    #[tokio::test]
    async fn a_pause_longer_than_the_idle_limit_ends_the_drain() {
        let t0 = Instant::now();
        let (outcome, bytes) = discard(trickle(5, Duration::from_secs(10)), Instant::now(), LIMITS).await;
        assert_eq!((outcome, bytes), (Outcome::Idle, 0));
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn a_body_that_stalled_before_the_drain_is_not_waited_for_again() {
        let t0 = Instant::now();
        let long_ago = Instant::now() - LIMITS.idle;
        let (outcome, _) = discard(trickle(5, Duration::from_secs(10)), long_ago, LIMITS).await;
        assert_eq!(outcome, Outcome::Idle);
        assert!(t0.elapsed() < LIMITS.idle / 2, "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn a_steady_trickle_is_cut_off_after_the_total_limit() {
        let t0 = Instant::now();
        let (outcome, bytes) =
            discard(trickle(1000, Duration::from_millis(50)), Instant::now(), LIMITS).await;
        assert_eq!(outcome, Outcome::TooLong);
        assert!(bytes > 5 && bytes < 1000, "{bytes}");
        let took = t0.elapsed();
        assert!(took >= LIMITS.total && took < LIMITS.total * 2, "{took:?}");
    }
}
