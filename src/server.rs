//! The HTTP server: routes of every API, the accept loop, start-up and shutdown.
//!
//! warp's own server has no header-read or idle timeout, so a client sending
//! headers one byte a second would hold a connection forever. The accept loop
//! here serves each connection with hyper's HTTP/1 builder and a header-read
//! timeout around `warp::service(routes)`, and tracks connections so that a
//! shutdown lets in-flight requests finish before the database is closed. A
//! body left unread by an early answer is drained before its connection
//! closes ([`linger`]), so that clients which send it all can read the answer.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Body as _, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use warp::Filter;
use warp::reply::Response;

use crate::clock::Clock;
use crate::config::{self, ListenAddr, Settings};
use crate::crypto::EddsaPublicKey;
use crate::http;
use crate::linger;
use crate::store::{OpenOptions, Store, StoreError};
use crate::{auditors, exchange, kyc_bulk, prepared_transfer, wire_gateway};

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What every handler can reach.
pub struct AppContext {
    pub settings: Settings,
    pub master_pub: EddsaPublicKey,
    pub token: String,
    pub store: Store,
    pub clock: Clock,
    /// With a trailing slash.
    pub base_url: String,
}

pub type AppState = Arc<AppContext>;

/// Hands the state to a handler.
pub fn with_state(
    state: &AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone + use<> {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

/// Every route of the server, with `ErrorDetail` for whatever matches none.
pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    let state = &state;
    let log = warp::log::custom(|info| {
        log::info!(
            "{} {} {} {:.1}ms",
            info.method(),
            info.path(),
            info.status().as_u16(),
            info.elapsed().as_secs_f64() * 1000.0
        )
    });
    http::uri_too_long()
        .or(exchange::routes(state))
        .unify()
        .or(auditors::routes(state))
        .unify()
        .or(kyc_bulk::routes(state))
        .unify()
        .or(prepared_transfer::routes(state))
        .unify()
        .or(wire_gateway::routes(state))
        .unify()
        .or(http::endpoint_unknown())
        .unify()
        .recover(http::recover)
        .unify()
        .with(log)
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

    async fn accept(&self) -> io::Result<Connection> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                // Answers are small and latency matters more than packet count.
                s.set_nodelay(true)?;
                Ok(Connection::Tcp(s))
            }
            Listener::Unix(l, _) => Ok(Connection::Unix(l.accept().await?.0)),
        }
    }
}

/// An accepted connection of either kind.
enum Connection {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tcp(s) => Pin::new(s).poll_flush(cx),
            Connection::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Connection::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Tcp(s) => s.is_write_vectored(),
            Connection::Unix(s) => s.is_write_vectored(),
        }
    }
}

/// A response body a handler streams (a stored upload). warp 0.4 offers no
/// public way to build a streaming body, so the handler attaches the stream to
/// its response as this extension and the connection service swaps it in.
#[derive(Clone)]
pub struct StreamedBody(Arc<Mutex<Option<BodyChunks>>>);

/// The chunks of a streamed body.
pub type BodyChunks = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A response whose body is `chunks` (status and headers set by the caller).
pub fn streamed_response(chunks: BodyChunks) -> Response {
    let mut response = Response::new(Default::default());
    response.extensions_mut().insert(StreamedBody(Arc::new(Mutex::new(Some(chunks)))));
    response
}

fn with_streamed_body(response: Response) -> hyper::Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    let streamed = parts.extensions.remove::<StreamedBody>().and_then(|s| s.0.lock().ok()?.take());
    let body = match streamed {
        Some(chunks) => {
            StreamBody::new(chunks.map_ok(Frame::data).map_err(|e| Box::new(e) as BoxError)).boxed_unsync()
        }
        None => body.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
    };
    hyper::Response::from_parts(parts, body)
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

/// Serves `state` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish (up to a grace period). Tests bind port 0 and call this.
pub async fn run(listener: Listener, state: AppState, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let warp_service = TowerToHyperService::new(warp::service(routes(state.clone())));
    let linger = linger::Limits { idle: state.settings.request_timeout, total: linger::MAX_LINGER };
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        // An answer given before the body was read (the early 4xx of an
        // upload) closes the connection once the rest of the body is drained
        // (or, when the client waits for `100 Continue`, at once); saying so in
        // the answer keeps clients from reusing it.
        let has_body = !req.body().is_end_stream();
        let read_to_end = Arc::new(AtomicBool::new(false));
        let expects_continue = expects_continue(&req);
        let req = req.map(|inner| TrackedBody::new(inner, read_to_end.clone(), expects_continue, linger));
        let response = hyper::service::Service::call(&warp_service, req);
        async move {
            let mut response = response.await.map(with_streamed_body)?;
            if has_body && !read_to_end.load(Ordering::Acquire) {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(state.settings.request_timeout).keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service.clone());
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            log::debug!("connection ended: {e}");
                        }
                    });
                }
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
    log::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => log::warn!("in-flight requests did not finish in {SHUTDOWN_GRACE:?}"),
    }
    Ok(())
}

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("database {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Resolves keys and token, opens the database, binds and serves until SIGINT
/// or SIGTERM.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let (master_pub, key_created) = config::master_key(&settings)?;
    let (token, token_created) = config::operator_token(&settings)?;
    let db_path = settings.database.clone();
    let open_options = OpenOptions { max_page_count: settings.max_db_pages };
    let store = tokio::task::spawn_blocking(move || Store::open(&db_path, &open_options))
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
        .map_err(|source| ServeError::Store { path: settings.database.display().to_string(), source })?;
    let store_error = |source| ServeError::Store { path: settings.database.display().to_string(), source };
    let clock = Clock::with_offset(settings.timetravel);
    kyc_bulk::on_start(&store, &settings, clock).await.map_err(store_error)?;

    let listener = Listener::bind(&settings.listen)
        .await
        .map_err(|source| ServeError::Bind { addr: format!("{:?}", settings.listen), source })?;
    let base_url = match &settings.base_url {
        Some(u) => u.clone(),
        None => listener.url()?,
    };
    eprintln!("taler-lite {}: listening on {}", env!("CARGO_PKG_VERSION"), listener.url()?);
    eprintln!("  base URL:          {base_url}");
    eprintln!("  database:          {}", settings.database.display());
    eprintln!("  currency:          {}", settings.currency);
    eprintln!(
        "  master public key: {master_pub}{}",
        if key_created {
            format!(" (new development key, private key in {})", settings.master_key_file.display())
        } else {
            String::new()
        }
    );
    if token_created {
        eprintln!("  operator token:    {token} (new, saved in {})", settings.token_file.display());
    } else if settings.token.is_some() {
        eprintln!("  operator token:    as configured");
    } else {
        eprintln!("  operator token:    in {}", settings.token_file.display());
    }
    for account in &settings.credit_accounts {
        eprintln!("  credit account:    {}", account.full());
    }

    let state = Arc::new(AppContext { clock, settings, master_pub, token, store: store.clone(), base_url });
    run(listener, state, shutdown_signal()).await?;
    tokio::task::spawn_blocking(move || store.close()).await.map_err(|e| io::Error::other(e.to_string()))?;
    log::info!("database closed");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            log::warn!("cannot install signal handlers; stop with kill -9");
            std::future::pending::<()>().await;
        }
    }
}
