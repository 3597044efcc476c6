//! HTTP/1.1 by hand over a socket, for what a client library hides: requests sent in part or
//! byte by byte, when exactly the server answers or closes, clients that go away.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::Http;

impl Http {
    /// The server's `host:port`, to connect sockets to.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").trim_end_matches('/').to_owned()
    }
}

/// The length of the first answer in `got` (its head and its `Content-Length` body), once
/// the whole of it is there.
pub fn answer_len(got: &[u8]) -> Option<usize> {
    let end = got.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let whole = end + 4 + length;
    (got.len() >= whole).then_some(whole)
}

/// Reads one answer, its head and its `Content-Length` body: `Ok` with the whole of it, or
/// `Err` with what came before the connection ended (or failed) or `limit` passed.
pub async fn read_answer(s: &mut (impl AsyncRead + Unpin), limit: Duration) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(whole) = answer_len(&got) {
            return Ok(String::from_utf8_lossy(&got[..whole]).into_owned());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return Err(String::from_utf8_lossy(&got).into_owned()),
        }
    }
}

/// [`read_answer`] from a blocking socket (its own read timeout is the limit).
pub fn read_answer_blocking(s: &mut impl std::io::Read) -> Result<String, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(whole) = answer_len(&got) {
            return Ok(String::from_utf8_lossy(&got[..whole]).into_owned());
        }
        match s.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            end => return Err(format!("{end:?} after {:?}", String::from_utf8_lossy(&got))),
        }
    }
}

/// An answer's status and body.
pub fn status_and_body(answer: &str) -> Option<(u16, &str)> {
    let status = answer.get(9..12)?.parse().ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    Some((status, body))
}

/// Reads until the server closes the connection (or `limit` passes): what was read, and when
/// the connection ended (`None`: still open).
pub async fn read_until_closed(
    s: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> (Vec<u8>, Option<Instant>) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}
