//! The journal of requests (development servers only): the last requests the server
//! answered, in a ring bounded by a number of entries and by bytes, so that a test can
//! assert what its client sent (`GET /private/requests`) and wait for it without sleeping
//! (a long poll woken by the append).
//!
//! Secrets stay out: `Authorization` and `Cookie` are recorded as `<redacted>`. A body is
//! kept only when it is JSON of at most [`MAX_BODY`] bytes; any other is recorded by its
//! SHA-512 and Content-Type. The body is captured as the handler reads it ([`Capture`]):
//! nothing is read that the handler would not read, an upload is never held in memory,
//! and a body the handler left unread is recorded as such (no hash).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha512};
use tokio::sync::watch;
use warp::http::{HeaderMap, header};

use crate::crypto::HashCode;
use crate::timestamp::Timestamp;

/// Largest JSON body kept as it is.
pub const MAX_BODY: usize = 64 << 10;

/// Default number of entries (`--journal-size`).
pub const DEFAULT_ENTRIES: usize = 1000;

/// Most bytes the entries may hold together.
pub const MAX_BYTES: usize = 16 << 20;

/// What is written for a secret header's value.
pub const REDACTED: &str = "<redacted>";

/// One answered request.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: u64,
    pub time: Timestamp,
    pub method: String,
    pub path: String,
    pub query: String,
    /// The route pattern, `null` for a path no route matched.
    pub route: Option<&'static str>,
    pub status: u16,
    pub duration_ms: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Header names (lower case) to their values, repeated ones joined by `, `.
    #[serde(serialize_with = "as_object")]
    pub headers: Vec<(String, String)>,
    /// A JSON body as it came (checked to be JSON), shown as JSON.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_json")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_sha512: Option<HashCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Set when the handler answered without reading the body to its end.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub body_unread: bool,
}

impl Entry {
    /// What the entry costs in memory, roughly: its text and a fixed part.
    fn weight(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len() + 48).sum();
        256 + self.method.len()
            + self.path.len()
            + self.query.len()
            + headers
            + self.body.as_ref().map_or(0, String::len)
            + self.content_type.as_ref().map_or(0, String::len)
    }
}

fn as_json<S: serde::Serializer>(body: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    let text = body.as_deref().unwrap_or("null");
    let value: serde_json::Value = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(&value, s)
}

fn as_object<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(n, v)| (n, v)))
}

/// The request headers as recorded: every value as text, secrets redacted.
pub fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .keys()
        .map(|name| {
            let text = if name == header::AUTHORIZATION || name == header::COOKIE {
                REDACTED.to_owned()
            } else {
                let values: Vec<_> =
                    headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes())).collect();
                values.join(", ")
            };
            (name.as_str().to_owned(), text)
        })
        .collect()
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Arc<Entry>>,
    bytes: usize,
    last_id: u64,
}

/// The journal of one server.
#[derive(Debug)]
pub struct Journal {
    ring: Mutex<Ring>,
    max_entries: usize,
    max_bytes: usize,
    /// The id of the newest entry, for the long polls waiting on it.
    newest: watch::Sender<u64>,
}

/// Which entries `GET /private/requests` wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub route: Option<String>,
    pub status: Option<u16>,
    pub since_id: Option<u64>,
    pub limit: usize,
}

impl Filter {
    fn admits(&self, e: &Entry) -> bool {
        self.route.as_deref().is_none_or(|r| e.route == Some(r))
            && self.status.is_none_or(|s| e.status == s)
            && self.since_id.is_none_or(|id| e.id > id)
    }
}

impl Journal {
    /// A journal of at most `max_entries` entries and `max_bytes` bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Journal {
        Journal { ring: Mutex::default(), max_entries, max_bytes, newest: watch::Sender::new(0) }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an entry (its id assigned here), dropping the oldest beyond the bounds,
    /// and wakes the long polls.
    pub fn append(&self, mut entry: Entry) {
        let id = {
            let mut ring = self.ring();
            ring.last_id += 1;
            entry.id = ring.last_id;
            let weight = entry.weight();
            ring.bytes += weight;
            ring.entries.push_back(Arc::new(entry));
            while ring.entries.len() > self.max_entries
                || (ring.bytes > self.max_bytes && ring.entries.len() > 1)
            {
                if let Some(old) = ring.entries.pop_front() {
                    ring.bytes -= old.weight();
                }
            }
            ring.last_id
        };
        self.newest.send_replace(id);
    }

    /// The entries `filter` admits, newest first.
    pub fn select(&self, filter: &Filter) -> Vec<Arc<Entry>> {
        let ring = self.ring();
        ring.entries.iter().rev().filter(|e| filter.admits(e)).take(filter.limit).cloned().collect()
    }

    /// [`Journal::select`], waiting up to `timeout` for a first admitted entry.
    pub async fn wait_for(&self, filter: &Filter, timeout: std::time::Duration) -> Vec<Arc<Entry>> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before looking, so that an append between the look and the wait wakes it.
        let mut newest = self.newest.subscribe();
        loop {
            let found = self.select(filter);
            if !found.is_empty() {
                return found;
            }
            match tokio::time::timeout_at(deadline, newest.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return found,
            }
        }
    }

    /// Empties it (ids keep counting up).
    pub fn clear(&self) {
        let mut ring = self.ring();
        ring.entries.clear();
        ring.bytes = 0;
    }

    /// Entries held and the bytes they are counted for.
    pub fn held(&self) -> (usize, usize) {
        let ring = self.ring();
        (ring.entries.len(), ring.bytes)
    }
}

/// A copy of what a handler reads of a body: the first [`MAX_BODY`] bytes, or, beyond
/// them or for a body that is not JSON, the running SHA-512 only.
#[derive(Debug)]
pub struct Capture {
    state: Mutex<Captured>,
}

#[derive(Debug)]
struct Captured {
    read: u64,
    /// The bytes so far, while they may still be a JSON body to keep.
    kept: Option<Vec<u8>>,
    /// Started once the body cannot be kept.
    hasher: Option<Sha512>,
    ended: bool,
}

/// What [`Capture`] saw, for the entry.
#[derive(Debug, Default)]
pub struct CapturedBody {
    pub read: u64,
    pub body: Option<String>,
    pub body_sha512: Option<HashCode>,
    pub unread: bool,
}

impl Capture {
    /// A capture for a request with this Content-Type: only a JSON one is kept.
    pub fn new(json: bool) -> Arc<Capture> {
        let (kept, hasher) = if json { (Some(Vec::new()), None) } else { (None, Some(Sha512::new())) };
        Arc::new(Capture { state: Mutex::new(Captured { read: 0, kept, hasher, ended: false }) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One piece the handler read.
    pub fn chunk(&self, data: &Bytes) {
        let mut s = self.state();
        s.read += data.len() as u64;
        if let Some(kept) = &mut s.kept {
            if kept.len() + data.len() <= MAX_BODY {
                kept.extend_from_slice(data);
                return;
            }
            let mut hasher = Sha512::new();
            hasher.update(&kept[..]);
            s.kept = None;
            s.hasher = Some(hasher);
        }
        if let Some(hasher) = &mut s.hasher {
            hasher.update(data);
        }
    }

    /// The body ended (the handler read all of it).
    pub fn end(&self) {
        self.state().ended = true;
    }

    /// What was captured; `empty_body` says the request announced no body at all.
    pub fn finish(&self, empty_body: bool) -> CapturedBody {
        let mut s = self.state();
        let read = s.read;
        if !s.ended && !empty_body {
            return CapturedBody { read, unread: true, ..CapturedBody::default() };
        }
        if read == 0 {
            return CapturedBody::default();
        }
        if let Some(kept) = s.kept.take() {
            match serde_json::from_slice::<serde::de::IgnoredAny>(&kept)
                .ok()
                .and(String::from_utf8(kept.clone()).ok())
            {
                Some(body) => return CapturedBody { read, body: Some(body), ..CapturedBody::default() },
                None => {
                    let mut hasher = Sha512::new();
                    hasher.update(&kept);
                    s.hasher = Some(hasher);
                }
            }
        }
        let body_sha512 = s.hasher.take().map(|h| HashCode::from_bytes(h.finalize().into()));
        CapturedBody { read, body_sha512, ..CapturedBody::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> Entry {
        Entry {
            id: 0,
            time: Timestamp::from_secs(0),
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            route: Some("/x"),
            status: 200,
            duration_ms: 0.0,
            bytes_in: 0,
            bytes_out: 0,
            headers: Vec::new(),
            body: None,
            body_sha512: None,
            content_type: None,
            body_unread: false,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_within_both_bounds() {
        let journal = Journal::new(3, MAX_BYTES);
        for i in 0..5 {
            journal.append(entry(&format!("/{i}")));
        }
        let all = Filter { limit: 10, ..Filter::default() };
        let ids: Vec<u64> = journal.select(&all).iter().map(|e| e.id).collect();
        assert_eq!(ids, [5, 4, 3]);
        let since = Filter { since_id: Some(4), ..all.clone() };
        assert_eq!(journal.select(&since).len(), 1);
        let small = Journal::new(1000, 2000);
        for i in 0..100 {
            small.append(entry(&"p".repeat(100 + i)));
        }
        let (held, bytes) = small.held();
        assert!(bytes <= 2000 && (1..10).contains(&held), "{held} entries, {bytes} bytes");
    }

    #[test]
    fn a_json_body_is_kept_and_others_are_hashed() {
        let c = Capture::new(true);
        c.chunk(&Bytes::from_static(b"{\"a\":"));
        c.chunk(&Bytes::from_static(b" 1}"));
        c.end();
        let got = c.finish(false);
        assert_eq!(got.body.as_deref(), Some("{\"a\": 1}"));
        let big = vec![b' '; MAX_BODY + 1];
        let c = Capture::new(true);
        c.chunk(&Bytes::from(big.clone()));
        c.end();
        let got = c.finish(false);
        let want: [u8; 64] = Sha512::digest(&big).into();
        assert_eq!((got.body.is_none(), got.body_sha512), (true, Some(HashCode::from_bytes(want))));
        let c = Capture::new(false);
        c.chunk(&Bytes::from_static(b"%PDF"));
        assert!(c.finish(false).unread);
    }
}
