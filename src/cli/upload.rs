//! The HTTP/1.1 client behind `client kyc-bulk`: one POST of a file that really
//! does `Expect: 100-continue`.
//!
//! General HTTP libraries (reqwest included) send the body right after the
//! head. The exchange refuses most bad uploads from the head alone (unknown third
//! party, known body, too large) and closes; a client still pushing megabytes
//! then gets a reset instead of the answer. This client sends the head, waits up
//! to 1 s (as curl does) for `100 Continue` or a final answer, sends the body only
//! when asked (or when the server stays silent), and keeps reading while it
//! writes, so an answer given half-way through is read rather than lost.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::{Instant, timeout, timeout_at};

use super::progress::Progress;

/// How long the server has to ask for the body before it is sent anyway: curl's
/// default, so a server that ignores `Expect` costs the same as with curl.
const CONTINUE_WAIT: Duration = Duration::from_secs(1);
/// Longest silence on the connection (connect, a write, the answer) before the
/// attempt counts as a connection failure.
const IDLE: Duration = Duration::from_secs(60);
/// After a failed write the server's answer is usually already on its way (it
/// answered early, then closed): worth a short wait, not a long one.
const AFTER_WRITE_ERROR: Duration = Duration::from_secs(5);
/// Answers are ErrorDetail objects of a few hundred bytes; more is not shown anyway.
const MAX_ANSWER_BODY: usize = 1 << 20;
const MAX_HEAD: usize = 64 << 10;
const CHUNK: usize = 256 << 10;

/// Where a plain `http://` base URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address to connect to (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written in the URL, for the `Host` header.
    pub authority: String,
    /// The base URL's path, starting and ending with `/`.
    pub path_prefix: String,
}

impl Target {
    /// Parses `http://HOST[:PORT][/PREFIX/]`; the port defaults to 80.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .map(|_| &url[7..])
            .ok_or_else(|| format!("'{url}' is not an http:// URL"))?;
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!("'{url}': user names and passwords in the URL are not supported"));
        }
        if path.contains(['?', '#']) {
            return Err(format!("'{url}': a base URL has no query or fragment"));
        }
        // The path goes into the request line verbatim: nothing that could end it early.
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("'{url}': the path must be percent-encoded ASCII"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, tail) =
                    v6.split_once(']').ok_or_else(|| format!("'{url}': unclosed '[' in the host"))?;
                match tail {
                    "" => (host, None),
                    _ => (host, Some(tail.strip_prefix(':').ok_or_else(|| format!("'{url}': bad port"))?)),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("'{url}': no host name"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse().map_err(|_| format!("'{url}': bad port '{p}'"))?,
        };
        let path_prefix = if path.ends_with('/') { path.to_owned() } else { format!("{path}/") };
        Ok(Target { host: host.to_owned(), port, authority: authority.to_owned(), path_prefix })
    }
}

/// The final answer to an upload.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// As much of the answer's body as arrived (at most 1 MiB).
    pub body: Vec<u8>,
}

/// Why an attempt got no answer.
#[derive(Debug)]
pub enum Failure {
    /// The server could not be reached, or the connection broke before an
    /// answer: worth another attempt.
    Connection(String),
    /// A local problem (the file, a header that cannot be sent): another attempt
    /// would fail the same way.
    Local(String),
}

/// POSTs `size` bytes of `file` to `path` (below the target's prefix), with
/// `headers` besides the ones this client sets itself.
pub async fn post_file(
    target: &Target,
    path: &str,
    headers: &[(&str, String)],
    file: &Path,
    size: u64,
) -> Result<Answer, Failure> {
    let head = request_head(target, path, headers, size)?;
    let connection = |what: &str, e: io::Error| Failure::Connection(format!("{what}: {e}"));
    let stream = timeout(IDLE, TcpStream::connect((target.host.as_str(), target.port)))
        .await
        .map_err(|_| Failure::Connection(format!("cannot connect to {}: timed out", target.authority)))?
        .map_err(|e| connection(&format!("cannot connect to {}", target.authority), e))?;
    let (rd, mut wr) = stream.into_split();
    let mut incoming = Incoming { rd, buf: Vec::new() };
    timeout(IDLE, wr.write_all(head.as_bytes()))
        .await
        .map_err(|_| Failure::Connection("sending the request head: timed out".into()))?
        .map_err(|e| connection("sending the request head", e))?;

    let deadline = Instant::now() + CONTINUE_WAIT;
    let early = loop {
        match timeout_at(deadline, incoming.next_head()).await {
            // Silence: the server may not know `Expect`; send the body, as curl does.
            Err(_) => break None,
            Ok(Err(e)) => return Err(connection("reading the answer", e)),
            Ok(Ok(h)) if h.status == 100 => break None,
            // Other informational answers (102, 103) are not the go-ahead.
            Ok(Ok(h)) if h.status < 200 => continue,
            Ok(Ok(h)) => break Some(h),
        }
    };
    let head = match early {
        Some(head) => head,
        None => send_body(&mut wr, &mut incoming, file, size).await?,
    };
    let body = incoming.read_body(&head).await;
    Ok(Answer { status: head.status, body })
}

fn request_head(
    target: &Target,
    path: &str,
    headers: &[(&str, String)],
    size: u64,
) -> Result<String, Failure> {
    let mut head = format!(
        "POST {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: taler-lite/{}\r\nContent-Length: {size}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n",
        target.path_prefix,
        target.authority,
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        // A line break in a value would start a header (or a request) of its own.
        if value.chars().any(|c| c.is_control()) {
            return Err(Failure::Local(format!("{name}: control characters cannot be sent in a header")));
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Failure::Local(format!("'{path}' cannot be sent as a request path")));
    }
    head.push_str("\r\n");
    Ok(head)
}

/// Streams the file, reading the connection at the same time: an answer that
/// arrives before the last byte ends the upload (the server will not read the
/// rest). Returns the final answer's head.
async fn send_body(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    incoming: &mut Incoming,
    file: &Path,
    size: u64,
) -> Result<Head, Failure> {
    let local = |e: io::Error| Failure::Local(format!("{}: {e}", file.display()));
    let mut file_handle = tokio::fs::File::open(file).await.map_err(local)?;
    let mut progress = Progress::new("upload", size);
    let mut chunk = vec![0u8; CHUNK];
    let mut left = size;
    let written: io::Result<()> = 'body: loop {
        if left == 0 {
            break Ok(());
        }
        let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file_handle.read(&mut chunk[..want]).await.map_err(local)?;
        if n == 0 {
            // Content-Length is already sent: a shorter body would leave the server waiting.
            return Err(Failure::Local(format!("{}: the file shrank during the upload", file.display())));
        }
        left -= n as u64;
        let mut pos = 0;
        while pos < n {
            // Both futures are cancel-safe: a `write` that loses the race wrote
            // nothing, and `next_head` keeps what it read in its buffer.
            tokio::select! {
                w = timeout(IDLE, wr.write(&chunk[pos..n])) => match w {
                    Ok(Ok(0)) => break 'body Err(io::ErrorKind::WriteZero.into()),
                    Ok(Ok(k)) => {
                        pos += k;
                        progress.add(k as u64);
                    }
                    Ok(Err(e)) => break 'body Err(e),
                    Err(_) => break 'body Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
                },
                h = incoming.next_head() => match h {
                    Ok(h) if h.status < 200 => {}
                    Ok(h) => {
                        progress.finish();
                        return Ok(h);
                    }
                    Err(e) => break 'body Err(e),
                },
            }
        }
    };
    progress.finish();
    // A failed write (EPIPE, reset) mostly means the server answered and
    // closed: its answer may be in the receive buffer still.
    let wait = if written.is_ok() { IDLE } else { AFTER_WRITE_ERROR };
    loop {
        let problem = match timeout(wait, incoming.next_head()).await {
            Ok(Ok(h)) if h.status < 200 => continue,
            Ok(Ok(h)) => return Ok(h),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", wait.as_secs()),
        };
        return Err(Failure::Connection(match written {
            Err(e) => format!("sending the body: {e} ({problem})"),
            Ok(()) => format!("after the body: {problem}"),
        }));
    }
}

/// The head of an answer: what it takes to find the end of its body.
#[derive(Debug)]
struct Head {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
}

/// The read side of the connection, with the bytes read but not used yet.
struct Incoming {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
}

impl Incoming {
    /// The next answer head. Cancel-safe: what was read stays in `buf`, and a
    /// head leaves it only once complete.
    async fn next_head(&mut self) -> io::Result<Head> {
        loop {
            if let Some((head, len)) = parse_head(&self.buf)? {
                self.buf.drain(..len);
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "answer head too long"));
            }
            if self.read_more().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection without an answer",
                ));
            }
        }
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        self.buf.reserve(16 << 10);
        self.rd.read_buf(&mut self.buf).await
    }

    /// The answer's body, as much of it as arrives: the status is what matters,
    /// the body only explains it, so a cut-off body is shown as it is.
    async fn read_body(&mut self, head: &Head) -> Vec<u8> {
        if head.status == 204 || head.status == 304 {
            return Vec::new();
        }
        let _ = timeout(IDLE, async {
            while !self.body_complete(head) && self.buf.len() < MAX_ANSWER_BODY {
                match self.read_more().await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        let mut body = if head.chunked { dechunk(&self.buf).unwrap_or_default() } else { self.buf.clone() };
        if let Some(len) = head.content_length {
            body.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        }
        body.truncate(MAX_ANSWER_BODY);
        body
    }

    fn body_complete(&self, head: &Head) -> bool {
        match head.content_length {
            _ if head.chunked => dechunk(&self.buf).is_some(),
            Some(len) => self.buf.len() as u64 >= len,
            // Delimited by the close (we sent `Connection: close`).
            None => false,
        }
    }
}

fn parse_head(buf: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unreadable answer: {e}"))),
    };
    let mut head = Head { status: response.code.unwrap_or(0), content_length: None, chunked: false };
    for h in response.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.trim().parse().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some((head, len)))
}

/// Decodes a chunked body once its last chunk has arrived; `None` before.
fn dechunk(mut buf: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (start, size) = match httparse::parse_chunk_size(buf).ok()? {
            httparse::Status::Complete(found) => found,
            httparse::Status::Partial => return None,
        };
        if size == 0 {
            return Some(out);
        }
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        out.extend_from_slice(buf.get(start..end)?);
        buf = buf.get(end.checked_add(2)?..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let t = Target::parse("http://127.0.0.1:8081/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path_prefix.as_str()), ("127.0.0.1", 8081, "/"));
        let t = Target::parse("HTTP://example.com/taler/exchange").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path_prefix.as_str()),
            ("example.com", 80, "/taler/exchange/")
        );
        let t = Target::parse("http://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.authority.as_str()), ("::1", 9000, "[::1]:9000"));
        for bad in [
            "https://example.com/",
            "http://:80/",
            "http://a@b/",
            "http://h:x/",
            "http://h/a b",
            "http://h/?q",
            "http://h?q",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(dechunk(b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n").as_deref(), Some(&b"hello!"[..]));
        assert_eq!(dechunk(b"5\r\nhel"), None);
        assert_eq!(dechunk(b"5\r\nhello\r\n"), None);
    }
}
