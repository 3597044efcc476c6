//! Settings: command-line flag > environment variable > TOML file > default.
//!
//! `taler-lite serve` with nothing set must come up ready to use (a fixture
//! server for CI and for developers), so every setting has a default, and the
//! secrets a fresh start needs (a development master key, an operator token)
//! are created on first start in files beside the database, mode 0600, and
//! reused afterwards (`secrets.rs`). A bad setting is one line naming it, never a panic.
//!
//! Each setting has one value type (`values.rs`) whose `FromStr` is its only parser: clap
//! uses it for the flag and its environment variable, serde for the TOML key (`text.rs`).
//! [`Settings::resolve`] then only chooses, per setting, the first of flag (or environment,
//! which clap has already merged in), file and default. A bad value is refused where it is
//! read: a flag or variable by clap, before anything starts, a TOML value when the file is
//! loaded (so a bad file stops every command, not only `serve`).
//!
//! Durations are read by `humantime`: besides `90s`, `15m`/`15min`, `12h`, `30d`, `2w` and a
//! bare number of seconds, it takes combinations (`1h 30m`), fractions (`1.5h`) and long
//! names (`2 weeks`), and `M` is a month (`m` a minute). Sizes are read by `bytesize`
//! (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`, ...); a lone `K`, `M`, `G`, `T` stays binary.
//!
//! To add a setting:
//! 1. a value type in `values.rs` with `FromStr` and `setting_text!`, or reuse one
//!    (`ByteSize`, `PositiveDuration`, ...);
//! 2. a field in [`ServeArgs`] (`#[arg(long, env = "TALER_LITE_...")]`, doc comment with
//!    the default) and one of the same name in [`FileConfig`];
//! 3. a `DEFAULT_...` text if it has a default, and one line in [`Settings::resolve`]
//!    (`pick(...)`) filling its field of [`Settings`];
//! 4. one row in the README's configuration table.

mod secrets;
mod text;
mod values;

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde_path_to_error::Segment;

use crate::crypto::EddsaPublicKey;
use crate::payto::Payto;
pub use crate::store::Checkpoints;
use text::SettingParser;

pub use secrets::{create_secret_file, master_key, operator_token, read_master_key};
pub use values::{
    BaseUrl, ByteSize, ClockOffset, CreditAccount, Currency, ExternKeySpec, GatewayAuth, GatewayUser,
    InvalidValue, ListenAddr, LogFormat, PositiveDuration, PublicKey, QrAddressText, QrPrefix, Rfc3339Time,
    Seconds, ShortSubjectLength, SimpleSubjectStyle, SubjectFormat, SubjectFormats, Switch, Token,
    valid_account_name,
};

pub const DEFAULT_DATABASE: &str = "./taler-lite.sqlite3";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
pub const DEFAULT_CURRENCY: &str = "KUDOS";
pub const DEFAULT_CREDIT_ACCOUNT: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";
pub const DEFAULT_SUBJECT_FORMATS: &str = "SIMPLE,URI,CH_QR_BILL";
pub const DEFAULT_SIMPLE_SUBJECT: &str = "full";
pub const DEFAULT_SHORT_SUBJECT_LENGTH: &str = "12";
pub const DEFAULT_QR_REFERENCE_PREFIX: &str = "";
pub const DEFAULT_QR_CREDITOR_POSTCODE: &str = "8000";
pub const DEFAULT_QR_CREDITOR_TOWN: &str = "Zürich";
pub const DEFAULT_REGISTRATION_LIFETIME: &str = "30d";
pub const DEFAULT_RECURRENT_LIFETIME: &str = "365d";
pub const DEFAULT_MAX_UPLOAD: &str = "2GiB";
pub const DEFAULT_MAX_JSON: &str = "1MiB";
pub const DEFAULT_REQUEST_TIMEOUT: &str = "30s";
pub const DEFAULT_WIRE_GATEWAY_USER: &str = "exchange";
/// The name of the first account's Wire Gateway when it has no label; the n-th (n > 1) is
/// `exchange-n`.
pub const DEFAULT_ACCOUNT_NAME: &str = "exchange";
pub const DEFAULT_CHECKPOINTS: &str = "auto";
pub const DEFAULT_JOURNAL_SIZE: usize = 1000;
pub const DEFAULT_MAX_SNAPSHOTS: usize = 16;
/// Shortest `--token` outside `--dev` and `--ephemeral`.
pub const MIN_PRODUCTION_TOKEN_CHARS: usize = 32;
pub const MASTER_KEY_FILE_NAME: &str = "taler-lite-master.key";
pub const TOKEN_FILE_NAME: &str = "taler-lite-operator.token";

/// A setting that cannot be used, named as the user wrote it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct ConfigError {
    pub setting: String,
    pub reason: String,
}

pub fn bad(setting: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError { setting: setting.to_owned(), reason: reason.to_string() }
}

/// Where the database lives and how logs look; shared by every command.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct GlobalArgs {
    /// TOML configuration file (flags and environment take precedence)
    #[arg(long, global = true, env = "TALER_LITE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// SQLite database file [default: ./taler-lite.sqlite3]
    #[arg(long, global = true, env = "TALER_LITE_DATABASE", value_name = "FILE")]
    pub database: Option<PathBuf>,
    /// Log lines on stderr: human or json (one object a line) [default: human]
    // Flag and environment only: logging starts before the TOML file is read.
    #[arg(long, global = true, env = "TALER_LITE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Settings of `serve` (see README for the table). A field's name is its TOML key and the
/// name its errors carry.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// HOST:PORT or unix:PATH [default: 127.0.0.1:8081]
    #[arg(long, env = "TALER_LITE_LISTEN")]
    pub listen: Option<ListenAddr>,
    /// Public base URL [default: from the listen address]
    #[arg(long, env = "TALER_LITE_BASE_URL")]
    pub base_url: Option<BaseUrl>,
    /// Currency [default: KUDOS]
    #[arg(long, env = "TALER_LITE_CURRENCY")]
    pub currency: Option<Currency>,
    /// Exchange master public key (base32) [default: from the master key file]
    #[arg(long, env = "TALER_LITE_MASTER_PUBLIC_KEY")]
    pub master_public_key: Option<PublicKey>,
    /// Master private key file (base32 seed) [default: taler-lite-master.key beside the database, made if missing]
    #[arg(long, env = "TALER_LITE_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Operator bearer token [default: from the token file]
    #[arg(long, env = "TALER_LITE_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,
    /// Operator token file [default: taler-lite-operator.token beside the database, made if missing]
    #[arg(long, env = "TALER_LITE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Exchange bank account (payto URI); repeat for several. Environment:
    /// TALER_LITE_CREDIT_ACCOUNTS, space-separated [default: a Swiss QR-IBAN example]
    #[arg(long = "credit-account", value_name = "PAYTO")]
    pub credit_accounts: Vec<CreditAccount>,
    /// Subject formats, comma-separated [default: SIMPLE,URI,CH_QR_BILL]
    #[arg(long, env = "TALER_LITE_SUBJECT_FORMATS")]
    pub subject_formats: Option<SubjectFormats>,
    /// User name of the Wire Gateway's Basic authentication (the password is the operator
    /// token) [default: exchange]
    #[arg(long, env = "TALER_LITE_WIRE_GATEWAY_USER")]
    pub wire_gateway_user: Option<GatewayUser>,
    /// Who may call the Wire Gateway: token (Bearer, or Basic with the token as password) or
    /// none (only with --dev or --ephemeral) [default: token]
    #[arg(long, env = "TALER_LITE_WIRE_GATEWAY_AUTH")]
    pub wire_gateway_auth: Option<GatewayAuth>,
    /// SIMPLE subject style: full or short [default: full]
    #[arg(long, env = "TALER_LITE_SIMPLE_SUBJECT")]
    pub simple_subject: Option<SimpleSubjectStyle>,
    /// Length of short subjects, 1-24 [default: 12]
    #[arg(long, env = "TALER_LITE_SHORT_SUBJECT_LENGTH")]
    pub short_subject_length: Option<ShortSubjectLength>,
    /// Prefix of QR references, 0-6 digits [default: empty]
    #[arg(long, env = "TALER_LITE_QR_REFERENCE_PREFIX")]
    pub qr_reference_prefix: Option<QrPrefix>,
    /// Postcode of the creditor on the console's Swiss QR bills [default: 8000]
    #[arg(long, env = "TALER_LITE_QR_CREDITOR_POSTCODE")]
    pub qr_creditor_postcode: Option<QrAddressText>,
    /// Town of the creditor on the console's Swiss QR bills [default: Zürich]
    #[arg(long, env = "TALER_LITE_QR_CREDITOR_TOWN")]
    pub qr_creditor_town: Option<QrAddressText>,
    /// Lifetime of one-shot registrations, e.g. 30d, 12h, 90s, 1h 30m [default: 30d]
    #[arg(long, env = "TALER_LITE_REGISTRATION_LIFETIME", value_name = "DURATION")]
    pub registration_lifetime: Option<PositiveDuration>,
    /// Lifetime of recurrent registrations [default: 365d]
    #[arg(long, env = "TALER_LITE_RECURRENT_LIFETIME", value_name = "DURATION")]
    pub recurrent_lifetime: Option<PositiveDuration>,
    /// Largest bulk KYC upload, e.g. 2GiB, 500MB [default: 2GiB]
    #[arg(long, env = "TALER_LITE_MAX_UPLOAD", value_name = "SIZE")]
    pub max_upload: Option<ByteSize>,
    /// Largest JSON body [default: 1MiB]
    #[arg(long, env = "TALER_LITE_MAX_JSON", value_name = "SIZE")]
    pub max_json: Option<ByteSize>,
    /// Third party for /kyc-bulk, PUB=NAME; repeat for several. Environment:
    /// TALER_LITE_EXTERN_KEYS, space-separated
    // The id is what its errors are named by; `extern_keys` would not be what the user typed.
    #[arg(id = "extern_key", long = "extern-key", value_name = "PUB=NAME")]
    pub extern_keys: Vec<ExternKeySpec>,
    /// Idle limit for a client sending headers or body, e.g. 30s [default: 30s]
    #[arg(long, env = "TALER_LITE_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<PositiveDuration>,
    /// Shift the server's clock, e.g. 3d, -2h, 1h 30m or seconds: for testing expirations
    /// and signed timestamps [default: 0]
    #[arg(long, env = "TALER_LITE_CLOCK_OFFSET", allow_hyphen_values = true, value_name = "DURATION")]
    pub clock_offset: Option<ClockOffset>,
    /// The older name of --clock-offset, in seconds, as GNUnet's --timetravel
    #[arg(long, env = "TALER_LITE_TIMETRAVEL", allow_hyphen_values = true, value_name = "SECONDS")]
    pub timetravel: Option<Seconds>,
    /// Start with the server's clock frozen at this RFC 3339 time (POST /private/clock moves it)
    #[arg(long, env = "TALER_LITE_FROZEN_CLOCK", value_name = "RFC3339")]
    pub frozen_clock: Option<Rfc3339Time>,
    /// Cap the database at this many 16 KiB pages (to test a full disk)
    #[arg(long, env = "TALER_LITE_MAX_DB_PAGES", hide = true, value_parser = SettingParser::<u64>::new())]
    pub max_db_pages: Option<u64>,
    /// Database, development master key and token in a new temporary folder, removed when
    /// the server exits; the ready line carries the token. Conflicts with --database
    #[arg(long, env = "TALER_LITE_EPHEMERAL", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ephemeral: Option<Switch>,
    /// Shut down cleanly when standard input reaches end of file (a harness that dies
    /// leaves no server behind)
    #[arg(long, env = "TALER_LITE_EXIT_ON_STDIN_EOF", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub exit_on_stdin_eof: Option<Switch>,
    /// Development mode: offers POST /private/reset (as --ephemeral does)
    #[arg(long, env = "TALER_LITE_DEV", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub dev: Option<Switch>,
    /// Who checkpoints the WAL: auto (SQLite, and the server at shutdown) or external (a
    /// replicator such as Litestream; the server never does) [default: auto]
    #[arg(long, env = "TALER_LITE_CHECKPOINTS", value_name = "MODE")]
    pub checkpoints: Option<Checkpoints>,
    /// Development servers: requests kept in the journal of GET /private/requests (at most
    /// 16 MiB); 0 turns it off [default: 1000]
    #[arg(long, env = "TALER_LITE_JOURNAL_SIZE", value_name = "N", value_parser = SettingParser::<u64>::new())]
    pub journal_size: Option<u64>,
    /// Development servers: snapshots kept by PUT /private/snapshots/{name} [default: 16]
    #[arg(long, env = "TALER_LITE_MAX_SNAPSHOTS", value_name = "N", value_parser = SettingParser::<u64>::new())]
    pub max_snapshots: Option<u64>,
    /// TOML file of state applied at start, idempotently: arrays of tables auditor, extern,
    /// upload, registration, incoming (README, "Use it in CI")
    #[arg(long, env = "TALER_LITE_FIXTURES", value_name = "FILE")]
    pub fixtures: Option<PathBuf>,
}

/// The TOML file: the settings of [`ServeArgs`] under the same names, plus `database`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database: Option<PathBuf>,
    pub listen: Option<ListenAddr>,
    pub base_url: Option<BaseUrl>,
    pub currency: Option<Currency>,
    pub master_public_key: Option<PublicKey>,
    pub master_key_file: Option<PathBuf>,
    pub token: Option<Token>,
    pub token_file: Option<PathBuf>,
    pub credit_accounts: Option<Vec<CreditAccount>>,
    pub subject_formats: Option<SubjectFormats>,
    pub wire_gateway_user: Option<GatewayUser>,
    pub wire_gateway_auth: Option<GatewayAuth>,
    pub simple_subject: Option<SimpleSubjectStyle>,
    pub short_subject_length: Option<ShortSubjectLength>,
    pub qr_reference_prefix: Option<QrPrefix>,
    pub qr_creditor_postcode: Option<QrAddressText>,
    pub qr_creditor_town: Option<QrAddressText>,
    pub registration_lifetime: Option<PositiveDuration>,
    pub recurrent_lifetime: Option<PositiveDuration>,
    pub max_upload: Option<ByteSize>,
    pub max_json: Option<ByteSize>,
    pub request_timeout: Option<PositiveDuration>,
    pub clock_offset: Option<ClockOffset>,
    pub frozen_clock: Option<Rfc3339Time>,
    #[serde(rename = "extern", default)]
    pub extern_keys: Vec<ExternKeySpec>,
    pub ephemeral: Option<Switch>,
    pub exit_on_stdin_eof: Option<Switch>,
    pub dev: Option<Switch>,
    pub checkpoints: Option<Checkpoints>,
    pub fixtures: Option<PathBuf>,
    pub journal_size: Option<u64>,
    pub max_snapshots: Option<u64>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let Some(path) = path else { return Ok(FileConfig::default()) };
        let text =
            fs::read_to_string(path).map_err(|e| bad("--config", format!("{}: {e}", path.display())))?;
        FileConfig::parse(&text, path)
    }

    /// Reads the text of the TOML file at `path` (which only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        // toml's own rendering of an error spans several lines; one line says the same.
        let at = |e: &toml::de::Error| match e.span() {
            Some(span) => {
                let line = text.get(..span.start).map_or(0, |before| before.matches('\n').count()) + 1;
                format!("{} line {line}: {}", path.display(), e.message())
            }
            None => format!("{}: {}", path.display(), e.message()),
        };
        let document = toml::Deserializer::parse(text).map_err(|e| bad("--config", at(&e)))?;
        serde_path_to_error::deserialize(document).map_err(|e| {
            // The first key is the setting as the user wrote it, also for a value in [[extern]].
            let setting = match e.path().iter().next() {
                Some(Segment::Map { key }) => key.clone(),
                _ => "--config".to_owned(),
            };
            bad(&setting, at(e.inner()))
        })
    }
}

/// Everything `serve` runs with, resolved and checked.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database: PathBuf,
    pub listen: ListenAddr,
    pub base_url: Option<String>,
    pub currency: String,
    pub master_public_key: Option<EddsaPublicKey>,
    pub master_key_file: PathBuf,
    pub token: Option<String>,
    pub token_file: PathBuf,
    pub credit_accounts: Vec<Payto>,
    /// The name of each credit account's Wire Gateway (same order): its label, or
    /// `exchange` for the first and `exchange-n` for the n-th.
    pub account_names: Vec<String>,
    pub wire_gateway_user: String,
    pub wire_gateway_auth: GatewayAuth,
    pub subject_formats: Vec<SubjectFormat>,
    pub simple_subject: SimpleSubjectStyle,
    pub short_subject_length: usize,
    pub qr_reference_prefix: String,
    /// The creditor's postcode and town on the console's Swiss QR bills.
    pub qr_creditor_postcode: String,
    pub qr_creditor_town: String,
    pub registration_lifetime: Duration,
    pub recurrent_lifetime: Duration,
    pub max_upload: u64,
    pub max_json: u64,
    pub extern_keys: Vec<(EddsaPublicKey, String)>,
    pub request_timeout: Duration,
    /// `--clock-offset` (or `--timetravel`), in seconds.
    pub clock_offset_s: i64,
    /// `--frozen-clock`, in microseconds since the epoch.
    pub frozen_clock_us: Option<i64>,
    pub max_db_pages: Option<u64>,
    /// Who checkpoints the WAL (`Checkpoints::External` under Litestream).
    pub checkpoints: Checkpoints,
    /// `--ephemeral`: [`Settings::placed_in`] a new temporary folder at start.
    pub ephemeral: bool,
    pub exit_on_stdin_eof: bool,
    /// `--dev` or `--ephemeral`: the development routes (`POST /private/reset`) exist.
    pub dev: bool,
    pub fixtures: Option<PathBuf>,
    /// Entries of the journal of requests of a development server (0: none).
    pub journal_size: usize,
    /// Snapshots a development server keeps at most.
    pub max_snapshots: usize,
    pub log_format: LogFormat,
    /// Whether the key and token files are the defaults beside the database: those move
    /// with it into an ephemeral server's folder, files given explicitly stay where they are.
    files_beside_database: (bool, bool),
}

/// Who checkpoints for a CLI command that writes while the server may run: the `serve`
/// setting from the environment or the file (the commands have no flag for it), so that under
/// Litestream `extern add` does not checkpoint either.
pub fn edit_checkpoints(file: &FileConfig) -> Result<Checkpoints, ConfigError> {
    match std::env::var("TALER_LITE_CHECKPOINTS") {
        Ok(text) => {
            text.parse().map_err(|e| bad("checkpoints", format!("{e} (from TALER_LITE_CHECKPOINTS)")))
        }
        Err(_) => pick("checkpoints", &None, &file.checkpoints, DEFAULT_CHECKPOINTS),
    }
}

/// The database path of any command: flag or environment, then file, then default.
pub fn database_path(global: &GlobalArgs, file: &FileConfig) -> PathBuf {
    global
        .database
        .clone()
        .or_else(|| file.database.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE))
}

/// The master key and operator token files of the server on `database`, labelled, as a
/// command other than `serve` finds them (environment, then file, then beside the
/// database): what `backup` must never write over.
pub fn secret_files(database: &Path, file: &FileConfig) -> Vec<(String, PathBuf)> {
    let find = |variable: &str, configured: &Option<PathBuf>, name: &str| {
        std::env::var_os(variable)
            .map(PathBuf::from)
            .or_else(|| configured.clone())
            .unwrap_or_else(|| beside_database(database, name))
    };
    vec![
        (
            "the master key file".to_owned(),
            find("TALER_LITE_MASTER_KEY_FILE", &file.master_key_file, MASTER_KEY_FILE_NAME),
        ),
        (
            "the operator token file".to_owned(),
            find("TALER_LITE_TOKEN_FILE", &file.token_file, TOKEN_FILE_NAME),
        ),
    ]
}

/// A file named `name` in the database's folder.
pub fn beside_database(database: &Path, name: &str) -> PathBuf {
    match database.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(".").join(name),
    }
}

impl Settings {
    pub fn resolve(
        global: &GlobalArgs,
        args: &ServeArgs,
        file: &FileConfig,
    ) -> Result<Settings, ConfigError> {
        let database = database_path(global, file);
        let ephemeral = switch(&args.ephemeral, &file.ephemeral);
        if ephemeral && let Some(given) = global.database.as_ref().or(file.database.as_ref()) {
            // Either would be a surprise: a database kept that should vanish, or one ignored.
            return Err(bad(
                "ephemeral",
                format!(
                    "conflicts with database {}: an ephemeral server keeps its database in a new temporary folder",
                    given.display()
                ),
            ));
        }
        let master_key_file = either(&args.master_key_file, &file.master_key_file);
        let token_file = either(&args.token_file, &file.token_file);
        let files_beside_database = (master_key_file.is_none(), token_file.is_none());
        // Lists come from one source, not merged: clap cannot split a list variable without
        // splitting each flag too, and a third party's name may hold spaces.
        let credit_accounts = if !args.credit_accounts.is_empty() {
            args.credit_accounts.clone()
        } else if let Some(list) = env_list("TALER_LITE_CREDIT_ACCOUNTS", "credit_accounts")? {
            list
        } else if let Some(list) = &file.credit_accounts {
            list.clone()
        } else {
            vec![default_value("credit_accounts", DEFAULT_CREDIT_ACCOUNT)?]
        };
        if credit_accounts.is_empty() {
            return Err(bad("credit_accounts", "at least one payto URI is needed"));
        }
        let account_names = account_names(&credit_accounts)?;
        let dev = ephemeral || switch(&args.dev, &file.dev);
        let wire_gateway_auth = either(&args.wire_gateway_auth, &file.wire_gateway_auth).unwrap_or_default();
        if wire_gateway_auth == GatewayAuth::None && !dev {
            return Err(bad(
                "wire_gateway_auth",
                "none is allowed only with --dev or --ephemeral (an open gateway lets anyone move money)",
            ));
        }
        // The file's third parties are always loaded; flags or the environment add to them.
        let mut extern_keys = file.extern_keys.clone();
        if args.extern_keys.is_empty() {
            extern_keys.extend(env_list("TALER_LITE_EXTERN_KEYS", "extern_key")?.unwrap_or_default());
        } else {
            extern_keys.extend(args.extern_keys.iter().cloned());
        }
        let token: Option<String> = either(&args.token, &file.token).map(Into::into);
        let dev = ephemeral || switch(&args.dev, &file.dev);
        if let Some(token) = &token
            && token.chars().count() < MIN_PRODUCTION_TOKEN_CHARS
            && !dev
        {
            // A short token is guessed: 8 characters were accepted before.
            return Err(bad(
                "token",
                format!(
                    "a token needs at least {MIN_PRODUCTION_TOKEN_CHARS} characters outside --dev and --ephemeral"
                ),
            ));
        }
        Ok(Settings {
            listen: pick("listen", &args.listen, &file.listen, DEFAULT_LISTEN)?,
            base_url: either(&args.base_url, &file.base_url).map(Into::into),
            currency: pick("currency", &args.currency, &file.currency, DEFAULT_CURRENCY)?.into(),
            master_public_key: either(&args.master_public_key, &file.master_public_key).map(Into::into),
            master_key_file: master_key_file
                .unwrap_or_else(|| beside_database(&database, MASTER_KEY_FILE_NAME)),
            token,
            token_file: token_file.unwrap_or_else(|| beside_database(&database, TOKEN_FILE_NAME)),
            credit_accounts: credit_accounts.into_iter().map(Into::into).collect(),
            account_names,
            wire_gateway_user: pick(
                "wire_gateway_user",
                &args.wire_gateway_user,
                &file.wire_gateway_user,
                DEFAULT_WIRE_GATEWAY_USER,
            )?
            .into(),
            wire_gateway_auth,
            subject_formats: pick(
                "subject_formats",
                &args.subject_formats,
                &file.subject_formats,
                DEFAULT_SUBJECT_FORMATS,
            )?
            .into(),
            simple_subject: pick(
                "simple_subject",
                &args.simple_subject,
                &file.simple_subject,
                DEFAULT_SIMPLE_SUBJECT,
            )?,
            short_subject_length: pick(
                "short_subject_length",
                &args.short_subject_length,
                &file.short_subject_length,
                DEFAULT_SHORT_SUBJECT_LENGTH,
            )?
            .into(),
            qr_reference_prefix: pick(
                "qr_reference_prefix",
                &args.qr_reference_prefix,
                &file.qr_reference_prefix,
                DEFAULT_QR_REFERENCE_PREFIX,
            )?
            .into(),
            qr_creditor_postcode: pick(
                "qr_creditor_postcode",
                &args.qr_creditor_postcode,
                &file.qr_creditor_postcode,
                DEFAULT_QR_CREDITOR_POSTCODE,
            )?
            .into(),
            qr_creditor_town: pick(
                "qr_creditor_town",
                &args.qr_creditor_town,
                &file.qr_creditor_town,
                DEFAULT_QR_CREDITOR_TOWN,
            )?
            .into(),
            registration_lifetime: pick(
                "registration_lifetime",
                &args.registration_lifetime,
                &file.registration_lifetime,
                DEFAULT_REGISTRATION_LIFETIME,
            )?
            .into(),
            recurrent_lifetime: pick(
                "recurrent_lifetime",
                &args.recurrent_lifetime,
                &file.recurrent_lifetime,
                DEFAULT_RECURRENT_LIFETIME,
            )?
            .into(),
            max_upload: pick("max_upload", &args.max_upload, &file.max_upload, DEFAULT_MAX_UPLOAD)?.into(),
            max_json: pick("max_json", &args.max_json, &file.max_json, DEFAULT_MAX_JSON)?.into(),
            extern_keys: extern_keys.into_iter().map(|e| (e.key, e.name)).collect(),
            request_timeout: pick(
                "request_timeout",
                &args.request_timeout,
                &file.request_timeout,
                DEFAULT_REQUEST_TIMEOUT,
            )?
            .into(),
            clock_offset_s: match (args.clock_offset, args.timetravel) {
                (Some(_), Some(_)) => {
                    return Err(bad("timetravel", "conflicts with clock_offset, its newer name: give one"));
                }
                (Some(offset), None) => offset.into(),
                (None, Some(secs)) => secs.into(),
                (None, None) => file.clock_offset.map_or(0, i64::from),
            },
            frozen_clock_us: either(&args.frozen_clock, &file.frozen_clock).map(i64::from),
            max_db_pages: args.max_db_pages,
            checkpoints: pick("checkpoints", &args.checkpoints, &file.checkpoints, DEFAULT_CHECKPOINTS)?,
            ephemeral,
            exit_on_stdin_eof: switch(&args.exit_on_stdin_eof, &file.exit_on_stdin_eof),
            dev,
            fixtures: either(&args.fixtures, &file.fixtures),
            journal_size: either(&args.journal_size, &file.journal_size)
                .map_or(DEFAULT_JOURNAL_SIZE, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_snapshots: either(&args.max_snapshots, &file.max_snapshots)
                .map_or(DEFAULT_MAX_SNAPSHOTS, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            log_format: global.log_format.unwrap_or_default(),
            files_beside_database,
            database,
        })
    }

    /// The clock these settings start the server with (`--clock-offset`, `--frozen-clock`).
    pub fn clock(&self) -> crate::clock::Clock {
        crate::clock::Clock::starting(self.clock_offset_s.saturating_mul(1_000_000), self.frozen_clock_us)
    }

    /// These settings with the database, and the key and token files unless given
    /// explicitly, in `dir` (an ephemeral server's folder).
    pub fn placed_in(mut self, dir: &Path) -> Settings {
        let name = Path::new(DEFAULT_DATABASE).file_name().unwrap_or_default();
        self.database = dir.join(name);
        let (key_beside, token_beside) = self.files_beside_database;
        if key_beside {
            self.master_key_file = dir.join(MASTER_KEY_FILE_NAME);
        }
        if token_beside {
            self.token_file = dir.join(TOKEN_FILE_NAME);
        }
        self
    }
}

/// Each account's Wire Gateway name: its label, else `exchange` (first) or `exchange-n`;
/// two accounts with one name are refused.
fn account_names(accounts: &[CreditAccount]) -> Result<Vec<String>, ConfigError> {
    let mut names: Vec<String> = Vec::with_capacity(accounts.len());
    for (i, account) in accounts.iter().enumerate() {
        let name = match (&account.name, i) {
            (Some(name), _) => name.clone(),
            (None, 0) => DEFAULT_ACCOUNT_NAME.to_owned(),
            (None, i) => format!("{DEFAULT_ACCOUNT_NAME}-{}", i + 1),
        };
        if names.contains(&name) {
            return Err(bad("credit_accounts", format!("two accounts are named '{name}'")));
        }
        names.push(name);
    }
    Ok(names)
}

/// An on/off setting: the flag's (or environment's) value, else the file's, else off.
fn switch(flag: &Option<Switch>, file: &Option<Switch>) -> bool {
    either(flag, file).is_some_and(bool::from)
}

/// The flag's value (clap has put the environment's there when no flag was given), else the
/// file's.
fn either<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.as_ref().or(file.as_ref()).cloned()
}

/// [`either`], else the default.
fn pick<T>(setting: &str, flag: &Option<T>, file: &Option<T>, default: &str) -> Result<T, ConfigError>
where
    T: Clone + FromStr,
    T::Err: std::fmt::Display,
{
    match either(flag, file) {
        Some(value) => Ok(value),
        None => default_value(setting, default),
    }
}

/// Defaults are kept as text, in the form the README and `--help` show; the zero-configuration
/// test parses every one, so this fails only for a wrong constant.
fn default_value<T>(setting: &str, default: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    default.parse().map_err(|e| bad(setting, format!("default '{default}': {e}")))
}

/// A space-separated list from the environment.
fn env_list<T>(name: &str, setting: &str) -> Result<Option<Vec<T>>, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let Ok(value) = std::env::var(name) else { return Ok(None) };
    let list = value
        .split_whitespace()
        .map(|item| item.parse().map_err(|e| bad(setting, format!("{e} (from {name})"))));
    list.collect::<Result<Vec<T>, ConfigError>>().map(Some)
}

/// Where `serve` listens, from the text of a `listen` setting.
pub fn parse_listen(s: &str) -> Result<ListenAddr, ConfigError> {
    s.parse().map_err(|e| bad("listen", e))
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;

    /// The arguments of `serve ARGV...`, as clap reads them (the user's path).
    fn serve_args(argv: &[&str]) -> Result<ServeArgs, clap::Error> {
        let cmd = ServeArgs::augment_args(clap::Command::new("serve"));
        let matches = cmd.try_get_matches_from(std::iter::once("serve").chain(argv.iter().copied()))?;
        ServeArgs::from_arg_matches(&matches)
    }

    #[test]
    fn short_tokens_only_for_development_servers() {
        let resolve = |argv: &[&str]| {
            Settings::resolve(&GlobalArgs::default(), &serve_args(argv).unwrap(), &FileConfig::default())
        };
        let err = resolve(&["--token", "eight-chr-token"]).unwrap_err();
        assert_eq!(err.setting, "token");
        assert!(err.reason.contains("32") && !err.reason.contains("eight"), "{err}");
        assert!(resolve(&["--token", "eight-chr-token", "--dev"]).is_ok());
        assert!(resolve(&["--token", "eight-chr-token", "--ephemeral"]).is_ok());
        assert!(resolve(&["--token", &"x".repeat(32)]).is_ok());
    }

    /// The setting `serve ARGV...` is refused for, whether clap refuses a value or resolve a
    /// combination; with the whole message, which must be one line.
    fn refused(argv: &[&str], file: &FileConfig) -> (String, String) {
        match serve_args(argv) {
            Ok(args) => {
                let err = Settings::resolve(&GlobalArgs::default(), &args, file).unwrap_err();
                (err.setting.clone(), err.to_string())
            }
            Err(err) => {
                let text = err.to_string();
                let line = text.strip_prefix("error: ").unwrap_or_else(|| panic!("{text}"));
                (line.split_once(": ").unwrap().0.to_owned(), text)
            }
        }
    }

    fn file(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(text, Path::new("c.toml"))
    }

    fn size(s: &str) -> Result<u64, InvalidValue> {
        s.parse::<ByteSize>().map(u64::from)
    }

    fn duration(s: &str) -> Result<Duration, InvalidValue> {
        s.parse::<PositiveDuration>().map(Duration::from)
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size("2GiB").unwrap(), 2 << 30);
        assert_eq!(size("500MB").unwrap(), 500_000_000);
        assert_eq!(size("1024").unwrap(), 1024);
        assert!(size("1.5GiB").is_err());
        assert!(size("0").is_err());
        assert!(size("99999999999TiB").is_err());
        assert_eq!(duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(duration("90").unwrap(), Duration::from_secs(90));
        assert!(duration("3 fortnights").is_err());
    }

    #[test]
    fn size_units_keep_their_meaning() {
        assert_eq!(size("1MiB").unwrap(), 1 << 20);
        assert_eq!(size("64KiB").unwrap(), 64 << 10);
        assert_eq!(size("64kib").unwrap(), 64 << 10);
        assert_eq!(size("1KB").unwrap(), 1_000);
        assert_eq!(size("3GB").unwrap(), 3_000_000_000);
        assert_eq!(size("2 GiB").unwrap(), 2 << 30);
        assert_eq!(size("10b").unwrap(), 10);
        // A lone letter has always been binary here, whatever bytesize makes of it.
        assert_eq!(size("2g").unwrap(), 2 << 30);
        assert_eq!(size("4K").unwrap(), 4 << 10);
        assert_eq!(size("1m").unwrap(), 1 << 20);
        assert_eq!(size("1t").unwrap(), 1 << 40);
        for bad in [
            "",
            "GiB",
            "-1",
            "1 fathom",
            "1 2GiB",
            "1,5GiB",
            "2GiB!",
            "18446744073709551615",
            "99999999999999999999",
        ] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn humantime_forms() {
        let secs = |s: &str| duration(s).unwrap().as_secs();
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("15m"), 900);
        assert_eq!(secs("15min"), 900);
        assert_eq!(secs("12h"), 12 * 3600);
        assert_eq!(secs("2w"), 14 * 86_400);
        assert_eq!(secs("1h 30m"), 5400);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("1.5h"), 5400);
        assert_eq!(secs("30 d"), 30 * 86_400);
        assert_eq!(secs(" 365d "), 365 * 86_400);
        assert_eq!(secs("2 weeks"), 14 * 86_400);
        for bad in ["", "0", "0s", "500ms", "1 0s", "1 30m", "d", "30x", "-5s", "99999999999999999999d"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        let f = file("request_timeout = 45\nregistration_lifetime = \"1h 30m\"").unwrap();
        let s = Settings::resolve(&GlobalArgs::default(), &ServeArgs::default(), &f).unwrap();
        assert_eq!(s.request_timeout, Duration::from_secs(45));
        assert_eq!(s.registration_lifetime, Duration::from_secs(5400));
        let args = serve_args(&["--recurrent-lifetime", "2w 1d"]).unwrap();
        let s = Settings::resolve(&GlobalArgs::default(), &args, &f).unwrap();
        assert_eq!(s.recurrent_lifetime, Duration::from_secs(15 * 86_400));
    }

    #[test]
    fn short_subject_length_from_toml_integer_or_string() {
        for text in ["short_subject_length = 8", "short_subject_length = \"8\""] {
            let s = Settings::resolve(&GlobalArgs::default(), &ServeArgs::default(), &file(text).unwrap())
                .unwrap();
            assert_eq!(s.short_subject_length, 8, "{text}");
        }
        for text in [
            "short_subject_length = 30",
            "short_subject_length = 0",
            "short_subject_length = -3",
            "short_subject_length = \"twelve\"",
            "short_subject_length = true",
        ] {
            let err = file(text).unwrap_err();
            assert_eq!(err.setting, "short_subject_length", "{text}: {err}");
            assert!(err.reason.starts_with("c.toml line 1: "), "{err}");
        }
        let args = serve_args(&["--short-subject-length", "20"]).unwrap();
        let s = Settings::resolve(&GlobalArgs::default(), &args, &FileConfig::default()).unwrap();
        assert_eq!(s.short_subject_length, 20);
        assert_eq!(
            refused(&["--short-subject-length", "25"], &FileConfig::default()).0,
            "short_subject_length"
        );
    }

    #[test]
    fn bad_size_names_max_upload() {
        let err = file("currency = \"EUR\"\nmax_upload = \"lots\"\n").unwrap_err();
        assert_eq!(err.setting, "max_upload");
        assert_eq!(err.to_string(), "max_upload: c.toml line 2: 'lots' is not a size such as 2GiB or 500MB");
        let (setting, message) = refused(&["--max-upload", "1.5GiB"], &FileConfig::default());
        assert_eq!(setting, "max_upload");
        assert_eq!(message.trim().lines().count(), 1, "{message}");
        assert_eq!(file("max_upload = 4096").unwrap().max_upload.map(u64::from), Some(4096));
        assert_eq!(file("max_json = 0").unwrap_err().setting, "max_json");
    }

    #[test]
    fn file_errors_name_key_and_line() {
        let err = file("currency = \"EUR\"\ncurency = \"EUR\"").unwrap_err();
        assert!(err.to_string().contains("curency"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(file("currency = ").unwrap_err().setting, "--config");
        let key = crate::crypto::EddsaPrivateKey::generate().unwrap().public_key();
        let f = file(&format!("[[extern]]\npub = \"{key}\"\nname = \" Acme KYC \"\n")).unwrap();
        assert_eq!(f.extern_keys, vec![ExternKeySpec { key, name: "Acme KYC".into() }]);
        let err = file("[[extern]]\npub = \"nokey\"\nname = \"Acme\"\n").unwrap_err();
        assert_eq!(err.setting, "extern", "{err}");
        let err = file(&format!("[[extern]]\npub = \"{key}\"\n")).unwrap_err();
        assert_eq!(err.setting, "extern", "{err}");
    }

    #[test]
    fn flags_of_every_kind() {
        let key = crate::crypto::EddsaPrivateKey::generate().unwrap().public_key().to_string();
        let args = serve_args(&[
            "--listen",
            "unix:/tmp/t.sock",
            "--base-url",
            "https://example.com/taler",
            "--master-public-key",
            &key,
            "--token",
            "secret-token:abcdefghijklmnopqrstuvwxyz",
            "--credit-account",
            DEFAULT_CREDIT_ACCOUNT,
            "--subject-formats",
            "uri,simple,URI",
            "--simple-subject",
            "SHORT",
            "--qr-reference-prefix",
            "007",
            "--extern-key",
            &format!("{key}=Acme KYC"),
            "--timetravel",
            "-3600",
            "--max-json",
            "64KiB",
        ])
        .unwrap();
        let s = Settings::resolve(&GlobalArgs::default(), &args, &FileConfig::default()).unwrap();
        assert_eq!(s.listen, ListenAddr::Unix("/tmp/t.sock".into()));
        assert_eq!(s.base_url.as_deref(), Some("https://example.com/taler/"));
        assert_eq!(s.master_public_key.map(|k| k.to_string()), Some(key.clone()));
        assert_eq!(s.token.as_deref(), Some("secret-token:abcdefghijklmnopqrstuvwxyz"));
        assert_eq!(s.subject_formats, vec![SubjectFormat::Simple, SubjectFormat::Uri]);
        assert_eq!(s.simple_subject, SimpleSubjectStyle::Short);
        assert_eq!(s.qr_reference_prefix, "007");
        assert_eq!(s.extern_keys.len(), 1);
        assert_eq!(s.extern_keys[0].1, "Acme KYC");
        assert_eq!(s.clock_offset_s, -3600);
        assert_eq!(s.max_json, 64 << 10);
        for (argv, name) in [
            (&["--token", "short"][..], "token"),
            (&["--qr-reference-prefix", "1234567"][..], "qr_reference_prefix"),
            (&["--simple-subject", "medium"][..], "simple_subject"),
            (&["--base-url", "ftp://x"][..], "base_url"),
            (&["--timetravel", "soon"][..], "timetravel"),
            (&["--clock-offset", "soon"][..], "clock_offset"),
            (&["--clock-offset", "3d", "--timetravel", "5"][..], "timetravel"),
            (&["--frozen-clock", "2027-01-01"][..], "frozen_clock"),
            (&["--registration-lifetime", "0s"][..], "registration_lifetime"),
            (&["--master-public-key", "nokey"][..], "master_public_key"),
        ] {
            let (setting, message) = refused(argv, &FileConfig::default());
            assert_eq!(setting, name, "{message}");
            assert_eq!(message.trim().lines().count(), 1, "{message}");
            // The token is a secret: a refusal does not repeat it.
            assert!(name != "token" || !message.contains("short"), "{message}");
        }
    }

    #[test]
    fn clock_settings() {
        let resolve = |argv: &[&str], text: &str| {
            Settings::resolve(&GlobalArgs::default(), &serve_args(argv).unwrap(), &file(text).unwrap())
                .unwrap()
        };
        assert_eq!(resolve(&["--clock-offset", "3d"], "").clock_offset_s, 3 * 86_400);
        assert_eq!(resolve(&["--clock-offset", "-1h 30m"], "").clock_offset_s, -5400);
        assert_eq!(resolve(&["--clock-offset", "-90"], "").clock_offset_s, -90);
        assert_eq!(resolve(&[], "clock_offset = \"2d\"").clock_offset_s, 2 * 86_400);
        assert_eq!(resolve(&[], "clock_offset = -60").clock_offset_s, -60);
        let s = resolve(&["--frozen-clock", "2027-01-01T00:00:00Z"], "");
        assert_eq!(s.frozen_clock_us, Some(1_798_761_600_000_000));
        assert_eq!(
            resolve(&[], "frozen_clock = \"2027-01-01T01:00:00+01:00\"").frozen_clock_us,
            s.frozen_clock_us
        );
    }

    #[test]
    fn defaults_are_the_zero_config_ones() {
        let s =
            Settings::resolve(&GlobalArgs::default(), &ServeArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(s.database, PathBuf::from(DEFAULT_DATABASE));
        assert_eq!(s.listen, ListenAddr::Tcp("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(s.currency, "KUDOS");
        assert_eq!(s.credit_accounts.len(), 1);
        assert_eq!(
            s.subject_formats,
            vec![SubjectFormat::Simple, SubjectFormat::Uri, SubjectFormat::ChQrBill]
        );
        assert_eq!(s.master_key_file, PathBuf::from("./taler-lite-master.key"));
        assert_eq!(s.max_upload, 2 << 30);
        assert_eq!(s.max_json, 1 << 20);
    }

    #[test]
    fn fixture_settings_from_flag_environment_and_file() {
        let resolve = |argv: &[&str], text: &str| {
            Settings::resolve(&GlobalArgs::default(), &serve_args(argv).unwrap(), &file(text).unwrap())
        };
        let s = resolve(&[], "").unwrap();
        assert!(!s.ephemeral && !s.dev && !s.exit_on_stdin_eof && s.fixtures.is_none());
        let s = resolve(&["--ephemeral", "--exit-on-stdin-eof", "--fixtures", "f.toml"], "").unwrap();
        assert!(s.ephemeral && s.exit_on_stdin_eof);
        assert!(s.dev, "an ephemeral server has the development routes");
        assert_eq!(s.fixtures, Some(PathBuf::from("f.toml")));
        let text = "ephemeral = true\ndev = \"yes\"\nexit_on_stdin_eof = false\nfixtures = \"g.toml\"\n";
        let s = resolve(&[], text).unwrap();
        assert!(s.ephemeral && s.dev && !s.exit_on_stdin_eof);
        // The flag's explicit value beats the file's.
        let s = resolve(&["--ephemeral=false", "--dev=off", "--exit-on-stdin-eof=1"], text).unwrap();
        assert!(!s.ephemeral && !s.dev && s.exit_on_stdin_eof);
        assert_eq!(s.fixtures, Some(PathBuf::from("g.toml")));
        let (setting, message) = refused(&["--dev=maybe"], &FileConfig::default());
        assert_eq!(setting, "dev", "{message}");
        assert_eq!(file("dev = 3").unwrap_err().setting, "dev");
    }

    #[test]
    fn checkpoints_from_flag_and_file() {
        let resolve = |argv: &[&str], text: &str| {
            Settings::resolve(&GlobalArgs::default(), &serve_args(argv).unwrap(), &file(text).unwrap())
        };
        assert_eq!(resolve(&[], "").unwrap().checkpoints, Checkpoints::Auto);
        assert_eq!(resolve(&["--checkpoints", "external"], "").unwrap().checkpoints, Checkpoints::External);
        let text = "checkpoints = \"external\"\n";
        assert_eq!(resolve(&[], text).unwrap().checkpoints, Checkpoints::External);
        assert_eq!(edit_checkpoints(&file(text).unwrap()).unwrap(), Checkpoints::External);
        assert_eq!(resolve(&["--checkpoints=AUTO"], text).unwrap().checkpoints, Checkpoints::Auto);
        let (setting, message) = refused(&["--checkpoints", "litestream"], &FileConfig::default());
        assert_eq!(setting, "checkpoints", "{message}");
        assert!(message.contains("neither 'auto' nor 'external'"), "{message}");
        assert_eq!(file("checkpoints = \"never\"").unwrap_err().setting, "checkpoints");
    }

    #[test]
    fn an_ephemeral_server_moves_only_the_files_it_defaults() {
        let given = GlobalArgs { database: Some("x.sqlite3".into()), ..GlobalArgs::default() };
        let args = serve_args(&["--ephemeral"]).unwrap();
        let err = Settings::resolve(&given, &args, &FileConfig::default()).unwrap_err();
        assert_eq!(err.setting, "ephemeral");
        assert!(err.reason.contains("database x.sqlite3"), "{err}");
        let err =
            Settings::resolve(&GlobalArgs::default(), &args, &file("database = \"y\"").unwrap()).unwrap_err();
        assert_eq!(err.setting, "ephemeral");

        let dir = Path::new("/tmp/taler-lite-test");
        let s =
            Settings::resolve(&GlobalArgs::default(), &args, &FileConfig::default()).unwrap().placed_in(dir);
        assert_eq!(s.database, dir.join("taler-lite.sqlite3"));
        assert_eq!(s.master_key_file, dir.join(MASTER_KEY_FILE_NAME));
        assert_eq!(s.token_file, dir.join(TOKEN_FILE_NAME));
        let args = serve_args(&["--ephemeral", "--master-key-file", "./master.key"]).unwrap();
        let s =
            Settings::resolve(&GlobalArgs::default(), &args, &FileConfig::default()).unwrap().placed_in(dir);
        assert_eq!(s.master_key_file, PathBuf::from("./master.key"), "a key given is kept where it is");
        assert_eq!(s.token_file, dir.join(TOKEN_FILE_NAME));
    }

    #[test]
    fn flag_beats_file() {
        let file: FileConfig = toml::from_str("currency = \"EUR\"\nlisten = \"127.0.0.1:9000\"").unwrap();
        let args = ServeArgs { currency: Some("CHF".parse().unwrap()), ..ServeArgs::default() };
        let s = Settings::resolve(&GlobalArgs::default(), &args, &file).unwrap();
        assert_eq!(s.currency, "CHF");
        assert_eq!(s.listen, ListenAddr::Tcp("127.0.0.1:9000".parse().unwrap()));
    }

    #[test]
    fn bad_settings_name_themselves() {
        let cases: [&[&str]; 6] = [
            &["--currency", "kudos"],
            &["--listen", "nowhere"],
            &["--credit-account", "payto://iban/DE00"],
            &["--subject-formats", "SIMPLE,FAX"],
            &["--max-upload", "lots"],
            &["--extern-key", "nokey"],
        ];
        let names = ["currency", "listen", "credit_accounts", "subject_formats", "max_upload", "extern_key"];
        for (argv, name) in cases.iter().zip(names) {
            let (setting, message) = refused(argv, &FileConfig::default());
            assert_eq!(setting, name, "{message}");
        }
        assert!(toml::from_str::<FileConfig>("curency = \"EUR\"").is_err());
        let empty = file("credit_accounts = []").unwrap();
        assert_eq!(refused(&[], &empty).0, "credit_accounts");
    }
}
