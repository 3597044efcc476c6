//! Request plumbing shared by every API.
//!
//! warp answers a rejected filter by trying the next `.or()` branch, and its
//! body filters reject (413, 411, bad JSON) in ways that then surface as the
//! wrong error from some other branch. So a route here matches its *path* only,
//! and hands the handler a [`Request`] (method, headers, query, unread body):
//! the handler checks the method, reads the body with our own limits and
//! answers every failure itself as an [`ApiError`]. warp's own rejections can
//! then only mean "no such path", and [`recover`] turns whatever is left into
//! `ErrorDetail` JSON too.
//!
//! The body is a stream that nobody has polled: hyper sends `100 Continue`
//! only when it is first polled, so a handler that answers before reading never
//! makes a client with `Expect: 100-continue` send its body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, header};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

use crate::error::ApiError;
use crate::server::{AppState, with_state};

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
}

/// Extracts a [`Request`] whose body may pause at most `idle`; never rejects
/// once the path has matched.
pub fn request(idle: Duration) -> impl Filter<Extract = (Request,), Error = Rejection> + Clone {
    warp::method().and(warp::header::headers_cloned()).and(raw_query()).and(warp::body::stream()).map(
        move |method, headers, query, body| Request { method, headers, query, body: boxed_body(body), idle },
    )
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

/// Routes `path` to `handler`, which gets the server state and the unread
/// [`Request`] and answers every failure itself.
pub fn route<P, H, Fut>(path: P, state: &AppState, handler: H) -> BoxedFilter<(Response,)>
where
    P: Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static,
    H: Fn(AppState, Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    path.and(with_state(state))
        .and(request(state.settings.request_timeout))
        .then(move |state, req| handler(state, req).map(respond))
        .boxed()
}

/// [`route`] for a path with one parameter (a key, a hash), handed over as
/// text so that the handler can name it when it is malformed.
pub fn route_with<P, H, Fut>(path: P, state: &AppState, handler: H) -> BoxedFilter<(Response,)>
where
    P: Filter<Extract = (String,), Error = Rejection> + Clone + Send + Sync + 'static,
    H: Fn(AppState, String, Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    path.and(with_state(state))
        .and(request(state.settings.request_timeout))
        .then(move |param, state, req| handler(state, param, req).map(respond))
        .boxed()
}

/// Turns a handler's result into a response.
pub fn respond<R: Reply>(result: Result<R, ApiError>) -> Response {
    match result {
        Ok(reply) => reply.into_response(),
        Err(e) => e.into_response(),
    }
}

/// 204, empty body.
pub fn no_content() -> Response {
    warp::reply::with_status(warp::reply(), warp::http::StatusCode::NO_CONTENT).into_response()
}

impl Request {
    /// Accepts only `allowed`; otherwise 405 with `Allow: <allow>`.
    pub fn allow(&self, allowed: &Method, allow: &'static str) -> Result<(), ApiError> {
        if self.method == allowed {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed { method: self.method.to_string(), allow })
        }
    }

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
    pub async fn next_chunk(&mut self) -> Result<Option<Result<Bytes, warp::Error>>, ApiError> {
        let idle = self.idle;
        tokio::time::timeout(idle, self.body.next()).await.map_err(|_| ApiError::RequestTimeout { idle })
    }

    /// Reads and decodes a JSON object body (see [`decode_json`]).
    pub async fn json<T: DeserializeOwned>(&mut self, limit: u64) -> Result<T, ApiError> {
        let bytes = self.bytes(limit).await?;
        decode_json(&bytes)
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

    /// Checks `Authorization: Bearer <token>` in constant time.
    pub fn authorize(&self, token: &str) -> Result<(), ApiError> {
        let given = self
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .unwrap_or("");
        if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
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

/// Most rows one page returns.
pub const MAX_PAGE: i64 = 1000;

/// A resolved page.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Rows to return, positive.
    pub limit: i64,
    pub descending: bool,
    /// Exclusive row id bound.
    pub start: i64,
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

impl Page {
    /// The SQL condition on `column` against the bound parameter `param`.
    pub fn condition(&self, column: &str, param: &str) -> String {
        if self.descending { format!("{column} < {param}") } else { format!("{column} > {param}") }
    }

    pub fn order(&self) -> &'static str {
        if self.descending { "DESC" } else { "ASC" }
    }
}

/// Decodes a JSON object into `T`: not JSON or not an object -> 22; a missing
/// top-level field -> 22 naming it; a field of the wrong type or value -> 26
/// naming its path.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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

/// Answers paths no route matched: 404, code 21, naming the path.
pub fn endpoint_unknown() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::full().and_then(|path: warp::path::FullPath| async move {
        Ok::<_, Rejection>(ApiError::EndpointUnknown { path: path.as_str().to_owned() }.into_response())
    })
}

/// Answers overlong URIs before any route looks at them.
pub fn uri_too_long() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::full().and(raw_query()).and_then(|path: warp::path::FullPath, query: String| async move {
        if path.as_str().len() + query.len() > MAX_URI {
            Ok(ApiError::UriTooLong { limit: MAX_URI }.into_response())
        } else {
            Err(warp::reject::not_found())
        }
    })
}

/// Turns whatever warp itself rejected with into `ErrorDetail` JSON. Routes use
/// no method, header or body filters and [`endpoint_unknown`] answers every
/// unmatched path, so only a rejection from warp's own plumbing (e.g. a body
/// taken twice) can reach this; it is answered without inventing details.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::EndpointUnknown { path: "(unknown)".into() }
    } else {
        ApiError::ParameterMalformed { name: "request".into(), detail: format!("{rejection:?}") }
    };
    Ok(error.into_response())
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
}
