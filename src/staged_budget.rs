//! The budget of bytes staged for bodies whose signature cannot be checked before they
//! arrive (an upload without the body's hash): a stranger who knows a third party's key
//! could otherwise fill the disk with bodies that are refused (403) only once they are whole.
//! An upload reserves its declared `Content-Length` before a byte is read, and gives it back
//! when it ends, whichever way; one that would pass `--max-staged` in all, or
//! [`MAX_UNVERIFIED_PER_PARTY`] uploads at once for one third party, is refused at once
//! (503, `Retry-After`). Uploads that send the hash are checked first and need no budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Unverified uploads one third party may have under way at once.
pub const MAX_UNVERIFIED_PER_PARTY: usize = 4;

/// What is reserved now.
pub struct StagedBudget {
    max_bytes: u64,
    state: Mutex<Reserved>,
}

#[derive(Default)]
struct Reserved {
    bytes: u64,
    per_party: HashMap<[u8; 32], usize>,
}

/// Why a reservation was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The bytes would pass the cap: how many are reserved, and the cap.
    Bytes { reserved: u64, max: u64 },
    /// The third party has its maximum of unverified uploads under way.
    Party { max: usize },
}

/// A reservation, given back when dropped.
pub struct Reservation {
    budget: Arc<StagedBudget>,
    bytes: u64,
    party: [u8; 32],
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut state = self.budget.state.lock().unwrap_or_else(|e| e.into_inner());
        state.bytes = state.bytes.saturating_sub(self.bytes);
        if let Some(n) = state.per_party.get_mut(&self.party) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.per_party.remove(&self.party);
            }
        }
    }
}

impl StagedBudget {
    pub fn new(max_bytes: u64) -> Arc<StagedBudget> {
        Arc::new(StagedBudget { max_bytes, state: Mutex::default() })
    }

    /// Reserves `bytes` for an unverified upload of the third party `party`.
    pub fn reserve(self: &Arc<Self>, party: [u8; 32], bytes: u64) -> Result<Reservation, Refused> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.per_party.get(&party).copied().unwrap_or(0) >= MAX_UNVERIFIED_PER_PARTY {
            return Err(Refused::Party { max: MAX_UNVERIFIED_PER_PARTY });
        }
        if state.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(Refused::Bytes { reserved: state.bytes, max: self.max_bytes });
        }
        state.bytes += bytes;
        *state.per_party.entry(party).or_default() += 1;
        Ok(Reservation { budget: self.clone(), bytes, party })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_uploads_per_party_are_capped_and_given_back() {
        let budget = StagedBudget::new(100);
        let a = budget.reserve([1; 32], 60).unwrap();
        assert_eq!(budget.reserve([2; 32], 41).err(), Some(Refused::Bytes { reserved: 60, max: 100 }));
        drop(a);
        let held: Vec<_> =
            (0..MAX_UNVERIFIED_PER_PARTY).map(|_| budget.reserve([1; 32], 1).unwrap()).collect();
        assert_eq!(budget.reserve([1; 32], 1).err(), Some(Refused::Party { max: MAX_UNVERIFIED_PER_PARTY }));
        assert!(budget.reserve([2; 32], 1).is_ok());
        drop(held);
        assert!(budget.reserve([1; 32], 90).is_ok());
    }
}
