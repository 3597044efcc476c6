//! The commands of the one binary. `serve` runs the server; the others are
//! the operator's and the developer's tools around it: the offline signing side
//! of auditor management, clients for uploads and registrations, and read-outs
//! of the database (safe while the server runs: SQLite in WAL mode lets
//! readers and the server's writer work side by side).

pub mod auditors;
pub mod kyc;
pub mod registrations;

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
    /// Make an Ed25519 key pair: the private key (base32 seed) into FILE, mode
    /// 0600; the public key on stdout (for third parties, wallets, offline keys)
    Keygen {
        #[arg(value_name = "FILE")]
        file: PathBuf,
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
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Serve(#[from] ServeError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Http(String),
    #[error("{0}")]
    Failed(String),
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
        Command::KycBulk(cmd) => kyc::kyc_bulk_command(&cli.global, &file, cmd).await,
        Command::Registrations(cmd) => registrations::registrations_command(&cli.global, &file, cmd).await,
        Command::Auditors(cmd) => auditors::auditors_command(&cli.global, &file, cmd).await,
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
    Ok(Store::open_for_edit(&existing_database(global, file)?)?)
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

/// The base URL of a running server, with a trailing slash.
pub fn base_url(url: &str) -> String {
    if url.ends_with('/') { url.to_owned() } else { format!("{url}/") }
}

/// Default server URL of the client commands.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8081/";
