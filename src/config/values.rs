//! The value type of each setting, with its one text form and its rules.
//!
//! Rules that belong to another module are asked of it rather than restated: the currency
//! grammar is [`crate::amount`]'s, the QR reference prefix rule [`crate::subject`]'s.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::text::{setting_flag, setting_text};
use crate::amount::Amount;
use crate::crypto::EddsaPublicKey;
use crate::payto::Payto;
use crate::store::Checkpoints;

/// Why a setting's text was refused; the setting's name is added by whoever knows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

impl InvalidValue {
    fn new(reason: impl fmt::Display) -> Self {
        InvalidValue(reason.to_string())
    }
}

/// A byte count, more than zero: `2GiB`, `500MB`, `1MiB`, `64KiB`, or bare bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(u64);

setting_text!(ByteSize, "a size such as 2GiB or 500MB, or a number of bytes", or integer);

impl FromStr for ByteSize {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let unit = unit.trim();
        // Whole numbers only, as before bytesize: a limit is a count of bytes, and `1.5GiB`
        // would round. The unit must be letters, else bytesize would read `1 2GiB` as 12 GiB.
        if digits.is_empty() || !unit.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(InvalidValue::new(format!("'{s}' is not a size such as 2GiB or 500MB")));
        }
        // bytesize reads a lone K, M, G, T as powers of ten; taler-lite has always read them as
        // powers of two, and a limit must not shrink under an existing configuration.
        let unit = if unit.len() == 1 && "kmgtpe".contains(unit.to_ascii_lowercase().as_str()) {
            format!("{unit}i")
        } else {
            unit.to_owned()
        };
        let bytes = format!("{digits}{unit}")
            .parse::<bytesize::ByteSize>()
            .map_err(|_| InvalidValue::new(format!("'{s}': unknown unit (KiB, MiB, GiB, KB, MB, GB)")))?
            .as_u64();
        // bytesize saturates where it overflows; no real limit is 16 EiB.
        if bytes == u64::MAX {
            return Err(InvalidValue::new(format!("'{s}' is too large")));
        }
        if bytes == 0 {
            return Err(InvalidValue::new("must be more than zero"));
        }
        Ok(ByteSize(bytes))
    }
}

impl From<ByteSize> for u64 {
    fn from(size: ByteSize) -> u64 {
        size.0
    }
}

/// A span of time of at least one second, in humantime's forms (`30d`, `12h`, `90s`,
/// `1h 30m`, `2w`); a bare number is seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositiveDuration(Duration);

setting_text!(PositiveDuration, "a duration such as 30d, 12h or 90s, or a number of seconds", or integer);

impl FromStr for PositiveDuration {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let t = s.trim();
        // humantime insists on a unit; a bare number has always meant seconds here.
        let duration = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            Duration::from_secs(t.parse().map_err(|_| InvalidValue::new(format!("'{s}' is too long")))?)
        } else {
            // humantime reads `1 0s` as ten seconds: refuse digits split by spaces rather than guess.
            let words: Vec<&str> = t.split_whitespace().collect();
            if words.windows(2).any(|w| {
                w[0].ends_with(|c: char| c.is_ascii_digit()) && w[1].starts_with(|c: char| c.is_ascii_digit())
            }) {
                return Err(InvalidValue::new(format!("'{s}' is not a duration such as 30d, 12h, 90s")));
            }
            humantime::parse_duration(t).map_err(|e| {
                InvalidValue::new(format!("'{s}' is not a duration such as 30d, 12h, 90s ({e})"))
            })?
        };
        // Lifetimes are counted in whole seconds downstream: less than one would be none.
        if duration < Duration::from_secs(1) {
            return Err(InvalidValue::new("must be at least one second"));
        }
        Ok(PositiveDuration(duration))
    }
}

impl From<PositiveDuration> for Duration {
    fn from(d: PositiveDuration) -> Duration {
        d.0
    }
}

/// A currency code, as Taler amounts spell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Currency(String);

setting_text!(Currency, "a currency code such as KUDOS");

impl FromStr for Currency {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        // The grammar is amount.rs's; a zero amount checks the currency and nothing else.
        Amount::zero(s).map_err(InvalidValue::new)?;
        Ok(Currency(s.to_owned()))
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

/// The public base URL, `http://` or `https://`, kept with a trailing slash so that paths
/// can be appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

setting_text!(BaseUrl, "an http:// or https:// URL");

impl FromStr for BaseUrl {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let lower = s.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) || s.contains(char::is_whitespace)
        {
            return Err(InvalidValue::new(format!("'{s}' is not an http:// or https:// URL")));
        }
        Ok(BaseUrl(if s.ends_with('/') { s.to_owned() } else { format!("{s}/") }))
    }
}

impl From<BaseUrl> for String {
    fn from(u: BaseUrl) -> String {
        u.0
    }
}

/// An Ed25519 public key in base32 (the master key, a third party's key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(EddsaPublicKey);

setting_text!(PublicKey, "a base32 Ed25519 public key");

impl FromStr for PublicKey {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        s.trim().parse().map(PublicKey).map_err(|e| InvalidValue::new(format!("'{s}': {e}")))
    }
}

impl From<PublicKey> for EddsaPublicKey {
    fn from(k: PublicKey) -> EddsaPublicKey {
        k.0
    }
}

/// The operator's bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

setting_text!(Token, "a token of at least 8 printable characters");

impl FromStr for Token {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        if s.len() < 8 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            // The token itself stays out of the message: it would end up in logs.
            return Err(InvalidValue::new("a token needs at least 8 printable characters without spaces"));
        }
        Ok(Token(s.to_owned()))
    }
}

// A secret: never printed, not even by `{:?}` of the arguments.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl From<Token> for String {
    fn from(t: Token) -> String {
        t.0
    }
}

/// One of the exchange's bank accounts, a payto URI, optionally labelled `NAME=payto://...`:
/// the name of its Wire Gateway under `/accounts/NAME/taler-wire-gateway/`.
#[derive(Clone, Debug)]
pub struct CreditAccount {
    pub name: Option<String>,
    pub payto: Payto,
}

setting_text!(CreditAccount, "a payto URI, optionally NAME=payto://...");

/// Whether `name` can be an account's label: a path segment that needs no escaping.
pub fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl FromStr for CreditAccount {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        let (name, uri) = match s.find('=') {
            // A label comes before the URI; an `=` inside the URI's query is no label.
            Some(i) if !s[..i].contains(':') => (Some(&s[..i]), &s[i + 1..]),
            _ => (None, s),
        };
        if let Some(name) = name
            && !valid_account_name(name)
        {
            return Err(InvalidValue::new(format!(
                "'{name}' is not an account name (1-64 letters, digits, '-', '_', '.')"
            )));
        }
        uri.parse()
            .map(|payto| CreditAccount { name: name.map(str::to_owned), payto })
            .map_err(|e| InvalidValue::new(format!("'{s}': {e}")))
    }
}

impl From<CreditAccount> for Payto {
    fn from(a: CreditAccount) -> Payto {
        a.payto
    }
}

/// Who may call the Wire Gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GatewayAuth {
    /// The operator token, as Bearer or as the password of Basic.
    #[default]
    Token,
    /// Anyone (configs written for the fakebank): only with `--dev` or `--ephemeral`.
    None,
}

setting_text!(GatewayAuth, "'token' or 'none'");

impl FromStr for GatewayAuth {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        match s {
            s if s.eq_ignore_ascii_case("token") => Ok(GatewayAuth::Token),
            s if s.eq_ignore_ascii_case("none") => Ok(GatewayAuth::None),
            other => Err(InvalidValue::new(format!("'{other}' is neither 'token' nor 'none'"))),
        }
    }
}

/// The user name of the Wire Gateway's Basic authentication.
#[derive(Clone, Debug)]
pub struct GatewayUser(String);

setting_text!(GatewayUser, "a user name");

impl FromStr for GatewayUser {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() || s.contains(':') || s.chars().any(|c| c.is_control()) {
            return Err(InvalidValue::new(format!("'{s}' is not a user name (non-empty, no ':')")));
        }
        Ok(GatewayUser(s.to_owned()))
    }
}

impl From<GatewayUser> for String {
    fn from(u: GatewayUser) -> String {
        u.0
    }
}

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

setting_text!(ListenAddr, "HOST:PORT or unix:PATH");

impl FromStr for ListenAddr {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(InvalidValue::new("unix: needs a socket path"));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        let mut addrs = s
            .to_socket_addrs()
            .map_err(|e| InvalidValue::new(format!("'{s}' is not HOST:PORT or unix:PATH ({e})")))?;
        addrs
            .next()
            .map(ListenAddr::Tcp)
            .ok_or_else(|| InvalidValue::new(format!("'{s}' resolves to no address")))
    }
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

/// The subject formats offered, comma-separated (`SIMPLE,URI,CH_QR_BILL`); at least one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectFormats(Vec<SubjectFormat>);

setting_text!(SubjectFormats, "comma-separated subject formats such as SIMPLE,URI,CH_QR_BILL");

impl FromStr for SubjectFormats {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let mut formats = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let format = match part.to_ascii_uppercase().as_str() {
                "SIMPLE" => SubjectFormat::Simple,
                "URI" => SubjectFormat::Uri,
                "CH_QR_BILL" => SubjectFormat::ChQrBill,
                _ => {
                    return Err(InvalidValue::new(format!(
                        "unknown format '{part}' (SIMPLE, URI, CH_QR_BILL)"
                    )));
                }
            };
            if !formats.contains(&format) {
                formats.push(format);
            }
        }
        if formats.is_empty() {
            return Err(InvalidValue::new("at least one format is needed"));
        }
        // The API answers subjects in this order whatever order they were configured in.
        formats.sort();
        Ok(SubjectFormats(formats))
    }
}

impl From<SubjectFormats> for Vec<SubjectFormat> {
    fn from(f: SubjectFormats) -> Vec<SubjectFormat> {
        f.0
    }
}

/// How the SIMPLE subject looks: the full key, or a short derived subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimpleSubjectStyle {
    Full,
    Short,
}

setting_text!(SimpleSubjectStyle, "'full' or 'short'");

impl FromStr for SimpleSubjectStyle {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        match s {
            s if s.eq_ignore_ascii_case("full") => Ok(SimpleSubjectStyle::Full),
            s if s.eq_ignore_ascii_case("short") => Ok(SimpleSubjectStyle::Short),
            other => Err(InvalidValue::new(format!("'{other}' is neither 'full' nor 'short'"))),
        }
    }
}

/// Shortest and longest configurable short subject.
const SHORT_SUBJECT_LENGTHS: std::ops::RangeInclusive<usize> = 1..=24;

// A configured length the subject parser does not look for would never be recognised.
const _: () = assert!(*SHORT_SUBJECT_LENGTHS.end() <= crate::subject::MAX_SHORT_LENGTH);

/// The length of short subjects, 1 to 24 characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortSubjectLength(usize);

setting_text!(ShortSubjectLength, "a length from 1 to 24", or integer);

impl FromStr for ShortSubjectLength {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let (low, high) = (SHORT_SUBJECT_LENGTHS.start(), SHORT_SUBJECT_LENGTHS.end());
        let n: usize = s.trim().parse().map_err(|_| InvalidValue::new(format!("'{s}' is not a number")))?;
        if !SHORT_SUBJECT_LENGTHS.contains(&n) {
            return Err(InvalidValue::new(format!("{n} is not between {low} and {high}")));
        }
        Ok(ShortSubjectLength(n))
    }
}

impl From<ShortSubjectLength> for usize {
    fn from(n: ShortSubjectLength) -> usize {
        n.0
    }
}

/// The digits every QR reference starts with, 0 to 6 of them. A string, not a number: leading
/// zeros count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrPrefix(String);

setting_text!(QrPrefix, "0 to 6 digits, as a string");

impl FromStr for QrPrefix {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        // The rule is subject.rs's: deriving one reference with the prefix is the check.
        crate::subject::qr_reference(&[0; 32], s).map_err(InvalidValue::new)?;
        Ok(QrPrefix(s.to_owned()))
    }
}

impl From<QrPrefix> for String {
    fn from(p: QrPrefix) -> String {
        p.0
    }
}

/// A creditor address field of the Swiss QR bill (postcode, town): 1 to 35 characters, no
/// control characters (`crate::qr_bill` checks the character set when it draws a bill).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrAddressText(String);

setting_text!(QrAddressText, "1 to 35 characters");

impl FromStr for QrAddressText {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 35 || s.chars().any(char::is_control) {
            return Err(InvalidValue::new("1 to 35 characters, no control characters"));
        }
        Ok(QrAddressText(s.to_owned()))
    }
}

impl From<QrAddressText> for String {
    fn from(p: QrAddressText) -> String {
        p.0
    }
}

/// A third party allowed to upload bulk KYC data: `PUB=NAME` on the command line (the name
/// may contain spaces), a `[[extern]]` table with `pub` and `name` in TOML.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ExternTable")]
pub struct ExternKeySpec {
    pub key: EddsaPublicKey,
    pub name: String,
}

setting_flag!(ExternKeySpec);

impl ExternKeySpec {
    fn new(key: &str, name: &str) -> Result<Self, InvalidValue> {
        let key = PublicKey::from_str(key)?.into();
        let name = name.trim();
        if name.is_empty() {
            return Err(InvalidValue::new("the name is empty"));
        }
        Ok(ExternKeySpec { key, name: name.to_owned() })
    }
}

impl FromStr for ExternKeySpec {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let (key, name) =
            s.split_once('=').ok_or_else(|| InvalidValue::new(format!("'{s}' is not PUB=NAME")))?;
        ExternKeySpec::new(key, name)
    }
}

/// The TOML shape of an [`ExternKeySpec`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternTable {
    #[serde(rename = "pub")]
    key: String,
    name: String,
}

impl TryFrom<ExternTable> for ExternKeySpec {
    type Error = InvalidValue;

    fn try_from(t: ExternTable) -> Result<Self, InvalidValue> {
        ExternKeySpec::new(&t.key, &t.name)
    }
}

/// A count (`--journal-size`, `--max-snapshots`): a TOML integer, or digits on the command
/// line, read as `u64` reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Count(u64);

setting_flag!(Count);

impl FromStr for Count {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Count)
    }
}

impl From<Count> for u64 {
    fn from(n: Count) -> u64 {
        n.0
    }
}

/// A count beyond memory is as good as no limit.
impl From<Count> for usize {
    fn from(n: Count) -> usize {
        usize::try_from(n.0).unwrap_or(usize::MAX)
    }
}

/// A whole number of seconds, possibly negative (`--timetravel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(i64);

setting_flag!(Seconds);

impl FromStr for Seconds {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        s.trim()
            .parse()
            .map(Seconds)
            .map_err(|e| InvalidValue::new(format!("'{s}' is not a whole number of seconds ({e})")))
    }
}

impl From<Seconds> for i64 {
    fn from(s: Seconds) -> i64 {
        s.0
    }
}

/// A shift of the server's clock (`--clock-offset`): a duration in humantime's forms with
/// `-` in front for the past (`3d`, `-2h`, `1h 30m`), or a whole number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockOffset(i64);

setting_text!(ClockOffset, "a duration such as 3d or -2h, or a number of seconds", or integer);

impl FromStr for ClockOffset {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        let t = s.trim();
        if let Ok(secs) = t.parse::<i64>() {
            return Ok(ClockOffset(secs));
        }
        let (sign, rest) = match t.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, t),
        };
        let d = Duration::from(rest.parse::<PositiveDuration>()?);
        let secs = i64::try_from(d.as_secs()).map_err(|_| InvalidValue::new(format!("'{s}' is too long")))?;
        Ok(ClockOffset(sign * secs))
    }
}

impl From<ClockOffset> for i64 {
    fn from(o: ClockOffset) -> i64 {
        o.0
    }
}

/// An instant in RFC 3339 with an offset (`--frozen-clock 2027-01-01T00:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339Time(i64);

setting_text!(Rfc3339Time, "an RFC 3339 time such as 2027-01-01T00:00:00Z");

impl FromStr for Rfc3339Time {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        crate::timestamp::parse_rfc3339_us(s).map(Rfc3339Time).map_err(InvalidValue::new)
    }
}

impl From<Rfc3339Time> for i64 {
    /// Microseconds since the epoch.
    fn from(t: Rfc3339Time) -> i64 {
        t.0
    }
}

/// An on/off setting: `--ephemeral` alone means on; `--ephemeral=false`, its environment variable
/// and the TOML file say which (`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`; TOML booleans too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch(bool);

setting_flag!(Switch);

impl FromStr for Switch {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Switch(true)),
            "false" | "no" | "off" | "0" => Ok(Switch(false)),
            _ => Err(InvalidValue::new(format!("'{s}' is neither true nor false"))),
        }
    }
}

impl From<Switch> for bool {
    fn from(s: Switch) -> bool {
        s.0
    }
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SwitchVisitor;

        impl serde::de::Visitor<'_> for SwitchVisitor {
            type Value = Switch;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Switch, E> {
                Ok(Switch(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Switch, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(SwitchVisitor)
    }
}

setting_text!(Checkpoints, "'auto' or 'external'");

impl FromStr for Checkpoints {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        match s {
            s if s.eq_ignore_ascii_case("auto") => Ok(Checkpoints::Auto),
            s if s.eq_ignore_ascii_case("external") => Ok(Checkpoints::External),
            other => Err(InvalidValue::new(format!("'{other}' is neither 'auto' nor 'external'"))),
        }
    }
}

/// How log lines look on stderr: `human` (env_logger's format) or `json` (one object a line,
/// for log collectors).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

setting_text!(LogFormat, "'human' or 'json'");

impl FromStr for LogFormat {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        match s {
            s if s.eq_ignore_ascii_case("human") => Ok(LogFormat::Human),
            s if s.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            other => Err(InvalidValue::new(format!("'{other}' is neither 'human' nor 'json'"))),
        }
    }
}
