//! The server's clock: the one source of "now" for everything the server decides by time
//! (registration expiry, the unregistration window, upload and transfer timestamps, the
//! default `validity_start` of fixtures, console session expiry). Logs keep the wall clock.
//!
//! It is the system time shifted by an offset, or frozen at an instant. A test suite moves
//! it (`--clock-offset`, `--frozen-clock`, `POST /private/clock`, or an in-process test's
//! [`Clock::advance`]) to reach an expiration instead of sleeping. Moved through the API it
//! never goes backwards: what the server stored at one time must not find itself in the
//! future of the next request.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::timestamp::Timestamp;

/// The system time plus an offset, or a frozen instant; every clone shares it.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    state: Arc<Mutex<State>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct State {
    /// Microseconds added to the system time while running.
    offset_us: i64,
    /// The instant the clock stands at, when frozen.
    frozen_at_us: Option<i64>,
}

/// What `GET /private/clock` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockState {
    pub now_us: i64,
    /// How far the server's time is from the wall clock's (negative: behind it).
    pub offset_us: i64,
    pub frozen: bool,
}

/// A move that would take the server's time backwards, refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the server's time would go back from {now_us} to {to_us} µs since the epoch")]
pub struct Backwards {
    pub now_us: i64,
    pub to_us: i64,
}

/// The system's time in microseconds since the epoch.
pub fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Clock {
    /// The system's time.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The system's time shifted by `offset_s` seconds.
    pub fn with_offset(offset_s: i64) -> Clock {
        Clock::starting(offset_s.saturating_mul(1_000_000), None)
    }

    /// A clock shifted by `offset_us`, or frozen at `frozen_at_us` (`serve --clock-offset`,
    /// `--frozen-clock`).
    pub fn starting(offset_us: i64, frozen_at_us: Option<i64>) -> Clock {
        Clock { state: Arc::new(Mutex::new(State { offset_us, frozen_at_us })) }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Microseconds since the epoch.
    pub fn now_us(&self) -> i64 {
        self.with_state(|s| now_of(s, wall_us()))
    }

    /// Whole seconds since the epoch.
    pub fn now_s(&self) -> i64 {
        self.now_us().div_euclid(1_000_000)
    }

    /// Now as a Taler timestamp (whole seconds, as Taler rounds them).
    pub fn now(&self) -> Timestamp {
        Timestamp::from_secs(u64::try_from(self.now_s()).unwrap_or(0))
    }

    /// Where the clock stands.
    pub fn state(&self) -> ClockState {
        let wall = wall_us();
        self.with_state(|s| {
            let now_us = now_of(s, wall);
            ClockState { now_us, offset_us: now_us.saturating_sub(wall), frozen: s.frozen_at_us.is_some() }
        })
    }

    /// Moves this clock and all its clones forward (frozen, it stays frozen, later).
    pub fn advance(&self, by: Duration) {
        let by = micros(by);
        self.with_state(|s| match &mut s.frozen_at_us {
            Some(at) => *at = at.saturating_add(by),
            None => s.offset_us = s.offset_us.saturating_add(by),
        });
    }

    /// Puts the clock at `at_us` (frozen, it stays frozen there); never backwards.
    pub fn set(&self, at_us: i64) -> Result<(), Backwards> {
        let wall = wall_us();
        self.with_state(|s| {
            let now_us = now_of(s, wall);
            if at_us < now_us {
                return Err(Backwards { now_us, to_us: at_us });
            }
            match &mut s.frozen_at_us {
                Some(at) => *at = at_us,
                None => s.offset_us = at_us.saturating_sub(wall),
            }
            Ok(())
        })
    }

    /// Stops the clock where it is, or lets it run on from where it stands.
    pub fn freeze(&self, frozen: bool) {
        let wall = wall_us();
        self.with_state(|s| {
            let now_us = now_of(s, wall);
            if frozen {
                s.frozen_at_us = Some(now_us);
            } else if s.frozen_at_us.take().is_some() {
                s.offset_us = now_us.saturating_sub(wall);
            }
        });
    }

    /// Back to the system's time, unfrozen; refused when that is earlier than the clock.
    pub fn real(&self) -> Result<(), Backwards> {
        let wall = wall_us();
        self.with_state(|s| {
            let now_us = now_of(s, wall);
            if wall < now_us {
                return Err(Backwards { now_us, to_us: wall });
            }
            *s = State::default();
            Ok(())
        })
    }
}

fn now_of(s: &State, wall: i64) -> i64 {
    s.frozen_at_us.unwrap_or_else(|| wall.saturating_add(s.offset_us))
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

    #[test]
    fn frozen_stands_still_and_moves_only_when_told() {
        let at = 1_800_000_000_000_000;
        let clock = Clock::starting(0, Some(at));
        assert_eq!(clock.now_us(), at);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.now_us(), at);
        clock.advance(Duration::from_secs(60));
        assert_eq!(clock.now_us(), at + 60_000_000);
        assert_eq!(clock.set(at), Err(Backwards { now_us: at + 60_000_000, to_us: at }));
        clock.set(at + 120_000_000).unwrap();
        assert_eq!(clock.state().now_us, at + 120_000_000);
        assert!(clock.state().frozen);
        // Thawed, it runs on from where it stood, in the future of the wall clock.
        clock.freeze(false);
        let state = clock.state();
        assert!(!state.frozen && state.now_us >= at + 120_000_000);
        assert!(state.offset_us > 0);
        // The wall clock is behind: going back to it would be backwards.
        assert!(clock.real().is_err());
    }

    #[test]
    fn real_is_allowed_from_the_past() {
        let clock = Clock::with_offset(-3600);
        assert!(clock.state().offset_us <= -3_599_000_000);
        clock.real().unwrap();
        let state = clock.state();
        assert!(!state.frozen && state.offset_us.abs() < 1_000_000);
        clock.freeze(true);
        let frozen = clock.now_us();
        clock.freeze(true);
        assert_eq!(clock.now_us(), frozen);
    }
}
