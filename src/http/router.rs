//! The one route table and the dispatcher that serves it.
//!
//! Every route is a row: method, path pattern, access, handler and its
//! documentation ([`RouteDoc`]: a row is made only by [`Draft::answers`]). The
//! table (built in `crate::api`) is what requests are routed by, what the access
//! tests iterate *and* what `taler-lite routes` prints, so a new route is covered
//! by them and documented without editing anything else. Access is decided by the constructor that made the row:
//! [`Route::operator`] is the only way to make an operator route, and the
//! dispatcher checks the bearer token of every operator path before it looks
//! at anything else (method, body, parameters), so an unauthenticated client
//! learns nothing about such a route, and a handler never checks the token
//! itself. [`Route::console`] rows are the operator console's: the
//! dispatcher checks their session cookie (never a bearer token) and sends a
//! browser without one to the login form; console answers carry the console's
//! security headers and never CORS.
//!
//! The HTTP edge that every route shares lives here too (README, "Decisions where the
//! specification is silent"):
//! `405` with `Allow`, `HEAD` on every `GET` route, the CORS answers of public
//! routes (Taler's servers send `Access-Control-Allow-Origin: *` because the
//! wallet runs as a browser extension) and none on operator routes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use subtle::ConstantTimeEq;
use warp::Reply;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use super::{MAX_URI, Request};
use crate::app::AppState;
use crate::error::ApiError;
use crate::faults::ResetConnection;
use crate::journal::{Capture, Entry, recorded_headers};
use crate::metrics::NO_ROUTE;

/// Routes whose requests the journal leaves out: its own, and the probes.
fn unjournaled(pattern: &str) -> bool {
    pattern == JOURNAL_ROUTE || pattern == "/healthz" || pattern == crate::metrics::METRICS_ROUTE
}

/// The journal's own route.
pub const JOURNAL_ROUTE: &str = "/private/requests";

/// What the journal needs of a request, taken before its handler runs.
struct Recording {
    time: crate::timestamp::Timestamp,
    query: String,
    headers: Vec<(String, String)>,
    content_type: Option<String>,
    /// No `Content-Length` (or 0) and no `Transfer-Encoding`: the request has no body.
    no_body: bool,
    capture: Arc<Capture>,
}

impl Recording {
    /// Notes the request and wraps its body so that what the handler reads is captured.
    fn start(state: &AppState, req: &mut Request) -> Recording {
        let content_type =
            req.headers.get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let json = content_type.as_deref().is_some_and(|t| {
            let essence = t.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        });
        let no_body = !req.headers.contains_key(header::TRANSFER_ENCODING)
            && matches!(req.content_length(), Ok(None) | Ok(Some(0)));
        let capture = Capture::new(json);
        let body = std::mem::replace(&mut req.body, Box::pin(futures_util::stream::empty()));
        req.body = Box::pin(CapturedStream { inner: body, capture: capture.clone() });
        Recording {
            time: state.clock.now(),
            query: req.query.clone(),
            headers: recorded_headers(&req.headers),
            content_type,
            no_body,
            capture,
        }
    }

    fn finish(
        self,
        path: &str,
        method: &Method,
        route: Option<&'static str>,
        status: u16,
        duration_ms: f64,
        bytes_out: u64,
    ) -> Entry {
        let captured = self.capture.finish(self.no_body);
        let content_type = if captured.body.is_some() { None } else { self.content_type };
        Entry {
            id: 0,
            time: self.time,
            method: method.to_string(),
            path: path.to_owned(),
            query: self.query,
            route,
            status,
            duration_ms: (duration_ms * 1000.0).round() / 1000.0,
            bytes_in: captured.read,
            bytes_out,
            headers: self.headers,
            body: captured.body,
            body_sha512: captured.body_sha512,
            content_type: if self.no_body { None } else { content_type },
            body_unread: captured.unread,
        }
    }
}

/// A body stream that shows each piece to a [`Capture`] as the handler reads it.
struct CapturedStream {
    inner: super::BodyStream,
    capture: Arc<Capture>,
}

impl futures_util::Stream for CapturedStream {
    type Item = Result<bytes::Bytes, warp::Error>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(data))) => self.capture.chunk(data),
            std::task::Poll::Ready(None) => self.capture.end(),
            std::task::Poll::Ready(Some(Err(_))) | std::task::Poll::Pending => {}
        }
        polled
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; answers carry CORS headers.
    Public,
    /// The operator, with `Authorization: Bearer <token>`; no CORS.
    Operator,
    /// The Taler Wire Gateway, as the exchange calls it: `Bearer <token>` (also with
    /// libeufin's `secret-token:` prefix) or `Basic` with the configured user name and the
    /// token as password, or anyone when the server runs with `--wire-gateway-auth none`; a
    /// 401 says both schemes in `WWW-Authenticate`. No CORS.
    WireGateway,
    /// The operator console, with a session cookie (no bearer token): without
    /// one, a redirect to the login form. No CORS; the console's security headers.
    Console,
    /// The console's login form: no session needed, no CORS, the console's headers.
    ConsoleLogin,
}

/// Where a console request without a session is sent.
pub const CONSOLE_LOGIN: &str = "/console/login";

/// The values of a pattern's `{name}` segments, as sent (so that a handler
/// can name a malformed one).
#[derive(Debug, Default)]
pub struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    /// The segment `{name}`; empty if the pattern has none (a bug the route
    /// table's tests catch).
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;
type Handler = Arc<dyn Fn(AppState, PathParams, Request) -> HandlerFuture + Send + Sync>;

/// Who proves itself on a public route by a signature that the route's operation checks (the
/// dispatcher lets anyone through; the signature is what the route's documentation names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// The exchange's offline master key (auditor management).
    Master,
    /// A registered third party's key (bulk KYC uploads).
    ThirdParty,
    /// The wallet's authorization key (prepared-transfer registrations).
    Authorization,
}

impl Signer {
    /// The words the route listing uses for it.
    pub fn describe(self) -> &'static str {
        match self {
            Signer::Master => "master signature",
            Signer::ThirdParty => "third-party signature",
            Signer::Authorization => "authorization signature",
        }
    }
}

/// What a route's row says about it beyond routing, for the route listing
/// (`taler-lite routes`): the one documentation of the endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteDoc {
    /// On a public route, the signature its caller proves itself by.
    pub signer: Option<Signer>,
    /// The query parameters it reads, as `limit=&offset=`.
    pub query: Option<&'static str>,
    /// The body it takes, in Markdown (its fields in a code span).
    pub body: Option<&'static str>,
    /// What it answers: statuses, with Taler codes in parentheses, in Markdown.
    pub answers: &'static str,
}

/// One row of the route table.
#[derive(Clone)]
pub struct Route {
    method: Method,
    pattern: &'static str,
    access: Access,
    handler: Handler,
    doc: RouteDoc,
}

/// A route being built: it becomes a [`Route`] only by [`Draft::answers`], so no row of the
/// table lacks its documentation (the type of the table's rows requires that step).
#[must_use = "a route is made by `.answers(...)`"]
pub struct Draft {
    method: Method,
    pattern: &'static str,
    access: Access,
    handler: Handler,
    signer: Option<Signer>,
    query: Option<&'static str>,
    body: Option<&'static str>,
}

impl Draft {
    /// The query parameters the route reads, as `limit=&offset=`.
    pub fn query(self, query: &'static str) -> Draft {
        Draft { query: Some(query), ..self }
    }

    /// The body the route takes, in Markdown.
    pub fn body(self, body: &'static str) -> Draft {
        Draft { body: Some(body), ..self }
    }

    /// What the route answers, in Markdown: the last step, which makes the row.
    pub fn answers(self, answers: &'static str) -> Route {
        let Draft { method, pattern, access, handler, signer, query, body } = self;
        Route { method, pattern, access, handler, doc: RouteDoc { signer, query, body, answers } }
    }
}

impl Route {
    /// A route anyone may call.
    pub fn public<H, Fut>(method: Method, pattern: &'static str, handler: H) -> Draft
    where
        H: Fn(AppState, PathParams, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        Route::draft(method, pattern, Access::Public, handler)
    }

    /// A public route whose caller proves itself by a signature that its operation checks:
    /// to the dispatcher, a public route like any other.
    pub fn signed<H, Fut>(method: Method, pattern: &'static str, signer: Signer, handler: H) -> Draft
    where
        H: Fn(AppState, PathParams, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        Draft { signer: Some(signer), ..Route::draft(method, pattern, Access::Public, handler) }
    }

    /// An operator route: the dispatcher checks the token before the handler
    /// (or anything else) runs.
    pub fn operator<H, Fut>(method: Method, pattern: &'static str, handler: H) -> Draft
    where
        H: Fn(AppState, PathParams, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        Route::draft(method, pattern, Access::Operator, handler)
    }

    /// A Wire Gateway route: the dispatcher checks the exchange's credentials (Bearer or
    /// Basic) before the handler runs.
    pub fn wire_gateway<H, Fut>(method: Method, pattern: &'static str, handler: H) -> Draft
    where
        H: Fn(AppState, PathParams, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        Route::draft(method, pattern, Access::WireGateway, handler)
    }

    /// A console page or form: the dispatcher checks the session cookie first
    /// and sends a browser without one to the login form.
    pub fn console<H, Fut>(method: Method, pattern: &'static str, handler: H) -> Draft
    where
        H: Fn(AppState, PathParams, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        Route::draft(method, pattern, Access::Console, handler)
    }

    /// The console's login and logout: reachable without a session.
    pub fn console_login<H, Fut>(method: Method, pattern: &'static str, handler: H) -> Draft
    where
        H: Fn(AppState, PathParams, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        Route::draft(method, pattern, Access::ConsoleLogin, handler)
    }

    fn draft<H, Fut>(method: Method, pattern: &'static str, access: Access, handler: H) -> Draft
    where
        H: Fn(AppState, PathParams, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |state, params, req| Box::pin(handler(state, params, req)));
        Draft { method, pattern, access, handler, signer: None, query: None, body: None }
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path pattern, e.g. `/kyc-bulk/{extern_pub}` (also the `route` label
    /// of metrics and logs: bounded, unlike raw paths).
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }

    pub fn access(&self) -> Access {
        self.access
    }

    /// What the route's row documents of it.
    pub fn doc(&self) -> &RouteDoc {
        &self.doc
    }

    /// Matches `path` against the pattern, segment by segment (what routing does; the access
    /// tests match their paths with it too).
    pub fn matches(&self, path: &str) -> Option<PathParams> {
        let mut params = Vec::new();
        let mut given = path.strip_prefix('/')?.split('/');
        for expected in self.pattern.trim_start_matches('/').split('/') {
            let segment = given.next()?;
            match expected.strip_prefix('{').and_then(|e| e.strip_suffix('}')) {
                Some(name) if !segment.is_empty() => params.push((name, segment.to_owned())),
                Some(_) => return None,
                None if segment == expected => {}
                None => return None,
            }
        }
        given.next().is_none().then_some(PathParams(params))
    }
}

/// The route table, ready to dispatch.
pub struct Router {
    routes: Vec<Route>,
}

/// What a request's path matched: every route of one pattern.
struct Matched<'r> {
    routes: Vec<&'r Route>,
    params: PathParams,
}

impl Matched<'_> {
    fn pattern(&self) -> &'static str {
        self.routes.first().map(|r| r.pattern).unwrap_or("")
    }

    /// The strictest access of the pattern's routes: a table that mixed them on
    /// one path must not open the guarded methods (the table's tests refuse
    /// such a table anyway).
    fn access(&self) -> Access {
        let any = |a: Access| self.routes.iter().any(|r| r.access == a);
        if any(Access::Operator) {
            Access::Operator
        } else if any(Access::WireGateway) {
            Access::WireGateway
        } else if any(Access::Console) {
            Access::Console
        } else if any(Access::ConsoleLogin) {
            Access::ConsoleLogin
        } else {
            Access::Public
        }
    }

    /// The methods for `Allow` and `Access-Control-Allow-Methods`.
    fn allow(&self) -> String {
        let mut methods: Vec<&str> = self.routes.iter().map(|r| r.method.as_str()).collect();
        if self.routes.iter().any(|r| r.method == Method::GET) {
            methods.push("HEAD");
        }
        if self.access() == Access::Public {
            methods.push("OPTIONS");
        }
        methods.join(", ")
    }
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    fn find(&self, path: &str) -> Option<Matched<'_>> {
        let mut found: Option<Matched<'_>> = None;
        for route in &self.routes {
            if let Some(params) = route.matches(path) {
                match &mut found {
                    Some(m) if m.pattern() == route.pattern => m.routes.push(route),
                    // A later pattern that also matches (none should) loses.
                    Some(_) => {}
                    None => found = Some(Matched { routes: vec![route], params }),
                }
            }
        }
        found
    }

    /// Answers one request. Every failure is an ErrorDetail; nothing rejects.
    /// Logs it, records its metrics under its route's pattern and, on a development
    /// server, appends it to the journal of requests.
    pub async fn dispatch(&self, state: AppState, path: &str, mut req: Request) -> Response {
        let started = Instant::now();
        let method = req.method.clone();
        let app = state.clone();
        // The declared length: counting what a handler reads would mean wrapping every body
        // (the journal does, when it is on).
        let bytes_in = req.content_length().ok().flatten().unwrap_or(0);
        let matched = if path.len() + req.query.len() > MAX_URI { None } else { self.find(path) };
        let route = matched.as_ref().map(Matched::pattern);
        let recording = match &app.journal {
            Some(_) if !route.is_some_and(unjournaled) => Some(Recording::start(&app, &mut req)),
            _ => None,
        };
        let (route, response) = match matched {
            _ if path.len() + req.query.len() > MAX_URI => {
                (NO_ROUTE, cors(ApiError::UriTooLong { limit: MAX_URI }.into_response()))
            }
            None => (NO_ROUTE, cors(ApiError::EndpointUnknown { path: path.to_owned() }.into_response())),
            Some(matched) => {
                let pattern = matched.pattern();
                // Held until the answer (or the client's leaving drops this future).
                let upload = state.metrics.upload_started(pattern, &method);
                if let Some(upload) = &upload {
                    let received = upload.received.clone();
                    req.body = Box::pin(req.body.inspect(move |chunk| {
                        if let Ok(bytes) = chunk {
                            received.inc_by(bytes.len() as u64);
                        }
                    }));
                }
                (pattern, self.dispatch_matched(state, matched, req).await)
            }
        };
        let elapsed = started.elapsed();
        if response.extensions().get::<ResetConnection>().is_some() {
            // Closed on purpose without an answer: no status to count, nothing for the journal
            // (which holds answered requests); the fault's own line says what happened.
            return response;
        }
        let (status, duration_ms) = (response.status().as_u16(), elapsed.as_secs_f64() * 1000.0);
        app.metrics.observe(route, &method, status, elapsed);
        // Announced, not counted: a download is still streaming when this line is written.
        let bytes_out = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .or_else(|| hyper::body::Body::size_hint(response.body()).exact())
            .unwrap_or(0);
        // Key-value fields for `--log-format json`; the human format keeps to the message.
        log::info!(
            method = method.as_str(), route, status, duration_ms = (duration_ms * 1000.0).round() / 1000.0,
            bytes_in, bytes_out;
            "{method} {route} {status} {duration_ms:.1}ms"
        );
        if let (Some(recording), Some(journal)) = (recording, &app.journal) {
            let route = (route != NO_ROUTE).then_some(route);
            journal.append(recording.finish(path, &method, route, status, duration_ms, bytes_out));
        }
        response
    }

    async fn dispatch_matched(&self, state: AppState, matched: Matched<'_>, req: Request) -> Response {
        let access = matched.access();
        // Before anything else, so that a faulted request changes nothing and learns nothing.
        if let Some(fired) = state.faults.fire(&req.method, matched.pattern()) {
            if !fired.delay.is_zero() {
                tokio::time::sleep(fired.delay).await;
            }
            let response = match fired.status {
                Some(status) => ApiError::FaultInjected {
                    id: fired.id,
                    status,
                    method: req.method.to_string(),
                    route: matched.pattern(),
                }
                .into_response(),
                None => {
                    log::info!(
                        "fault {} injected for {} {}: connection reset",
                        fired.id,
                        req.method,
                        matched.pattern()
                    );
                    let mut response = Response::new(Default::default());
                    response.extensions_mut().insert(ResetConnection);
                    response
                }
            };
            return match access {
                Access::Public => cors(response),
                Access::Operator | Access::WireGateway => response,
                Access::Console | Access::ConsoleLogin => console_headers(response),
            };
        }
        match access {
            Access::Operator if !authorized(&req, &state.token) => {
                return failed_authentication(&state, &req, ApiError::Unauthorized).await.into_response();
            }
            Access::WireGateway if !gateway_authorized(&req, &state) => {
                return failed_authentication(&state, &req, ApiError::GatewayUnauthorized)
                    .await
                    .into_response();
            }
            Access::Console if !state.sessions.is_valid(&req.headers) => {
                return console_headers(see_other(CONSOLE_LOGIN));
            }
            Access::Public
            | Access::Operator
            | Access::WireGateway
            | Access::Console
            | Access::ConsoleLogin => {}
        }
        // HEAD runs the GET handler; hyper sends its status and headers and
        // leaves the body out.
        let wanted = if req.method == Method::HEAD { Method::GET } else { req.method.clone() };
        let route = matched.routes.iter().find(|r| r.method == wanted);
        let response = match (route, &req.method, access) {
            (Some(route), _, _) => {
                let handler = route.handler.clone();
                match handler(state, matched.params, req).await {
                    Ok(response) => response,
                    Err(e) => e.into_response(),
                }
            }
            // `Allow` is built only for the answers that carry it, not on every request.
            (None, &Method::OPTIONS, Access::Public) => preflight(&matched.allow()),
            (None, _, _) => {
                ApiError::MethodNotAllowed { method: req.method.to_string(), allow: matched.allow() }
                    .into_response()
            }
        };
        match access {
            Access::Public => cors(response),
            Access::Operator | Access::WireGateway => response,
            Access::Console | Access::ConsoleLogin => console_headers(response),
        }
    }
}

/// The answer to wrong credentials, given when the budget of failed authentications has
/// room for it ([`crate::auth_failures`]). A request without `Authorization` guessed
/// nothing and is answered at once.
fn failed_authentication(
    state: &AppState,
    req: &Request,
    refusal: ApiError,
) -> impl Future<Output = ApiError> + Send + 'static {
    let (state, peer, guessed) = (state.clone(), req.peer, req.headers.contains_key(header::AUTHORIZATION));
    async move { if guessed { hold_failure(&state, peer, refusal).await } else { refusal } }
}

/// Holds a request whose credentials were wrong until the budget of failed
/// authentications has room for `refusal`; a full queue answers 503 at once.
pub async fn hold_failure(state: &AppState, peer: crate::auth_failures::Peer, refusal: ApiError) -> ApiError {
    use crate::auth_failures::Held;
    match state.auth_failures.hold(peer).await {
        Held::Released => refusal,
        Held::Full => ApiError::Busy {
            what: "too many requests with wrong credentials are waiting for their answer".into(),
            retry_after_s: 1,
            close: true,
        },
    }
}

/// `Authorization: Bearer <token>`, the scheme in any case (RFC 9110),
/// compared in constant time.
fn authorized(req: &Request, token: &str) -> bool {
    let given = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

/// The exchange's credentials for the Wire Gateway (`WIRE_GATEWAY_AUTH_METHOD` `BEARER` or
/// `BASIC`), compared in constant time; anything goes with `--wire-gateway-auth none`.
fn gateway_authorized(req: &Request, state: &AppState) -> bool {
    if state.settings.wire_gateway_auth == crate::config::GatewayAuth::None {
        return true;
    }
    // The token with or without libeufin's `secret-token:` prefix (the generated one has it).
    let core = |t: &[u8]| -> Vec<u8> { t.strip_prefix(b"secret-token:").unwrap_or(t).to_vec() };
    let token = core(state.token.as_bytes());
    let Some((scheme, credentials)) = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
    else {
        return false;
    };
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return bool::from(core(credentials.as_bytes()).ct_eq(&token));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Some(decoded) = base64_decode(credentials) else { return false };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else { return false };
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let user_ok = user.ct_eq(state.settings.wire_gateway_user.as_bytes());
        return bool::from(user_ok & core(password).ct_eq(&token));
    }
    false
}

/// Standard base64 (RFC 4648, with or without padding), as Basic credentials are sent.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The answer to a CORS pre-flight: any origin, any request header, the
/// route's methods.
fn preflight(allow: &str) -> Response {
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    if let Ok(v) = HeaderValue::from_str(allow) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

/// A `303 See Other` to `location`.
pub fn see_other(location: &str) -> Response {
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// The policy of console pages: nothing inline, nothing from elsewhere; the
/// sandboxed raw endpoints may be embedded (PDF, images, audio, video).
pub const CONSOLE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
media-src 'self'; object-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; \
frame-ancestors 'none'";

/// The headers of every console answer. A handler that set its own policy
/// (the sandboxed raw bodies) keeps it.
fn console_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONSOLE_CSP));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The CORS headers of every public answer.
fn cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if headers.contains_key(header::ETAG) {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(pattern: &'static str) -> Route {
        Route::public(Method::GET, pattern, |_, _, _| async { Err(ApiError::Unauthorized) }).answers("401")
    }

    #[test]
    fn base64_decodes_basic_credentials() {
        assert_eq!(base64_decode("ZXhjaGFuZ2U6c2VjcmV0").unwrap(), b"exchange:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("a b").is_none());
    }

    #[test]
    fn patterns_match_whole_segments() {
        let r = route("/kyc-bulk/{extern_pub}");
        assert_eq!(r.matches("/kyc-bulk/ABC").unwrap().get("extern_pub"), "ABC");
        assert!(r.matches("/kyc-bulk/").is_none());
        assert!(r.matches("/kyc-bulk").is_none());
        assert!(r.matches("/kyc-bulk/A/B").is_none());
        assert!(r.matches("kyc-bulk/A").is_none());
        let r = route("/config");
        assert!(r.matches("/config").is_some());
        assert!(r.matches("/config/").is_none());
        assert!(r.matches("/configuration").is_none());
    }
}
