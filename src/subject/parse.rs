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

use super::derive::{QR_REFERENCE_LEN, qr_reference_valid};
use std::collections::HashSet;
use std::ops::Range;

/// Longest short subject [`parse_subject`] looks for. A longer one would be no shorter than the
/// 52-character key it replaces.
pub const MAX_SHORT_LENGTH: usize = 52;

/// Base32 characters of a 32-byte key.
const KEY_LEN: usize = 52;

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
    use crate::subject::test_support::{chunked, registrations};
    use crate::subject::{SHORT_ALPHABET, group_qr_reference, qr_reference, short_subject};
    use proptest::prelude::*;

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
