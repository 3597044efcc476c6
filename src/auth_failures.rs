//! The budget of failed authentications (README "Operator access"): a request whose
//! credentials are wrong (a bearer token on an operator or Wire Gateway route, the token
//! of the console's login form) is answered only when the budget has room for it, so
//! that guesses cannot scale with connections. The right credentials never wait here.
//!
//! The budget is a schedule of release times shared by every failing request: at most
//! [`GLOBAL_PER_S`] answers a second overall and [`PER_ADDRESS_PER_S`] for one client
//! address, spread evenly. A failing request takes the first free slot of the schedule
//! that its address may use and is held until then (its connection with it: a client
//! that waits for its answer sends nothing else on that connection). One address that
//! floods takes at most its share of the slots; the others stay free for everyone else.
//! The schedule holds at most `capacity` requests: one more is answered at once with 503
//! and `Connection: close` (see `Held::Full`), which the server's connection cap keeps
//! from happening over TCP (the capacity is the cap).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Failed authentications answered per second, whoever sends them.
pub const GLOBAL_PER_S: u32 = 10;

/// Failed authentications answered per second to one client address (a Unix socket's
/// clients are one address).
pub const PER_ADDRESS_PER_S: u32 = 5;

/// Where a request came from: its peer's IP address, `None` on a Unix socket. The accept
/// loop puts it in every request's extensions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Peer(pub Option<IpAddr>);

/// The schedule of answers to failed authentications.
pub struct AuthFailures {
    schedule: Mutex<Schedule>,
    capacity: usize,
}

struct Schedule {
    /// Slot 0 starts here; slot `n` at `origin + n * slot`.
    origin: Instant,
    slot: Duration,
    /// Slots an address must leave between two of its answers.
    address_spacing: u64,
    /// Slots taken by requests still held.
    taken: BTreeSet<u64>,
    /// The last slot each address took (dropped once it is in the past).
    last_of: HashMap<Peer, u64>,
}

/// What [`AuthFailures::hold`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// The request's turn came: answer it.
    Released,
    /// The schedule is full: answer 503 at once and close the connection.
    Full,
}

/// Frees a slot that was not reached (the client left, the future was dropped).
struct Reservation<'a> {
    failures: &'a AuthFailures,
    slot: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut schedule = self.failures.schedule.lock().unwrap_or_else(|e| e.into_inner());
        schedule.taken.remove(&self.slot);
    }
}

impl AuthFailures {
    /// An empty schedule holding at most `capacity` requests at once.
    pub fn new(capacity: usize) -> Arc<AuthFailures> {
        let slot = Duration::from_secs(1) / GLOBAL_PER_S;
        let address_spacing = u64::from(GLOBAL_PER_S.div_ceil(PER_ADDRESS_PER_S.max(1)));
        Arc::new(AuthFailures {
            schedule: Mutex::new(Schedule {
                origin: Instant::now(),
                slot,
                address_spacing,
                taken: BTreeSet::new(),
                last_of: HashMap::new(),
            }),
            capacity: capacity.max(1),
        })
    }

    /// Holds a request whose credentials were wrong until the budget has room for its
    /// answer; a full schedule holds nothing more.
    pub async fn hold(&self, peer: Peer) -> Held {
        let Some((slot, at)) = self.reserve(peer) else { return Held::Full };
        let reservation = Reservation { failures: self, slot };
        tokio::time::sleep_until(at).await;
        drop(reservation);
        Held::Released
    }

    /// The first free slot, not in the past and at least the address's spacing after its
    /// last one, with the instant it starts.
    fn reserve(&self, peer: Peer) -> Option<(u64, Instant)> {
        let mut s = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
        let now_slot = slot_of(s.origin, s.slot, Instant::now());
        // Released or abandoned slots in the past are nobody's any more.
        let mut kept = s.taken.split_off(&now_slot);
        std::mem::swap(&mut s.taken, &mut kept);
        if s.taken.len() >= self.capacity {
            return None;
        }
        if s.last_of.len() > self.capacity {
            s.last_of.retain(|_, last| *last >= now_slot);
        }
        let spacing = s.address_spacing;
        let mut slot = match s.last_of.get(&peer) {
            Some(last) => now_slot.max(last + spacing),
            None => now_slot,
        };
        while s.taken.contains(&slot) {
            slot += 1;
        }
        s.taken.insert(slot);
        s.last_of.insert(peer, slot);
        let offset = s.slot.saturating_mul(u32::try_from(slot).unwrap_or(u32::MAX));
        Some((slot, s.origin + offset))
    }
}

fn slot_of(origin: Instant, slot: Duration, at: Instant) -> u64 {
    let since = at.saturating_duration_since(origin).as_nanos();
    u64::try_from(since / slot.as_nanos().max(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> Peer {
        Peer(Some(IpAddr::from([10, 0, 0, n])))
    }

    #[test]
    fn one_address_gets_its_share_and_others_the_rest() {
        let failures = AuthFailures::new(1000);
        let start = Instant::now();
        let mut flood: Vec<u64> = (0..20).map(|_| failures.reserve(peer(1)).unwrap().0).collect();
        flood.sort();
        // One address: every other slot.
        assert!(flood.windows(2).all(|w| w[1] - w[0] >= 2), "{flood:?}");
        let other = failures.reserve(peer(2)).unwrap();
        assert!(other.1 <= start + Duration::from_millis(200), "another address waits behind a flood");
        // Each slot has one request at most.
        let third = failures.reserve(peer(3)).unwrap();
        assert_ne!(other.0, third.0);
        assert!(!flood.contains(&other.0) && !flood.contains(&third.0));
    }

    #[test]
    fn a_full_schedule_holds_nothing_more_and_frees_abandoned_slots() {
        let failures = AuthFailures::new(3);
        let held: Vec<_> = (1..=3).map(|n| failures.reserve(peer(n)).unwrap()).collect();
        assert_eq!(failures.reserve(peer(4)), None);
        // A request that leaves gives its slot back.
        drop(Reservation { failures: &failures, slot: held[2].0 });
        assert!(failures.reserve(peer(4)).is_some());
    }

    #[tokio::test]
    async fn hold_releases_at_the_budget_rate() {
        let start = Instant::now();
        let failures = AuthFailures::new(100);
        for _ in 0..6 {
            assert_eq!(failures.hold(peer(1)).await, Held::Released);
        }
        // Six answers to one address at five a second: the sixth a second after the first.
        assert!(start.elapsed() >= Duration::from_millis(1000), "{:?}", start.elapsed());
    }
}
