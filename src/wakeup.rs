//! Wake-ups for long polls: a request that found nothing waits on a channel named by what it
//! waits for (an account's incoming or outgoing history), and whoever commits a row there
//! wakes that channel after the commit. Waiting holds no thread and no database connection:
//! a waiting request is a future parked on a `tokio::sync::watch` receiver. Closing answers
//! every waiter at once (the server's shutdown), instead of letting them run to their timeouts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

/// Every channel of one server.
pub struct Wakeups {
    channels: Mutex<HashMap<String, watch::Sender<u64>>>,
    closed: watch::Sender<bool>,
    /// Requests parked in [`Waiter::wait`] now (the `/metrics` gauge, and how the load generator
    /// knows its polls are all waiting).
    waiting: Arc<AtomicUsize>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            channels: Mutex::new(HashMap::new()),
            closed: watch::Sender::new(false),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// Something was committed on the channel.
    Changed,
    /// The deadline passed.
    TimedOut,
    /// The server is shutting down.
    Closed,
}

/// One request's subscription: made before it reads, so that a commit between its read and
/// its wait still wakes it.
pub struct Waiter {
    changes: watch::Receiver<u64>,
    closed: watch::Receiver<bool>,
    waiting: Arc<AtomicUsize>,
}

/// Counts one parked wait for as long as it lives (also when its request is dropped mid-wait,
/// as when the client goes away).
struct Parked<'a>(&'a AtomicUsize);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Wakeups {
    /// Subscribes to `channel`.
    pub fn subscribe(&self, channel: &str) -> Waiter {
        let changes = {
            let mut channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            channels.entry(channel.to_owned()).or_insert_with(|| watch::Sender::new(0)).subscribe()
        };
        Waiter { changes, closed: self.closed.subscribe(), waiting: self.waiting.clone() }
    }

    /// Wakes everyone subscribed to `channel` (call after the commit is durable).
    pub fn wake(&self, channel: &str) {
        let channels = self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = channels.get(channel) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// How many requests are waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Wakes every waiter now and every later one at once: the server is stopping.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Whether [`Wakeups::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

impl Waiter {
    /// Waits until the channel changes (since the subscription or the last wait), the server
    /// closes, or `deadline` passes.
    pub async fn wait(&mut self, deadline: Instant) -> Woken {
        if *self.closed.borrow() {
            return Woken::Closed;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _parked = Parked(&self.waiting);
        tokio::select! {
            changed = self.changes.changed() => match changed {
                Ok(()) => Woken::Changed,
                // The sender lives as long as the server's state: gone means closing.
                Err(_) => Woken::Closed,
            },
            _ = self.closed.wait_for(|closed| *closed) => Woken::Closed,
            () = tokio::time::sleep_until(deadline) => Woken::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_wake_after_subscribing_is_seen_even_before_waiting() {
        let w = Wakeups::default();
        let mut waiter = w.subscribe("a/incoming");
        assert_eq!(w.waiting(), 0);
        w.wake("a/outgoing");
        w.wake("a/incoming");
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(waiter.wait(far).await, Woken::Changed);
        assert_eq!(waiter.wait(Instant::now() + Duration::from_millis(10)).await, Woken::TimedOut);
        w.close();
        assert_eq!(waiter.wait(far).await, Woken::Closed);
        assert_eq!(w.subscribe("b").wait(far).await, Woken::Closed);
        assert_eq!(w.waiting(), 0);
    }

    #[tokio::test]
    async fn waits_are_counted_while_parked() {
        let w = std::sync::Arc::new(Wakeups::default());
        let far = Instant::now() + Duration::from_secs(60);
        let mut tasks = Vec::new();
        for channel in ["a/incoming", "b/outgoing"] {
            let mut waiter = w.subscribe(channel);
            tasks.push(tokio::spawn(async move { waiter.wait(far).await }));
        }
        while w.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        w.wake("a/incoming");
        let second = tasks.pop().unwrap();
        assert_eq!(tasks.pop().unwrap().await.unwrap(), Woken::Changed);
        assert_eq!(w.waiting(), 1);
        w.close();
        assert_eq!(second.await.unwrap(), Woken::Closed);
        assert_eq!(w.waiting(), 0);
    }
}
