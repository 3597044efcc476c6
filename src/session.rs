//! The operator console's sessions, in memory: a restart logs everyone out,
//! which is what a single-binary server wants (nothing secret is written to
//! disk, and the operator token is all it takes to log in again).
//!
//! They sit below both the HTTP layer and the application state: the state holds
//! them, and the dispatcher checks them for every
//! [`Access::Console`](crate::http::Access::Console) route before the handler runs.
//! A session expires by the server's clock, so that a suite that moves time sees its
//! console sessions expire as they would.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::clock::Clock;
use warp::http::{HeaderMap, header};

/// The cookie's name.
pub const COOKIE: &str = "taler_lite_console";

/// How long a session lives after login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

// A bound on what unauthenticated clients cannot grow (sessions need the token).
const MAX_SESSIONS: usize = 1000;

#[derive(Clone)]
struct Session {
    /// On the server's clock, in microseconds.
    expires_us: i64,
    csrf: String,
}

/// Every live console session.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    clock: Clock,
}

fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(crate::base32::encode(&bytes))
}

impl Sessions {
    /// No sessions yet; they expire by `clock`.
    pub fn new(clock: Clock) -> Sessions {
        Sessions { map: Mutex::default(), clock }
    }

    /// A new session: its id (the cookie's value), or `None` without randomness.
    pub fn create(&self) -> Option<String> {
        let id = random_token()?;
        let csrf = random_token()?;
        let now_us = self.clock.now_us();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires_us > now_us);
        if map.len() >= MAX_SESSIONS {
            // The oldest session goes first.
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires_us).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        let lifetime_us = i64::try_from(LIFETIME.as_micros()).unwrap_or(i64::MAX);
        map.insert(id.clone(), Session { expires_us: now_us.saturating_add(lifetime_us), csrf });
        Some(id)
    }

    /// The CSRF token of the live session the request's cookie names.
    pub fn csrf_of(&self, headers: &HeaderMap) -> Option<String> {
        let id = session_cookie(headers)?;
        let now_us = self.clock.now_us();
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&id).filter(|s| s.expires_us > now_us).map(|s| s.csrf.clone())
    }

    /// Whether the request carries a live session.
    pub fn is_valid(&self, headers: &HeaderMap) -> bool {
        self.csrf_of(headers).is_some()
    }

    /// Whether `given` is the CSRF token of the request's session, compared in constant time.
    pub fn check_csrf(&self, headers: &HeaderMap, given: &str) -> bool {
        match self.csrf_of(headers) {
            Some(csrf) => bool::from(csrf.as_bytes().ct_eq(given.as_bytes())),
            None => false,
        }
    }

    /// Ends the request's session.
    pub fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
    }
}

/// The value of the console's cookie, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn a_session_is_its_cookie_and_its_csrf_token() {
        let sessions = Sessions::new(Clock::system());
        let id = sessions.create().unwrap();
        let h = with_cookie(&format!("other=1; {COOKIE}={id}; x=y"));
        assert!(sessions.is_valid(&h));
        let csrf = sessions.csrf_of(&h).unwrap();
        assert!(sessions.check_csrf(&h, &csrf));
        assert!(!sessions.check_csrf(&h, ""));
        assert!(!sessions.check_csrf(&h, &id), "the session id is not the CSRF token");
        // Another session's token does not do.
        let other = sessions.create().unwrap();
        let other_csrf = sessions.csrf_of(&with_cookie(&format!("{COOKIE}={other}"))).unwrap();
        assert!(!sessions.check_csrf(&h, &other_csrf));
        sessions.remove(&h);
        assert!(!sessions.is_valid(&h));
        assert!(!sessions.is_valid(&with_cookie(&format!("{COOKIE}=guess"))));
        assert!(!sessions.is_valid(&HeaderMap::new()));
    }

    #[test]
    fn a_session_expires_by_the_servers_clock() {
        let clock = Clock::system();
        let sessions = Sessions::new(clock.clone());
        let h = with_cookie(&format!("{COOKIE}={}", sessions.create().unwrap()));
        clock.advance(LIFETIME - Duration::from_secs(60));
        assert!(sessions.is_valid(&h));
        clock.advance(Duration::from_secs(61));
        assert!(!sessions.is_valid(&h));
    }
}
