//! Wire-transfer subjects for prepared transfers: derivation, Swiss QR references, and tolerant
//! parsing of what a customer actually typed.
//!
//! A full 52-character key fits in a SEPA remittance field but not in a Swiss QR bill reference
//! (27 digits) or in other short subject fields, so the bank side hands out *derived* subjects that
//! it remembers next to the registration. Everything here is pure (no I/O, no database): the
//! registration handler derives subjects with [`short_subject`], [`qr_reference`] and
//! [`uri_subject`]; the incoming-transfer handler turns free text into candidates with
//! [`parse_subject`] and looks them up.
//!
//! # Derivation
//!
//! **Decision**: GNU Taler's design document 80 leaves the derivation of short subjects to the
//! bank, so this project defines it (see `spec/prepared-transfer.md`, "Subjects"):
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
//!
//! # Parsing what a customer typed ([`parse_subject`])
//!
//! Customers retype subjects from a screen or a paper bill: they change case, split them into
//! groups with spaces or dashes, and surround them with words ("Payment for ... thanks"). The
//! algorithm:
//!
//! 1. **Tokenise** the text into maximal runs of ASCII letters and digits. Two neighbouring tokens
//!    are *joinable* when only whitespace and dashes (`-` and the Unicode hyphens/dashes that
//!    word processors substitute) separate them; anything else (`:`, `.`, `,`, `/`, letters outside
//!    ASCII, ...) is a hard boundary. A *group* is a maximal run of joinable tokens.
//! 2. Every **window** of consecutive tokens inside a group is a possible subject: its text is the
//!    concatenation of the tokens, upper-cased. Only windows of exactly 52, 55 (`KYC` glued on), 27
//!    or `short_length` characters matter, and each start token has at most one window of a given
//!    length, so the search costs O(n log n) in the number of tokens.
//! 3. **Keys**: a 52-character window of base32 characters, the decoder's aliases `O`, `I`, `L`,
//!    `U` included (left as typed: the caller decodes). 52 characters carry 260 bits, so the last
//!    one holds 4 data bits and 1 ignored padding bit and may be any base32 character. With the
//!    aliases every ASCII letter and digit qualifies. It is a KYC key when the token right
//!    before it is the word `KYC` followed by `:` or by a joinable separator (`KYC:`, `kyc: `,
//!    `KYC-`, `KYC `), or when the window is a single 55-character token starting with `KYC`. A
//!    window made of several tokens must also look like a grouped key rather than words that happen
//!    to add up to 52 letters: it contains a digit, its letters are all of one case, and with three
//!    tokens or more all tokens but the last have the same length and the last is not longer
//!    (`XDT7-ZZMY-...`; two tokens, as from a wrapped line, may have any lengths).
//! 4. **QR references**: a 27-character window of digits whose modulo-10-recursive check digit is
//!    correct (any grouping, e.g. `21 00000 00003 13947 14300 09017`).
//! 5. **Short subjects**: any window of `short_length` characters (the short alphabet is all of
//!    `0-9A-Z`, so every letter and digit may occur). Windows overlapping a key or QR reference
//!    already found are not offered again as short subjects (nor QR windows overlapping a key).
//!
//! Candidates come back deduplicated, keys first, then QR references, then short subjects (most
//! specific first: a key cannot be confused with the others, a QR reference has a check digit,
//! a short subject has neither). Within a kind, a window that is a whole token comes first, then
//! windows with more *clean edges* (the group ends there, or a `KYC` marker precedes it), then
//! earlier ones.
//!
//! # Limits
//!
//! - Only windows aligned on tokens are tried: a subject glued to other letters or digits
//!   (`NG8ZIF2KQ5TJ2024`, `REF:XDT7...` works but `REFXDT7...` does not) is not found.
//! - Surrounding words separated only by spaces are indistinguishable from groups of a key typed in
//!   the same case: `rent xdt7 zzmy ...` yields both the real key and the shifted window starting
//!   at `rent`, and the ranking cannot tell them apart. Both are returned; a caller about to
//!   credit an *unregistered* key should treat several distinct key candidates as ambiguous.
//! - Three or more irregularly sized pieces of a key are not reassembled.
//! - No alias mapping is done for short subjects: their alphabet contains `O`, `I`, `L` and `U`, so
//!   a customer who typed `O` for `0` gets no match (the transfer bounces, nothing is lost).
//! - Short subjects are only looked for when `1 <= short_length <= MAX_SHORT_LENGTH`, which bounds
//!   the size of the answer for any text.
//! - Meant for bank subject lines (SEPA allows 140 characters). Any text is handled without
//!   panicking, but the overlap checks are quadratic in the number of candidates, so callers
//!   should keep their request-size limit on the field.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha512};
use std::collections::HashSet;
use std::ops::Range;

/// Alphabet of short subjects (`SIMPLE` format with `simple_subject = "short"`).
pub const SHORT_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Longest short subject [`parse_subject`] looks for. A longer one would be no shorter than the
/// 52-character key it replaces.
pub const MAX_SHORT_LENGTH: usize = 52;

/// Format name hashed into short `SIMPLE` subjects.
const FORMAT_SIMPLE: &str = "SIMPLE";
/// Format name hashed into Swiss QR references.
const FORMAT_CH_QR_BILL: &str = "CH_QR_BILL";
/// Digits in a Swiss QR reference, check digit included.
const QR_REFERENCE_LEN: usize = 27;
/// Longest configurable prefix of a QR reference.
const QR_PREFIX_MAX: usize = 6;
/// Base32 characters of a 32-byte key.
const KEY_LEN: usize = 52;
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
        let mut low = number.iter().fold(0u128, |rem, &byte| (rem * 256 + u128::from(byte)) % modulus);
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

/// A subject candidate found in free text by [`parse_subject`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectMatch {
    /// A full key.
    Key {
        /// Marked as a KYC key (`KYC:` before it).
        kyc: bool,
        /// 52 characters, upper case, ready for base32 decoding (decoder aliases kept as typed).
        key_text: String,
    },
    /// A 27-digit QR reference with a correct check digit.
    QrReference(String),
    /// A possible short subject, upper case.
    Short(String),
}

/// Candidate subjects in a customer's free text, most specific first (see the module doc for the
/// algorithm and its limits). Never fails: text with nothing usable gives an empty list.
pub fn parse_subject(text: &str, short_length: usize) -> Vec<SubjectMatch> {
    let scan = Scan::new(text);

    let mut keys: Vec<Found> = Vec::new();
    scan.windows(KEY_LEN, |w| {
        if w.text.bytes().all(is_base32_char) && scan.key_window_plausible(&w) {
            let kyc = scan.kyc_marked(w.first);
            keys.push(scan.found(w, SubjectKind::Key { kyc }, kyc));
        }
    });
    scan.windows(KEY_LEN + 3, |mut w| {
        // "KYCXDT7..." as one token: the marker glued onto the key.
        if w.first + 1 == w.end && w.text.starts_with("KYC") && w.text.bytes().all(is_base32_char) {
            w.text.replace_range(..3, "");
            keys.push(scan.found(w, SubjectKind::Key { kyc: true }, true));
        }
    });

    let mut qrs: Vec<Found> = Vec::new();
    scan.windows(QR_REFERENCE_LEN, |w| {
        if qr_reference_valid(&w.text) && !overlaps_any(&w.span, &keys) {
            qrs.push(scan.found(w, SubjectKind::Qr, false));
        }
    });

    let mut shorts: Vec<Found> = Vec::new();
    if (1..=MAX_SHORT_LENGTH).contains(&short_length) {
        scan.windows(short_length, |w| {
            if !overlaps_any(&w.span, &keys) && !overlaps_any(&w.span, &qrs) {
                shorts.push(scan.found(w, SubjectKind::Short, false));
            }
        });
    }

    let mut out: Vec<SubjectMatch> = Vec::new();
    let mut seen: HashSet<SubjectMatch> = HashSet::new();
    for mut list in [keys, qrs, shorts] {
        list.sort_by_key(|f| f.rank);
        for found in list {
            let candidate = found.into_match();
            if seen.insert(candidate.clone()) {
                out.push(candidate);
            }
        }
    }
    out
}

/// Crockford base32 as the decoder accepts it: the alphabet plus the aliases O, I, L, U, in either
/// case. Together these happen to cover every ASCII letter and digit; the check stays explicit so
/// that the rule is visible and follows the decoder should it ever change.
fn is_base32_char(b: u8) -> bool {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    const ALIASES: &[u8] = b"OILU";
    let upper = b.to_ascii_uppercase();
    ALPHABET.contains(&upper) || ALIASES.contains(&upper)
}

/// Whitespace and the dashes people (or their word processors) put between groups of characters.
fn is_soft_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}')
}

fn overlaps_any(span: &Range<usize>, found: &[Found]) -> bool {
    found.iter().any(|f| span.start < f.span.end && f.span.start < span.end)
}

/// A run of ASCII letters and digits, as byte offsets into the text.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
}

/// The tokenised text: tokens, groups of joinable tokens, and prefix sums of token lengths.
struct Scan<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    /// Half-open ranges of token indices.
    groups: Vec<Range<usize>>,
    /// `offsets[i]` = total length of `tokens[..i]`; strictly increasing since tokens are
    /// non-empty, which is what makes the binary search in `windows` valid.
    offsets: Vec<usize>,
}

/// A window of tokens `first..end` inside `group`, with its concatenated upper-case text.
struct Window {
    first: usize,
    end: usize,
    group: Range<usize>,
    span: Range<usize>,
    text: String,
}

/// One candidate with what is needed to rank it and to check overlaps.
struct Found {
    kind: SubjectKind,
    text: String,
    span: Range<usize>,
    /// Smaller is better: (made of several tokens, number of unclean edges, byte position).
    rank: (bool, u8, usize),
}

#[derive(Clone, Copy)]
enum SubjectKind {
    Key { kyc: bool },
    Qr,
    Short,
}

impl Found {
    fn into_match(self) -> SubjectMatch {
        match self.kind {
            SubjectKind::Key { kyc } => SubjectMatch::Key { kyc, key_text: self.text },
            SubjectKind::Qr => SubjectMatch::QrReference(self.text),
            SubjectKind::Short => SubjectMatch::Short(self.text),
        }
    }
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        let mut tokens = Vec::new();
        let mut start: Option<usize> = None;
        // Byte-wise is fine for UTF-8: bytes of multi-byte characters are never ASCII.
        for (i, b) in text.bytes().enumerate() {
            match (b.is_ascii_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    tokens.push(Token { start: s, end: i });
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            tokens.push(Token { start: s, end: text.len() });
        }

        let mut groups = Vec::new();
        let mut group_start = 0;
        for i in 1..=tokens.len() {
            let joined = i < tokens.len() && Self::joinable(text, tokens[i - 1], tokens[i]);
            if !joined {
                groups.push(group_start..i);
                group_start = i;
            }
        }

        let mut offsets = Vec::with_capacity(tokens.len() + 1);
        offsets.push(0);
        let mut total = 0;
        for t in &tokens {
            total += t.end - t.start;
            offsets.push(total);
        }

        Scan { text, tokens, groups, offsets }
    }

    fn joinable(text: &str, left: Token, right: Token) -> bool {
        text.get(left.end..right.start).is_some_and(|sep| sep.chars().all(is_soft_separator))
    }

    fn token_text(&self, i: usize) -> &'a str {
        self.tokens.get(i).and_then(|t| self.text.get(t.start..t.end)).unwrap_or("")
    }

    /// Calls `f` with every window of exactly `len` characters, in text order. Each start token
    /// has at most one such window, found by binary search over the prefix sums.
    fn windows(&self, len: usize, mut f: impl FnMut(Window)) {
        if len == 0 {
            return;
        }
        for group in &self.groups {
            for first in group.clone() {
                let Some(target) = self.offsets[first].checked_add(len) else {
                    continue;
                };
                let candidates = &self.offsets[first + 1..=group.end];
                let Ok(pos) = candidates.binary_search(&target) else {
                    continue;
                };
                let end = first + 1 + pos;
                let mut text = String::with_capacity(len);
                for i in first..end {
                    text.push_str(self.token_text(i));
                }
                text.make_ascii_uppercase();
                f(Window {
                    first,
                    end,
                    group: group.clone(),
                    span: self.tokens[first].start..self.tokens[end - 1].end,
                    text,
                });
            }
        }
    }

    /// Whether the token before `first` is a `KYC` marker: `KYC:` (spaces allowed around the
    /// colon) or `KYC` followed by a joinable separator.
    fn kyc_marked(&self, first: usize) -> bool {
        let Some(prev) = first.checked_sub(1) else {
            return false;
        };
        if !self.token_text(prev).eq_ignore_ascii_case("KYC") {
            return false;
        }
        let sep = self.text.get(self.tokens[prev].end..self.tokens[first].start).unwrap_or("");
        sep.trim() == ":" || sep.chars().all(is_soft_separator)
    }

    /// Guards against words that happen to add up to 52 characters (see the module doc).
    fn key_window_plausible(&self, w: &Window) -> bool {
        let count = w.end - w.first;
        if count == 1 {
            return true;
        }
        let raw = (w.first..w.end).map(|i| self.token_text(i));
        let has_digit = raw.clone().any(|t| t.bytes().any(|b| b.is_ascii_digit()));
        let has_upper = raw.clone().any(|t| t.bytes().any(|b| b.is_ascii_uppercase()));
        let has_lower = raw.clone().any(|t| t.bytes().any(|b| b.is_ascii_lowercase()));
        if !has_digit || (has_upper && has_lower) {
            return false;
        }
        if count == 2 {
            return true;
        }
        let lens: Vec<usize> = raw.map(str::len).collect();
        match (lens.first(), lens.split_last()) {
            (Some(&chunk), Some((&last, body))) => body.iter().all(|&l| l == chunk) && last <= chunk,
            _ => false,
        }
    }

    fn found(&self, w: Window, kind: SubjectKind, kyc_marker: bool) -> Found {
        let clean_left = w.first == w.group.start || kyc_marker;
        let clean_right = w.end == w.group.end;
        let unclean = u8::from(!clean_left) + u8::from(!clean_right);
        Found { kind, rank: (w.end - w.first > 1, unclean, w.span.start), span: w.span, text: w.text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VECTORS: &str = include_str!("../test-data/prepared-transfer.json");
    const CH_PAYTO: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";

    /// Test-only Crockford decoder (canonical alphabet, MSB-first 5-bit groups) for the vectors.
    fn decode_key(s: &str) -> [u8; 32] {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        assert_eq!(s.len(), 52, "{s}");
        let mut out = [0u8; 32];
        let (mut acc, mut bits, mut n) = (0u32, 0u32, 0usize);
        for c in s.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base32 char") as u32;
            acc = (acc << 5) | v;
            bits += 5;
            if bits >= 8 && n < 32 {
                bits -= 8;
                out[n] = (acc >> bits) as u8;
                n += 1;
                acc &= (1 << bits) - 1;
            }
        }
        assert_eq!(n, 32);
        out
    }

    struct Registration {
        key: [u8; 32],
        pub_text: String,
        short12: String,
        qr: String,
        qr_prefixed: String,
    }

    fn registrations() -> Vec<Registration> {
        let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let regs = v["registrations"].as_array().unwrap();
        assert!(!regs.is_empty());
        regs.iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap().to_owned();
                Registration {
                    key: decode_key(&s("authorization_pub")),
                    pub_text: s("authorization_pub"),
                    short12: s("simple_short_12"),
                    qr: s("qr_reference"),
                    qr_prefixed: s("qr_reference_prefix_123456"),
                }
            })
            .collect()
    }

    fn key(kyc: bool, text: &str) -> SubjectMatch {
        SubjectMatch::Key { kyc, key_text: text.to_owned() }
    }

    fn keys_of(matches: &[SubjectMatch]) -> Vec<&SubjectMatch> {
        matches.iter().filter(|m| matches!(m, SubjectMatch::Key { .. })).collect()
    }

    /// "ABCDEFGH..." -> "ABCD-EFGH-..." (or any separator and chunk size).
    fn chunked(s: &str, size: usize, sep: &str) -> String {
        s.as_bytes().chunks(size).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(sep)
    }

    #[test]
    fn test_decoder_reads_msb_first() {
        // The first key starts with "XDT7": X=29, D=13 -> 11101 01101 -> first byte 0xEB.
        let k = decode_key("XDT7ZZMYJY41RF1S4XA2A1JDE0G8EAB9XFR60ANNS8V7T3D23MP0");
        assert_eq!(k[0], 0xEB);
    }

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

    #[test]
    fn parse_full_keys_in_text() {
        for r in registrations() {
            let k = r.pub_text.as_str();
            let lower = k.to_ascii_lowercase();
            let cases: Vec<(String, bool)> = vec![
                (k.to_owned(), false),
                (format!("Payment for {k} thanks"), false),
                (format!("Payment for KYC:{lower} thanks"), true),
                (format!("kyc: {k}"), true),
                (format!("KYC {k}"), true),
                (format!("KYC-{}", chunked(k, 4, "-")), true),
                (format!("KYC{k}"), true),
                (format!("Ref. {}, merci", chunked(k, 4, "-")), false),
                (format!("Ref {}.", chunked(&lower, 4, " ")), false),
                (format!("Ref {}", chunked(k, 8, "  ")), false),
                (format!("ref: {}", chunked(k, 13, " - ")), false),
                (format!("{} {}", &k[..30], &k[30..]), false),
                (format!("pay\n{}\n{}\nend", &k[..20], &k[20..]), false),
                (format!("Rent {} thanks", chunked(k, 4, "–")), false),
            ];
            for (text, kyc) in cases {
                let m = parse_subject(&text, 12);
                assert_eq!(m.first(), Some(&key(kyc, k)), "text {text:?} gave {m:?}");
                assert_eq!(keys_of(&m).len(), 1, "text {text:?} gave {m:?}");
                // The pieces of a key are not offered again as short subjects.
                assert_eq!(m.len(), 1, "text {text:?} gave {m:?}");
            }
        }
    }

    #[test]
    fn parse_keeps_aliases_and_uppercases() {
        let m = parse_subject("xdt7zzmyjy41rf1s4xa2a1jde0g8eab9xfr60anns8v7t3d23mpo", 12);
        assert_eq!(m, vec![key(false, "XDT7ZZMYJY41RF1S4XA2A1JDE0G8EAB9XFR60ANNS8V7T3D23MPO")]);
    }

    #[test]
    fn parse_qr_references() {
        for r in registrations() {
            for qr in [&r.qr, &r.qr_prefixed] {
                for text in [
                    qr.clone(),
                    group_qr_reference(qr),
                    format!("Invoice: {}", group_qr_reference(qr)),
                    format!("QR-Ref {} / thanks", chunked(qr, 3, "-")),
                ] {
                    let m = parse_subject(&text, 12);
                    assert_eq!(
                        m.first(),
                        Some(&SubjectMatch::QrReference(qr.clone())),
                        "text {text:?} gave {m:?}"
                    );
                    assert!(
                        !m.iter().any(|c| matches!(c, SubjectMatch::Short(s) if qr.contains(s.as_str()))),
                        "text {text:?} gave {m:?}"
                    );
                }
            }
        }
        let m = parse_subject("Ref 21 00000 00003 13947 14300 09017", 12);
        assert_eq!(m, vec![SubjectMatch::QrReference("210000000003139471430009017".to_owned())]);
    }

    #[test]
    fn parse_rejects_qr_with_wrong_check_digit() {
        for text in [
            "210000000003139471430009018",
            "21 00000 00003 13947 14300 09018",
            "Ref 21 00000 00003 13947 14300 09010 thanks",
        ] {
            let m = parse_subject(text, 12);
            assert!(!m.iter().any(|c| matches!(c, SubjectMatch::QrReference(_))), "{text:?} gave {m:?}");
        }
    }

    #[test]
    fn parse_short_subjects() {
        for r in registrations() {
            let s = r.short12.as_str();
            let lower = s.to_ascii_lowercase();
            for text in [
                s.to_owned(),
                lower.clone(),
                chunked(s, 4, "-"),
                chunked(&lower, 4, " "),
                chunked(s, 3, " - "),
                format!("Payment for {} thanks", chunked(s, 4, "-")),
                format!("Ref: {s}."),
                format!("{}/{s}", "Invoice 77"),
            ] {
                let m = parse_subject(&text, 12);
                assert!(m.contains(&SubjectMatch::Short(s.to_owned())), "text {text:?} gave {m:?}");
                assert!(keys_of(&m).is_empty(), "text {text:?} gave {m:?}");
            }
        }
        assert_eq!(parse_subject("NG8Z-IF2K-Q5TJ", 12), vec![SubjectMatch::Short("NG8ZIF2KQ5TJ".to_owned())]);
        // A whole-token candidate is preferred over one assembled from words.
        let m = parse_subject("invoice 12345 NG8ZIF2KQ5TJ", 12);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m.first(), Some(&SubjectMatch::Short("NG8ZIF2KQ5TJ".to_owned())));
    }

    #[test]
    fn parse_short_length_bounds() {
        assert!(parse_subject("NG8ZIF2KQ5TJ", 0).is_empty());
        assert!(parse_subject("NG8ZIF2KQ5TJ", MAX_SHORT_LENGTH + 1).is_empty());
        assert_eq!(parse_subject("ab-cd", 4), vec![SubjectMatch::Short("ABCD".to_owned())]);
    }

    #[test]
    fn parse_junk_gives_no_key_or_qr() {
        let k = "XDT7ZZMYJY41RF1S4XA2A1JDE0G8EAB9XFR60ANNS8V7T3D23MP0";
        for text in [
            "",
            "   ---   ",
            "Thanks!",
            "Rent for the apartment in Zurich, March, thanks a lot",
            // Words adding up to 52 letters, no digit: prose, not a key.
            "Thankyou for the wonderful service and very fast delivery",
            // 51 and 53 characters.
            &k[..51],
            &format!("{k}Q"),
            // Glued to other letters: not token-aligned.
            &format!("REF{k}"),
            // Separated by hard punctuation: not joined.
            &format!("{}.{}", &k[..26], &k[26..]),
            // Mixed case across pieces: looks like words, not a key.
            &format!("{} {}", &k[..26], k[26..].to_ascii_lowercase()),
            // Irregular pieces (three or more).
            &format!("{} {} {}", &k[..10], &k[10..40], &k[40..]),
            "KYC:",
            "KYC: none",
            "12345678901234567890123456",
            "äöü ß €€€ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 XDT7ZZMY",
        ] {
            let m = parse_subject(text, 12);
            assert!(
                !m.iter().any(|c| matches!(c, SubjectMatch::Key { .. } | SubjectMatch::QrReference(_))),
                "{text:?} gave {m:?}"
            );
        }
    }

    #[test]
    fn parse_orders_kinds_and_deduplicates() {
        let k = "XDT7ZZMYJY41RF1S4XA2A1JDE0G8EAB9XFR60ANNS8V7T3D23MP0";
        let text = format!("NG8ZIF2KQ5TJ / 210000000003139471430009017 / {k} / {k}");
        assert_eq!(
            parse_subject(&text, 12),
            vec![
                key(false, k),
                SubjectMatch::QrReference("210000000003139471430009017".to_owned()),
                SubjectMatch::Short("NG8ZIF2KQ5TJ".to_owned()),
            ]
        );
        // Same key with and without the marker: both readings are kept, the one with the marker
        // (two clean edges) first.
        let text = format!("{k} KYC:{k}");
        assert_eq!(parse_subject(&text, 12), vec![key(true, k), key(false, k)]);
    }

    #[test]
    fn parse_ambiguous_grouped_key_returns_both_windows() {
        // A word in the key's case and chunk size is indistinguishable from a key group: the
        // module doc's limit. Both readings come back; the caller must see the ambiguity.
        let k = "XDT7ZZMYJY41RF1S4XA2A1JDE0G8EAB9XFR60ANNS8V7T3D23MP0";
        let text = format!("RENT {}", chunked(k, 4, " "));
        let m = parse_subject(&text, 12);
        let shifted = format!("RENT{}", &k[..48]);
        assert_eq!(keys_of(&m), vec![&key(false, &shifted), &key(false, k)]);
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

        /// A full key written into a subject (plain or after `KYC:`, between
        /// other words) is found again, as the text it was encoded to.
        #[test]
        fn prop_full_key_round_trip(
            raw in any::<[u8; 32]>(),
            kyc in any::<bool>(),
            before in "[a-z]{0,8}",
            after in "[a-z]{0,8}",
        ) {
            let encoded = crate::base32::encode(&raw);
            let text = format!("{before} {}{encoded} {after}", if kyc { "KYC:" } else { "" });
            let found = parse_subject(&text, 12);
            let expected = key(kyc, &encoded);
            prop_assert_eq!(keys_of(&found), vec![&expected], "{}", text);
            prop_assert_eq!(crate::base32::decode_fixed::<32>(&encoded).unwrap(), raw);
        }

        #[test]
        fn prop_parse_never_panics(text in ".{0,300}", short_length in 0usize..80) {
            let _ = parse_subject(&text, short_length);
        }

        #[test]
        fn prop_parse_never_panics_on_subject_like_text(
            text in "[0-9A-Za-z :\\-–.]{0,200}",
            short_length in 0usize..80,
        ) {
            for m in parse_subject(&text, short_length) {
                match m {
                    SubjectMatch::Key { key_text, .. } => {
                        prop_assert_eq!(key_text.len(), 52);
                        prop_assert!(key_text.bytes().all(|b| is_base32_char(b) && !b.is_ascii_lowercase()));
                    }
                    SubjectMatch::QrReference(q) => prop_assert!(qr_reference_valid(&q)),
                    SubjectMatch::Short(s) => {
                        prop_assert_eq!(s.len(), short_length);
                        prop_assert!(s.bytes().all(|b| SHORT_ALPHABET.contains(&b)));
                    }
                }
            }
        }

        #[test]
        fn prop_check_digit_makes_valid(digits in "[0-9]{26}") {
            let full = format!("{digits}{}", qr_check_digit(&digits));
            prop_assert!(qr_reference_valid(&full));
        }

        #[test]
        fn prop_qr_reference_valid_and_found(key in any::<[u8; 32]>(), prefix in "[0-9]{0,6}") {
            let r = qr_reference(&key, &prefix).unwrap();
            prop_assert!(qr_reference_valid(&r));
            let found = parse_subject(&group_qr_reference(&r), 12);
            prop_assert_eq!(found.first(), Some(&SubjectMatch::QrReference(r)));
        }

        #[test]
        fn prop_grouped_short_subject_found(key in any::<[u8; 32]>(), size in 1usize..12) {
            let s = short_subject(&key, 12);
            let text = format!("Payment for {} thanks", chunked(&s, size, "-"));
            prop_assert!(parse_subject(&text, 12).contains(&SubjectMatch::Short(s)));
        }
    }
}
