//! Test harnesses that talk real HTTP to a real server:
//! - [`spawn_app`]: the server in this process (the library's `server::start`
//!   and `run`, exactly what `serve` runs) on a free port, with a clock the
//!   test can move: expirations are reached by advancing it, not by sleeping;
//! - [`TestServer`]: the real binary as a child process, where a process is
//!   the point (`kill -9`, a full disk, start-up, signals).
//!
//! Both offer the same client, [`Http`], through `Deref`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

/// The binary cargo built for the integration tests. Cargo sets `CARGO_BIN_EXE_*` only for
/// integration tests and benchmarks, so where this module is included elsewhere (the load
/// generator, `examples/loadgen.rs`) it is empty and the caller names its binary through
/// [`TestServer::try_start_with`].
pub const BIN: &str = match option_env!("CARGO_BIN_EXE_taler-lite") {
    Some(bin) => bin,
    None => "",
};

/// What a test needs to reach a server, and the requests it makes.
pub struct Http {
    /// Base URL with a trailing slash.
    pub url: String,
    pub db: PathBuf,
    pub token: String,
    pub client: reqwest::Client,
}

/// A running server (child process) and what a test needs to reach it.
pub struct TestServer {
    http: Http,
    pub dir: Arc<TempDir>,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl std::ops::Deref for TestServer {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

/// The server in this process, with a clock the test moves.
pub struct TestApp {
    http: Http,
    pub dir: Arc<TempDir>,
    pub clock: taler_lite::clock::Clock,
    pub state: taler_lite::app::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl std::ops::Deref for TestApp {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

/// Starts the server in this process on a fresh database, with `serve` flags
/// parsed as the binary parses them. Call from a `#[tokio::test]`.
pub async fn spawn_app(args: &[&str]) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    spawn_app_in(dir, args).await
}

/// [`spawn_app`] on the database in `dir`.
pub async fn spawn_app_in(dir: Arc<TempDir>, args: &[&str]) -> TestApp {
    use clap::Parser;
    use taler_lite::cli::{Cli, Command};
    let db = dir.path().join("taler-lite.sqlite3");
    let mut argv: Vec<String> = vec!["taler-lite".into(), "--database".into(), db.display().to_string()];
    argv.extend(["serve", "--listen", "127.0.0.1:0"].map(String::from));
    argv.extend(args.iter().map(|a| a.to_string()));
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{e}"));
    let Command::Serve(serve_args) = cli.command else { unreachable!() };
    let settings = taler_lite::config::Settings::resolve(&cli.global, &serve_args, &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let clock = settings.clock();
    let started = taler_lite::server::start(settings, clock.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let url = started.listener.url().expect("url");
    let state = started.state.clone();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        let _ = taler_lite::run(started.listener, started.state, async move {
            let _ = stop.await;
        })
        .await;
    });
    let http = Http { url, db, token: state.token.clone(), client: reqwest::Client::new() };
    TestApp { http, dir, clock, state, shutdown: Some(shutdown), serving: Some(serving) }
}

impl TestApp {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Stops serving and closes the database (in-flight requests finish first).
    pub async fn stop(mut self) -> Arc<TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ = serving.await;
        }
        let store = self.state.store.clone();
        tokio::task::spawn_blocking(move || store.close()).await.expect("close");
        self.dir.clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A test's answer: status, headers and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The Taler error code of an ErrorDetail answer (checking its shape).
    pub fn code(&self) -> u64 {
        let v = self.json();
        assert_eq!(
            self.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{v}"
        );
        assert!(v["hint"].is_string(), "no hint in {v}");
        assert!(v["detail"].is_string(), "no detail in {v}");
        v["code"].as_u64().unwrap_or_else(|| panic!("no code in {v}"))
    }

    /// Asserts status and code, returning the detail for further checks.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: u64) -> String {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.code(), code, "{}", String::from_utf8_lossy(&self.body));
        self.json()["detail"].as_str().unwrap_or_default().to_owned()
    }
}

impl TestServer {
    /// A fresh server on a fresh database, with extra `serve` flags.
    pub fn start(args: &[&str]) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        TestServer::start_in(dir, args)
    }

    /// A server on the database in `dir` (reused across restarts).
    pub fn start_in(dir: Arc<TempDir>, args: &[&str]) -> TestServer {
        TestServer::try_start_in(dir, args).unwrap_or_else(|log| panic!("server did not start:\n{log}"))
    }

    /// Starts, or returns the server's output when it exits instead. The server is ready
    /// when it has written its one ready line to stdout; its stderr is the log.
    pub fn try_start_in(dir: Arc<TempDir>, args: &[&str]) -> Result<TestServer, String> {
        TestServer::try_start_with(Path::new(BIN), dir, args, None)
    }

    /// [`TestServer::try_start_in`] with the binary `bin` (e.g. a release build) and, when given,
    /// `client` as [`TestServer::client`] instead of a new one (building one takes milliseconds,
    /// which the load generator's `startup` scenario would count).
    pub fn try_start_with(
        bin: &Path,
        dir: Arc<TempDir>,
        args: &[&str],
        client: Option<reqwest::Client>,
    ) -> Result<TestServer, String> {
        let db = dir.path().join("taler-lite.sqlite3");
        let mut command = clean_command_for(bin);
        command
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .args(["serve", "--listen", "127.0.0.1:0", "--database"])
            .arg(&db)
            .args(args)
            .stdin(Stdio::null());
        let Ready { child, ready, log, .. } = spawn_until_ready(command).map_err(|e| e.log)?;
        // The summary was written before the ready line; wait until the log has caught up
        // with its last line, so that `log()` holds it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !log.lock().unwrap().contains("listening on") && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let url = ready["url"].as_str().expect("url in the ready line").to_owned();
        let token_file = ready["token_file"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.path().join("taler-lite-operator.token"));
        let token = std::fs::read_to_string(token_file).map(|t| t.trim().to_owned()).unwrap_or_default();
        let client = client.unwrap_or_else(|| reqwest::Client::builder().build().expect("client"));
        Ok(TestServer { http: Http { url, db, token, client }, dir, child, log })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(mut self) -> Arc<TempDir> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.clone()
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> (ExitStatus, Arc<TempDir>) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let status = self.child.wait().expect("wait");
        (status, self.dir.clone())
    }
}

/// A `serve` child process that has written its ready line.
pub struct Ready {
    pub child: Child,
    /// The ready line as written, newline included.
    pub line: String,
    pub ready: Value,
    /// Everything the server wrote to stderr so far (drained for its whole life, so that it
    /// never blocks on a full pipe).
    pub log: Arc<Mutex<String>>,
    /// The thread draining stderr: it ends when the server has exited.
    pub stderr_done: std::thread::JoinHandle<()>,
    /// Whatever the server writes to stdout after the ready line, once it has closed stdout.
    pub rest: mpsc::Receiver<String>,
}

/// Why a `serve` gave no ready line: its exit status (a signal's if it stalled and was
/// killed), what it wrote instead, and its stderr.
#[derive(Debug)]
pub struct NotReady {
    pub status: Option<ExitStatus>,
    pub first_line: String,
    pub log: String,
}

/// Collects the lines `stream` (a child's piped stderr) writes into a shared log, on a thread
/// of its own that ends with the stream.
pub fn collect_lines(
    stream: impl Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let done = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            log.push_str(&line);
            log.push('\n');
        }
    });
    (log, done)
}

/// Spawns `command` with stdout and stderr as pipes and waits (at most 60 s) for the ready
/// line, as a harness does.
pub fn spawn_until_ready(mut command: Command) -> Result<Ready, NotReady> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", command.get_program()));
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (log, stderr_done) = collect_lines(stderr);
    let (line_tx, line_rx) = mpsc::channel();
    let (rest_tx, rest) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = line_tx.send(line);
        // Nothing else may come; whatever does is kept, out of the pipe's way.
        let mut more = Vec::new();
        let _ = stdout.read_to_end(&mut more);
        let _ = rest_tx.send(String::from_utf8_lossy(&more).into_owned());
    });
    let line = line_rx.recv_timeout(Duration::from_secs(60)).ok();
    if let Some(ready) = line.as_deref().and_then(|l| serde_json::from_str::<Value>(l).ok()) {
        let line = line.unwrap_or_default();
        return Ok(Ready { child, line, ready, log, stderr_done, rest });
    }
    // Stdout ended (or held something else): the process is on its way out, and its own exit
    // status tells how it failed; one that stalls is killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut exited = false;
    while line.is_some() && !exited && std::time::Instant::now() < deadline {
        exited = child.try_wait().ok().flatten().is_some();
        std::thread::sleep(Duration::from_millis(10));
    }
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().ok();
    let _ = stderr_done.join();
    let log = log.lock().unwrap().clone();
    Err(NotReady { status, first_line: line.unwrap_or_default(), log })
}

impl Http {
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.url, path.trim_start_matches('/'))
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body").to_vec();
        Answer { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(self.endpoint(path))).await
    }

    pub async fn get_private(&self, path: &str) -> Answer {
        self.send(self.client.get(self.endpoint(path)).bearer_auth(&self.token)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.send(self.client.post(self.endpoint(path)).json(body)).await
    }

    pub async fn post_private(&self, path: &str, body: &Value) -> Answer {
        self.send(self.client.post(self.endpoint(path)).bearer_auth(&self.token).json(body)).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.send(self.client.post(self.endpoint(path)).header("content-type", "application/json").body(body))
            .await
    }

    /// A read-only connection to the server's database, for asserting what is stored.
    pub fn db(&self) -> rusqlite::Connection {
        open_db(&self.db)
    }

    pub fn count(&self, table: &str) -> i64 {
        self.db().query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn open_db(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open database");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// The binary, with none of the developer's `TALER_LITE_*` settings.
pub fn clean_command() -> Command {
    clean_command_for(Path::new(BIN))
}

/// `bin`, with none of the developer's `TALER_LITE_*` settings.
fn clean_command_for(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TALER_LITE_") {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `taler-lite ARGS` to completion in `dir`.
pub fn run_cli(dir: &Path, args: &[&str]) -> std::process::Output {
    clean_command().current_dir(dir).args(args).stdin(Stdio::null()).output().expect("run taler-lite")
}

/// Loads a vector file from test-data/.
pub fn vectors(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-data").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("vector file")).expect("vector JSON")
}
pub mod auditors;
pub mod bank;
pub mod kyc;
pub mod litestream;
pub mod raw;
pub mod robust;
