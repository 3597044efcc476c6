//! Derivation of the subjects a registration hands out: short `SIMPLE` subjects, Swiss QR
//! references with their check digit, and `URI` subjects.
//!
//! **Decision**: GNU Taler's design document 80 leaves the derivation of short subjects to the
//! bank, so this project defines it, here (the README's "Bank: prepared transfers" shows the
//! subjects a registration gets):
//!
//! ```text
//! h      = SHA-512(format name in ASCII || 0x00 || authorization_pub)   // 64 bytes
//! n      = h as a big-endian unsigned integer, modulo base^length
//! digits = n written in base `alphabet.len()`, most significant first, zero-padded to `length`
//! ```
//!
//! The format name ("SIMPLE" or "CH_QR_BILL") separates the two derivations, so a short subject
//! tells nothing about the QR reference of the same key. The subject depends only on the
//! authorization key, which is what lets a replaced registration keep its subjects. The low
//! `length` digits of `h` in base `b` are the remainders of `length` successive divisions of `h` by
//! `b`, so a byte-wise long division is all the arithmetic needed (no bignum crate).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha512};

/// Alphabet of short subjects (`SIMPLE` format with `simple_subject = "short"`).
pub const SHORT_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Format name hashed into short `SIMPLE` subjects.
const FORMAT_SIMPLE: &str = "SIMPLE";
/// Format name hashed into Swiss QR references.
const FORMAT_CH_QR_BILL: &str = "CH_QR_BILL";
/// Digits in a Swiss QR reference, check digit included.
pub(super) const QR_REFERENCE_LEN: usize = 27;
/// Longest configurable prefix of a QR reference.
const QR_PREFIX_MAX: usize = 6;
/// Modulo-10-recursive carry table of Swiss payment references.
const QR_CARRY_TABLE: [u8; 10] = [0, 9, 4, 6, 8, 2, 7, 1, 3, 5];

/// Unreserved characters of RFC 3986 (`ALPHA DIGIT - . _ ~`) stay as they are; every other byte
/// is percent-encoded so that a value can never end its query parameter early.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Errors of subject derivation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The configured QR reference prefix is not 0 to 6 ASCII digits.
    #[error("QR reference prefix must be 0 to {QR_PREFIX_MAX} ASCII digits, got {0:?}")]
    InvalidQrPrefix(String),
}

/// `base^exp`, or `None` when it does not fit in u128.
fn checked_power(base: u128, exp: usize) -> Option<u128> {
    (0..exp).try_fold(1u128, |acc, _| acc.checked_mul(base))
}

/// Derives `length` symbols of `alphabet` from `authorization_pub` for the subject format `format`.
///
/// h = SHA-512(`format` || 0x00 || `authorization_pub`), read as a big-endian integer, taken modulo
/// `alphabet.len()^length` and written in that base, most significant symbol first, zero-padded.
/// `alphabet` is expected to be ASCII (a non-ASCII byte comes out as the Latin-1 character); an
/// empty alphabet yields an empty string.
pub fn derive_digits(format: &str, authorization_pub: &[u8; 32], alphabet: &[u8], length: usize) -> String {
    if alphabet.is_empty() {
        return String::new();
    }
    let mut hasher = Sha512::new();
    hasher.update(format.as_bytes());
    hasher.update([0u8]);
    hasher.update(authorization_pub);
    let mut number: [u8; 64] = hasher.finalize().into();

    // u128 so that `remainder * 256 + byte` cannot overflow whatever the alphabet size.
    let base = alphabet.len() as u128;
    let mut symbols = Vec::with_capacity(length);
    // When base^length fits well inside u128 (every configured subject does:
    // 10^26 for QR references, 36^12 by default), reduce the hash modulo it in
    // one pass and take the digits from that: one division per byte instead of
    // a 64-byte long division per digit (a visible share of a registration's
    // CPU time under load). The result is the same number's low digits.
    if let Some(modulus) = checked_power(base, length).filter(|m| *m < 1 << 120) {
        // As many bytes per division as keep `rem << bits | chunk` inside u128 (rem < modulus):
        // 5 for a QR reference's 10^26, 8 for 36^12; the u128 division is the costly step.
        let step = usize::try_from(modulus.leading_zeros() / 8).map_or(1, |s| s.clamp(1, 8));
        let mut low = number.chunks(step).fold(0u128, |rem, chunk| {
            let value = chunk.iter().fold(0u128, |v, &byte| v << 8 | u128::from(byte));
            ((rem << (8 * chunk.len())) | value) % modulus
        });
        for _ in 0..length {
            let digit = usize::try_from(low % base).ok();
            low /= base;
            symbols.push(digit.and_then(|i| alphabet.get(i)).map_or('?', |&b| char::from(b)));
        }
        return symbols.iter().rev().collect();
    }
    for _ in 0..length {
        let remainder = div_rem_in_place(&mut number, base);
        // remainder < base = alphabet.len(), so the lookup always succeeds.
        let symbol =
            usize::try_from(remainder).ok().and_then(|i| alphabet.get(i)).map_or('?', |&b| char::from(b));
        symbols.push(symbol);
    }
    // Remainders come out least significant first.
    symbols.iter().rev().collect()
}

/// Divides the big-endian integer `number` by `base` in place and returns the remainder.
fn div_rem_in_place(number: &mut [u8], base: u128) -> u128 {
    let mut remainder: u128 = 0;
    for byte in number.iter_mut() {
        let current = (remainder << 8) | u128::from(*byte);
        // current / base < 256 because remainder < base.
        *byte = u8::try_from(current / base).unwrap_or(u8::MAX);
        remainder = current % base;
    }
    remainder
}

/// The short `SIMPLE` subject of a key: `length` symbols of [`SHORT_ALPHABET`].
pub fn short_subject(authorization_pub: &[u8; 32], length: usize) -> String {
    derive_digits(FORMAT_SIMPLE, authorization_pub, SHORT_ALPHABET, length)
}

/// The 27-digit Swiss QR reference of a key: `prefix`, derived digits up to 26, check digit.
///
/// Fails when `prefix` is not 0 to 6 ASCII digits.
pub fn qr_reference(authorization_pub: &[u8; 32], prefix: &str) -> Result<String, SubjectError> {
    if prefix.len() > QR_PREFIX_MAX || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SubjectError::InvalidQrPrefix(prefix.to_owned()));
    }
    let mut reference = String::with_capacity(QR_REFERENCE_LEN);
    reference.push_str(prefix);
    reference.push_str(&derive_digits(
        FORMAT_CH_QR_BILL,
        authorization_pub,
        b"0123456789",
        QR_REFERENCE_LEN - 1 - prefix.len(),
    ));
    reference.push(char::from(b'0' + qr_check_digit(&reference)));
    Ok(reference)
}

/// Modulo-10-recursive check digit (0-9) of the 26 leading digits of a QR reference.
///
/// Only ASCII digits count; anything else in `digits26` is skipped rather than rejected, so the
/// function is total (validate with [`qr_reference_valid`]).
pub fn qr_check_digit(digits26: &str) -> u8 {
    let carry = digits26
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0u8, |carry, d| QR_CARRY_TABLE[usize::from((carry + (d - b'0')) % 10)]);
    (10 - carry) % 10
}

/// Whether `s` is exactly 27 ASCII digits whose last one is the check digit of the others.
pub fn qr_reference_valid(s: &str) -> bool {
    s.len() == QR_REFERENCE_LEN
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.bytes().last().map(|b| b - b'0') == s.get(..QR_REFERENCE_LEN - 1).map(qr_check_digit)
}

/// A QR reference as printed on a Swiss QR bill: groups of five counted from the right, e.g.
/// `21 00000 00003 13947 14300 09017`. Works on any text (characters are grouped as they are).
pub fn group_qr_reference(s: &str) -> String {
    let count = s.chars().count();
    let mut out = String::with_capacity(s.len() + count / 5);
    for (i, c) in s.chars().enumerate() {
        // Counted from the right so that the short group, if any, comes first.
        if i > 0 && (count - i).is_multiple_of(5) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The `URI` subject: `credit_account_payto` with `amount=` and `message=` query parameters added
/// (RFC 8905), both values percent-encoded (everything outside RFC 3986 unreserved, so `:` in
/// `KUDOS:1` becomes `%3A`).
pub fn uri_subject(credit_account_payto: &str, amount: &str, message: &str) -> String {
    let separator = match credit_account_payto.find('?') {
        None => "?",
        Some(_) if credit_account_payto.ends_with(['?', '&']) => "",
        Some(_) => "&",
    };
    format!(
        "{credit_account_payto}{separator}amount={}&message={}",
        utf8_percent_encode(amount, QUERY_VALUE),
        utf8_percent_encode(message, QUERY_VALUE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::test_support::{VECTORS, registrations};
    use proptest::prelude::*;

    const CH_PAYTO: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";

    #[test]
    fn vectors_short_subject() {
        for r in registrations() {
            assert_eq!(short_subject(&r.key, 12), r.short12, "{}", r.pub_text);
        }
    }

    #[test]
    fn vectors_qr_reference() {
        for r in registrations() {
            assert_eq!(qr_reference(&r.key, "").unwrap(), r.qr, "{}", r.pub_text);
            assert_eq!(qr_reference(&r.key, "123456").unwrap(), r.qr_prefixed, "{}", r.pub_text);
            assert!(qr_reference_valid(&r.qr));
            assert!(qr_reference_valid(&r.qr_prefixed));
        }
    }

    #[test]
    fn longer_short_subject_keeps_the_low_digits() {
        // Modulo base^length keeps the low digits: a longer subject ends with the shorter one.
        let r = &registrations()[0];
        let long = short_subject(&r.key, 20);
        assert!(long.ends_with(&r.short12));
        assert_eq!(short_subject(&r.key, 0), "");
    }

    #[test]
    fn derive_digits_edge_alphabets() {
        let k = [7u8; 32];
        assert_eq!(derive_digits("SIMPLE", &k, b"", 5), "");
        assert_eq!(derive_digits("SIMPLE", &k, b"Z", 4), "ZZZZ");
        let bin = derive_digits("SIMPLE", &k, b"01", 512);
        assert_eq!(bin.len(), 512);
        // 513 binary digits of a 512-bit number: the extra leading digit is a zero pad.
        let padded = derive_digits("SIMPLE", &k, b"01", 513);
        assert_eq!(&padded[1..], bin);
        assert!(padded.starts_with('0'));
        // Base 256 with the identity alphabet gives back the hash itself.
        let identity: Vec<u8> = (0u8..=255).collect();
        let raw = derive_digits("SIMPLE", &k, &identity, 64);
        let mut h = Sha512::new();
        h.update(b"SIMPLE\0");
        h.update(k);
        let expected: Vec<char> = h.finalize().iter().map(|&b| char::from(b)).collect();
        assert_eq!(raw.chars().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn qr_prefix_rules() {
        let k = [1u8; 32];
        for bad in ["1234567", "12a", " 1", "１"] {
            assert_eq!(qr_reference(&k, bad), Err(SubjectError::InvalidQrPrefix(bad.to_owned())));
        }
        for good in ["", "0", "21", "999999"] {
            let r = qr_reference(&k, good).unwrap();
            assert_eq!(r.len(), 27);
            assert!(r.starts_with(good));
            assert!(qr_reference_valid(&r));
        }
    }

    #[test]
    fn qr_check_digit_examples_and_single_digit_changes() {
        let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let examples = v["qr_check_digit_examples"].as_array().unwrap();
        assert!(!examples.is_empty());
        for e in examples {
            let e = e.as_str().unwrap();
            assert!(qr_reference_valid(e), "{e}");
            assert_eq!(qr_check_digit(&e[..26]), e.as_bytes()[26] - b'0');
            for pos in 0..27 {
                for d in b'0'..=b'9' {
                    let mut b = e.as_bytes().to_vec();
                    if b[pos] == d {
                        continue;
                    }
                    b[pos] = d;
                    let changed = String::from_utf8(b).unwrap();
                    assert!(!qr_reference_valid(&changed), "{changed}");
                }
            }
        }
    }

    #[test]
    fn qr_reference_valid_rejects_bad_shapes() {
        let good = "210000000003139471430009017";
        assert!(qr_reference_valid(good));
        assert!(!qr_reference_valid(""));
        assert!(!qr_reference_valid(&good[..26]));
        assert!(!qr_reference_valid(&format!("{good}0")));
        assert!(!qr_reference_valid("21 00000 00003 13947 14300 09017"));
        assert!(!qr_reference_valid("21000000000313947143000901x"));
        assert!(!qr_reference_valid("2100000000031394714300090１7"));
    }

    #[test]
    fn group_qr_reference_like_the_bill() {
        assert_eq!(group_qr_reference("210000000003139471430009017"), "21 00000 00003 13947 14300 09017");
        assert_eq!(group_qr_reference(""), "");
        assert_eq!(group_qr_reference("12345"), "12345");
        assert_eq!(group_qr_reference("1234567890"), "12345 67890");
        assert_eq!(group_qr_reference("123456"), "1 23456");
    }

    #[test]
    fn uri_subject_examples() {
        assert_eq!(
            uri_subject(CH_PAYTO, "KUDOS:1", "NG8ZIF2KQ5TJ"),
            "payto://iban/CH4431999123000889012?receiver-name=Exchange\
             &amount=KUDOS%3A1&message=NG8ZIF2KQ5TJ"
        );
        assert_eq!(
            uri_subject(CH_PAYTO, "CHF:10.5", "KYC:XDT7ZZMYJY41RF1S4XA2A1JDE0G8EAB9XFR60ANNS8V7T3D23MP0"),
            "payto://iban/CH4431999123000889012?receiver-name=Exchange\
             &amount=CHF%3A10.5&message=KYC%3AXDT7ZZMYJY41RF1S4XA2A1JDE0G8EAB9XFR60ANNS8V7T3D23MP0"
        );
        assert_eq!(
            uri_subject("payto://iban/CH4431999123000889012", "KUDOS:1", "a b&c=d/é~-._"),
            "payto://iban/CH4431999123000889012?amount=KUDOS%3A1&message=a%20b%26c%3Dd%2F%C3%A9~-._"
        );
        assert_eq!(
            uri_subject("payto://x-taler-bank/h/a?", "KUDOS:1", "m"),
            "payto://x-taler-bank/h/a?amount=KUDOS%3A1&message=m"
        );
    }

    /// The digits by long division alone: the definition the fast path must match.
    fn long_division_digits(format: &str, key: &[u8; 32], alphabet: &[u8], length: usize) -> String {
        let mut number: [u8; 64] = Sha512::new()
            .chain_update(format.as_bytes())
            .chain_update([0u8])
            .chain_update(key)
            .finalize()
            .into();
        let base = alphabet.len() as u128;
        let mut symbols: Vec<char> =
            (0..length).map(|_| char::from(alphabet[div_rem_in_place(&mut number, base) as usize])).collect();
        symbols.reverse();
        symbols.into_iter().collect()
    }

    proptest! {
        #[test]
        fn one_pass_reduction_equals_long_division(key in any::<[u8; 32]>(), base in 2usize..=36, length in 0usize..=30) {
            let alphabet = &SHORT_ALPHABET[..base];
            prop_assert_eq!(
                derive_digits("SIMPLE", &key, alphabet, length),
                long_division_digits("SIMPLE", &key, alphabet, length)
            );
        }

        #[test]
        fn prop_derive_digits_shape(
            key in any::<[u8; 32]>(),
            alphabet in proptest::collection::vec(b'!'..=b'~', 1..40),
            length in 0usize..120,
        ) {
            let d = derive_digits("SIMPLE", &key, &alphabet, length);
            prop_assert_eq!(d.chars().count(), length);
            prop_assert!(d.bytes().all(|b| alphabet.contains(&b)));
        }

        #[test]
        fn prop_short_subject_shape(key in any::<[u8; 32]>(), length in 0usize..60) {
            let s = short_subject(&key, length);
            prop_assert_eq!(s.len(), length);
            prop_assert!(s.bytes().all(|b| SHORT_ALPHABET.contains(&b)));
        }

        #[test]
        fn prop_check_digit_makes_valid(digits in "[0-9]{26}") {
            let full = format!("{digits}{}", qr_check_digit(&digits));
            prop_assert!(qr_reference_valid(&full));
        }
    }
}
