//! GNUnet's Crockford base32, the text form of every key, signature and hash in Taler's JSON.
//!
//! GNU Taler clients (the C tools via libgnunetutil, the TypeScript wallet) produce and accept
//! exactly this dialect, so it must match byte for byte: alphabet
//! `0123456789ABCDEFGHJKMNPQRSTVWXYZ`, most significant bits first, the last partial group padded
//! with zero bits, no `=` padding, upper-case output. Decoding is forgiving the way GNUnet is
//! (case-insensitive, `O`->0, `I`/`L`->1, `U`->V) and strict about everything else.

use thiserror::Error;

/// Why a base32 string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Base32Error {
    /// The string had the wrong number of characters for the value it should hold.
    #[error("expected {expected} base32 characters, got {actual}")]
    WrongLength {
        /// Characters a value of that size takes (for variable-length input: a valid length).
        expected: usize,
        /// Characters received.
        actual: usize,
    },
    /// A character outside the Crockford alphabet (and its GNUnet aliases).
    #[error("invalid base32 character {character:?} at index {index}")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its 0-based character index in the input.
        index: usize,
    },
    /// An empty string where a non-empty value was required.
    #[error("empty string, expected {expected} base32 characters")]
    Empty {
        /// Characters a value of that size takes.
        expected: usize,
    },
}

/// Number of base32 characters that `n` bytes encode to: ceil(8n/5).
pub const fn encoded_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

/// Encode bytes as upper-case GNUnet Crockford base32 without padding.
pub fn encode(data: &[u8]) -> String {
    // The crate's Crockford alphabet and bit order are GNUnet's for encoding (checked against
    // libgnunetutil vectors in the tests); only its decoder differs (no `U`).
    base32::encode(base32::Alphabet::Crockford, data)
}

/// Value of one input character, with GNUnet's aliases; `None` if not in the alphabet.
fn char_value(c: char) -> Option<u8> {
    let v = match c.to_ascii_uppercase() {
        c @ '0'..='9' => c as u8 - b'0',
        'O' => 0,
        'I' | 'L' => 1,
        'A' => 10,
        'B' => 11,
        'C' => 12,
        'D' => 13,
        'E' => 14,
        'F' => 15,
        'G' => 16,
        'H' => 17,
        'J' => 18,
        'K' => 19,
        'M' => 20,
        'N' => 21,
        'P' => 22,
        'Q' => 23,
        'R' => 24,
        'S' => 25,
        'T' => 26,
        'U' | 'V' => 27,
        'W' => 28,
        'X' => 29,
        'Y' => 30,
        'Z' => 31,
        _ => return None,
    };
    Some(v)
}

/// Decode `s` into exactly `out.len()` bytes. The caller has checked the length.
fn decode_into(s: &str, out: &mut [u8]) -> Result<(), Base32Error> {
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut pos = 0;
    for (index, character) in s.chars().enumerate() {
        let v = char_value(character).ok_or(Base32Error::InvalidCharacter { character, index })?;
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            if let Some(slot) = out.get_mut(pos) {
                // Truncation intended: the top 8 of the pending bits form the next byte.
                *slot = (acc >> bits) as u8;
            }
            pos += 1;
            acc &= (1 << bits) - 1;
        }
    }
    // Whatever is left in `acc` are padding bits of the last character; GNUnet ignores them.
    Ok(())
}

/// Decode a base32 string of any valid length (ceil(8n/5) characters for some n).
///
/// The empty string decodes to no bytes. Lengths that no byte count encodes to (1, 3 or 6
/// modulo 8) are rejected.
pub fn decode(s: &str) -> Result<Vec<u8>, Base32Error> {
    let chars = s.chars().count();
    let n = chars * 5 / 8;
    if encoded_len(n) != chars {
        return Err(Base32Error::WrongLength { expected: encoded_len(n), actual: chars });
    }
    let mut out = vec![0u8; n];
    decode_into(s, &mut out)?;
    Ok(out)
}

/// Decode a fixed-size value (key, signature, hash): exactly ceil(8N/5) characters.
pub fn decode_fixed<const N: usize>(s: &str) -> Result<[u8; N], Base32Error> {
    let expected = encoded_len(N);
    let actual = s.chars().count();
    if actual == 0 && expected != 0 {
        return Err(Base32Error::Empty { expected });
    }
    if actual != expected {
        return Err(Base32Error::WrongLength { expected, actual });
    }
    let mut out = [0u8; N];
    decode_into(s, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Vectors {
        encode: Vec<EncodeCase>,
        decode: Vec<DecodeCase>,
    }
    #[derive(Deserialize)]
    struct EncodeCase {
        hex: String,
        base32: String,
    }
    #[derive(Deserialize)]
    struct DecodeCase {
        base32: String,
        size: usize,
        hex: Option<String>,
    }

    fn vectors() -> Vectors {
        serde_json::from_str(include_str!("../test-data/base32.json")).unwrap()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    const SEQ32: &str = "000G40R40M30E209185GR38E1W8124GK2GAHC5RR34D1P70X3RFG";

    fn seq32() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn encode_vectors() {
        for case in vectors().encode {
            let bytes = unhex(&case.hex);
            assert_eq!(encode(&bytes), case.base32, "encode {}", case.hex);
            assert_eq!(decode(&case.base32).unwrap(), bytes, "decode {}", case.base32);
        }
    }

    #[test]
    fn decode_vectors() {
        for case in vectors().decode {
            assert_eq!(case.size, 32);
            let got = decode_fixed::<32>(&case.base32);
            match case.hex {
                Some(hex) => assert_eq!(got.unwrap().to_vec(), unhex(&hex), "{}", case.base32),
                None => assert!(got.is_err(), "{} must be rejected", case.base32),
            }
        }
    }

    #[test]
    fn lower_case_and_aliases() {
        assert_eq!(decode_fixed::<32>(&SEQ32.to_lowercase()).unwrap(), seq32());
        // O and o stand for 0.
        let with_o = SEQ32.replace('0', "O");
        assert_eq!(decode_fixed::<32>(&with_o).unwrap(), seq32());
        assert_eq!(decode_fixed::<32>(&SEQ32.replace('0', "o")).unwrap(), seq32());
        // I, i, L, l stand for 1.
        for alias in ["I", "i", "L", "l"] {
            assert_eq!(decode_fixed::<32>(&SEQ32.replace('1', alias)).unwrap(), seq32(), "alias {alias}");
        }
        // U and u stand for V (27).
        assert_eq!(decode("UU").unwrap(), decode("VV").unwrap());
        assert_eq!(decode("uu").unwrap(), vec![(27 << 3) | (27 >> 2)]);
    }

    #[test]
    fn junk_characters_rejected_with_position() {
        for junk in [' ', '-', '=', '+', '/', '_', 'é', '\0'] {
            let mut s: Vec<char> = SEQ32.chars().collect();
            s[10] = junk;
            let s: String = s.into_iter().collect();
            assert_eq!(
                decode_fixed::<32>(&s),
                Err(Base32Error::InvalidCharacter { character: junk, index: 10 })
            );
            assert!(decode(&s).is_err());
        }
        let msg = decode_fixed::<32>(&SEQ32.replace("0M", "-M")).unwrap_err().to_string();
        assert!(msg.contains("'-'") && msg.contains("index 8"), "{msg}");
    }

    #[test]
    fn lengths() {
        assert_eq!(
            decode_fixed::<32>(&SEQ32[..51]),
            Err(Base32Error::WrongLength { expected: 52, actual: 51 })
        );
        assert_eq!(
            decode_fixed::<32>(&SEQ32[..51]).unwrap_err().to_string(),
            "expected 52 base32 characters, got 51"
        );
        assert!(matches!(
            decode_fixed::<32>(&format!("{SEQ32}0")),
            Err(Base32Error::WrongLength { actual: 53, .. })
        ));
        assert_eq!(decode_fixed::<32>(""), Err(Base32Error::Empty { expected: 52 }));
        assert_eq!(decode_fixed::<0>("").unwrap(), [0u8; 0]);
        assert_eq!(encoded_len(32), 52);
        assert_eq!(encoded_len(64), 103);
        // Variable length: lengths 1, 3 and 6 (mod 8) hold no whole number of bytes.
        for bad in ["0", "000", "000000", "000000000"] {
            assert!(matches!(decode(bad), Err(Base32Error::WrongLength { .. })), "{bad}");
        }
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn padding_bits_ignored() {
        // 52 chars carry 260 bits for 256: the last character's low 4 bits are padding.
        let base = decode_fixed::<32>(SEQ32).unwrap();
        for last in ['G', 'H', 'R', 'Z', 'g', 'z'] {
            let s = format!("{}{last}", &SEQ32[..51]);
            assert_eq!(decode_fixed::<32>(&s).unwrap(), base, "last {last}");
        }
        // The top bit of the last character is data, so '0' differs.
        let s = format!("{}0", &SEQ32[..51]);
        assert_ne!(decode_fixed::<32>(&s).unwrap(), base);
        assert_eq!(decode("ZZ").unwrap(), vec![0xff]);
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = encode(&bytes);
            prop_assert_eq!(s.len(), encoded_len(bytes.len()));
            prop_assert_eq!(decode(&s).unwrap(), bytes.clone());
            prop_assert_eq!(decode(&s.to_lowercase()).unwrap(), bytes);
        }

        #[test]
        fn fixed_round_trip(bytes in any::<[u8; 32]>()) {
            prop_assert_eq!(decode_fixed::<32>(&encode(&bytes)).unwrap(), bytes);
        }

        #[test]
        fn decode_never_panics(s in "\\PC{0,120}") {
            let _ = decode(&s);
            let _ = decode_fixed::<32>(&s);
            let _ = decode_fixed::<64>(&s);
        }
    }
}
