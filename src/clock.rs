//! The server's clock. Every handler reads time through it, so that tests can
//! move it (an in-process test advances it to reach an expiration instead of
//! sleeping) and so that `--timetravel` (as GNUnet's programs offer) can shift
//! it for a whole server.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::timestamp::Timestamp;

/// System time plus an offset that every clone shares.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Microseconds added to the system time.
    offset_us: Arc<AtomicI64>,
}

impl Clock {
    /// The system's time.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system's time shifted by `offset_s` seconds.
    pub fn with_offset(offset_s: i64) -> Clock {
        Clock { offset_us: Arc::new(AtomicI64::new(offset_s.saturating_mul(1_000_000))) }
    }

    /// Moves this clock and all its clones forward (tests).
    pub fn advance(&self, by: Duration) {
        let us = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Microseconds since the epoch.
    pub fn now_us(&self) -> i64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        system.saturating_add(self.offset_us.load(Ordering::Relaxed))
    }

    /// Whole seconds since the epoch.
    pub fn now_s(&self) -> i64 {
        self.now_us().div_euclid(1_000_000)
    }

    /// Now as a Taler timestamp (whole seconds, as Taler rounds them).
    pub fn now(&self) -> Timestamp {
        Timestamp::from_secs(u64::try_from(self.now_s()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset() {
        let clock = Clock::system();
        let seen_by_handler = clock.clone();
        let before = seen_by_handler.now_s();
        clock.advance(Duration::from_secs(3600));
        assert!(seen_by_handler.now_s() >= before + 3600);
    }
}
