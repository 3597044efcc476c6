//! The HTTP server: routes of every API, the accept loop, start-up and shutdown.
//!
//! warp's own server has no header-read or idle timeout, so a client sending
//! headers one byte a second would hold a connection forever. The accept loop
//! here serves each connection with hyper's HTTP/1 builder and a header-read
//! timeout around `warp::service(routes)`, and tracks connections so that a
//! shutdown lets in-flight requests finish before the database is closed. A
//! body left unread by an early answer is drained before its connection
//! closes ([`linger`]), so that clients which send it all can read the answer.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::Sleep;
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::app::{AppContext, AppState};
use crate::auth_failures::{AuthFailures, Peer};
use crate::clock::Clock;
use crate::config::{self, ListenAddr, Settings};
use crate::domain::exchange::{kyc_uploads, third_parties};
use crate::error::ApiError;
use crate::linger;
use crate::store::stop::Stop;
use crate::store::{self, Durability, OpenOptions, Store, StoreError};
use crate::{api, http};

mod connections;
mod lifecycle;

/// What stops `serve`, also for the client commands that run until stopped.
pub use lifecycle::Shutdown;

/// Requests with wrong credentials held at once ([`crate::auth_failures`]).
const MAX_HELD_FAILURES: usize = 4096;

/// The whole application as one warp filter: the route table's dispatcher
/// behind the request extractor. Nothing rejects: every answer is made here.
pub fn app_filter(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let router = Arc::new(api::router(&state.settings));
    let idle = state.settings.request_timeout;
    let rate =
        http::BodyRate { bytes_per_s: state.settings.min_body_rate, grace: state.settings.body_rate_grace };
    warp::path::full()
        .and(http::request(idle, rate))
        .then(move |path: FullPath, req| {
            let (router, state) = (router.clone(), state.clone());
            async move { router.dispatch(state, path.as_str(), req).await }
        })
        .recover(|rejection: warp::Rejection| async move {
            // Only warp's own plumbing can reject (a body taken twice): a bug.
            Ok::<_, Infallible>(ApiError::Internal(format!("{rejection:?}")).into_response())
        })
        .unify()
}

/// A bound listening socket.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    pub async fn bind(addr: &ListenAddr) -> io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a).await?)),
            ListenAddr::Unix(path) => {
                // A socket file left by a previous run would make bind fail.
                if path.exists() {
                    std::fs::remove_file(path)?;
                }
                Ok(Listener::Unix(UnixListener::bind(path)?, path.clone()))
            }
        }
    }

    /// The base URL this listener is reached at (with the real port when 0 was asked).
    pub fn url(&self) -> io::Result<String> {
        match self {
            Listener::Tcp(l) => Ok(format!("http://{}/", l.local_addr()?)),
            Listener::Unix(..) => Ok("http://localhost/".into()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }

    async fn accept(&self, write_idle: Duration) -> io::Result<(Connection, Peer)> {
        let (stream, peer) = match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                // Answers are small and latency matters more than packet count.
                s.set_nodelay(true)?;
                (Stream::Tcp(s), Peer(Some(addr.ip())))
            }
            Listener::Unix(l, _) => (Stream::Unix(l.accept().await?.0), Peer(None)),
        };
        Ok((Connection { stream, write_idle, write_stalled: None }, peer))
    }
}

impl Drop for Listener {
    /// A socket file is ours: removed when the server stops, or when start-up
    /// fails after binding.
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An accepted socket of either kind.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// An accepted connection whose writes time out: a client that stops reading
/// an answer (a download it never consumes) is cut off after the idle limit,
/// as one that stops sending is, instead of holding the connection forever.
struct Connection {
    stream: Stream,
    write_idle: Duration,
    /// Set while a write waits for the client to make room.
    write_stalled: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    /// Passes `poll` through, turning a wait longer than the idle limit into an error.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut Stream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll(Pin::new(&mut self.stream), cx) {
            Poll::Ready(result) => {
                self.write_stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let idle = self.write_idle;
                let stalled = self.write_stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing for {idle:?}"),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().timed(cx, |s, cx| s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().timed(cx, |s, cx| s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().timed(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A request body that records whether it was read to its end, and that,
/// dropped before its end, lingers: hands the rest to [`linger::drain`] so that
/// the client can send it all and then read the answer.
struct TrackedBody {
    /// `None` once it ended or failed: then nothing is left to drain.
    inner: Option<Incoming>,
    read_to_end: Arc<AtomicBool>,
    /// hyper sends `100 Continue` when the body is first polled. A client that
    /// waits for it and got an early answer instead never sends the body, so
    /// draining must not poll a body nobody asked for.
    polled: bool,
    expects_continue: bool,
    /// When the last piece arrived: the idle limit of a drain runs from there.
    last_read: tokio::time::Instant,
    linger: linger::Limits,
}

impl TrackedBody {
    fn new(
        inner: Incoming,
        read_to_end: Arc<AtomicBool>,
        expects_continue: bool,
        linger: linger::Limits,
    ) -> Self {
        TrackedBody {
            inner: Some(inner),
            read_to_end,
            polled: false,
            expects_continue,
            last_read: tokio::time::Instant::now(),
            linger,
        }
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        this.polled = true;
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(_))) => {
                this.last_read = tokio::time::Instant::now();
                if inner.is_end_stream() {
                    this.read_to_end.store(true, Ordering::Release);
                }
            }
            Poll::Ready(None) => {
                this.read_to_end.store(true, Ordering::Release);
                this.inner = None;
            }
            Poll::Ready(Some(Err(_))) => this.inner = None,
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.as_ref().map_or_else(|| hyper::body::SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        if inner.is_end_stream() || (self.expects_continue && !self.polled) {
            return;
        }
        linger::drain(inner, self.last_read, self.linger);
    }
}

/// Whether hyper treats `req` as waiting for `100 Continue` (HTTP/1.1 and
/// later only, the token compared as hyper does).
fn expects_continue<B>(req: &hyper::Request<B>) -> bool {
    req.version() > hyper::Version::HTTP_10
        && req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Why a request cannot be routed, if it cannot: its target must be a path
/// starting with `/` (or an absolute URL with one), `CONNECT` tunnels nothing here, and
/// an HTTP/1.1 request names exactly one `Host`.
fn unroutable<B>(req: &hyper::Request<B>) -> Option<ApiError> {
    if req.method() == hyper::Method::CONNECT {
        return Some(ApiError::parameter("request-target", "CONNECT is not supported"));
    }
    // RFC 9112 section 3.2: an HTTP/1.1 request without Host, or with more than one, is a 400.
    if req.version() == hyper::Version::HTTP_11 {
        match req.headers().get_all(header::HOST).iter().count() {
            0 => return Some(ApiError::HeaderMissing { header: "Host" }),
            1 => {}
            n => {
                return Some(ApiError::header("Host", format!("sent {n} times; HTTP/1.1 needs exactly one")));
            }
        }
    }
    match req.uri().path_and_query() {
        Some(p) if p.path().starts_with('/') => None,
        _ => Some(ApiError::parameter(
            "request-target",
            format!("'{}' is not a path starting with /", req.uri()),
        )),
    }
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish (up to a grace period). Tests bind port 0 and call this.
pub async fn run(listener: Listener, state: AppState, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let fd_limit = connections::raise_fd_limit();
    let max_connections = state
        .settings
        .max_connections
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .unwrap_or_else(|| connections::default_max_connections(fd_limit));
    let registry = connections::Registry::new(max_connections);
    let warp_service = TowerToHyperService::new(warp::service(app_filter(state.clone())));
    let idle = state.settings.request_timeout;
    let linger = linger::Limits { idle, total: linger::MAX_LINGER };
    let service = {
        let registry = registry.clone();
        move |peer: Peer, slot: Arc<connections::Slot>| {
            let (warp_service, registry) = (warp_service.clone(), registry.clone());
            service_fn(move |mut req: hyper::Request<Incoming>| {
                let in_request = slot.request();
                let grace_over = registry.grace_over();
                req.extensions_mut().insert(peer);
                // warp cannot route a request without a path (authority-form, as
                // `CONNECT host:443` or `GET foo` parse) and would panic: refuse it here.
                let target_refused = unroutable(&req);
                // An answer given before the body was read (the early 4xx of an
                // upload) closes the connection once the rest of the body is drained
                // (or, when the client waits for `100 Continue`, at once); saying so in
                // the answer keeps clients from reusing it.
                let has_body = !req.body().is_end_stream();
                let read_to_end = Arc::new(AtomicBool::new(false));
                let expects_continue = expects_continue(&req);
                let req =
                    req.map(|inner| TrackedBody::new(inner, read_to_end.clone(), expects_continue, linger));
                let response =
                    target_refused.is_none().then(|| hyper::service::Service::call(&warp_service, req));
                async move {
                    let _in_request = in_request;
                    let answered = async move {
                        match (response, target_refused) {
                            (Some(response), _) => match response.await {
                                Ok(response) => response,
                                Err(never) => match never {},
                            },
                            (None, Some(error)) => {
                                // Whatever the client meant, this connection carries nothing more we can route.
                                let mut response = error.into_response();
                                response
                                    .headers_mut()
                                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                                response
                            }
                            (None, None) => ApiError::Internal("no answer".into()).into_response(),
                        }
                    };
                    let mut response = tokio::select! {
                        biased;
                        response = answered => response,
                        // The shutdown's grace ended with this request still running: whatever
                        // it was doing is dropped (nothing half-done is committed), and the
                        // client is told.
                        () = grace_over => ApiError::Busy {
                            what: "the server is shutting down and this request did not finish in its grace period".into(),
                            retry_after_s: 5,
                            close: true,
                        }
                        .into_response(),
                    };
                    if response.extensions().get::<crate::faults::ResetConnection>().is_some() {
                        // An error from the service makes hyper close the connection without an answer.
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            "fault injected: connection reset",
                        ));
                    }
                    if has_body && !read_to_end.load(Ordering::Acquire) {
                        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<_, io::Error>(response)
                }
            })
        }
    };
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(state.settings.request_timeout).keep_alive(true);
    let (stopping, _) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept(idle) => match accepted {
                Ok((stream, peer)) => match registry.admit() {
                    connections::Admission::Refuse => registry.refuse(stream, max_connections),
                    connections::Admission::Serve(id, slot) => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service(peer, slot.clone()));
                        let (registry, mut stopping) = (registry.clone(), stopping.subscribe());
                        tokio::spawn(async move {
                            tokio::pin!(conn);
                            let mut closing = false;
                            loop {
                                tokio::select! {
                                    ended = conn.as_mut() => {
                                        if let Err(e) = ended {
                                            log::debug!("connection ended: {e}");
                                        }
                                        break;
                                    }
                                    // Closed now if it holds no request, after its answer if it does.
                                    () = slot.evict.notified(), if !closing => {
                                        conn.as_mut().graceful_shutdown();
                                        closing = true;
                                    }
                                    _ = stopping.wait_for(|s| *s), if !closing => {
                                        conn.as_mut().graceful_shutdown();
                                        closing = true;
                                    }
                                }
                            }
                            registry.remove(id);
                        });
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    // Long polls answer now (204) rather than at their timeouts, which may be minutes away.
    state.wakeups.close();
    stopping.send_replace(true);
    log::info!("shutting down: finishing in-flight requests");
    let grace = state.settings.shutdown_grace;
    if tokio::time::timeout(grace, all_closed(&registry)).await.is_err() {
        log::warn!(
            "{} connections did not finish in {grace:?}: their requests are answered 503",
            registry.len()
        );
        registry.end_grace();
        if tokio::time::timeout(FINAL_ANSWERS, all_closed(&registry)).await.is_err() {
            log::warn!("{} connections still open {FINAL_ANSWERS:?} later: closed", registry.len());
        }
    }
    Ok(())
}

/// How long the 503s at the end of a shutdown's grace get to be written.
const FINAL_ANSWERS: Duration = Duration::from_secs(5);

/// Resolves when every connection has ended.
async fn all_closed(registry: &connections::Registry) {
    while !registry.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("database {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A signal or the end of standard input while starting: nothing was served.
    #[error("start-up stopped while {during}")]
    Stopped { during: &'static str },
}

/// Checks, before anything is created on disk, that the files `serve` will
/// create or read can be: a typo in a path is one line naming its setting,
/// and leaves nothing behind.
fn check_paths(settings: &Settings) -> Result<(), ServeError> {
    fn folder_exists(setting: &str, path: &Path) -> Result<(), ServeError> {
        let folder = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if folder.is_dir() {
            Ok(())
        } else {
            Err(config::bad(
                setting,
                format!("{}: the folder {} does not exist", path.display(), folder.display()),
            )
            .into())
        }
    }
    fn readable_or_creatable(setting: &str, path: &Path) -> Result<(), ServeError> {
        if path.is_dir() {
            Err(config::bad(setting, format!("{} is a folder", path.display())).into())
        } else if path.exists() {
            std::fs::File::open(path)
                .map(|_| ())
                .map_err(|e| config::bad(setting, format!("{}: {e}", path.display())).into())
        } else {
            folder_exists(setting, path)
        }
    }
    folder_exists("database", &settings.database)?;
    if settings.database.is_dir() {
        return Err(config::bad("database", format!("{} is a folder", settings.database.display())).into());
    }
    if settings.master_public_key.is_none() || settings.master_key_file.exists() {
        readable_or_creatable("master_key_file", &settings.master_key_file)?;
    }
    if settings.token.is_none() {
        readable_or_creatable("token_file", &settings.token_file)?;
    }
    if let ListenAddr::Unix(path) = &settings.listen {
        folder_exists("listen", path)?;
    }
    Ok(())
}

/// A file that start-up made and removes again when it fails before the file is needed.
struct RemovedUnlessKept(Option<PathBuf>);

impl Drop for RemovedUnlessKept {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A server ready to serve: bound, with its database open.
pub struct Started {
    pub listener: Listener,
    pub state: AppState,
    /// Whether the master key and token files were created just now.
    pub key_created: bool,
    pub token_created: bool,
    /// An ephemeral server's folder (database, key, token); removed when dropped.
    pub ephemeral: Option<tempfile::TempDir>,
}

/// Everything `serve` does before serving, with the clock given (tests move
/// it): checks every setting, reads the fixture file and binds before any file
/// is created, then resolves keys and token, prepares the fixtures, opens
/// (creating or migrating) the database and applies them.
pub async fn start(settings: Settings, clock: Clock) -> Result<Started, ServeError> {
    start_until(settings, clock, &Stop::default()).await
}

/// [`start`], stopped by `stop` at whichever step it is (reading and hashing the fixtures'
/// files, a migration, the start-up clean-up, applying the fixtures): each checks it, or is
/// interrupted, or is waited for beside it. A start that fails or is stopped leaves no key,
/// token or lock file it made (nor an `--ephemeral` folder).
pub async fn start_until(settings: Settings, clock: Clock, stop: &Stop) -> Result<Started, ServeError> {
    // Made first, as the paths checked next are in it; a failed start removes it again.
    let ephemeral = if settings.ephemeral {
        let dir = tempfile::Builder::new()
            .prefix("taler-lite-")
            .tempdir()
            .map_err(|e| config::bad("ephemeral", format!("cannot make a temporary folder: {e}")))?;
        Some(dir)
    } else {
        None
    };
    let settings = match &ephemeral {
        Some(dir) => settings.placed_in(dir.path()),
        None => settings,
    };
    check_paths(&settings)?;
    for (_, name) in &settings.extern_keys {
        third_parties::name(name).map_err(|e| config::bad("extern_key", e))?;
    }
    let store_error = |source| ServeError::Store { path: settings.database.display().to_string(), source };
    // Whether a step failed because it was stopped: then that is the error.
    let stopped = |during: &'static str, e: ServeError| {
        if stop.is_stopped() { ServeError::Stopped { during } } else { e }
    };
    // One server per file, decided before anything is created or bound: a second one
    // leaves no key, token or socket behind (and takes no socket file over).
    let lock = store::lock::acquire(&settings.database).map_err(|e| store_error(e.into()))?;
    // A start-up that fails from here leaves no lock file it made either.
    let mut made_lock_file = RemovedUnlessKept(lock.created().then(|| lock.path().to_owned()));
    let fixtures = settings.fixtures.as_deref().map(api::fixtures::load).transpose()?;
    let listener = Listener::bind(&settings.listen)
        .await
        .map_err(|e| config::bad("listen", format!("cannot listen on {:?}: {e}", settings.listen)))?;
    let (master_pub, key_created) = config::master_key(&settings)?;
    // A start that fails or is stopped from here leaves no new key or token file, as a bad
    // setting does.
    let mut made_key = RemovedUnlessKept(key_created.then(|| settings.master_key_file.clone()));
    let (token, token_created) = config::operator_token(&settings)?;
    let mut made_token = RemovedUnlessKept(token_created.then(|| settings.token_file.clone()));
    stop.check().map_err(|_| ServeError::Stopped { during: "starting" })?;
    // Before the database exists: a fixture the API would refuse leaves none behind.
    let prepared = match fixtures {
        Some(fixtures) => {
            let (given, now_us, stopping) = (settings.clone(), clock.now_us(), stop.clone());
            let prepare = move || api::fixtures::prepare(fixtures, &given, &master_pub, now_us, &stopping);
            let prepared: Result<_, ServeError> = match tokio::task::spawn_blocking(prepare).await {
                Ok(Ok(prepared)) => Ok(prepared),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(io::Error::other(e.to_string()).into()),
            };
            Some(prepared.map_err(|e| stopped("preparing the fixtures (reading their files)", e))?)
        }
        None => None,
    };
    let db_path = settings.database.clone();
    let open_options = OpenOptions {
        max_page_count: settings.max_db_pages,
        checkpoints: settings.checkpoints,
        stop: stop.clone(),
    };
    let store = tokio::task::spawn_blocking(move || Store::open_locked(&db_path, &open_options, lock))
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
        .map_err(|e| stopped("opening the database (migrating it)", store_error(e)))?;
    made_lock_file.0 = None;
    let loaded = tokio::select! {
        loaded = load_state(&store, &settings, &clock, prepared) => loaded.map_err(|e| match e {
            api::fixtures::ApplyError::Entry(e) => e.into(),
            api::fixtures::ApplyError::Store(source) => store_error(source),
        }),
        () = stop.wait() => Err(ServeError::Stopped { during: "loading the database (start-up clean-up, fixtures)" }),
    };
    if let Err(e) = loaded {
        // Closed before an ephemeral folder goes: the writer must not outlive its files.
        let closing = store.clone();
        let _ = tokio::task::spawn_blocking(move || closing.close()).await;
        return Err(stopped("loading the database (start-up clean-up, fixtures)", e));
    }
    let base_url = match &settings.base_url {
        Some(u) => u.clone(),
        None => listener.url()?,
    };
    made_key.0 = None;
    made_token.0 = None;
    let state = Arc::new(AppContext {
        sessions: crate::session::Sessions::new(clock.clone()),
        auth_failures: AuthFailures::new(MAX_HELD_FAILURES),
        staged_budget: crate::staged_budget::StagedBudget::new(settings.max_staged),
        journal: (settings.dev && settings.journal_size > 0)
            .then(|| crate::journal::Journal::new(settings.journal_size, crate::journal::MAX_BYTES)),
        faults: Default::default(),
        snapshots: tokio::sync::Mutex::new(crate::store::snapshots::Shelf::new(
            settings.ephemeral.then(|| config::beside_database(&settings.database, "snapshots")),
        )),
        clock,
        settings,
        master_pub,
        token,
        store,
        base_url,
        started: Instant::now(),
        metrics: crate::metrics::Metrics::new(),
        wakeups: Default::default(),
    });
    Ok(Started { listener, state, key_created, token_created, ephemeral })
}

/// The start-up writes: staged uploads a crash left behind dropped, the configured third
/// parties loaded, then the fixtures.
async fn load_state(
    store: &Store,
    settings: &Settings,
    clock: &Clock,
    prepared: Option<api::fixtures::Prepared>,
) -> Result<(), api::fixtures::ApplyError> {
    kyc_uploads::discard_interrupted(store).await?;
    let keys = settings.extern_keys.clone();
    let now_us = clock.now_us();
    if !keys.is_empty() {
        store.write(Durability::Durable, move |tx| third_parties::preload(tx, &keys, now_us)).await?;
    }
    if let Some(prepared) = prepared {
        let applied = api::fixtures::apply(store, prepared, false).await?;
        log::info!("fixtures: {} applied, {} stored already", applied.applied, applied.held);
    }
    Ok(())
}

/// Starts, prints the summary and the ready line, and serves until SIGINT,
/// SIGTERM or (with `--exit-on-stdin-eof`) the end of standard input; then
/// closes the database and removes an ephemeral server's folder.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let shutdown = lifecycle::Shutdown::install(settings.exit_on_stdin_eof);
    // Watched from now on, start-up included.
    let stop = Stop::default();
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let why = shutdown.wait().await;
            stop.stop();
            why
        })
    };
    let clock = settings.clock();
    let Started { listener, state, key_created, token_created, ephemeral } = match start_until(
        settings, clock, &stop,
    )
    .await
    {
        Ok(started) => started,
        Err(ServeError::Stopped { during }) => {
            let why = watcher.await.unwrap_or("stop requested");
            log::info!("{why}: stopping");
            log::info!(
                "start-up stopped while {during}: nothing was served, and no key, token or lock file this start made is left"
            );
            return Ok(());
        }
        Err(e) => {
            watcher.abort();
            return Err(e);
        }
    };
    lifecycle::print_summary(&state, &listener, key_created, token_created)?;
    if let Err(e) = lifecycle::print_ready_line(&state, &listener) {
        // A harness that closed our stdout wants no line; the server is no less ready.
        log::warn!("cannot write the ready line to stdout: {e}");
    }
    let store = state.store.clone();
    let served = run(listener, state, async move {
        match watcher.await {
            Ok(why) => log::info!("{why}: stopping"),
            // The watcher cannot end otherwise; if it panicked, nothing will ask us to stop.
            Err(_) => std::future::pending().await,
        }
    })
    .await;
    // Whatever ended serving: the database is closed, then an ephemeral folder removed.
    tokio::task::spawn_blocking(move || store.close()).await.map_err(|e| io::Error::other(e.to_string()))?;
    log::info!("database closed");
    if let Some(dir) = ephemeral {
        let path = dir.path().display().to_string();
        dir.close().map_err(|e| io::Error::other(format!("cannot remove {path}: {e}")))?;
        log::info!("removed {path}");
    }
    Ok(served?)
}
