//! The connections the server holds: at most `--max-connections` at once, the soft
//! open-file limit raised to the hard one at start, and the end of a shutdown's grace.
//!
//! A connection that holds no request (idle before its first one, between two, or still
//! sending headers) is what a client that only opens sockets holds; when the cap is reached
//! the oldest such connection is closed to make room for the new one, so idle sockets cannot
//! keep everyone else out. Only when every connection is in the middle of a request does a
//! new one get a 503 (code 9920, `Retry-After`, `Connection: close`), written straight to its
//! socket; at most [`MAX_REFUSING`] of those are being written at once, beyond that a new
//! connection is closed without a word.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};

use crate::error::ApiError;

/// File descriptors kept for everything else than connections (the database, its WAL and
/// shared memory per pooled connection, the lock file, the listener, the log, tokio's own).
const RESERVED_FDS: u64 = 128;

/// Refusals (503 written to a connection beyond the cap) in progress at once.
pub const MAX_REFUSING: usize = 64;

/// Raises the soft open-file limit to the hard one (systemd's default soft limit is 1024)
/// and returns the limit now in force, `None` when the system says nothing.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        match setrlimit(Resource::Nofile, Rlimit { current: Some(maximum), maximum: Some(maximum) }) {
            Ok(()) => {
                log::info!("open-file limit raised from {current} to {maximum}");
                return Some(maximum);
            }
            Err(e) => log::warn!("cannot raise the open-file limit from {current} to {maximum}: {e}"),
        }
    }
    // No limit at all: as good as a large one.
    Some(limit.current.unwrap_or(1 << 20))
}

/// The default of `--max-connections`: what the open-file limit leaves after the reserve.
pub fn default_max_connections(fd_limit: Option<u64>) -> usize {
    let limit = fd_limit.unwrap_or(1024);
    usize::try_from(limit.saturating_sub(RESERVED_FDS + MAX_REFUSING as u64).clamp(16, 1 << 20)).unwrap_or(16)
}

/// One connection, as the registry sees it.
#[derive(Default)]
pub struct Slot {
    /// Requests of this connection being answered (0 or 1 with HTTP/1).
    in_request: AtomicUsize,
    /// Set when the registry wants the connection closed once it holds no request.
    evicted: AtomicBool,
    pub evict: Notify,
}

impl Slot {
    /// Marks a request as begun until the guard is dropped.
    pub fn request(self: &Arc<Slot>) -> InRequest {
        self.in_request.fetch_add(1, Ordering::AcqRel);
        InRequest(self.clone())
    }
}

pub struct InRequest(Arc<Slot>);

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.in_request.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every connection being served, oldest first.
pub struct Registry {
    max: usize,
    next_id: AtomicUsize,
    slots: Mutex<BTreeMap<usize, Arc<Slot>>>,
    refusing: Arc<AtomicUsize>,
    /// Flips to true when the shutdown's grace has ended: requests still running answer 503.
    grace_over: watch::Sender<bool>,
}

/// What to do with a connection just accepted.
pub enum Admission {
    Serve(usize, Arc<Slot>),
    Refuse,
}

impl Registry {
    pub fn new(max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max: max.max(1),
            next_id: AtomicUsize::new(0),
            slots: Mutex::default(),
            refusing: Arc::default(),
            grace_over: watch::channel(false).0,
        })
    }

    /// Admits a new connection, closing the oldest one without a request to make room when
    /// the cap is reached; `Refuse` when every connection is in the middle of a request.
    pub fn admit(&self) -> Admission {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let live = slots.values().filter(|s| !s.evicted.load(Ordering::Acquire)).count();
        if live >= self.max {
            let idle = slots
                .values()
                .find(|s| !s.evicted.load(Ordering::Acquire) && s.in_request.load(Ordering::Acquire) == 0);
            match idle {
                Some(slot) => {
                    slot.evicted.store(true, Ordering::Release);
                    slot.evict.notify_one();
                }
                None => return Admission::Refuse,
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        slots.insert(id, slot.clone());
        Admission::Serve(id, slot)
    }

    /// Forgets a connection that ended.
    pub fn remove(&self, id: usize) {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends the grace: every request still running is answered 503.
    pub fn end_grace(&self) {
        self.grace_over.send_replace(true);
    }

    /// Resolves when the grace has ended.
    pub fn grace_over(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut over = self.grace_over.subscribe();
        async move {
            let _ = over.wait_for(|over| *over).await;
        }
    }

    /// Writes a 503 to a connection beyond the cap and closes it, in the background; closes
    /// it at once when too many such answers are being written already.
    pub fn refuse<S>(&self, mut stream: S, max: usize)
    where
        S: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        if self.refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
            self.refusing.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let refusing = self.refusing.clone();
        let error = ApiError::Busy {
            what: format!(
                "the server holds its maximum of {max} connections, each in the middle of a request"
            ),
            retry_after_s: 1,
            close: true,
        };
        let body = serde_json::to_vec(&error.detail()).unwrap_or_default();
        log::warn!("connection refused: {error}");
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        tokio::spawn(async move {
            let write = async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
            refusing.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_makes_room_and_busy_ones_do_not() {
        let registry = Registry::new(2);
        let Admission::Serve(_, first) = registry.admit() else { panic!("refused") };
        let Admission::Serve(_, second) = registry.admit() else { panic!("refused") };
        let _busy = second.request();
        // At the cap: the first (idle) one is asked to close.
        assert!(matches!(registry.admit(), Admission::Serve(..)));
        assert!(first.evicted.load(Ordering::Acquire));
        assert!(!second.evicted.load(Ordering::Acquire));
        // The newest is idle too and goes next; then only busy ones are left.
        assert!(matches!(registry.admit(), Admission::Serve(..)));
        let _all_busy: Vec<_> = registry
            .slots
            .lock()
            .unwrap()
            .values()
            .filter(|s| !s.evicted.load(Ordering::Acquire))
            .map(|s| s.request())
            .collect();
        assert!(matches!(registry.admit(), Admission::Refuse));
    }

    #[test]
    fn the_default_cap_leaves_room_below_the_fd_limit() {
        assert_eq!(default_max_connections(Some(1024)), 1024 - 128 - 64);
        assert_eq!(default_max_connections(Some(100)), 16);
    }
}
