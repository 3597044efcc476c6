//! The server's clock, which tests can shift (`--timetravel`, as GNUnet's
//! programs offer) to reach expirations and signed timestamps without waiting.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::timestamp::Timestamp;

#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// Seconds added to the system time.
    offset_s: i64,
}

impl Clock {
    pub fn with_offset(offset_s: i64) -> Clock {
        Clock { offset_s }
    }

    /// Microseconds since the epoch.
    pub fn now_us(&self) -> i64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        system.saturating_add(self.offset_s.saturating_mul(1_000_000))
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
