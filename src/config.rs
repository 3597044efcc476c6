//! Settings: command-line flag > environment variable > TOML file > default.
//!
//! `taler-lite serve` with nothing set must come up ready to use (a fixture
//! server for CI and for developers), so every setting has a default, and the
//! secrets a fresh start needs (a development master key, an operator token)
//! are created on first start in files beside the database, mode 0600, and
//! reused afterwards. A bad setting is one line naming it, never a panic.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::crypto::{EddsaPrivateKey, EddsaPublicKey};
use crate::payto::Payto;

pub const DEFAULT_DATABASE: &str = "./taler-lite.sqlite3";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
pub const DEFAULT_CURRENCY: &str = "KUDOS";
pub const DEFAULT_CREDIT_ACCOUNT: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";
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

/// Where the database lives; shared by every command.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct GlobalArgs {
    /// TOML configuration file (flags and environment take precedence)
    #[arg(long, global = true, env = "TALER_LITE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// SQLite database file [default: ./taler-lite.sqlite3]
    #[arg(long, global = true, env = "TALER_LITE_DATABASE", value_name = "FILE")]
    pub database: Option<PathBuf>,
}

/// Settings of `serve` (see README for the table).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// HOST:PORT or unix:PATH [default: 127.0.0.1:8081]
    #[arg(long, env = "TALER_LITE_LISTEN")]
    pub listen: Option<String>,
    /// Public base URL [default: from the listen address]
    #[arg(long, env = "TALER_LITE_BASE_URL")]
    pub base_url: Option<String>,
    /// Currency [default: KUDOS]
    #[arg(long, env = "TALER_LITE_CURRENCY")]
    pub currency: Option<String>,
    /// Exchange master public key (base32) [default: from the master key file]
    #[arg(long, env = "TALER_LITE_MASTER_PUBLIC_KEY")]
    pub master_public_key: Option<String>,
    /// Master private key file (base32 seed) [default: taler-lite-master.key beside the database, made if missing]
    #[arg(long, env = "TALER_LITE_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Operator bearer token [default: from the token file]
    #[arg(long, env = "TALER_LITE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Operator token file [default: taler-lite-operator.token beside the database, made if missing]
    #[arg(long, env = "TALER_LITE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Exchange bank account (payto URI); repeat for several. Environment:
    /// TALER_LITE_CREDIT_ACCOUNTS, space-separated [default: a Swiss QR-IBAN example]
    #[arg(long = "credit-account", value_name = "PAYTO")]
    pub credit_accounts: Vec<String>,
    /// Subject formats, comma-separated [default: SIMPLE,URI,CH_QR_BILL]
    #[arg(long, env = "TALER_LITE_SUBJECT_FORMATS")]
    pub subject_formats: Option<String>,
    /// SIMPLE subject style: full or short [default: full]
    #[arg(long, env = "TALER_LITE_SIMPLE_SUBJECT")]
    pub simple_subject: Option<String>,
    /// Length of short subjects [default: 12]
    #[arg(long, env = "TALER_LITE_SHORT_SUBJECT_LENGTH")]
    pub short_subject_length: Option<String>,
    /// Prefix of QR references, 0-6 digits [default: empty]
    #[arg(long, env = "TALER_LITE_QR_REFERENCE_PREFIX")]
    pub qr_reference_prefix: Option<String>,
    /// Lifetime of one-shot registrations, e.g. 30d, 12h, 90s [default: 30d]
    #[arg(long, env = "TALER_LITE_REGISTRATION_LIFETIME")]
    pub registration_lifetime: Option<String>,
    /// Lifetime of recurrent registrations [default: 365d]
    #[arg(long, env = "TALER_LITE_RECURRENT_LIFETIME")]
    pub recurrent_lifetime: Option<String>,
    /// Largest bulk KYC upload, e.g. 2GiB, 500MB [default: 2GiB]
    #[arg(long, env = "TALER_LITE_MAX_UPLOAD")]
    pub max_upload: Option<String>,
    /// Largest JSON body [default: 1MiB]
    #[arg(long, env = "TALER_LITE_MAX_JSON")]
    pub max_json: Option<String>,
    /// Third party for /kyc-bulk, PUB=NAME; repeat for several. Environment:
    /// TALER_LITE_EXTERN_KEYS, space-separated
    #[arg(long = "extern-key", value_name = "PUB=NAME")]
    pub extern_keys: Vec<String>,
    /// Idle limit for a client sending headers or body, e.g. 30s [default: 30s]
    #[arg(long, env = "TALER_LITE_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// Shift the server's clock by this many seconds (may be negative), as
    /// GNUnet's --timetravel does: for testing expirations and signed timestamps
    #[arg(long, env = "TALER_LITE_TIMETRAVEL", allow_hyphen_values = true, value_name = "SECONDS")]
    pub timetravel: Option<i64>,
    /// Cap the database at this many 16 KiB pages (to test a full disk)
    #[arg(long, env = "TALER_LITE_MAX_DB_PAGES", hide = true)]
    pub max_db_pages: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database: Option<PathBuf>,
    pub listen: Option<String>,
    pub base_url: Option<String>,
    pub currency: Option<String>,
    pub master_public_key: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub credit_accounts: Option<Vec<String>>,
    pub subject_formats: Option<String>,
    pub simple_subject: Option<String>,
    pub short_subject_length: Option<u32>,
    pub qr_reference_prefix: Option<String>,
    pub registration_lifetime: Option<String>,
    pub recurrent_lifetime: Option<String>,
    pub max_upload: Option<String>,
    pub max_json: Option<String>,
    pub request_timeout: Option<String>,
    #[serde(rename = "extern", default)]
    pub extern_keys: Vec<FileExtern>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileExtern {
    #[serde(rename = "pub")]
    pub extern_pub: String,
    pub name: String,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let Some(path) = path else { return Ok(FileConfig::default()) };
        let text =
            fs::read_to_string(path).map_err(|e| bad("--config", format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| bad("--config", format!("{}: {}", path.display(), e.message())))
    }
}

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A wire-transfer subject format of the prepared-transfer API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubjectFormat {
    Simple,
    Uri,
    ChQrBill,
}

impl SubjectFormat {
    pub fn name(self) -> &'static str {
        match self {
            SubjectFormat::Simple => "SIMPLE",
            SubjectFormat::Uri => "URI",
            SubjectFormat::ChQrBill => "CH_QR_BILL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimpleSubjectStyle {
    Full,
    Short,
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
    pub subject_formats: Vec<SubjectFormat>,
    pub simple_subject: SimpleSubjectStyle,
    pub short_subject_length: usize,
    pub qr_reference_prefix: String,
    pub registration_lifetime: Duration,
    pub recurrent_lifetime: Duration,
    pub max_upload: u64,
    pub max_json: u64,
    pub extern_keys: Vec<(EddsaPublicKey, String)>,
    pub request_timeout: Duration,
    pub timetravel: i64,
    pub max_db_pages: Option<u64>,
}

/// The database path of any command: flag or environment, then file, then default.
pub fn database_path(global: &GlobalArgs, file: &FileConfig) -> PathBuf {
    global
        .database
        .clone()
        .or_else(|| file.database.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE))
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
        let listen =
            parse_listen(&pick(&args.listen, &file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()))?;
        let base_url = pick(&args.base_url, &file.base_url).map(|u| parse_base_url(&u)).transpose()?;
        let currency = pick(&args.currency, &file.currency).unwrap_or_else(|| DEFAULT_CURRENCY.into());
        if currency.is_empty() || currency.len() > 11 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad("currency", format!("'{currency}' is not 1-11 letters A-Z")));
        }
        let master_public_key = pick(&args.master_public_key, &file.master_public_key)
            .map(|k| k.trim().parse::<EddsaPublicKey>().map_err(|e| bad("master_public_key", e)))
            .transpose()?;
        let master_key_file = args
            .master_key_file
            .clone()
            .or_else(|| file.master_key_file.clone())
            .unwrap_or_else(|| beside_database(&database, MASTER_KEY_FILE_NAME));
        let token = pick(&args.token, &file.token);
        if let Some(t) = &token {
            check_token("token", t)?;
        }
        let token_file = args
            .token_file
            .clone()
            .or_else(|| file.token_file.clone())
            .unwrap_or_else(|| beside_database(&database, TOKEN_FILE_NAME));
        let accounts = if !args.credit_accounts.is_empty() {
            args.credit_accounts.clone()
        } else if let Some(list) = env_list("TALER_LITE_CREDIT_ACCOUNTS") {
            list
        } else {
            file.credit_accounts.clone().unwrap_or_else(|| vec![DEFAULT_CREDIT_ACCOUNT.into()])
        };
        let accounts: Vec<String> = accounts.into_iter().filter(|a| !a.trim().is_empty()).collect();
        if accounts.is_empty() {
            return Err(bad("credit_accounts", "at least one payto URI is needed"));
        }
        let credit_accounts = accounts
            .iter()
            .map(|a| a.trim().parse::<Payto>().map_err(|e| bad("credit_accounts", format!("'{a}': {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let subject_formats = parse_subject_formats(
            &pick(&args.subject_formats, &file.subject_formats)
                .unwrap_or_else(|| "SIMPLE,URI,CH_QR_BILL".into()),
        )?;
        let simple_subject = match pick(&args.simple_subject, &file.simple_subject)
            .as_deref()
            .unwrap_or("full")
        {
            s if s.eq_ignore_ascii_case("full") => SimpleSubjectStyle::Full,
            s if s.eq_ignore_ascii_case("short") => SimpleSubjectStyle::Short,
            other => return Err(bad("simple_subject", format!("'{other}' is neither 'full' nor 'short'"))),
        };
        let short_subject_length = match args.short_subject_length.clone() {
            Some(s) => s
                .trim()
                .parse::<u32>()
                .map_err(|_| bad("short_subject_length", format!("'{s}' is not a number")))?,
            None => file.short_subject_length.unwrap_or(12),
        };
        if !(1..=24).contains(&short_subject_length) {
            return Err(bad(
                "short_subject_length",
                format!("{short_subject_length} is not between 1 and 24"),
            ));
        }
        let qr_reference_prefix =
            pick(&args.qr_reference_prefix, &file.qr_reference_prefix).unwrap_or_default();
        if qr_reference_prefix.len() > 6 || !qr_reference_prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("qr_reference_prefix", format!("'{qr_reference_prefix}' is not 0-6 digits")));
        }
        let registration_lifetime = parse_duration(
            "registration_lifetime",
            &pick(&args.registration_lifetime, &file.registration_lifetime).unwrap_or_else(|| "30d".into()),
        )?;
        let recurrent_lifetime = parse_duration(
            "recurrent_lifetime",
            &pick(&args.recurrent_lifetime, &file.recurrent_lifetime).unwrap_or_else(|| "365d".into()),
        )?;
        let max_upload = parse_size(
            "max_upload",
            &pick(&args.max_upload, &file.max_upload).unwrap_or_else(|| "2GiB".into()),
        )?;
        let max_json =
            parse_size("max_json", &pick(&args.max_json, &file.max_json).unwrap_or_else(|| "1MiB".into()))?;
        let request_timeout = parse_duration(
            "request_timeout",
            &pick(&args.request_timeout, &file.request_timeout).unwrap_or_else(|| "30s".into()),
        )?;
        let mut extern_keys = Vec::new();
        for entry in &file.extern_keys {
            extern_keys.push(parse_extern_entry("extern", &entry.extern_pub, &entry.name)?);
        }
        // A flag holds one PUB=NAME (the name may contain spaces); the environment
        // variable holds several, separated by spaces.
        let specs = if args.extern_keys.is_empty() {
            env_list("TALER_LITE_EXTERN_KEYS").unwrap_or_default()
        } else {
            args.extern_keys.clone()
        };
        for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
            let (key, name) =
                spec.split_once('=').ok_or_else(|| bad("extern_key", format!("'{spec}' is not PUB=NAME")))?;
            extern_keys.push(parse_extern_entry("extern_key", key, name)?);
        }
        Ok(Settings {
            database,
            listen,
            base_url,
            currency,
            master_public_key,
            master_key_file,
            token,
            token_file,
            credit_accounts,
            subject_formats,
            simple_subject,
            short_subject_length: short_subject_length as usize,
            qr_reference_prefix,
            registration_lifetime,
            recurrent_lifetime,
            max_upload,
            max_json,
            extern_keys,
            request_timeout,
            timetravel: args.timetravel.unwrap_or(0),
            max_db_pages: args.max_db_pages,
        })
    }
}

/// A space-separated list from the environment.
fn env_list(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok()?;
    Some(value.split_whitespace().map(str::to_owned).collect())
}

fn pick(flag: &Option<String>, file: &Option<String>) -> Option<String> {
    flag.clone().or_else(|| file.clone())
}

fn parse_extern_entry(setting: &str, key: &str, name: &str) -> Result<(EddsaPublicKey, String), ConfigError> {
    let key = key.trim().parse::<EddsaPublicKey>().map_err(|e| bad(setting, format!("'{key}': {e}")))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad(setting, "the name is empty"));
    }
    Ok((key, name.to_owned()))
}

pub fn parse_listen(s: &str) -> Result<ListenAddr, ConfigError> {
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(bad("listen", "unix: needs a socket path"));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| bad("listen", format!("'{s}' is not HOST:PORT or unix:PATH ({e})")))?;
    addrs.next().map(ListenAddr::Tcp).ok_or_else(|| bad("listen", format!("'{s}' resolves to no address")))
}

fn parse_base_url(s: &str) -> Result<String, ConfigError> {
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || s.contains(char::is_whitespace) {
        return Err(bad("base_url", format!("'{s}' is not an http:// or https:// URL")));
    }
    Ok(if s.ends_with('/') { s.to_owned() } else { format!("{s}/") })
}

fn parse_subject_formats(s: &str) -> Result<Vec<SubjectFormat>, ConfigError> {
    let mut formats = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let format = match part.to_ascii_uppercase().as_str() {
            "SIMPLE" => SubjectFormat::Simple,
            "URI" => SubjectFormat::Uri,
            "CH_QR_BILL" => SubjectFormat::ChQrBill,
            _ => {
                return Err(bad(
                    "subject_formats",
                    format!("unknown format '{part}' (SIMPLE, URI, CH_QR_BILL)"),
                ));
            }
        };
        if !formats.contains(&format) {
            formats.push(format);
        }
    }
    if formats.is_empty() {
        return Err(bad("subject_formats", "at least one format is needed"));
    }
    // The API answers subjects in this order whatever order they were configured in.
    formats.sort();
    Ok(formats)
}

/// `90s`, `15m`, `12h`, `30d`, `2w`; a bare number is seconds.
pub fn parse_duration(setting: &str, s: &str) -> Result<Duration, ConfigError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 =
        digits.parse().map_err(|_| bad(setting, format!("'{s}' is not a duration such as 30d, 12h, 90s")))?;
    let factor = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad(setting, format!("'{s}': unknown unit (s, m, h, d, w)"))),
    };
    let secs = n.checked_mul(factor).ok_or_else(|| bad(setting, format!("'{s}' is too long")))?;
    if secs == 0 {
        return Err(bad(setting, "must be more than zero"));
    }
    Ok(Duration::from_secs(secs))
}

/// `2GiB`, `500MB`, `1MiB`, `64KiB`; a bare number is bytes.
pub fn parse_size(setting: &str, s: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 =
        digits.parse().map_err(|_| bad(setting, format!("'{s}' is not a size such as 2GiB or 500MB")))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" | "t" => 1 << 40,
        _ => return Err(bad(setting, format!("'{s}': unknown unit (KiB, MiB, GiB, KB, MB, GB)"))),
    };
    let bytes = n.checked_mul(factor).ok_or_else(|| bad(setting, format!("'{s}' is too large")))?;
    if bytes == 0 {
        return Err(bad(setting, "must be more than zero"));
    }
    Ok(bytes)
}

fn check_token(setting: &str, token: &str) -> Result<(), ConfigError> {
    if token.len() < 8 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(setting, "a token needs at least 8 printable characters without spaces"));
    }
    Ok(())
}

/// Writes a new secret file, readable by its owner only, synced to disk.
pub fn create_secret_file(path: &Path, content: &str) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Reads a master private key file (base32 seed, one line).
pub fn read_master_key(path: &Path) -> Result<EddsaPrivateKey, ConfigError> {
    let text =
        fs::read_to_string(path).map_err(|e| bad("master_key_file", format!("{}: {e}", path.display())))?;
    text.trim()
        .parse::<EddsaPrivateKey>()
        .map_err(|e| bad("master_key_file", format!("{}: not a base32 Ed25519 seed ({e})", path.display())))
}

/// The master public key the server checks signatures with, and whether a
/// private key file was created just now.
pub fn master_key(settings: &Settings) -> Result<(EddsaPublicKey, bool), ConfigError> {
    let path = &settings.master_key_file;
    if let Some(public) = settings.master_public_key {
        // A production exchange keeps its master key offline: make none here.
        if path.exists()
            && let Ok(private) = read_master_key(path)
            && private.public_key() != public
        {
            log::warn!(
                "{} does not hold the private key of the configured master public key; `offline` commands using it will sign for another key",
                path.display()
            );
        }
        return Ok((public, false));
    }
    if path.exists() {
        return Ok((read_master_key(path)?.public_key(), false));
    }
    let private = EddsaPrivateKey::generate().map_err(|e| bad("master_key_file", e))?;
    create_secret_file(path, &private.to_base32())
        .map_err(|e| bad("master_key_file", format!("cannot create {}: {e}", path.display())))?;
    Ok((private.public_key(), true))
}

/// The operator token, and whether it was created just now.
pub fn operator_token(settings: &Settings) -> Result<(String, bool), ConfigError> {
    if let Some(token) = &settings.token {
        return Ok((token.clone(), false));
    }
    let path = &settings.token_file;
    if path.exists() {
        let token = fs::read_to_string(path)
            .map_err(|e| bad("token_file", format!("{}: {e}", path.display())))?
            .trim()
            .to_owned();
        check_token("token_file", &token)?;
        return Ok((token, false));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| bad("token_file", format!("no randomness: {e}")))?;
    let token = format!("secret-token:{}", crate::base32::encode(&bytes));
    create_secret_file(path, &token)
        .map_err(|e| bad("token_file", format!("cannot create {}: {e}", path.display())))?;
    Ok((token, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("x", "2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("x", "500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("x", "1024").unwrap(), 1024);
        assert!(parse_size("x", "1.5GiB").is_err());
        assert!(parse_size("x", "0").is_err());
        assert!(parse_size("x", "99999999999TiB").is_err());
        assert_eq!(parse_duration("x", "30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_duration("x", "90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("x", "3 fortnights").is_err());
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
    fn flag_beats_file() {
        let file: FileConfig = toml::from_str("currency = \"EUR\"\nlisten = \"127.0.0.1:9000\"").unwrap();
        let args = ServeArgs { currency: Some("CHF".into()), ..ServeArgs::default() };
        let s = Settings::resolve(&GlobalArgs::default(), &args, &file).unwrap();
        assert_eq!(s.currency, "CHF");
        assert_eq!(s.listen, ListenAddr::Tcp("127.0.0.1:9000".parse().unwrap()));
    }

    #[test]
    fn bad_settings_name_themselves() {
        let cases = [
            ServeArgs { currency: Some("kudos".into()), ..ServeArgs::default() },
            ServeArgs { listen: Some("nowhere".into()), ..ServeArgs::default() },
            ServeArgs { credit_accounts: vec!["payto://iban/DE00".into()], ..ServeArgs::default() },
            ServeArgs { subject_formats: Some("SIMPLE,FAX".into()), ..ServeArgs::default() },
            ServeArgs { max_upload: Some("lots".into()), ..ServeArgs::default() },
            ServeArgs { extern_keys: vec!["nokey".into()], ..ServeArgs::default() },
        ];
        let names = ["currency", "listen", "credit_accounts", "subject_formats", "max_upload", "extern_key"];
        for (args, name) in cases.iter().zip(names) {
            let err = Settings::resolve(&GlobalArgs::default(), args, &FileConfig::default()).unwrap_err();
            assert_eq!(err.setting, name, "{err}");
        }
        assert!(toml::from_str::<FileConfig>("curency = \"EUR\"").is_err());
    }
}
