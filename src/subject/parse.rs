//! Tolerant parsing of what a customer typed ([`parse_subject`]).
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
//!    length.
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
//! earlier ones. Only the first [`MAX_CANDIDATES`] of that list come back.
//!
//! # Cost
//!
//! The parser takes text of any length, and a slow parse holds up whatever waits behind it (the
//! an attacker picks the text), so the work is O(n log n) in the length
//! of the text with a small constant, whatever the text:
//! - the windows of one length are found with one pointer per group that only moves forward;
//! - the tests on a window's tokens (has a digit, one case, equal lengths, all base32 or all
//!   digits) read prefix counts made once per text, so they cost the same for any window;
//! - whether a window overlaps a better candidate is a binary search in the merged byte ranges of
//!   those candidates (a scan of every earlier candidate made this quadratic);
//! - the tokens are upper-cased and concatenated once, so a window's text is a slice of that,
//!   and only a new candidate among the first [`MAX_CANDIDATES`] becomes a string: a text that
//!   repeats one pattern costs no string per window.
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
//! - Short subjects are only looked for when `1 <= short_length <= MAX_SHORT_LENGTH`.
//! - A text with more than [`MAX_CANDIDATES`] candidates loses the last-ranked ones (short
//!   subjects first). Such a text is no subject a customer typed; a caller that needs one key
//!   still sees several and can refuse to guess.

use super::derive::{QR_REFERENCE_LEN, qr_reference_valid};
use std::collections::HashSet;
use std::ops::Range;

/// Longest short subject [`parse_subject`] looks for. A longer one would be no shorter than the
/// 52-character key it replaces.
pub const MAX_SHORT_LENGTH: usize = 52;

/// Longest `subject` of `add-incoming-subject`, in characters (`str::chars`): taler-lite's bound,
/// what a bank's subject field holds (SEPA: 140) with room to spare. A longer one is refused
/// (400, code 26) before it is parsed; the parser itself takes any length, in linear time.
pub const MAX_SUBJECT_CHARS: usize = 1024;

/// Most candidates [`parse_subject`] returns. Every candidate may cost the caller a database
/// lookup, so the answer stays this small however many windows the text has; a real subject
/// gives a handful.
pub const MAX_CANDIDATES: usize = 64;

/// Base32 characters of a 32-byte key.
const KEY_LEN: usize = 52;
/// The marker glued in front of a key in a single token (`KYCXDT7...`).
const KYC_MARKER: &str = "KYC";

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

/// Candidate subjects in a customer's free text, most specific first, at most
/// [`MAX_CANDIDATES`] (see the module doc for the algorithm, its cost and its limits). Never
/// fails: text with nothing usable gives an empty list.
pub fn parse_subject(text: &str, short_length: usize) -> Vec<SubjectMatch> {
    let scan = Scan::new(text);

    let mut keys: Vec<Found> = Vec::new();
    scan.windows(KEY_LEN, |w| {
        if scan.all_base32(&w) && scan.key_window_plausible(&w) {
            let kyc = scan.kyc_marked(w.first);
            keys.push(scan.found(&w, SubjectKind::Key { kyc }, kyc));
        }
    });
    scan.windows(KEY_LEN + KYC_MARKER.len(), |w| {
        // "KYCXDT7..." as one token: the marker glued onto the key.
        let glued = w.first + 1 == w.end && scan.window_text(&w).starts_with(KYC_MARKER.as_bytes());
        if glued && scan.all_base32(&w) {
            let found = scan.found(&w, SubjectKind::Key { kyc: true }, true);
            // The candidate is the key, without the marker.
            keys.push(Found { text: found.text.start + KYC_MARKER.len()..found.text.end, ..found });
        }
    });

    let taken_by_keys = Taken::new(keys.iter().map(|f| f.span.clone()));
    let mut qrs: Vec<Found> = Vec::new();
    scan.windows(QR_REFERENCE_LEN, |w| {
        if scan.qr_window_valid(&w) && !taken_by_keys.overlaps(&scan.span(&w)) {
            qrs.push(scan.found(&w, SubjectKind::Qr, false));
        }
    });

    let mut shorts: Vec<Found> = Vec::new();
    if (1..=MAX_SHORT_LENGTH).contains(&short_length) {
        let taken = Taken::new(keys.iter().chain(&qrs).map(|f| f.span.clone()));
        scan.windows(short_length, |w| {
            if !taken.overlaps(&scan.span(&w)) {
                shorts.push(scan.found(&w, SubjectKind::Short, false));
            }
        });
    }

    let mut out: Vec<SubjectMatch> = Vec::new();
    // Texts borrowed from the scan: most windows of a repetitive text are duplicates, and only a
    // new candidate becomes a string.
    let mut seen: HashSet<(SubjectKind, &[u8])> = HashSet::new();
    for mut list in [keys, qrs, shorts] {
        list.sort_by_key(|f| f.rank);
        for found in &list {
            if out.len() == MAX_CANDIDATES {
                return out;
            }
            let text = scan.upper_text(&found.text);
            if seen.insert((found.kind, text)) {
                out.extend(found.kind.candidate(text));
            }
        }
    }
    out
}

/// Whether the base32 decoder accepts a byte, as a table so that checking every token of a long
/// text stays cheap.
const BASE32_BYTES: [bool; 256] = {
    // The alphabet, then the aliases O, I, L, U; either case.
    const ACCEPTED: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZOILU";
    let mut table = [false; 256];
    let mut i = 0;
    while i < ACCEPTED.len() {
        table[ACCEPTED[i] as usize] = true;
        table[ACCEPTED[i].to_ascii_lowercase() as usize] = true;
        i += 1;
    }
    table
};

/// Crockford base32 as the decoder accepts it. Together the alphabet and its aliases happen to
/// cover every ASCII letter and digit; the check stays explicit so that the rule is visible and
/// follows the decoder should it ever change.
fn is_base32_char(b: u8) -> bool {
    BASE32_BYTES[usize::from(b)]
}

/// Whitespace and the dashes people (or their word processors) put between groups of characters.
fn is_soft_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}')
}

/// Byte ranges held by candidates already found, merged into sorted disjoint ranges so that an
/// overlap check is one binary search, however many candidates there are.
struct Taken(Vec<Range<usize>>);

impl Taken {
    fn new(spans: impl Iterator<Item = Range<usize>>) -> Self {
        let mut spans: Vec<Range<usize>> = spans.collect();
        spans.sort_unstable_by_key(|s| s.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                // Touching ranges merge too: the union is the same set, so overlaps are unchanged.
                Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
                _ => merged.push(span),
            }
        }
        Taken(merged)
    }

    fn overlaps(&self, span: &Range<usize>) -> bool {
        // Disjoint and sorted, so the ends are sorted too. If the first range that ends after
        // `span` starts does not overlap it, it starts at or after `span`'s end, as do the rest.
        let i = self.0.partition_point(|t| t.end <= span.start);
        self.0.get(i).is_some_and(|t| t.start < span.end)
    }
}

/// A run of ASCII letters and digits, as byte offsets into the text.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
}

/// Per-token prefix counts: `count[i]` = how many of `tokens[..i]` have the property, so that a
/// window's answer is one subtraction.
struct PrefixCount(Vec<usize>);

impl PrefixCount {
    fn new() -> Self {
        PrefixCount(vec![0])
    }

    fn push(&mut self, has: bool) {
        let total = self.0.last().copied().unwrap_or(0) + usize::from(has);
        self.0.push(total);
    }

    /// How many tokens of `first..end` have the property.
    fn within(&self, first: usize, end: usize) -> usize {
        match (self.0.get(end), self.0.get(first)) {
            (Some(e), Some(f)) => e - f,
            _ => 0,
        }
    }
}

/// The tokenised text: tokens, groups of joinable tokens, prefix sums of token lengths, and the
/// per-token facts the window tests need.
struct Scan<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    /// Half-open ranges of token indices.
    groups: Vec<Range<usize>>,
    /// `offsets[i]` = total length of `tokens[..i]`, so where token `i` starts in `upper`;
    /// strictly increasing since tokens are non-empty, which is what lets the end pointer in
    /// `windows` only move forward.
    offsets: Vec<usize>,
    /// The tokens upper-cased and concatenated: every window's text is one slice of it.
    upper: Vec<u8>,
    with_digit: PrefixCount,
    with_upper: PrefixCount,
    with_lower: PrefixCount,
    not_base32: PrefixCount,
    not_all_digits: PrefixCount,
    /// `same_length_run[i]` = how many tokens from `i` on have the length of token `i`.
    same_length_run: Vec<usize>,
}

/// A window of tokens `first..end` inside `group`.
struct Window {
    first: usize,
    end: usize,
    group: Range<usize>,
}

/// One candidate with what is needed to rank it, check overlaps and build its text.
struct Found {
    kind: SubjectKind,
    /// Where the candidate's text is in `Scan::upper`.
    text: Range<usize>,
    /// Byte range of the window in the text.
    span: Range<usize>,
    /// Smaller is better: (made of several tokens, number of unclean edges, byte position).
    rank: (bool, u8, usize),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum SubjectKind {
    Key { kyc: bool },
    Qr,
    Short,
}

impl SubjectKind {
    /// `text` is upper-case ASCII, so the conversion cannot fail.
    fn candidate(self, text: &[u8]) -> Option<SubjectMatch> {
        let text = String::from_utf8(text.to_vec()).ok()?;
        Some(match self {
            SubjectKind::Key { kyc } => SubjectMatch::Key { kyc, key_text: text },
            SubjectKind::Qr => SubjectMatch::QrReference(text),
            SubjectKind::Short => SubjectMatch::Short(text),
        })
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
        let mut upper = Vec::with_capacity(text.len());
        let mut total = 0;
        let mut with_digit = PrefixCount::new();
        let mut with_upper = PrefixCount::new();
        let mut with_lower = PrefixCount::new();
        let mut not_base32 = PrefixCount::new();
        let mut not_all_digits = PrefixCount::new();
        for t in &tokens {
            total += t.end - t.start;
            offsets.push(total);
            let bytes = text.as_bytes().get(t.start..t.end).unwrap_or_default();
            upper.extend(bytes.iter().map(u8::to_ascii_uppercase));
            with_digit.push(bytes.iter().any(u8::is_ascii_digit));
            with_upper.push(bytes.iter().any(u8::is_ascii_uppercase));
            with_lower.push(bytes.iter().any(u8::is_ascii_lowercase));
            not_base32.push(!bytes.iter().all(|&b| is_base32_char(b)));
            not_all_digits.push(!bytes.iter().all(u8::is_ascii_digit));
        }

        let mut same_length_run = vec![1; tokens.len()];
        for i in (1..tokens.len()).rev() {
            let (left, right) = (tokens[i - 1], tokens[i]);
            if left.end - left.start == right.end - right.start {
                same_length_run[i - 1] = same_length_run[i] + 1;
            }
        }

        Scan {
            text,
            tokens,
            groups,
            offsets,
            upper,
            with_digit,
            with_upper,
            with_lower,
            not_base32,
            not_all_digits,
            same_length_run,
        }
    }

    fn joinable(text: &str, left: Token, right: Token) -> bool {
        text.get(left.end..right.start).is_some_and(|sep| sep.chars().all(is_soft_separator))
    }

    fn token_bytes(&self, i: usize) -> &'a [u8] {
        self.tokens.get(i).and_then(|t| self.text.as_bytes().get(t.start..t.end)).unwrap_or_default()
    }

    fn token_len(&self, i: usize) -> usize {
        self.tokens.get(i).map_or(0, |t| t.end - t.start)
    }

    /// Calls `f` with every window of exactly `len` characters, in text order. Each start token
    /// has at most one such window; the later the start, the later its end, so one pointer per
    /// group finds them all.
    fn windows(&self, len: usize, mut f: impl FnMut(Window)) {
        if len == 0 {
            return;
        }
        for group in &self.groups {
            let mut end = group.start;
            for first in group.clone() {
                let target = self.offsets[first].saturating_add(len);
                end = end.max(first + 1);
                while end < group.end && self.offsets[end] < target {
                    end += 1;
                }
                if self.offsets[end] == target {
                    f(Window { first, end, group: group.clone() });
                }
            }
        }
    }

    fn span(&self, w: &Window) -> Range<usize> {
        self.tokens[w.first].start..self.tokens[w.end - 1].end
    }

    fn all_base32(&self, w: &Window) -> bool {
        self.not_base32.within(w.first, w.end) == 0
    }

    fn qr_window_valid(&self, w: &Window) -> bool {
        self.not_all_digits.within(w.first, w.end) == 0
            && std::str::from_utf8(self.window_text(w)).is_ok_and(qr_reference_valid)
    }

    fn upper_text(&self, range: &Range<usize>) -> &[u8] {
        self.upper.get(range.clone()).unwrap_or_default()
    }

    fn window_text(&self, w: &Window) -> &[u8] {
        self.upper_text(&(self.offsets[w.first]..self.offsets[w.end]))
    }

    /// Whether the token before `first` is a `KYC` marker: `KYC:` (spaces allowed around the
    /// colon) or `KYC` followed by a joinable separator.
    fn kyc_marked(&self, first: usize) -> bool {
        let Some(prev) = first.checked_sub(1) else {
            return false;
        };
        if !self.token_bytes(prev).eq_ignore_ascii_case(KYC_MARKER.as_bytes()) {
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
        let any = |prefix: &PrefixCount| prefix.within(w.first, w.end) > 0;
        if !any(&self.with_digit) || (any(&self.with_upper) && any(&self.with_lower)) {
            return false;
        }
        if count == 2 {
            return true;
        }
        self.same_length_run[w.first] >= count - 1 && self.token_len(w.end - 1) <= self.token_len(w.first)
    }

    fn found(&self, w: &Window, kind: SubjectKind, kyc_marker: bool) -> Found {
        let clean_left = w.first == w.group.start || kyc_marker;
        let clean_right = w.end == w.group.end;
        let unclean = u8::from(!clean_left) + u8::from(!clean_right);
        let span = self.span(w);
        Found {
            kind,
            rank: (w.end - w.first > 1, unclean, span.start),
            span,
            text: self.offsets[w.first]..self.offsets[w.end],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject::test_support::{chunked, registrations};
    use crate::subject::{SHORT_ALPHABET, group_qr_reference, qr_reference, short_subject};
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    fn key(kyc: bool, text: &str) -> SubjectMatch {
        SubjectMatch::Key { kyc, key_text: text.to_owned() }
    }

    fn keys_of(matches: &[SubjectMatch]) -> Vec<&SubjectMatch> {
        matches.iter().filter(|m| matches!(m, SubjectMatch::Key { .. })).collect()
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

    /// Texts that make the parser do the most work per character, each at most `chars` long:
    /// runs of one-character tokens that are all key windows, followed behind a hard boundary by
    /// as many short or QR windows that overlap no key (each of which scanned every key found
    /// before, which made the overlap checks quadratic); digits that are key, QR and short windows
    /// at every token; runs that join into nothing but short windows; one long token; and distinct
    /// keys at every token, far more than the cap.
    fn worst_cases(chars: usize) -> Vec<String> {
        let repeat = |unit: &str, chars: usize| unit.repeat(chars / unit.len());
        let half = chars.saturating_sub(" / ".len()) / 2;
        let base = SHORT_ALPHABET.len();
        let distinct: String = (0..chars / 3)
            .map(|i| [SHORT_ALPHABET[i / base % base], SHORT_ALPHABET[i % base], b' '].map(char::from))
            .flat_map(|c| c.into_iter())
            .collect();
        vec![
            format!("{} / {}", repeat("1 ", half), repeat("a ", half)),
            format!("{} / {}", repeat("1 ", half), repeat("12 3 ", half)),
            repeat("7 ", chars),
            repeat("A ", chars),
            repeat("AB-", chars),
            "A".repeat(chars),
            distinct,
        ]
    }

    /// The CPU time this thread spent parsing `text` `times` times: unlike the time on the wall
    /// clock, it does not grow when the machine is busy and the thread waits for a core.
    fn parse_time(text: &str, times: u32) -> Duration {
        let cpu = || {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
        };
        let start = cpu();
        for _ in 0..times {
            std::hint::black_box(parse_subject(std::hint::black_box(text), 12));
        }
        cpu().saturating_sub(start)
    }

    #[test]
    fn parse_time_grows_linearly() {
        const SMALL: usize = 1024;
        const FACTOR: u32 = 8;
        for (i, (small, large)) in
            worst_cases(SMALL).iter().zip(worst_cases(SMALL * FACTOR as usize)).enumerate()
        {
            // The small text parsed FACTOR times is as much text as the large one, so a linear
            // parser spends as long on both and a quadratic one FACTOR times longer on the large.
            // Measured in this thread's CPU time (waiting for a core does not count), interleaved,
            // and the minimum of each, so that what a busy machine still adds (caches shared with
            // other processes) spoils single runs rather than one size.
            let (mut t_small, mut t_large) = (Duration::MAX, Duration::MAX);
            for _ in 0..5 {
                t_small = t_small.min(parse_time(small, FACTOR));
                t_large = t_large.min(parse_time(&large, 1));
            }
            // t_large / t_small is 1 for a linear parser and FACTOR for a quadratic one: the
            // bound, FACTOR / 2, is far from both.
            assert!(
                t_large < t_small * (FACTOR / 2),
                "case {i}: {} characters took {t_large:?}, {FACTOR} times {} took {t_small:?}",
                large.len(),
                small.len()
            );
        }
    }

    #[test]
    fn parse_worst_cases_of_the_longest_subject() {
        let cases = worst_cases(MAX_SUBJECT_CHARS);
        for text in &cases {
            assert!(text.chars().count() <= MAX_SUBJECT_CHARS);
            assert!(parse_subject(text, 12).len() <= MAX_CANDIDATES);
        }
        assert_eq!(
            parse_subject(&cases[0], 12),
            vec![key(false, &"1".repeat(KEY_LEN)), SubjectMatch::Short("A".repeat(12))]
        );
        // Distinct windows at every token: the cap keeps the best ranked, the windows at either
        // end of the text (one clean edge each), then the others in text order.
        let tokens: Vec<&str> = cases[6].split_whitespace().collect();
        let window = |first: usize| key(false, &tokens[first..first + KEY_LEN / 2].concat());
        let m = parse_subject(&cases[6], 12);
        assert_eq!(m.len(), MAX_CANDIDATES);
        assert_eq!(m[..3], [window(0), window(tokens.len() - KEY_LEN / 2), window(1)]);
        assert!(m.iter().all(|c| matches!(c, SubjectMatch::Key { kyc: false, .. })));
    }

    #[test]
    #[ignore = "a measurement, not a check: prints the parse time of each worst case"]
    fn measure_worst_cases() {
        let chars =
            std::env::var("SUBJECT_MEASURE_CHARS").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
        let only: Option<usize> = std::env::var("SUBJECT_MEASURE_CASE").ok().and_then(|v| v.parse().ok());
        for (i, text) in worst_cases(chars).iter().enumerate().filter(|(i, _)| only.is_none_or(|o| o == *i)) {
            let start = Instant::now();
            let found = parse_subject(text, 12);
            println!("case {i}: {} chars, {} candidates, {:?}", text.len(), found.len(), start.elapsed());
        }
    }

    proptest! {
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
