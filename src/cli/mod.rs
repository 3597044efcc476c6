//! The commands of the one binary. `serve` runs the server; the others are
//! the operator's and the developer's tools around it: the offline signing side
//! of auditor management, clients for uploads and registrations, and read-outs
//! of the database (safe while the server runs: SQLite in WAL mode lets
//! readers and the server's writer work side by side).

pub mod auditors;
pub mod history;
pub mod kyc;
mod logging;
pub mod ops;
mod progress;
pub mod registrations;
pub mod upload;

pub use logging::{Logging, init_logging, report_failure};

use std::borrow::Cow;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError, FileConfig, GlobalArgs, ServeArgs, Settings};
use crate::server::{self, ServeError};
use crate::store::page::MAX_PAGE;
use crate::store::{Db, Page, Store, StoreError};

#[derive(Parser, Debug)]
#[command(
    name = "taler-lite",
    version,
    args_override_self = true,
    about = "GNU Taler exchange auditors, bulk KYC uploads and prepared transfers from one SQLite file"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (zero configuration: database, keys and token are made on first start)
    Serve(Box<ServeArgs>),
    /// Third parties allowed to upload bulk KYC data
    #[command(subcommand)]
    Extern(kyc::ExternCommand),
    /// The exchange's offline side: sign auditor changes with the master private key
    #[command(subcommand)]
    Offline(auditors::OfflineCommand),
    /// Clients of a running server
    #[command(subcommand)]
    Client(ClientCommand),
    /// Read bulk KYC uploads from the database
    #[command(subcommand, name = "kyc-bulk")]
    KycBulk(kyc::KycBulkCommand),
    /// Read prepared-transfer registrations from the database
    #[command(subcommand)]
    Registrations(registrations::RegistrationsCommand),
    /// Read auditors from the database
    #[command(subcommand)]
    Auditors(auditors::AuditorsCommand),
    /// Copy the live database consistently (safe while the server runs and writes)
    Backup(ops::BackupArgs),
    /// Check the database read-only: integrity, bodies against their hashes,
    /// staged leftovers, derived subjects; exit 1 on any finding
    Check(ops::CheckArgs),
    /// Make an Ed25519 key pair: the private key (base32 seed) into FILE, mode
    /// 0600; the public key on stdout (for third parties, wallets, offline keys)
    Keygen {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print every endpoint as a Markdown table (method and path, who may call it, what it
    /// answers), from the server's route table: no database, key or server needed
    Routes {
        /// Also the development routes, which only a server with --dev or --ephemeral has
        #[arg(long)]
        dev: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Sign a file with a third party's key and upload it to /kyc-bulk
    #[command(name = "kyc-bulk")]
    KycBulk(kyc::ClientKycBulkArgs),
    /// Register a key for wire transfers and print the subjects
    Register(registrations::RegisterArgs),
    /// Remove a registration
    Unregister(registrations::UnregisterArgs),
    /// Print a Wire Gateway history; with --follow, each new row as it commits
    History(history::HistoryArgs),
}

/// Why a command failed: one line for the operator. Every variant is shown
/// escaped, as messages may quote the database or a server.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{}", escape(&.0.to_string()))]
    Config(#[from] ConfigError),
    #[error("{}", escape(&.0.to_string()))]
    Serve(#[from] ServeError),
    #[error("database: {}", escape(&.0.to_string()))]
    Store(#[from] StoreError),
    #[error("{}", escape(&.0.to_string()))]
    Io(#[from] std::io::Error),
    #[error("{}", escape(.0))]
    Http(String),
    #[error("{}", escape(.0))]
    Failed(String),
    /// The command line itself could not be read (clap's verdict): exit 2, as clap and most
    /// Unix tools exit for a usage error, where every other failure exits 1.
    #[error("{}", escape(.0))]
    Usage(String),
}

impl CliError {
    /// The process's exit status for this failure: 2 for a command line that could not be
    /// read, 1 for everything else (the README, "Commands").
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Config(_)
            | CliError::Serve(_)
            | CliError::Store(_)
            | CliError::Io(_)
            | CliError::Http(_)
            | CliError::Failed(_) => 1,
        }
    }

    /// clap's error as one line: what was wrong, clap's tip if it has one, and the usage
    /// of the command at hand (clap's own text spans several lines and has its own prefix).
    pub fn from_clap(e: &clap::Error) -> CliError {
        let text = e.render().to_string();
        let mut what = String::new();
        let mut tips = Vec::new();
        let mut usage = None;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("error:") {
                what = rest.trim().to_owned();
            } else if let Some(rest) = line.strip_prefix("tip:") {
                tips.push(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("Usage:") {
                usage = Some(rest.trim().to_owned());
            }
        }
        if what.is_empty() {
            what = text.lines().next().unwrap_or("cannot read the command line").trim().to_owned();
        }
        let mut line = what;
        for tip in tips {
            line.push_str(&format!("; {tip}"));
        }
        if let Some(usage) = usage {
            line.push_str(&format!(" (usage: {usage}; more with --help)"));
        }
        CliError::Usage(line)
    }
}

impl From<crate::error::ApiError> for CliError {
    fn from(e: crate::error::ApiError) -> Self {
        CliError::Failed(e.to_string())
    }
}

/// Runs one command.
pub async fn execute(cli: Cli) -> Result<(), CliError> {
    let file = FileConfig::load(cli.global.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(&cli.global, &args, &file)?;
            server::serve(settings).await?;
            Ok(())
        }
        Command::Extern(cmd) => kyc::extern_command(&cli.global, &file, cmd).await,
        Command::Offline(cmd) => auditors::offline_command(&cli.global, &file, cmd).await,
        Command::Client(ClientCommand::KycBulk(args)) => kyc::client_upload(args).await,
        Command::Client(ClientCommand::Register(args)) => registrations::client_register(args).await,
        Command::Client(ClientCommand::Unregister(args)) => registrations::client_unregister(args).await,
        Command::Client(ClientCommand::History(args)) => history::client_history(args).await,
        Command::KycBulk(cmd) => kyc::kyc_bulk_command(&cli.global, &file, cmd).await,
        Command::Registrations(cmd) => registrations::registrations_command(&cli.global, &file, cmd).await,
        Command::Auditors(cmd) => auditors::auditors_command(&cli.global, &file, cmd).await,
        Command::Backup(args) => ops::backup_command(&cli.global, &file, args).await,
        Command::Check(args) => ops::check_command(&cli.global, &file, args).await,
        Command::Keygen { file: path } => {
            if path.exists() {
                return Err(CliError::Failed(format!(
                    "{} exists already: not overwriting a key",
                    path.display()
                )));
            }
            let key =
                crate::crypto::EddsaPrivateKey::generate().map_err(|e| CliError::Failed(e.to_string()))?;
            config::create_secret_file(&path, &key.to_base32())?;
            println!("{}", key.public_key());
            Ok(())
        }
        Command::Routes { dev } => {
            use std::io::Write as _;
            match std::io::stdout().lock().write_all(crate::api::markdown(dev).as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}

/// The database of a command that reads or edits it directly. It must exist
/// already: a typo in `--database` should not create an empty file.
fn existing_database(global: &GlobalArgs, file: &FileConfig) -> Result<PathBuf, CliError> {
    let path: PathBuf = config::database_path(global, file);
    if !path.exists() {
        return Err(CliError::Failed(format!(
            "database {} does not exist (start `taler-lite serve` once, or pass --database)",
            path.display()
        )));
    }
    Ok(path)
}

/// Opens the database read-only, for the read-outs: never migrates, and
/// refuses a schema version this binary does not know.
pub fn open_read_only(global: &GlobalArgs, file: &FileConfig) -> Result<Store, CliError> {
    Ok(Store::open_read_only(&existing_database(global, file)?)?)
}

/// Opens the database for a command that changes it (safe while the server
/// runs); never migrates either.
pub fn open_for_edit(global: &GlobalArgs, file: &FileConfig) -> Result<Store, CliError> {
    let checkpoints = config::edit_checkpoints(file)?;
    Ok(Store::open_for_edit(&existing_database(global, file)?, checkpoints)?)
}

/// Walks a paged listing from its first row to its last, a page at a time (a
/// long list never sits in memory whole), handing each page to `show`.
pub async fn for_each_page<T, Q>(
    store: &Store,
    query: Q,
    row_id: fn(&T) -> i64,
    mut show: impl FnMut(&[T]),
) -> Result<(), CliError>
where
    T: Send + 'static,
    Q: Fn(&Db<'_>, &Page) -> Result<Vec<T>, StoreError> + Clone + Send + 'static,
{
    let mut page = Page::first(MAX_PAGE);
    loop {
        let (current, query) = (page, query.clone());
        let rows = store.read(move |db| query(db, &current)).await?;
        show(&rows);
        match rows.last() {
            Some(last) if rows.len() as i64 == page.limit => page = page.after(row_id(last)),
            _ => return Ok(()),
        }
    }
}

/// A `list --json` answer: one JSON array on stdout, written as the rows
/// come (a page at a time), one element per line. A reader that stops early
/// (`| head`) ends the output quietly instead of a panic on the broken pipe.
pub struct JsonArray {
    out: std::io::Stdout,
    written: usize,
    failed: Option<CliError>,
}

impl JsonArray {
    pub fn start() -> JsonArray {
        let mut array = JsonArray { out: std::io::stdout(), written: 0, failed: None };
        array.write(b"[");
        array
    }

    fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        if self.failed.is_none()
            && let Err(e) = self.out.write_all(bytes)
        {
            self.failed = Some(e.into());
        }
    }

    pub fn push<T: serde::Serialize>(&mut self, item: &T) {
        match serde_json::to_string(item) {
            Ok(json) => {
                let separator: &[u8] = if self.written == 0 { b"\n" } else { b",\n" };
                self.write(separator);
                self.write(json_for_terminal(&json).as_bytes());
                self.written += 1;
            }
            Err(e) => {
                self.failed.get_or_insert(CliError::Failed(format!("cannot encode a row as JSON: {e}")));
            }
        }
    }

    /// Closes the array; fails if an element could not be encoded or written.
    pub fn finish(mut self) -> Result<(), CliError> {
        use std::io::Write;
        let end: &[u8] = if self.written == 0 { b"]\n" } else { b"\n]\n" };
        self.write(end);
        if self.failed.is_none()
            && let Err(e) = self.out.flush()
        {
            self.failed = Some(e.into());
        }
        match self.failed {
            Some(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// JSON whose strings escape U+007F-U+009F too (serde_json escapes only
/// U+0000-U+001F): stored text such as an 8-bit CSI (U+009B) stays inert on a
/// terminal, and the JSON means the same. These characters can only occur
/// inside strings, so escaping them everywhere is safe.
fn json_for_terminal(json: &str) -> Cow<'_, str> {
    let c1 = |c: char| ('\u{7f}'..='\u{9f}').contains(&c);
    if !json.chars().any(c1) {
        return Cow::Borrowed(json);
    }
    Cow::Owned(
        json.chars()
            .map(|c| if c1(c) { format!("\\u{:04x}", u32::from(c)) } else { c.to_string() })
            .collect(),
    )
}

/// One JSON value on one line, safe for a terminal (see [`json_for_terminal`]).
pub fn json_line(value: &serde_json::Value) -> String {
    json_for_terminal(&value.to_string()).into_owned()
}

/// The base URL of a running server, with a trailing slash.
pub fn base_url(url: &str) -> String {
    if url.ends_with('/') { url.to_owned() } else { format!("{url}/") }
}

/// Default server URL of the client commands.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8081/";

/// Stored or received text made safe for the operator's terminal: control
/// characters (U+0000-U+001F, U+007F-U+009F) are shown as `\u{1b}` and the
/// like, so a name such as `"\x1b[2J"` is printed, not obeyed. Everything else,
/// including non-ASCII text, is left as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() })
            .collect(),
    )
}

/// A server's answer as one line: the status and, for an ErrorDetail, its code,
/// hint, detail and parameter; for any other body, its start. Escaped.
pub fn describe_answer(status: u16, body: &[u8]) -> String {
    let status_text = match reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()) {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    };
    let detail = serde_json::from_slice::<serde_json::Value>(body).ok();
    let text_of = |name: &str| detail.as_ref().and_then(|d| d[name].as_str()).filter(|s| !s.is_empty());
    let line = match detail.as_ref().and_then(|d| d["code"].as_u64()) {
        Some(code) => {
            let mut line = format!("{status_text}: code {code}");
            for (label, name) in [("", "hint"), ("", "detail"), ("parameter ", "parameter")] {
                if let Some(text) = text_of(name) {
                    line.push_str(&format!(": {label}{text}"));
                }
            }
            line
        }
        None if body.is_empty() => status_text,
        None => {
            let text = String::from_utf8_lossy(body);
            let start: String = text.chars().take(200).collect();
            let cut = if start.len() < text.len() { "..." } else { "" };
            format!("{status_text}: {}{cut}", start.trim())
        }
    };
    escape(&line).into_owned()
}

/// An error with its causes, as one line: reqwest's own message ("error
/// sending request") names no reason; the cause (refused, reset) is the news.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("Acme KYC"), "Acme KYC");
        assert!(matches!(escape("Zürich €"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb\n\u{9b}\u{7f}"), "a\\u{1b}[2Jb\\u{a}\\u{9b}\\u{7f}");
    }

    #[test]
    fn json_output_escapes_c1_controls_and_stays_the_same_json() {
        let value = serde_json::json!({"name": "a\u{9b}2J\u{1b}b\u{7f}ü"});
        let text = serde_json::to_string(&value).unwrap();
        let safe = json_for_terminal(&text);
        assert!(!safe.chars().any(char::is_control), "{safe}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), value);
    }

    #[test]
    fn error_details_in_one_line() {
        let body =
            br#"{"code":1904,"hint":"unknown third party","detail":"X\u001b[2J","parameter":"EXTERN_PUB"}"#;
        assert_eq!(
            describe_answer(404, body),
            "404 Not Found: code 1904: unknown third party: X\\u{1b}[2J: parameter EXTERN_PUB"
        );
        assert_eq!(describe_answer(502, b""), "502 Bad Gateway");
        assert_eq!(describe_answer(500, b"oops\n"), "500 Internal Server Error: oops");
    }
}
