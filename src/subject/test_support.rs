//! Test vectors and helpers shared by the derivation and parsing tests.

pub(super) const VECTORS: &str = include_str!("../../test-data/prepared-transfer.json");

/// Test-only Crockford decoder (canonical alphabet, MSB-first 5-bit groups) for the vectors.
pub(super) fn decode_key(s: &str) -> [u8; 32] {
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

pub(super) struct Registration {
    pub(super) key: [u8; 32],
    pub(super) pub_text: String,
    pub(super) short12: String,
    pub(super) qr: String,
    pub(super) qr_prefixed: String,
}

pub(super) fn registrations() -> Vec<Registration> {
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

/// "ABCDEFGH..." -> "ABCD-EFGH-..." (or any separator and chunk size).
pub(super) fn chunked(s: &str, size: usize, sep: &str) -> String {
    s.as_bytes().chunks(size).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(sep)
}

#[test]
fn test_decoder_reads_msb_first() {
    // The first key starts with "XDT7": X=29, D=13 -> 11101 01101 -> first byte 0xEB.
    let k = decode_key("XDT7ZZMYJY41RF1S4XA2A1JDE0G8EAB9XFR60ANNS8V7T3D23MP0");
    assert_eq!(k[0], 0xEB);
}
