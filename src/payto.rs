//! payto:// URIs (RFC 8905) with the exchange's rules.
//!
//! A [`Payto`] is validated on parsing and keeps two forms: the URI exactly as
//! sent (its hash, `FullPaytoHash`, is what clients sign) and the normalized
//! account (query dropped, scheme and method lower-cased, an IBAN without its
//! BIC, an x-taler-bank host in lower case), which identifies the account
//! whatever receiver name or BIC a client wrote.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha512};

use crate::crypto::ShortHashCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaytoError {
    #[error("does not start with payto://")]
    Scheme,
    #[error("character {0:?} is not allowed in a payto URI")]
    Character(char),
    #[error("no '/' after the payment method")]
    NoTarget,
    #[error("IBAN '{0}' is malformed (2 letters, 2 digits, up to 30 upper-case letters or digits)")]
    IbanFormat(String),
    #[error("IBAN '{0}' fails the ISO 13616 mod-97 check")]
    IbanChecksum(String),
    #[error("BIC '{0}' is malformed")]
    Bic(String),
    #[error("x-taler-bank needs HOST[:PORT]/ACCOUNT")]
    TalerBank,
    #[error("the receiver-name parameter is required")]
    ReceiverName,
}

/// A validated payto URI.
#[derive(Clone, PartialEq, Eq)]
pub struct Payto {
    full: String,
    normalized: String,
    method: String,
    /// The IBAN, for `iban` accounts.
    iban: Option<String>,
}

const ALLOWED_PUNCTUATION: &str = "/:$&?!-_.,;=*+%~@()[]";

fn hash32(s: &str) -> ShortHashCode {
    let mut h = Sha512::new();
    h.update(s.as_bytes());
    h.update([0u8]);
    let digest = h.finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    ShortHashCode::from_bytes(out)
}

/// ISO 13616: move the first four characters to the end, letters to numbers
/// (A=10), and the whole number modulo 97 must be 1. Computed digit by digit.
fn iban_checksum_ok(iban: &str) -> bool {
    let rearranged = iban[4..].bytes().chain(iban[..4].bytes());
    let mut rem: u32 = 0;
    for b in rearranged {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

fn check_iban(iban: &str) -> Result<(), PaytoError> {
    let b = iban.as_bytes();
    let shape = (5..=34).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b[4..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !shape {
        return Err(PaytoError::IbanFormat(iban.to_owned()));
    }
    if !iban_checksum_ok(iban) {
        return Err(PaytoError::IbanChecksum(iban.to_owned()));
    }
    Ok(())
}

fn has_receiver_name(query: Option<&str>) -> bool {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .any(|kv| kv.split_once('=').is_some_and(|(k, v)| k.eq_ignore_ascii_case("receiver-name") && !v.is_empty()))
}

impl FromStr for Payto {
    type Err = PaytoError;

    fn from_str(s: &str) -> Result<Payto, PaytoError> {
        if !s.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("payto://")) {
            return Err(PaytoError::Scheme);
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || ALLOWED_PUNCTUATION.contains(*c))) {
            return Err(PaytoError::Character(c));
        }
        let rest = &s[8..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (method, target) = path.split_once('/').ok_or(PaytoError::NoTarget)?;
        if method.is_empty() || target.is_empty() {
            return Err(PaytoError::NoTarget);
        }
        let method = method.to_ascii_lowercase();
        let (normalized_target, iban) = match method.as_str() {
            "iban" => {
                let (bic, iban) = match target.split_once('/') {
                    Some((bic, iban)) => (Some(bic), iban),
                    None => (None, target),
                };
                if let Some(bic) = bic {
                    let ok = (bic.len() == 8 || bic.len() == 11) && bic.bytes().all(|b| b.is_ascii_alphanumeric());
                    if !ok {
                        return Err(PaytoError::Bic(bic.to_owned()));
                    }
                }
                check_iban(iban)?;
                if !has_receiver_name(query) {
                    return Err(PaytoError::ReceiverName);
                }
                (iban.to_owned(), Some(iban.to_owned()))
            }
            "x-taler-bank" => {
                let (host, account) = target.split_once('/').ok_or(PaytoError::TalerBank)?;
                if host.is_empty() || account.is_empty() || account.contains('/') {
                    return Err(PaytoError::TalerBank);
                }
                if let Some((_, port)) = host.rsplit_once(':') {
                    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(PaytoError::TalerBank);
                    }
                }
                if !has_receiver_name(query) {
                    return Err(PaytoError::ReceiverName);
                }
                (format!("{}/{account}", host.to_ascii_lowercase()), None)
            }
            _ => (target.to_owned(), None),
        };
        Ok(Payto { full: s.to_owned(), normalized: format!("payto://{method}/{normalized_target}"), method, iban })
    }
}

impl Payto {
    /// The URI exactly as given.
    pub fn full(&self) -> &str {
        &self.full
    }

    /// The account, normalized for comparison.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The payment method, lower case (`iban`, `x-taler-bank`, ...).
    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn iban(&self) -> Option<&str> {
        self.iban.as_deref()
    }

    /// A Swiss QR-IBAN: country CH or LI, institution id 30000-31999. Only
    /// these accounts take QR references.
    pub fn is_qr_iban(&self) -> bool {
        let Some(iban) = &self.iban else { return false };
        let country_ok = iban.starts_with("CH") || iban.starts_with("LI");
        let iid = iban.get(4..9).and_then(|d| d.parse::<u32>().ok());
        country_ok && iid.is_some_and(|iid| (30000..=31999).contains(&iid))
    }

    /// `FullPaytoHash`: what third parties sign.
    pub fn full_hash(&self) -> ShortHashCode {
        hash32(&self.full)
    }

    /// `NormalizedPaytoHash`: identifies the account.
    pub fn normalized_hash(&self) -> ShortHashCode {
        hash32(&self.normalized)
    }
}

impl fmt::Display for Payto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for Payto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payto({})", self.full)
    }
}

impl Serialize for Payto {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for Payto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vectors() {
        let v: serde_json::Value = serde_json::from_str(include_str!("../test-data/payto.json")).unwrap();
        for case in v["valid"].as_array().unwrap() {
            let input = case["payto"].as_str().unwrap();
            let p: Payto = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(p.normalized(), case["normalized"], "{input}");
            assert_eq!(p.full_hash().to_string(), case["full_hash"], "{input}");
            assert_eq!(p.normalized_hash().to_string(), case["normalized_hash"], "{input}");
        }
        for bad in v["invalid"].as_array().unwrap() {
            let bad = bad.as_str().unwrap();
            assert!(bad.parse::<Payto>().is_err(), "{bad} was accepted");
        }
        let v: serde_json::Value = serde_json::from_str(include_str!("../test-data/kyc-bulk.json")).unwrap();
        let p: Payto = v["payto"].as_str().unwrap().parse().unwrap();
        assert_eq!(p.full_hash().to_string(), v["payto_full_hash"]);
        assert_eq!(p.normalized(), v["normalized_payto"]);
        assert_eq!(p.normalized_hash().to_string(), v["normalized_payto_hash"]);
    }

    #[test]
    fn reasons() {
        let e = |s: &str| s.parse::<Payto>().unwrap_err();
        assert_eq!(e("http://iban/X"), PaytoError::Scheme);
        assert_eq!(e("payto://iban/DE89370400440532013001?receiver-name=E"), PaytoError::IbanChecksum("DE89370400440532013001".into()));
        assert_eq!(e("payto://iban/de89370400440532013000?receiver-name=E"), PaytoError::IbanFormat("de89370400440532013000".into()));
        assert_eq!(e("payto://iban/DE89370400440532013000"), PaytoError::ReceiverName);
        assert_eq!(e("payto://iban/DE89370400440532013000?receiver-name=A B"), PaytoError::Character(' '));
        assert_eq!(e("payto://iban"), PaytoError::NoTarget);
        assert_eq!(e("payto://x-taler-bank/bank.example.com?receiver-name=A"), PaytoError::TalerBank);
    }

    #[test]
    fn qr_ibans() {
        let qr: Payto = "payto://iban/CH4431999123000889012?receiver-name=Exchange".parse().unwrap();
        assert!(qr.is_qr_iban());
        let plain: Payto = "payto://iban/DE89370400440532013000?receiver-name=E".parse().unwrap();
        assert!(!plain.is_qr_iban());
        let reserve: Payto = "payto://taler-reserve/ex.example/0000".parse().unwrap();
        assert!(!reserve.is_qr_iban());
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,60}") {
            let _ = s.parse::<Payto>();
        }

        #[test]
        fn parser_never_panics_on_payto_like_input(s in "(payto|PAYTO)://(iban|x-taler-bank|foo)/[A-Za-z0-9/:?=&%.-]{0,40}") {
            if let Ok(p) = s.parse::<Payto>() {
                let again: Payto = p.normalized().parse().unwrap_or(p.clone());
                prop_assert_eq!(again.normalized(), p.normalized());
            }
        }
    }
}
