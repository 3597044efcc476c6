//! Faults on demand (`POST /private/faults`, development servers only): rules that make
//! the next requests of one method and route pattern fail with a 5xx, or lose their
//! connection, so that a client's retries can be tested against this server.
//!
//! The dispatcher asks [`Faults::fire`] once a request's route is known and before
//! anything else (token, body, handler) runs: a faulted request changes nothing stored.
//! Rules apply in the order they were made; each counts down and is gone at zero.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use warp::http::{Method, StatusCode};

/// One rule, as made and as listed (`times` is what is left).
#[derive(Clone, Debug, Serialize)]
pub struct FaultRule {
    pub id: u64,
    #[serde(serialize_with = "method_text")]
    pub method: Method,
    pub route: &'static str,
    pub times: u32,
    #[serde(serialize_with = "status_number")]
    pub status: StatusCode,
    pub delay_ms: u64,
    pub reset: bool,
}

fn method_text<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

fn status_number<S: serde::Serializer>(c: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(c.as_u16())
}

/// What a rule does to the request it fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    pub id: u64,
    pub delay: Duration,
    /// `None`: close the connection without an answer.
    pub status: Option<StatusCode>,
}

/// The rules of one server.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    /// Whether any rule exists: the dispatcher's check costs one load when none does.
    armed: AtomicBool,
    last_id: AtomicU64,
}

impl Faults {
    fn rules(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a rule (its `id` is assigned here) after those made before; returns the id.
    pub fn add(&self, mut rule: FaultRule) -> u64 {
        rule.id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        let id = rule.id;
        let mut rules = self.rules();
        rules.push(rule);
        self.armed.store(true, Ordering::Release);
        id
    }

    /// The rules left, in the order they apply.
    pub fn list(&self) -> Vec<FaultRule> {
        self.rules().clone()
    }

    /// Removes every rule.
    pub fn clear(&self) {
        let mut rules = self.rules();
        rules.clear();
        self.armed.store(false, Ordering::Release);
    }

    /// The first rule for this method and route pattern, counted down (and removed at
    /// zero); `HEAD` is faulted by the rules of `GET`, as it is answered by its route.
    pub fn fire(&self, method: &Method, route: &str) -> Option<Fired> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let method = if method == Method::HEAD { &Method::GET } else { method };
        let mut rules = self.rules();
        let i = rules.iter().position(|r| r.method == *method && r.route == route)?;
        let rule = &mut rules[i];
        rule.times = rule.times.saturating_sub(1);
        let fired = Fired {
            id: rule.id,
            delay: Duration::from_millis(rule.delay_ms),
            status: (!rule.reset).then_some(rule.status),
        };
        if rule.times == 0 {
            rules.remove(i);
        }
        self.armed.store(!rules.is_empty(), Ordering::Release);
        Some(fired)
    }
}

/// Marks a response that must not be sent: the connection is closed instead (a fault
/// with `"reset": true`). The server's connection loop acts on it.
#[derive(Clone, Copy, Debug)]
pub struct ResetConnection;

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(route: &'static str, times: u32, reset: bool) -> FaultRule {
        FaultRule {
            id: 0,
            method: Method::POST,
            route,
            times,
            status: StatusCode::SERVICE_UNAVAILABLE,
            delay_ms: 0,
            reset,
        }
    }

    #[test]
    fn rules_count_down_in_the_order_made() {
        let faults = Faults::default();
        assert_eq!(faults.fire(&Method::POST, "/a"), None);
        let first = faults.add(rule("/a", 2, false));
        let second = faults.add(rule("/a", 1, true));
        faults.add(rule("/b", 1, false));
        assert_eq!(faults.fire(&Method::GET, "/a"), None, "another method");
        let fired: Vec<_> = (0..4).map(|_| faults.fire(&Method::POST, "/a")).collect();
        assert_eq!(fired[0].map(|f| (f.id, f.status)), Some((first, Some(StatusCode::SERVICE_UNAVAILABLE))));
        assert_eq!(fired[1].map(|f| f.id), Some(first));
        assert_eq!(fired[2].map(|f| (f.id, f.status)), Some((second, None)));
        assert_eq!(fired[3], None);
        assert_eq!(faults.list().len(), 1);
        faults.clear();
        assert_eq!(faults.fire(&Method::POST, "/b"), None);
    }
}
