//! Payto URIs (RFC 8905) as the GNU Taler exchange validates, normalizes and hashes them.
//!
//! Accounts are identified by hashes of payto strings: the *full* hash over the URI exactly as
//! sent (signed by clients, e.g. in bulk KYC uploads) and the *normalized* hash over a canonical
//! form (used to compare accounts). Both must match the C exchange byte for byte, so validation
//! and normalization are the exchange's, pinned by the vectors of `test-data/payto.json` (the
//! tests at the end of this file).

use std::fmt;
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::crypto::{ShortHashCode, hash_str_nul};

const PREFIX: &str = "payto://";

/// Why a payto URI was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PaytoError {
    /// The URI does not start with `payto://`.
    #[error("payto URI must start with \"payto://\"")]
    MissingPrefix,
    /// A character outside `a-zA-Z0-9/:$&?!-_.,;=*+%~@()[]`.
    #[error("payto URI contains the invalid character {character:?} at byte {offset}")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset in the URI.
        offset: usize,
    },
    /// No `/` after the method, or an empty method.
    #[error("payto URI lacks a method followed by '/'")]
    MissingMethod,
    /// The `iban` path is not `[BIC/]IBAN`.
    #[error("iban payto URI must be payto://iban/[BIC/]IBAN")]
    IbanPath,
    /// The BIC segment is malformed.
    #[error("invalid BIC {0:?}: expected 8 or 11 letters and digits")]
    InvalidBic(String),
    /// The IBAN is malformed or fails its check digits.
    #[error("invalid IBAN {iban:?}: {reason}")]
    InvalidIban {
        /// The IBAN as given.
        iban: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `x-taler-bank` path is not `HOST[:PORT]/ACCOUNT`.
    #[error("x-taler-bank payto URI must be payto://x-taler-bank/HOST[:PORT]/ACCOUNT: {0}")]
    XTalerBankPath(&'static str),
    /// The required `receiver-name` query parameter is absent or empty.
    #[error("payto URI lacks the required receiver-name parameter")]
    MissingReceiverName,
}

/// A validated payto URI, keeping the form as sent and its normalized form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Payto {
    full: String,
    normalized: String,
    // Byte range of the method within `full` (after the prefix).
    method_end: usize,
    // The IBAN (upper case, validated) for `iban` URIs.
    iban: Option<String>,
}

impl Payto {
    /// Parses and validates a payto URI.
    pub fn parse(s: &str) -> Result<Self, PaytoError> {
        Payto::parse_with(s, true)
    }

    /// Parses an account to look up rather than to pay: as [`Payto::parse`],
    /// but `receiver-name` may be left out (an operator filtering by account).
    pub fn parse_account(s: &str) -> Result<Self, PaytoError> {
        Payto::parse_with(s, false)
    }

    fn parse_with(s: &str, require_name: bool) -> Result<Self, PaytoError> {
        let prefix = s.get(..PREFIX.len()).ok_or(PaytoError::MissingPrefix)?;
        if !prefix.eq_ignore_ascii_case(PREFIX) {
            return Err(PaytoError::MissingPrefix);
        }
        if let Some((offset, character)) = s.char_indices().find(|&(_, c)| !allowed_char(c)) {
            return Err(PaytoError::InvalidCharacter { character, offset });
        }
        let rest = &s[PREFIX.len()..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (method, target) = path.split_once('/').ok_or(PaytoError::MissingMethod)?;
        if method.is_empty() {
            return Err(PaytoError::MissingMethod);
        }
        let method_lc = method.to_ascii_lowercase();
        let mut iban = None;
        let normalized_target = match method_lc.as_str() {
            "iban" => {
                let checked = validate_iban_path(target)?;
                if require_name {
                    require_receiver_name(query)?;
                }
                let t = checked.to_owned();
                iban = Some(t.clone());
                t
            }
            "x-taler-bank" => {
                let t = normalize_x_taler_bank(target)?;
                if require_name {
                    require_receiver_name(query)?;
                }
                t
            }
            _ => target.to_owned(),
        };
        Ok(Payto {
            full: s.to_owned(),
            normalized: format!("{PREFIX}{method_lc}/{normalized_target}"),
            method_end: PREFIX.len() + method.len(),
            iban,
        })
    }

    /// The URI exactly as sent.
    pub fn full(&self) -> &str {
        &self.full
    }

    /// The normalized URI: no query, lower-case scheme and method, no BIC, lower-case
    /// x-taler-bank host.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The method (`iban`, `x-taler-bank`, ...), lower case.
    pub fn method(&self) -> &str {
        // The normalized form starts with the prefix and the lower-cased method.
        self.normalized.get(PREFIX.len()..self.method_end).unwrap_or_default()
    }

    /// `FullPaytoHash`: first 32 bytes of SHA-512(full URI as sent || NUL).
    pub fn full_hash(&self) -> ShortHashCode {
        hash_str_nul(&self.full).truncate()
    }

    /// `NormalizedPaytoHash`: first 32 bytes of SHA-512(normalized URI || NUL).
    pub fn normalized_hash(&self) -> ShortHashCode {
        hash_str_nul(&self.normalized).truncate()
    }

    /// Whether both URIs name the same account (equal normalized forms).
    pub fn same_account(&self, other: &Payto) -> bool {
        self.normalized == other.normalized
    }

    /// The IBAN of an `iban` URI.
    pub fn iban(&self) -> Option<&str> {
        self.iban.as_deref()
    }

    /// Whether this is a Swiss/Liechtenstein QR-IBAN: country CH or LI and an institution id
    /// (IBAN characters 5-9) between 30000 and 31999.
    pub fn is_qr_iban(&self) -> bool {
        let Some(iban) = self.iban() else {
            return false;
        };
        if !(iban.starts_with("CH") || iban.starts_with("LI")) {
            return false;
        }
        iban.get(4..9)
            .filter(|iid| iid.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|iid| iid.parse::<u32>().ok())
            .is_some_and(|iid| (30000..=31999).contains(&iid))
    }

    /// The first value of query parameter `name`, percent-decoded (invalid UTF-8 replaced).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let (_, query) = self.full.split_once('?')?;
        query_value(query, name).map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
    }

    /// The `receiver-name` parameter, percent-decoded.
    pub fn receiver_name(&self) -> Option<String> {
        self.query_param("receiver-name")
    }
}

fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/:$&?!-_.,;=*+%~@()[]".contains(c)
}

/// The raw value of the first `name=value` pair in `query` (`&`-separated).
fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| match pair.split_once('=') {
        Some((k, v)) if k == name => Some(v),
        _ => None,
    })
}

fn require_receiver_name(query: Option<&str>) -> Result<(), PaytoError> {
    match query.and_then(|q| query_value(q, "receiver-name")) {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(PaytoError::MissingReceiverName),
    }
}

/// Validates `[BIC/]IBAN` and returns the IBAN.
fn validate_iban_path(target: &str) -> Result<&str, PaytoError> {
    let mut parts = target.split('/');
    let (bic, iban) = match (parts.next(), parts.next(), parts.next()) {
        (Some(iban), None, None) => (None, iban),
        (Some(bic), Some(iban), None) => (Some(bic), iban),
        _ => return Err(PaytoError::IbanPath),
    };
    if let Some(bic) = bic {
        let ok = (bic.len() == 8 || bic.len() == 11) && bic.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok {
            return Err(PaytoError::InvalidBic(bic.to_owned()));
        }
    }
    validate_iban(iban).map_err(|reason| PaytoError::InvalidIban { iban: iban.to_owned(), reason })?;
    Ok(iban)
}

/// ISO 13616: upper-case country code, two check digits, up to 30 letters/digits, mod 97 == 1.
fn validate_iban(iban: &str) -> Result<(), &'static str> {
    let b = iban.as_bytes();
    if iban.is_empty() {
        return Err("empty");
    }
    // Shortest real IBAN (Norway) has 15 characters, the standard allows at most 34.
    if !(15..=34).contains(&b.len()) {
        return Err("length must be between 15 and 34 characters");
    }
    if !b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return Err("only upper-case letters and digits are allowed");
    }
    if !b[..2].iter().all(u8::is_ascii_uppercase) {
        return Err("must start with a two-letter country code");
    }
    if !b[2..4].iter().all(u8::is_ascii_digit) {
        return Err("check digits (characters 3-4) must be digits");
    }
    // Move the first four characters to the end, read letters as 10..35, and reduce mod 97
    // digit by digit so that no big integer is needed.
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') + 10 };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    if rem != 1 {
        return Err("check digits do not match (mod 97)");
    }
    Ok(())
}

/// Validates `HOST[:PORT]/ACCOUNT` and returns it with the host lower-cased.
fn normalize_x_taler_bank(target: &str) -> Result<String, PaytoError> {
    let (host, account) =
        target.split_once('/').ok_or(PaytoError::XTalerBankPath("missing '/' between host and account"))?;
    if account.is_empty() {
        return Err(PaytoError::XTalerBankPath("account is empty"));
    }
    if account.contains('/') {
        return Err(PaytoError::XTalerBankPath("account must not contain '/'"));
    }
    let (name, port) = if let Some(bracketed) = host.strip_prefix('[') {
        // IPv6 literal: [addr] or [addr]:port.
        let (addr, after) =
            bracketed.split_once(']').ok_or(PaytoError::XTalerBankPath("unterminated '[' in host"))?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(PaytoError::XTalerBankPath("invalid IPv6 host"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(PaytoError::XTalerBankPath("garbage after IPv6 host"))?),
        };
        (host, port)
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if name.is_empty() {
        return Err(PaytoError::XTalerBankPath("host is empty"));
    }
    if !name.starts_with('[')
        && !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(PaytoError::XTalerBankPath("invalid host name"));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Err(PaytoError::XTalerBankPath("port must be a number from 1 to 65535"));
        }
    }
    Ok(format!("{}/{account}", host.to_ascii_lowercase()))
}

impl FromStr for Payto {
    type Err = PaytoError;
    fn from_str(s: &str) -> Result<Self, PaytoError> {
        Self::parse(s)
    }
}

impl fmt::Display for Payto {
    /// The URI as sent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for Payto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payto({:?})", self.full)
    }
}

impl Serialize for Payto {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for Payto {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Payto::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Deserialize)]
    struct Vectors {
        valid: Vec<Valid>,
        invalid: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Valid {
        payto: String,
        normalized: String,
        full_hash: ShortHashCode,
        normalized_hash: ShortHashCode,
    }

    fn vectors() -> Vectors {
        serde_json::from_str(include_str!("../test-data/payto.json")).unwrap()
    }

    #[test]
    fn valid_vectors() {
        let v = vectors();
        assert_eq!(v.valid.len(), 5);
        for case in v.valid {
            let p = Payto::parse(&case.payto).unwrap_or_else(|e| panic!("{}: {e}", case.payto));
            assert_eq!(p.full(), case.payto);
            assert_eq!(p.normalized(), case.normalized);
            assert_eq!(p.full_hash(), case.full_hash, "{}", case.payto);
            assert_eq!(p.normalized_hash(), case.normalized_hash, "{}", case.payto);
            // Deserializing from JSON goes through the same parser.
            let again: Payto = serde_json::from_value(serde_json::json!(case.payto)).unwrap();
            assert_eq!(again, p);
        }
    }

    #[test]
    fn invalid_vectors() {
        let v = vectors();
        assert_eq!(v.invalid.len(), 9);
        for s in v.invalid {
            assert!(Payto::parse(&s).is_err(), "{s} must be rejected");
        }
    }

    #[test]
    fn invalid_reasons() {
        use PaytoError::*;
        type Check = fn(&PaytoError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("http://iban/DE89370400440532013000?receiver-name=E", |e| *e == MissingPrefix),
            ("payto:/", |e| *e == MissingPrefix),
            ("", |e| *e == MissingPrefix),
            ("pay", |e| *e == MissingPrefix),
            ("payto://iban", |e| *e == MissingMethod),
            ("payto:///x", |e| *e == MissingMethod),
            ("payto://iban?receiver-name=E/x", |e| *e == MissingMethod),
            (
                "payto://iban/DE89370400440532013001?receiver-name=E",
                |e| matches!(e, InvalidIban { reason, .. } if reason.contains("mod 97")),
            ),
            (
                "payto://iban/de89370400440532013000?receiver-name=E",
                |e| matches!(e, InvalidIban { reason, .. } if reason.contains("upper-case")),
            ),
            (
                "payto://iban/DE8937040044?receiver-name=E",
                |e| matches!(e, InvalidIban { reason, .. } if reason.contains("length")),
            ),
            ("payto://iban/?receiver-name=E", |e| matches!(e, InvalidIban { .. })),
            (
                "payto://iban/12ABCDEFGHIJKLMNOP?receiver-name=E",
                |e| matches!(e, InvalidIban { reason, .. } if reason.contains("country")),
            ),
            (
                "payto://iban/DEXX370400440532013000?receiver-name=E",
                |e| matches!(e, InvalidIban { reason, .. } if reason.contains("check digits")),
            ),
            ("payto://iban/A/B/DE89370400440532013000?receiver-name=E", |e| *e == IbanPath),
            ("payto://iban/GENO/DE89370400440532013000?receiver-name=E", |e| matches!(e, InvalidBic(_))),
            ("payto://iban/DE89370400440532013000", |e| *e == MissingReceiverName),
            ("payto://iban/DE89370400440532013000?receiver-name=", |e| *e == MissingReceiverName),
            ("payto://iban/DE89370400440532013000?name=E", |e| *e == MissingReceiverName),
            ("payto://iban/DE89370400440532013000?receiver-name=Erika Mustermann", |e| {
                matches!(e, InvalidCharacter { character: ' ', offset: 55 })
            }),
            ("payto://iban/DE89370400440532013000?receiver-name=\u{e9}", |e| {
                matches!(e, InvalidCharacter { character: '\u{e9}', .. })
            }),
            ("payto://iban/DE89370400440532013000#x", |e| {
                matches!(e, InvalidCharacter { character: '#', .. })
            }),
            ("payto://x\"/a", |e| matches!(e, InvalidCharacter { character: '"', .. })),
            ("payto://x-taler-bank/bank.example.com?receiver-name=A", |e| matches!(e, XTalerBankPath(_))),
            ("payto://x-taler-bank/bank.example.com/alice", |e| *e == MissingReceiverName),
            (
                "payto://x-taler-bank/bank.example.com/?receiver-name=A",
                |e| matches!(e, XTalerBankPath(r) if r.contains("account")),
            ),
            (
                "payto://x-taler-bank//alice?receiver-name=A",
                |e| matches!(e, XTalerBankPath(r) if r.contains("host")),
            ),
            (
                "payto://x-taler-bank/bank:0/alice?receiver-name=A",
                |e| matches!(e, XTalerBankPath(r) if r.contains("port")),
            ),
            (
                "payto://x-taler-bank/bank:65536/alice?receiver-name=A",
                |e| matches!(e, XTalerBankPath(r) if r.contains("port")),
            ),
            (
                "payto://x-taler-bank/bank:/alice?receiver-name=A",
                |e| matches!(e, XTalerBankPath(r) if r.contains("port")),
            ),
            ("payto://x-taler-bank/bank/a/b?receiver-name=A", |e| matches!(e, XTalerBankPath(_))),
            (
                "payto://x-taler-bank/ba!nk/a?receiver-name=A",
                |e| matches!(e, XTalerBankPath(r) if r.contains("host")),
            ),
        ];
        for (input, check) in cases {
            let err = Payto::parse(input).expect_err(input);
            assert!(check(&err), "{input}: unexpected {err:?}");
            assert!(!err.to_string().is_empty());
        }
        let msg =
            Payto::parse("payto://iban/DE89370400440532013001?receiver-name=E").unwrap_err().to_string();
        assert!(msg.contains("DE89370400440532013001") && msg.contains("mod 97"), "{msg}");
    }

    #[test]
    fn accessors_and_normalization() {
        let p: Payto =
            "PAYTO://IBAN/GENODEM1GLS/DE89370400440532013000?receiver-name=Erika%20M&x=1".parse().unwrap();
        assert_eq!(p.method(), "iban");
        assert_eq!(p.iban(), Some("DE89370400440532013000"));
        assert!(!p.is_qr_iban());
        assert_eq!(p.receiver_name().as_deref(), Some("Erika M"));
        assert_eq!(p.query_param("x").as_deref(), Some("1"));
        assert_eq!(p.query_param("y"), None);
        let q: Payto = "payto://iban/DE89370400440532013000?receiver-name=Other".parse().unwrap();
        assert!(p.same_account(&q));
        assert_ne!(p.full_hash(), q.full_hash());
        assert_eq!(p.normalized_hash(), q.normalized_hash());
        assert_eq!(p.to_string(), p.full());
        assert_eq!(serde_json::to_value(&p).unwrap(), serde_json::json!(p.full()));

        let x: Payto = "Payto://X-Taler-Bank/Bank.Example.COM/Alice?receiver-name=A".parse().unwrap();
        assert_eq!(x.method(), "x-taler-bank");
        assert_eq!(x.normalized(), "payto://x-taler-bank/bank.example.com/Alice");
        assert_eq!(x.iban(), None);
        let v6: Payto = "payto://x-taler-bank/[::1]:8080/a?receiver-name=A".parse().unwrap();
        assert_eq!(v6.normalized(), "payto://x-taler-bank/[::1]:8080/a");

        let other: Payto = "payto://Taler-Reserve/Ex.COM/ABC?x=y".parse().unwrap();
        assert_eq!(other.method(), "taler-reserve");
        assert_eq!(other.normalized(), "payto://taler-reserve/Ex.COM/ABC");
        let bare: Payto = "payto://void/".parse().unwrap();
        assert_eq!(bare.normalized(), "payto://void/");
    }

    #[test]
    fn qr_iban() {
        let p: Payto = "payto://iban/CH4431999123000889012?receiver-name=Exchange".parse().unwrap();
        assert!(p.is_qr_iban());
        // An ordinary Swiss IBAN (IID 00762) is not a QR-IBAN.
        let p: Payto = "payto://iban/CH9300762011623852957?receiver-name=X".parse().unwrap();
        assert!(!p.is_qr_iban());
        // Only CH/LI IBANs can be QR-IBANs.
        for (iban, qr) in [("CH4431999123000889012", true), ("DE89370400440532013000", false)] {
            let p = Payto::parse(&format!("payto://iban/{iban}?receiver-name=X")).unwrap();
            assert_eq!(p.is_qr_iban(), qr, "{iban}");
        }
    }

    #[test]
    fn iban_check_digits() {
        for good in [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "NO9386011117947",
            "MT84MALT011000012345MTLCAST001S",
            "LC55HEMM000100010012001200023015",
        ] {
            assert_eq!(validate_iban(good), Ok(()), "{good}");
        }
        assert!(validate_iban("GB82WEST12345698765433").is_err());
        assert!(validate_iban("GB28WEST12345698765432").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = Payto::parse(&s);
            let _ = Payto::parse(&format!("payto://{s}"));
            let _ = Payto::parse(&format!("payto://iban/{s}"));
            let _ = Payto::parse(&format!("payto://x-taler-bank/{s}"));
        }

        /// Any valid IBAN payto parses, and its printed forms parse back to the same account.
        #[test]
        fn iban_round_trip(
            country in "[A-Z]{2}",
            bban in "[A-Z0-9]{11,30}",
            name in "[a-zA-Z]{1,10}( [a-zA-Z]{1,10})?",
        ) {
            // ISO 13616 check digits: 98 - (BBAN + country + "00") mod 97.
            let rearranged = format!("{bban}{country}00");
            let remainder = rearranged.bytes().fold(0u64, |acc, c| {
                let v = if c.is_ascii_digit() { u64::from(c - b'0') } else { u64::from(c - b'A') + 10 };
                if v >= 10 { (acc * 100 + v) % 97 } else { (acc * 10 + v) % 97 }
            });
            let iban = format!("{country}{:02}{bban}", 98 - remainder);
            let text = format!("payto://iban/{iban}?receiver-name={}", name.replace(' ', "%20"));
            let p = Payto::parse(&text).unwrap();
            prop_assert_eq!(p.iban(), Some(iban.as_str()));
            let again = Payto::parse(p.full()).unwrap();
            prop_assert_eq!(again.full(), p.full());
            prop_assert_eq!(again.normalized(), p.normalized());
            prop_assert_eq!(again.full_hash(), p.full_hash());
            // The normalized form names the account only; another holder name keeps it the same account.
            let normalized = Payto::parse(&format!("{}?receiver-name=Other", p.normalized())).unwrap();
            prop_assert_eq!(normalized.normalized_hash(), p.normalized_hash());
            prop_assert!(normalized.same_account(&p));
        }

        #[test]
        fn normalized_is_stable(method in "[a-zA-Z][a-zA-Z0-9-]{0,10}", path in "[a-zA-Z0-9./]{0,20}") {
            if let Ok(p) = Payto::parse(&format!("payto://{method}/{path}?receiver-name=x")) {
                let n = Payto::parse(p.normalized());
                if let Ok(n) = n {
                    prop_assert_eq!(n.normalized(), p.normalized());
                }
            }
        }
    }

    #[test]
    fn accounts_to_look_up_need_no_receiver_name() {
        let a = Payto::parse_account("payto://iban/DE89370400440532013000").unwrap();
        let b = Payto::parse("payto://IBAN/DE89370400440532013000?receiver-name=E").unwrap();
        assert_eq!(a.normalized_hash(), b.normalized_hash());
        assert!(Payto::parse_account("payto://iban/DE89370400440532013001").is_err());
    }
}
