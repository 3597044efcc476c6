//! Request plumbing shared by every API, and the route table's dispatcher
//! ([`Router`]).
//!
//! warp answers a rejected filter by trying the next `.or()` branch, and its
//! body filters reject (413, 411, bad JSON) in ways that then surface as the
//! wrong error from some other branch. So no route is a warp filter: the one
//! filter extracts the path and a [`Request`] (method, headers, query, unread
//! body), the [`Router`] matches the path against the route table, and the
//! handler reads the body with our own limits and answers every failure
//! itself as an [`ApiError`].
//!
//! The body is a stream that nobody has polled: hyper sends `100 Continue`
//! only when it is first polled, so a handler that answers before reading never
//! makes a client with `Expect: 100-continue` send its body.

mod router;
pub mod stream;

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

pub use router::{
    Access, CONSOLE_CSP, CONSOLE_LOGIN, Draft, JOURNAL_ROUTE, PathParams, Route, RouteDoc, Router, Signer,
    hold_failure, see_other,
};

use crate::auth_failures::Peer;
use crate::error::ApiError;
use crate::store::Page;
use crate::store::page::MAX_PAGE;

/// An unread request body.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// Longest path and query accepted (414 beyond).
pub const MAX_URI: usize = 8192;

/// Everything a handler gets besides path parameters and the server state.
pub struct Request {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: String,
    pub body: BodyStream,
    /// The longest pause allowed in the body (`--request-timeout`).
    pub idle: Duration,
    /// The slowest a body may arrive on average, after its grace period.
    pub rate: BodyRate,
    /// When the request reached the handler, and the body bytes read since.
    pub arrived: tokio::time::Instant,
    pub body_read: u64,
    /// Who sent it (the budget of failed authentications is per address).
    pub peer: Peer,
}

/// The minimum average rate of a body (`--min-body-rate` after `--body-rate-grace`): a
/// client that sends a byte just before each pause limit would otherwise hold its
/// connection for as long as it likes.
#[derive(Clone, Copy, Debug)]
pub struct BodyRate {
    /// Bytes a second; 0 turns the limit off.
    pub bytes_per_s: u64,
    pub grace: Duration,
}

impl BodyRate {
    /// When a body that has `read` bytes after arriving at `arrived` falls below the rate.
    fn deadline(&self, arrived: tokio::time::Instant, read: u64) -> Option<tokio::time::Instant> {
        if self.bytes_per_s == 0 {
            return None;
        }
        let earned = Duration::from_secs_f64(read as f64 / self.bytes_per_s as f64);
        Some(arrived + self.grace.max(earned))
    }
}

/// Extracts a [`Request`] whose body may pause at most `idle` and must arrive at `rate`;
/// never rejects once the path has matched.
pub fn request(
    idle: Duration,
    rate: BodyRate,
) -> impl Filter<Extract = (Request,), Error = Rejection> + Clone {
    warp::method()
        .and(warp::header::headers_cloned())
        .and(raw_query())
        .and(warp::body::stream())
        .and(warp::ext::optional::<Peer>())
        .map(move |method, headers, query, body, peer: Option<Peer>| Request {
            method,
            headers,
            query,
            body: boxed_body(body),
            idle,
            rate,
            arrived: tokio::time::Instant::now(),
            body_read: 0,
            peer: peer.unwrap_or_default(),
        })
}

/// Buffers come as `impl Buf`; copying to `Bytes` is free for hyper's own.
fn boxed_body<B: Buf + Send + 'static>(
    body: impl Stream<Item = Result<B, warp::Error>> + Send + 'static,
) -> BodyStream {
    Box::pin(body.map_ok(|mut buf| {
        let n = buf.remaining();
        buf.copy_to_bytes(n)
    }))
}

/// The raw query string, empty when there is none (warp's own rejects then).
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// 204, empty body.
pub fn no_content() -> Response {
    warp::reply::with_status(warp::reply(), warp::http::StatusCode::NO_CONTENT).into_response()
}

impl Request {
    /// A header as text; non-visible-ASCII values are malformed.
    pub fn header(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        match self.headers.get(name) {
            None => Ok(None),
            Some(v) => {
                v.to_str().map(|s| Some(s.trim())).map_err(|_| ApiError::header(name, "not visible ASCII"))
            }
        }
    }

    /// `Content-Length`, `None` when absent (e.g. chunked).
    pub fn content_length(&self) -> Result<Option<u64>, ApiError> {
        match self.header("Content-Length")? {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| ApiError::header("Content-Length", format!("'{v}' is not a byte count"))),
        }
    }

    /// Reads the whole body, at most `limit` bytes (413 beyond: decided from
    /// `Content-Length` before reading when it is given).
    pub async fn bytes(&mut self, limit: u64) -> Result<Bytes, ApiError> {
        if let Some(n) = self.content_length()?
            && n > limit
        {
            return Err(ApiError::UploadTooLarge { limit });
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            let chunk =
                chunk.map_err(|e| ApiError::JsonInvalid { detail: format!("cannot read the body: {e}") })?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(ApiError::UploadTooLarge { limit });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// The next piece of the body; 408 when the client pauses longer than the
    /// idle limit (hyper's header timeout does not cover bodies, and a client
    /// that stops mid-body would otherwise hold its connection forever).
    /// Past the grace period, a body whose average rate falls below the minimum is cut off
    /// the same way (408), wherever the pauses are.
    pub async fn next_chunk(&mut self) -> Result<Option<Result<Bytes, warp::Error>>, ApiError> {
        let idle = self.idle;
        let idle_until = tokio::time::Instant::now() + idle;
        let too_slow_at = self.rate.deadline(self.arrived, self.body_read);
        let until = too_slow_at.map_or(idle_until, |at| at.min(idle_until));
        match tokio::time::timeout_at(until, self.body.next()).await {
            Ok(chunk) => {
                if let Some(Ok(bytes)) = &chunk {
                    self.body_read += bytes.len() as u64;
                }
                Ok(chunk)
            }
            Err(_) if too_slow_at.is_some_and(|at| at < idle_until) => Err(ApiError::BodyTooSlow {
                read: self.body_read,
                seconds: self.arrived.elapsed().as_secs(),
                minimum: self.rate.bytes_per_s,
            }),
            Err(_) => Err(ApiError::RequestTimeout { idle }),
        }
    }

    /// Reads and decodes a JSON object body (see [`decode_json`]), inflating a compressed one
    /// (see [`Request::inflated_bytes`]).
    pub async fn json<T: DeserializeOwned>(&mut self, limit: u64) -> Result<T, ApiError> {
        let bytes = match BodyEncoding::of(self)? {
            BodyEncoding::Identity => self.bytes(limit).await?,
            encoding => self.inflated_bytes(encoding, limit).await?,
        };
        decode_json(&bytes)
    }

    /// Reads a compressed body and inflates it as it streams in: at most `limit` bytes in and
    /// at most `limit` bytes out. A body that would inflate beyond is refused (413) as soon as
    /// the output passes the limit, so a small body that inflates to gigabytes costs no more
    /// memory and time than a legal one.
    async fn inflated_bytes(&mut self, encoding: BodyEncoding, limit: u64) -> Result<Bytes, ApiError> {
        if let Some(n) = self.content_length()?
            && n > limit
        {
            return Err(ApiError::UploadTooLarge { limit });
        }
        let mut inflater = Inflater::new(encoding, limit);
        let mut read = 0u64;
        while let Some(chunk) = self.next_chunk().await? {
            let chunk =
                chunk.map_err(|e| ApiError::JsonInvalid { detail: format!("cannot read the body: {e}") })?;
            read += chunk.len() as u64;
            if read > limit {
                return Err(ApiError::UploadTooLarge { limit });
            }
            inflater.write(&chunk)?;
        }
        inflater.finish()
    }

    /// Decodes the query string; a bad parameter is named.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(self.query.as_bytes()));
        serde_path_to_error::deserialize(de).map_err(|e| {
            let name = e.path().to_string();
            ApiError::ParameterMalformed {
                name: if name == "." { "query".into() } else { name },
                detail: e.inner().to_string(),
            }
        })
    }
}

/// How a request body is encoded (`Content-Encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyEncoding {
    Identity,
    /// `deflate`: a zlib stream (RFC 1950), as zlib's `compress` makes it; a raw deflate
    /// stream (RFC 1951), which some clients send under this name, is accepted too.
    Deflate,
    Gzip,
}

impl BodyEncoding {
    /// The request's encoding; any other than these is 415 naming the header.
    fn of(req: &Request) -> Result<BodyEncoding, ApiError> {
        let Some(value) = req.header("Content-Encoding")? else { return Ok(BodyEncoding::Identity) };
        match value.to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(BodyEncoding::Identity),
            "deflate" => Ok(BodyEncoding::Deflate),
            "gzip" | "x-gzip" => Ok(BodyEncoding::Gzip),
            _ => Err(ApiError::UnsupportedEncoding { encoding: value.to_owned() }),
        }
    }
}

/// Output of an inflater, refusing to grow beyond its limit.
struct Capped {
    out: Vec<u8>,
    limit: u64,
    exceeded: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if (self.out.len() + data.len()) as u64 > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("the inflated body exceeds the limit"));
        }
        self.out.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A streaming inflater over a [`Capped`] output.
enum Inflater {
    /// Deflate before the first bytes tell zlib from raw deflate.
    Undecided {
        limit: u64,
        head: Vec<u8>,
    },
    Zlib(flate2::write::ZlibDecoder<Capped>),
    Raw(flate2::write::DeflateDecoder<Capped>),
    Gzip(flate2::write::GzDecoder<Capped>),
}

impl Inflater {
    fn new(encoding: BodyEncoding, limit: u64) -> Inflater {
        let out = Capped { out: Vec::new(), limit, exceeded: false };
        match encoding {
            BodyEncoding::Gzip => Inflater::Gzip(flate2::write::GzDecoder::new(out)),
            BodyEncoding::Deflate | BodyEncoding::Identity => Inflater::Undecided { limit, head: Vec::new() },
        }
    }

    /// A zlib header (RFC 1950): method 8, window at most 32 KiB, check bits right.
    fn is_zlib_header(cmf: u8, flg: u8) -> bool {
        cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
    }

    fn write(&mut self, data: &[u8]) -> Result<(), ApiError> {
        use std::io::Write;
        if let Inflater::Undecided { limit, head } = self {
            head.extend_from_slice(data);
            let [cmf, flg, ..] = head[..] else { return Ok(()) };
            let out = Capped { out: Vec::new(), limit: *limit, exceeded: false };
            let head = std::mem::take(head);
            *self = if Inflater::is_zlib_header(cmf, flg) {
                Inflater::Zlib(flate2::write::ZlibDecoder::new(out))
            } else {
                Inflater::Raw(flate2::write::DeflateDecoder::new(out))
            };
            return self.write(&head);
        }
        let written = match self {
            Inflater::Zlib(d) => d.write_all(data),
            Inflater::Raw(d) => d.write_all(data),
            Inflater::Gzip(d) => d.write_all(data),
            Inflater::Undecided { .. } => Ok(()),
        };
        written.map_err(|e| self.error(e))
    }

    fn output(&self) -> Option<&Capped> {
        match self {
            Inflater::Zlib(d) => Some(d.get_ref()),
            Inflater::Raw(d) => Some(d.get_ref()),
            Inflater::Gzip(d) => Some(d.get_ref()),
            Inflater::Undecided { .. } => None,
        }
    }

    fn error(&self, e: std::io::Error) -> ApiError {
        match self.output() {
            Some(out) if out.exceeded => ApiError::UploadTooLarge { limit: out.limit },
            _ => ApiError::CompressionInvalid { detail: e.to_string() },
        }
    }

    fn finish(mut self) -> Result<Bytes, ApiError> {
        let truncated =
            || ApiError::CompressionInvalid { detail: "the compressed stream is truncated".into() };
        let flushed = match &mut self {
            Inflater::Undecided { .. } => return Err(truncated()),
            Inflater::Zlib(d) => d.try_finish(),
            Inflater::Raw(d) => d.try_finish(),
            Inflater::Gzip(d) => d.try_finish(),
        };
        if let Err(e) = flushed {
            return Err(self.error(e));
        }
        let out = match self {
            Inflater::Undecided { .. } => return Err(truncated()),
            Inflater::Zlib(d) => d.finish(),
            Inflater::Raw(d) => d.finish(),
            Inflater::Gzip(d) => d.finish(),
        };
        match out {
            Ok(out) if out.exceeded => Err(ApiError::UploadTooLarge { limit: out.limit }),
            Ok(out) => Ok(Bytes::from(out.out)),
            Err(e) => Err(ApiError::CompressionInvalid { detail: e.to_string() }),
        }
    }
}

/// Taler-style pagination: `limit` rows (negative: newest first), starting
/// after the row id `offset`.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl PageQuery {
    pub fn resolve(self, default_limit: i64) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(default_limit);
        if limit == 0 {
            return Err(ApiError::ParameterMalformed {
                name: "limit".into(),
                detail: "must not be 0".into(),
            });
        }
        let descending = limit < 0;
        Ok(Page {
            limit: limit.saturating_abs().min(MAX_PAGE),
            descending,
            start: self.offset.unwrap_or(if descending { i64::MAX } else { 0 }),
        })
    }
}

/// Decodes a JSON object into `T`: not JSON or not an object -> 22; a missing
/// top-level field -> 22 naming it; a field of the wrong type or value -> 26
/// naming its path.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Fast path, straight from the bytes into `T`: most bodies are well formed,
    // and building a `serde_json::Value` first (a map and a `String` per key and
    // value) was a visible share of a registration's CPU. Any failure (and any
    // body that is not an object: serde would read an array as a struct) takes
    // the path below, which alone words the errors; a body both paths accept
    // decodes to the same value.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && let Ok(decoded) = serde_json::from_slice::<T>(bytes)
    {
        return Ok(decoded);
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::JsonInvalid { detail: format!("the body is not valid JSON: {e}") })?;
    if !value.is_object() {
        return Err(ApiError::JsonInvalid { detail: "the body must be a JSON object".into() });
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        match (path.as_str(), missing_field(&message)) {
            (".", Some(field)) => ApiError::FieldMissing { field },
            (".", None) => ApiError::JsonInvalid { detail: message },
            _ => ApiError::FieldMalformed { field: path, detail: message },
        }
    })
}

/// serde's "missing field `x`" message, as the field's name.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next().unwrap_or(rest).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
        inner: Inner,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        t_s: u64,
    }

    fn code(e: &ApiError) -> u32 {
        e.parts().1.number()
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = decode_json::<Body>(b"{").unwrap_err();
        assert_eq!(code(&e), 22);
        let e = decode_json::<Body>(b"[1]").unwrap_err();
        assert_eq!(code(&e), 22);
        let e = decode_json::<Body>(br#"{"name":"a","inner":{"t_s":1}}"#).unwrap_err();
        assert!(matches!(&e, ApiError::FieldMissing { field } if field == "count"), "{e:?}");
        let e = decode_json::<Body>(br#"{"name":"a","count":"x","inner":{"t_s":1}}"#).unwrap_err();
        assert!(matches!(&e, ApiError::FieldMalformed { field, .. } if field == "count"), "{e:?}");
        assert_eq!(e.parts().1, ErrorCode::GenericParameterMalformed);
        let e = decode_json::<Body>(br#"{"name":"a","count":1,"inner":{}}"#).unwrap_err();
        assert!(matches!(&e, ApiError::FieldMalformed { field, .. } if field == "inner"), "{e:?}");
        assert!(decode_json::<Body>(br#"{"name":"a","count":1,"inner":{"t_s":1},"extra":0}"#).is_ok());
    }

    #[test]
    fn the_fast_path_accepts_what_the_value_path_did_and_nothing_more() {
        // serde reads an array as a struct: still refused.
        let e = decode_json::<Body>(br#"["a", 1, {"t_s": 1}]"#).unwrap_err();
        assert_eq!(code(&e), 22);
        let e = decode_json::<Body>(br#" ["a", 1, {"t_s": 1}]"#).unwrap_err();
        assert_eq!(code(&e), 22);
        // A repeated key: the last one, as a `serde_json::Value` keeps it.
        let body = decode_json::<Body>(br#" {"name":"a","count":1,"name":"b","inner":{"t_s":1}}"#).unwrap();
        assert_eq!(body.name, "b");
        let body =
            decode_json::<Body>(b"\n{\"name\":\"\\u0041\",\"count\":2,\"inner\":{\"t_s\":3}}").unwrap();
        assert_eq!((body.name.as_str(), body.count, body.inner.t_s), ("A", 2, 3));
    }
}
