//! What `serve` does around serving: the summary on stderr, the ready line on stdout, and
//! the events that stop it.
//!
//! A test harness starts a server and must learn its port without polling, and must never
//! leave one behind: it reads the one ready line (README, "Use it in CI"), and
//! closing the server's stdin (`--exit-on-stdin-eof`) or a signal stops it.

use std::io::{self, IsTerminal, Read, Write};

use serde::Serialize;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::oneshot;

use super::Listener;
use crate::app::AppState;
use crate::config::{ListenAddr, LogFormat};

/// What stops a server: SIGINT, SIGTERM, SIGHUP (a closed terminal: stopped as cleanly as
/// the others, so that an `--ephemeral` folder goes too), and with `--exit-on-stdin-eof`
/// the end of standard input. Installed before start-up and watched from then on (`serve`
/// turns the first event into a [`crate::store::stop::Stop`] that the start-up's long steps
/// heed), so that one arriving while the server starts stops the start (a signal before the
/// handlers exist would kill the server before an ephemeral folder is removed). SIGUSR1 and SIGUSR2 are logged and ignored
/// (their default action would kill the server without a checkpoint or clean-up).
pub struct Shutdown {
    signals: Option<(Signal, Signal, Signal)>,
    stdin_closed: Option<oneshot::Receiver<()>>,
}

impl Shutdown {
    pub fn install(watch_stdin: bool) -> Shutdown {
        let signals = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(int), Ok(term), Ok(hup)) => Some((int, term, hup)),
            _ => {
                log::warn!("cannot install signal handlers; stop with kill -9");
                None
            }
        };
        for (kind, name) in
            [(SignalKind::user_defined1(), "SIGUSR1"), (SignalKind::user_defined2(), "SIGUSR2")]
        {
            match signal(kind) {
                Ok(mut ignored) => {
                    tokio::spawn(async move {
                        while ignored.recv().await.is_some() {
                            log::info!("{name} received: ignored");
                        }
                    });
                }
                Err(e) => log::warn!("cannot install a handler for {name}: {e}"),
            }
        }
        Shutdown { signals, stdin_closed: watch_stdin.then(watch_stdin_closed).flatten() }
    }

    /// Resolves when one of the events happens, with its name. Logging it is the caller's
    /// part: a start-up that fails on its own (the database locked by another server) must
    /// say one line, its reason, and not a stop it never acted on.
    pub async fn wait(self) -> &'static str {
        let signals = async {
            match self.signals {
                Some((mut int, mut term, mut hup)) => tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    _ = hup.recv() => "SIGHUP",
                },
                None => std::future::pending().await,
            }
        };
        let stdin = async {
            match self.stdin_closed {
                // An error means the reader thread ended: at the end of input too.
                Some(closed) => {
                    let _ = closed.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            name = signals => name,
            () = stdin => "standard input closed",
        }
    }
}

/// Reads (and discards) standard input on a thread of its own until it ends. Not tokio's
/// stdin: its read cannot be cancelled and would hold up the runtime's shutdown after a
/// signal; a plain thread does not keep the process alive.
fn watch_stdin_closed() -> Option<oneshot::Receiver<()>> {
    let (closed, receiver) = oneshot::channel();
    let spawned = std::thread::Builder::new().name("taler-lite-stdin".into()).spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Unreadable input cannot tell us the harness is alive either.
                    log::warn!("cannot read standard input ({e}): treating it as closed");
                    break;
                }
            }
        }
        let _ = closed.send(());
    });
    match spawned {
        Ok(_) => Some(receiver),
        Err(e) => {
            log::warn!("cannot watch standard input ({e}); --exit-on-stdin-eof has no effect");
            None
        }
    }
}

/// The start-up summary on stderr: lines for a person, or with `--log-format json` one log
/// record (every stderr line is then JSON, and the token is left out of it).
pub fn print_summary(
    state: &AppState,
    listener: &Listener,
    key_created: bool,
    token_created: bool,
) -> io::Result<()> {
    let settings = &state.settings;
    let url = listener.url()?;
    if settings.log_format == LogFormat::Json {
        let (database, master_key) = (settings.database.display().to_string(), state.master_pub.to_string());
        let token_file = token_file(state).unwrap_or_default();
        log::info!(
            url = url.as_str(), base_url = state.base_url.as_str(), database = database.as_str(),
            currency = settings.currency.as_str(), master_public_key = master_key.as_str(),
            token_file = token_file.as_str();
            "taler-lite {} listening on {url}", env!("CARGO_PKG_VERSION")
        );
        return Ok(());
    }
    // Log lines from before (migrations, fixtures) come before the summary.
    crate::log_sink::flush();
    eprintln!("taler-lite {}", env!("CARGO_PKG_VERSION"));
    eprintln!("  base URL:          {}", state.base_url);
    eprintln!("  database:          {}", settings.database.display());
    eprintln!("  currency:          {}", settings.currency);
    eprintln!(
        "  master public key: {}{}",
        state.master_pub,
        if key_created {
            format!(" (new development key, private key in {})", settings.master_key_file.display())
        } else {
            String::new()
        }
    );
    // The token itself only for a person at a terminal: CI systems keep stderr as an artifact,
    // and a log holds no secret (`--ephemeral` hands it to the harness in the ready line).
    if token_created && io::stderr().is_terminal() {
        eprintln!("  operator token:    {} (new, saved in {})", state.token, settings.token_file.display());
    } else if token_created {
        eprintln!("  operator token:    new, in {}", settings.token_file.display());
    } else if settings.token.is_some() {
        eprintln!("  operator token:    as configured");
    } else {
        eprintln!("  operator token:    in {}", settings.token_file.display());
    }
    for account in &settings.credit_accounts {
        eprintln!("  credit account:    {}", account.full());
    }
    // Last, so that whoever waits for this line has seen the summary.
    eprintln!("  listening on {url}");
    Ok(())
}

/// Where the operator token is kept: none when it is configured directly.
fn token_file(state: &AppState) -> Option<String> {
    state.settings.token.is_none().then(|| absolute(&state.settings.token_file))
}

/// A path as a harness running in another folder can use it.
fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned()).display().to_string()
}

/// The ready line (README, "Use it in CI"): one JSON object on stdout.
#[derive(Serialize)]
struct Ready<'a> {
    ready: bool,
    url: String,
    master_public_key: String,
    database: String,
    token_file: Option<String>,
    pid: u32,
    /// An ephemeral server's token is nowhere else a harness could read it from.
    #[serde(skip_serializing_if = "Option::is_none")]
    operator_token: Option<&'a str>,
    /// For a Unix socket, whose `url` cannot say where it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    socket: Option<String>,
}

/// Writes the ready line, flushed: the one thing `serve` ever writes to stdout.
pub fn print_ready_line(state: &AppState, listener: &Listener) -> io::Result<()> {
    let settings = &state.settings;
    let ready = Ready {
        ready: true,
        url: listener.url()?,
        master_public_key: state.master_pub.to_string(),
        database: absolute(&settings.database),
        token_file: token_file(state),
        pid: std::process::id(),
        operator_token: settings.ephemeral.then_some(state.token.as_str()),
        socket: match &settings.listen {
            ListenAddr::Unix(path) => Some(absolute(path)),
            ListenAddr::Tcp(_) => None,
        },
    };
    let line = serde_json::to_string(&ready).map_err(io::Error::other)?;
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
