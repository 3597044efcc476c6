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
//! 3. **Keys**: a 52-character window of base32 characters. It is a KYC key when the token right
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
//!   at `rent`. Both are returned (real one usually ranked first thanks to clean edges, but not
//!   always); a caller about to credit an *unregistered* key should treat several distinct key
//!   candidates as ambiguous.
//! - Three or more irregularly sized pieces of a key are not reassembled.
//! - No alias mapping is done for short subjects: their alphabet contains `O`, `I`, `L` and `U`, so
//!   a customer who typed `O` for `0` gets no match (the transfer bounces, nothing is lost).
//! - Short subjects are only looked for when `1 <= short_length <= MAX_SHORT_LENGTH`, which bounds
//!   the size of the answer for any text.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha512};
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
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Errors of subject derivation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The configured QR reference prefix is not 0 to 6 ASCII digits.
    #[error("QR reference prefix must be 0 to {QR_PREFIX_MAX} ASCII digits, got {0:?}")]
    InvalidQrPrefix(String),
}

/// Derives `length` symbols of `alphabet` from `authorization_pub` for the subject format `format`.
///
/// h = SHA-512(`format` || 0x00 || `authorization_pub`), read as a big-endian integer, taken modulo
/// `alphabet.len()^length` and written in that base, most significant symbol first, zero-padded.
/// `alphabet` is expected to be ASCII (a non-ASCII byte comes out as the Latin-1 character); an
/// empty alphabet yields an empty string.
pub fn derive_digits(
    format: &str,
    authorization_pub: &[u8; 32],
    alphabet: &[u8],
    length: usize,
) -> String {
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
    for _ in 0..length {
        let remainder = div_rem_in_place(&mut number, base);
        // remainder < base = alphabet.len(), so the index is in range.
        let symbol = alphabet
            .get(usize::try_from(remainder).unwrap_or(0))
            .copied()
            .unwrap_or(alphabet[0]);
        symbols.push(char::from(symbol));
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
        .fold(0u8, |carry, d| {
            QR_CARRY_TABLE[usize::from((carry + (d - b'0')) % 10)]
        });
    (10 - carry) % 10
}

/// Whether `s` is exactly 27 ASCII digits whose last one is the check digit of the others.
pub fn qr_reference_valid(s: &str) -> bool {
    let bytes = s.as_bytes();
    match bytes.split_last() {
        Some((&last, body)) if bytes.len() == QR_REFERENCE_LEN => {
            bytes.iter().all(u8::is_ascii_digit) && qr_check_digit_bytes(body) == last - b'0'
        }
        _ => false,
    }
}

fn qr_check_digit_bytes(digits: &[u8]) -> u8 {
    // The caller has checked these are ASCII digits, so the str conversion cannot fail.
    std::str::from_utf8(digits).map_or(u8::MAX, qr_check_digit)
}

/// A QR reference as printed on a Swiss QR bill: groups of five counted from the right, e.g.
/// `21 00000 00003 13947 14300 09017`. Works on any text (characters are grouped as they are).
pub fn group_qr_reference(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let head = chars.len() % 5;
    let mut out = String::with_capacity(s.len() + s.len() / 5);
    for (i, c) in chars.iter().enumerate() {
        if i > 0 && i % 5 == head % 5 {
            out.push(' ');
        }
        out.push(*c);
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
        if w.first + 1 == w.end && w.text.starts_with("KYC") && w.text.bytes().all(is_base32_char)
        {
            w.text.replace_range(..3, "");
            keys.push(scan.found(w, SubjectKind::Key { kyc: true }, true));
        }
    });

    let mut qrs: Vec<Found> = Vec::new();
    scan.windows(QR_REFERENCE_LEN, |w| {
        if qr_reference_valid(&w.text) && !overlaps_any(w.span.clone(), &keys) {
            qrs.push(scan.found(w, SubjectKind::Qr, false));
        }
    });

    let mut shorts: Vec<Found> = Vec::new();
    if (1..=MAX_SHORT_LENGTH).contains(&short_length) {
        scan.windows(short_length, |w| {
            if !overlaps_any(w.span.clone(), &keys) && !overlaps_any(w.span.clone(), &qrs) {
                shorts.push(scan.found(w, SubjectKind::Short, false));
            }
        });
    }

    let mut out: Vec<SubjectMatch> = Vec::new();
    for mut list in [keys, qrs, shorts] {
        // Stable sort: equal ranks keep text order.
        list.sort_by_key(|f| f.rank);
        for found in list {
            let candidate = found.into_match();
            if !out.contains(&candidate) {
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

fn overlaps_any(span: Range<usize>, found: &[Found]) -> bool {
    found
        .iter()
        .any(|f| span.start < f.span.end && f.span.start < span.end)
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
            SubjectKind::Key { kyc } => SubjectMatch::Key {
                kyc,
                key_text: self.text,
            },
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
            tokens.push(Token {
                start: s,
                end: text.len(),
            });
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

        Scan {
            text,
            tokens,
            groups,
            offsets,
        }
    }

    fn joinable(text: &str, left: Token, right: Token) -> bool {
        text.get(left.end..right.start)
            .is_some_and(|sep| sep.chars().all(is_soft_separator))
    }

    fn token_text(&self, i: usize) -> &'a str {
        self.tokens
            .get(i)
            .and_then(|t| self.text.get(t.start..t.end))
            .unwrap_or("")
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
        let sep = self
            .text
            .get(self.tokens[prev].end..self.tokens[first].start)
            .unwrap_or("");
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
        let chunk = lens[0];
        let (last, body) = match lens.split_last() {
            Some(split) => split,
            None => return false,
        };
        body.iter().all(|&l| l == chunk) && *last <= chunk
    }

    fn found(&self, w: Window, kind: SubjectKind, kyc_marker: bool) -> Found {
        let clean_left = w.first == w.group.start || kyc_marker;
        let clean_right = w.end == w.group.end;
        let unclean = u8::from(!clean_left) + u8::from(!clean_right);
        Found {
            kind,
            rank: (w.end - w.first > 1, unclean, w.span.start),
            span: w.span,
            text: w.text,
        }
    }
}
