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
//! Each setting is declared once, in `settings.rs` (which says how to add one): the one
//! declaration makes its flag and variable (clap), its TOML key (serde, same struct
//! [`ServeArgs`], which is also [`FileConfig`]), its field of [`Settings`] and its default.

mod declare;
mod secrets;
mod settings;
mod text;
mod values;

use std::fs;
use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;

pub use crate::store::Checkpoints;
use declare::pick;

pub use secrets::{create_secret_file, master_key, operator_token, read_master_key};
pub use settings::{SHOWN_DEFAULTS, ServeArgs, Settings};
pub use values::{
    BaseUrl, ByteSize, ClockOffset, Count, CreditAccount, Currency, ExternKeySpec, GatewayAuth, GatewayUser,
    InvalidValue, ListenAddr, LogFormat, PositiveDuration, PublicKey, QrAddressText, QrPrefix, Rfc3339Time,
    Seconds, ShortSubjectLength, SimpleSubjectStyle, SubjectFormat, SubjectFormats, Switch, Token,
    valid_account_name,
};

pub const DEFAULT_DATABASE: &str = "./taler-lite.sqlite3";
pub const DEFAULT_CREDIT_ACCOUNT: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";
/// The name of the first account's Wire Gateway when it has no label; the n-th (n > 1) is
/// `exchange-n`.
pub const DEFAULT_ACCOUNT_NAME: &str = "exchange";
pub const DEFAULT_CHECKPOINTS: &str = "auto";
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

/// The TOML file: one more layer of the same settings as the flags (`settings.rs`).
pub type FileConfig = ServeArgs;

impl ServeArgs {
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

/// Where `serve` listens, from the text of a `listen` setting.
pub fn parse_listen(s: &str) -> Result<ListenAddr, ConfigError> {
    s.parse().map_err(|e| bad("listen", e))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    /// The flags of `serve` and the global ones, as `taler-lite serve --help` lists them.
    fn serve_command() -> clap::Command {
        let cmd = GlobalArgs::augment_args(clap::Command::new("serve"));
        ServeArgs::augment_args(cmd)
    }

    /// The `[default: ...]` at the end of a flag's help.
    fn help_default(arg: &clap::Arg) -> Option<String> {
        let help = arg.get_help()?.to_string();
        let (_, shown) = help.rsplit_once("[default: ")?;
        Some(shown.strip_suffix(']')?.to_owned())
    }

    #[test]
    fn help_shows_the_declared_defaults() {
        let cmd = serve_command();
        let help = |id: &str| cmd.get_arguments().find(|a| a.get_id() == id).and_then(help_default);
        assert_eq!(help("max_upload").as_deref(), Some("2GiB"));
        assert_eq!(help("qr_reference_prefix").as_deref(), Some("empty"));
        assert_eq!(help("checkpoints").as_deref(), Some(DEFAULT_CHECKPOINTS));
        assert_eq!(help("timetravel"), None);
        // Every default given as text is one the setting's parser takes: resolving nothing
        // parses them all.
        Settings::resolve(&GlobalArgs::default(), &ServeArgs::default(), &FileConfig::default()).unwrap();
    }

    /// The README's configuration table against the declaration: one row for each flag
    /// `serve --help` shows, with its variable, its TOML key and its default.
    #[test]
    fn readme_table_matches() {
        let rows = crate::readme_tables::rows("Configuration", "| setting |");
        let first_code =
            |cell: &str| cell.split('`').nth(1).map(|c| c.split(' ').next().unwrap_or(c).to_owned());
        let cmd = serve_command();
        let mut seen = Vec::new();
        for row in &rows {
            let [_, flag, env, key, default] = row[..] else { panic!("README row {row:?}: five cells") };
            let long = first_code(flag).unwrap_or_default();
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == long))
                .unwrap_or_else(|| panic!("README row {row:?}: {long} is no flag of serve"));
            seen.push(arg.get_id().to_string());
            // The variable: clap's, or for a list the one its help names.
            let variable = first_code(env).unwrap_or_default();
            match arg.get_env() {
                Some(e) => assert_eq!(e.to_str(), Some(variable.as_str()), "README row {row:?}"),
                None => {
                    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                    assert!(!variable.is_empty() && help.contains(&variable), "README row {row:?}: {help}");
                }
            }
            // The TOML key: one the file takes (a wrong value is refused under the key's name).
            match first_code(key) {
                Some(key) => {
                    let key = key.trim_start_matches("[[").trim_end_matches("]]");
                    let err = file(&format!("{key} = {{ x = 1 }}")).unwrap_err();
                    assert_eq!(err.setting, key, "README row {row:?}: {err}");
                    assert!(!err.reason.contains("unknown field"), "README row {row:?}: {err}");
                }
                None => {
                    let id = arg.get_id().as_str();
                    let err = file(&format!("{id} = 1")).unwrap_err();
                    assert!(err.reason.contains("unknown field"), "README row {row:?}: {id} is a TOML key");
                }
            }
            let shown = help_default(arg).unwrap_or_else(|| "none".to_owned());
            assert!(default.replace('`', "").starts_with(&shown), "README row {row:?}: default {shown}");
        }
        // `--config` names the file itself: the line above the table says it.
        for arg in
            cmd.get_arguments().filter(|a| !a.is_hide_set() && a.get_long().is_some_and(|l| l != "config"))
        {
            let id = arg.get_id().as_str();
            let mentioned = rows
                .iter()
                .any(|r| r.iter().any(|c| c.contains(&format!("`--{}", arg.get_long().unwrap_or_default()))));
            assert!(
                seen.iter().any(|s| s == id) || mentioned,
                "README's configuration table has no row for --{}: | ... | `--{}` | `{}` | `{id}` | {} |",
                arg.get_long().unwrap_or_default(),
                arg.get_long().unwrap_or_default(),
                arg.get_env().and_then(|e| e.to_str()).unwrap_or("-"),
                help_default(arg).unwrap_or_default(),
            );
        }
    }
}
