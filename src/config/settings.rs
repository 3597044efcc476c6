//! The settings of `serve`, each declared once: its flag and environment variable (clap), its
//! TOML key (serde, same field), its value type, its default and how it is resolved.
//!
//! To add a setting, add one entry below, then use `settings.<name>` where it is needed:
//!
//! ```text
//! /// Largest number of staged uploads, e.g. 64
//! #[arg(long, env = "TALER_LITE_MAX_STAGED", value_name = "N")]
//! max_staged: Option<Count> => usize, default("64");
//! ```
//!
//! - the field name is the TOML key and the name its errors carry; the flag is `--max-staged`
//!   (clap's `long`), the variable is written out in `env`;
//! - the type in `Option<...>` is a value type of `values.rs` (`ByteSize`, `PositiveDuration`,
//!   `Count`, `Switch`, ...; a new one needs `FromStr` and `setting_text!`), the type after
//!   `=>` what [`Settings`] holds (converted with `Into`);
//! - the mode: `default("text")` (parsed like a user's value, shown in `--help`),
//!   `optional("what happens without it")` for an `Option`, `switch("off")` for on/off
//!   (`#[arg(value_name = "BOOL", num_args = 0..=1, require_equals = true,
//!   default_missing_value = "true")]` as the others), or `by_hand` for one that depends on
//!   others (resolved in [`by_hand`] below);
//! - add its row to the README's configuration table: `config::tests::readme_table_matches`
//!   checks flag, variable, TOML key and default against this declaration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::declare::{either, settings, switch};
use super::{
    BaseUrl, ByteSize, ClockOffset, ConfigError, Count, CreditAccount, Currency, ExternKeySpec, FileConfig,
    GatewayAuth, GatewayUser, GlobalArgs, ListenAddr, LogFormat, PositiveDuration, PublicKey, QrAddressText,
    QrPrefix, Rfc3339Time, Seconds, ShortSubjectLength, SimpleSubjectStyle, SubjectFormat, SubjectFormats,
    Switch, Token, bad, beside_database, database_path,
};
use super::{
    DEFAULT_ACCOUNT_NAME, DEFAULT_CHECKPOINTS, DEFAULT_CREDIT_ACCOUNT, DEFAULT_DATABASE,
    MASTER_KEY_FILE_NAME, MIN_PRODUCTION_TOKEN_CHARS, TOKEN_FILE_NAME,
};
use crate::crypto::EddsaPublicKey;
use crate::payto::Payto;
use crate::store::Checkpoints;

settings! {
    /// The file's database (the flag and variable are global: `--database`)
    #[arg(skip)]
    database: Option<PathBuf>, by_hand("");
    /// HOST:PORT or unix:PATH
    #[arg(long, env = "TALER_LITE_LISTEN")]
    listen: Option<ListenAddr> => ListenAddr, default("127.0.0.1:8081");
    /// Public base URL
    #[arg(long, env = "TALER_LITE_BASE_URL")]
    base_url: Option<BaseUrl> => Option<String>, optional("from the listen address");
    /// Currency
    #[arg(long, env = "TALER_LITE_CURRENCY")]
    currency: Option<Currency> => String, default("KUDOS");
    /// Exchange master public key (base32)
    #[arg(long, env = "TALER_LITE_MASTER_PUBLIC_KEY")]
    master_public_key: Option<PublicKey> => Option<EddsaPublicKey>, optional("from the master key file");
    /// Master private key file (base32 seed)
    #[arg(long, env = "TALER_LITE_MASTER_KEY_FILE", value_name = "FILE")]
    master_key_file: Option<PathBuf>, by_hand("taler-lite-master.key beside the database, made if missing");
    /// Operator bearer token
    #[arg(long, env = "TALER_LITE_TOKEN", hide_env_values = true)]
    token: Option<Token>, by_hand("from the token file");
    /// Operator token file
    #[arg(long, env = "TALER_LITE_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>, by_hand("taler-lite-operator.token beside the database, made if missing");
    /// Exchange bank account (payto URI); repeat for several. Environment:
    /// TALER_LITE_CREDIT_ACCOUNTS, space-separated
    #[arg(long = "credit-account", value_name = "PAYTO")]
    credit_accounts: Option<Vec<CreditAccount>>, by_hand("a Swiss QR-IBAN example");
    /// Subject formats, comma-separated
    #[arg(long, env = "TALER_LITE_SUBJECT_FORMATS")]
    subject_formats: Option<SubjectFormats> => Vec<SubjectFormat>, default("SIMPLE,URI,CH_QR_BILL");
    /// User name of the Wire Gateway's Basic authentication (the password is the operator
    /// token)
    #[arg(long, env = "TALER_LITE_WIRE_GATEWAY_USER")]
    wire_gateway_user: Option<GatewayUser> => String, default("exchange");
    /// Who may call the Wire Gateway: token (Bearer, or Basic with the token as password) or
    /// none (only with --dev or --ephemeral)
    #[arg(long, env = "TALER_LITE_WIRE_GATEWAY_AUTH")]
    wire_gateway_auth: Option<GatewayAuth>, by_hand("token");
    /// SIMPLE subject style: full or short
    #[arg(long, env = "TALER_LITE_SIMPLE_SUBJECT")]
    simple_subject: Option<SimpleSubjectStyle> => SimpleSubjectStyle, default("full");
    /// Length of short subjects, 1-24
    #[arg(long, env = "TALER_LITE_SHORT_SUBJECT_LENGTH")]
    short_subject_length: Option<ShortSubjectLength> => usize, default("12");
    /// Prefix of QR references, 0-6 digits
    #[arg(long, env = "TALER_LITE_QR_REFERENCE_PREFIX")]
    qr_reference_prefix: Option<QrPrefix> => String, default("");
    /// Postcode of the creditor on the console's Swiss QR bills
    #[arg(long, env = "TALER_LITE_QR_CREDITOR_POSTCODE")]
    qr_creditor_postcode: Option<QrAddressText> => String, default("8000");
    /// Town of the creditor on the console's Swiss QR bills
    #[arg(long, env = "TALER_LITE_QR_CREDITOR_TOWN")]
    qr_creditor_town: Option<QrAddressText> => String, default("Zürich");
    /// Lifetime of one-shot registrations, e.g. 30d, 12h, 90s, 1h 30m
    #[arg(long, env = "TALER_LITE_REGISTRATION_LIFETIME", value_name = "DURATION")]
    registration_lifetime: Option<PositiveDuration> => Duration, default("30d");
    /// Lifetime of recurrent registrations
    #[arg(long, env = "TALER_LITE_RECURRENT_LIFETIME", value_name = "DURATION")]
    recurrent_lifetime: Option<PositiveDuration> => Duration, default("365d");
    /// Largest bulk KYC upload, e.g. 2GiB, 500MB
    #[arg(long, env = "TALER_LITE_MAX_UPLOAD", value_name = "SIZE")]
    max_upload: Option<ByteSize> => u64, default("2GiB");
    /// Most bytes staged at once for uploads sent without the body's hash, whose signature
    /// is checked only once they are whole (503 beyond)
    #[arg(long, env = "TALER_LITE_MAX_STAGED", value_name = "SIZE")]
    max_staged: Option<ByteSize> => u64, default("1GiB");
    /// Largest JSON body
    #[arg(long, env = "TALER_LITE_MAX_JSON", value_name = "SIZE")]
    max_json: Option<ByteSize> => u64, default("1MiB");
    /// Third party for /kyc-bulk, PUB=NAME; repeat for several. Environment:
    /// TALER_LITE_EXTERN_KEYS, space-separated
    // The id is what its errors are named by; `extern_keys` would not be what the user typed.
    #[arg(id = "extern_key", long = "extern-key", value_name = "PUB=NAME")]
    #[serde(rename = "extern", default)]
    extern_keys: Vec<ExternKeySpec>, by_hand("none");
    /// Idle limit for a client sending headers or body, e.g. 30s
    #[arg(long, env = "TALER_LITE_REQUEST_TIMEOUT", value_name = "DURATION")]
    request_timeout: Option<PositiveDuration> => Duration, default("30s");
    /// Slowest average rate of a request body after --body-rate-grace (408 below it), e.g.
    /// 16KiB; 0 turns it off
    #[arg(long, env = "TALER_LITE_MIN_BODY_RATE", value_name = "SIZE")]
    min_body_rate: Option<ByteSize> => u64, default("16KiB");
    /// How long a body may take before --min-body-rate applies
    #[arg(long, env = "TALER_LITE_BODY_RATE_GRACE", value_name = "DURATION")]
    body_rate_grace: Option<PositiveDuration> => Duration, default("10s");
    /// Most connections served at once; one more is answered 503 and closed
    #[arg(long, env = "TALER_LITE_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<Count> => Option<u64>, optional("from the open-file limit, raised to its hard limit at start");
    /// How long requests in flight may take to finish after SIGTERM, SIGINT or SIGHUP; those
    /// still running then are answered 503
    #[arg(long, env = "TALER_LITE_SHUTDOWN_GRACE", value_name = "DURATION")]
    shutdown_grace: Option<PositiveDuration> => Duration, default("30s");
    /// Shift the server's clock, e.g. 3d, -2h, 1h 30m or seconds: for testing expirations
    /// and signed timestamps
    #[arg(long, env = "TALER_LITE_CLOCK_OFFSET", allow_hyphen_values = true, value_name = "DURATION")]
    clock_offset: Option<ClockOffset>, by_hand("0");
    /// The older name of --clock-offset, in seconds, as GNUnet's --timetravel
    #[arg(long, env = "TALER_LITE_TIMETRAVEL", allow_hyphen_values = true, value_name = "SECONDS")]
    #[serde(skip)]
    timetravel: Option<Seconds>, by_hand("");
    /// Start with the server's clock frozen at this RFC 3339 time (POST /private/clock moves it)
    #[arg(long, env = "TALER_LITE_FROZEN_CLOCK", value_name = "RFC3339")]
    frozen_clock: Option<Rfc3339Time>, by_hand("running");
    /// Cap the database at this many 16 KiB pages (to test a full disk)
    #[arg(long, env = "TALER_LITE_MAX_DB_PAGES", hide = true)]
    #[serde(skip)]
    max_db_pages: Option<Count> => Option<u64>, optional("");
    /// Database, development master key and token in a new temporary folder, removed when
    /// the server exits; the ready line carries the token. Conflicts with --database
    #[arg(long, env = "TALER_LITE_EPHEMERAL", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    ephemeral: Option<Switch>, by_hand("off");
    /// Shut down cleanly when standard input reaches end of file (a harness that dies
    /// leaves no server behind)
    #[arg(long, env = "TALER_LITE_EXIT_ON_STDIN_EOF", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    exit_on_stdin_eof: Option<Switch> => bool, switch("off");
    /// Development mode: offers POST /private/reset (as --ephemeral does)
    #[arg(long, env = "TALER_LITE_DEV", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    dev: Option<Switch>, by_hand("off");
    /// Who checkpoints the WAL: auto (SQLite, and the server at shutdown) or external (a
    /// replicator such as Litestream; the server never does)
    #[arg(long, env = "TALER_LITE_CHECKPOINTS", value_name = "MODE")]
    checkpoints: Option<Checkpoints> => Checkpoints, default(DEFAULT_CHECKPOINTS);
    /// Development servers: requests kept in the journal of GET /private/requests (at most
    /// 16 MiB); 0 turns it off
    #[arg(long, env = "TALER_LITE_JOURNAL_SIZE", value_name = "N")]
    journal_size: Option<Count> => usize, default("1000");
    /// Development servers: snapshots kept by PUT /private/snapshots/{name}
    #[arg(long, env = "TALER_LITE_MAX_SNAPSHOTS", value_name = "N")]
    max_snapshots: Option<Count> => usize, default("16");
    /// TOML file of state applied at start, idempotently: arrays of tables auditor, extern,
    /// upload, registration, incoming (README, "Use it in CI")
    #[arg(long, env = "TALER_LITE_FIXTURES", value_name = "FILE")]
    fixtures: Option<PathBuf> => Option<PathBuf>, optional("none");

    @resolved_by_hand {
        pub database: PathBuf,
        pub master_key_file: PathBuf,
        pub token: Option<String>,
        pub token_file: PathBuf,
        pub credit_accounts: Vec<Payto>,
        /// The name of each credit account's Wire Gateway (same order): its label, or
        /// `exchange` for the first and `exchange-n` for the n-th.
        pub account_names: Vec<String>,
        pub wire_gateway_auth: GatewayAuth,
        pub extern_keys: Vec<(EddsaPublicKey, String)>,
        /// `--clock-offset` (or `--timetravel`), in seconds.
        pub clock_offset_s: i64,
        /// `--frozen-clock`, in microseconds since the epoch.
        pub frozen_clock_us: Option<i64>,
        /// `--ephemeral`: [`Settings::placed_in`] a new temporary folder at start.
        pub ephemeral: bool,
        /// `--dev` or `--ephemeral`: the development routes (`POST /private/reset`) exist.
        pub dev: bool,
        pub log_format: LogFormat,
        /// Whether the key and token files are the defaults beside the database: those move
        /// with it into an ephemeral server's folder, files given explicitly stay where they are.
        files_beside_database: (bool, bool),
    }
}

/// The settings that depend on each other, on the global arguments, or on a list variable.
fn by_hand(global: &GlobalArgs, args: &ServeArgs, file: &FileConfig) -> Result<ByHand, ConfigError> {
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
    let credit_accounts = if let Some(list) = &args.credit_accounts {
        list.clone()
    } else if let Some(list) = env_list("TALER_LITE_CREDIT_ACCOUNTS", "credit_accounts")? {
        list
    } else if let Some(list) = &file.credit_accounts {
        list.clone()
    } else {
        vec![super::declare::default_value("credit_accounts", DEFAULT_CREDIT_ACCOUNT)?]
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
    let clock_offset_s = match (args.clock_offset, args.timetravel) {
        (Some(_), Some(_)) => {
            return Err(bad("timetravel", "conflicts with clock_offset, its newer name: give one"));
        }
        (Some(offset), None) => offset.into(),
        (None, Some(secs)) => secs.into(),
        (None, None) => file.clock_offset.map_or(0, i64::from),
    };
    Ok(ByHand {
        master_key_file: master_key_file.unwrap_or_else(|| beside_database(&database, MASTER_KEY_FILE_NAME)),
        token,
        token_file: token_file.unwrap_or_else(|| beside_database(&database, TOKEN_FILE_NAME)),
        credit_accounts: credit_accounts.into_iter().map(Into::into).collect(),
        account_names,
        wire_gateway_auth,
        extern_keys: extern_keys.into_iter().map(|e| (e.key, e.name)).collect(),
        clock_offset_s,
        frozen_clock_us: either(&args.frozen_clock, &file.frozen_clock).map(i64::from),
        ephemeral,
        dev,
        log_format: global.log_format.unwrap_or_default(),
        files_beside_database,
        database,
    })
}

impl Settings {
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

/// A space-separated list from the environment.
fn env_list<T>(name: &str, setting: &str) -> Result<Option<Vec<T>>, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let Ok(value) = std::env::var(name) else { return Ok(None) };
    let list = value
        .split_whitespace()
        .map(|item| item.parse().map_err(|e| bad(setting, format!("{e} (from {name})"))));
    list.collect::<Result<Vec<T>, ConfigError>>().map(Some)
}
