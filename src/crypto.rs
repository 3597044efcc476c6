//! EdDSA keys and signatures, SHA-512 hashes and the signed "purpose structs" of GNU Taler.
//!
//! Taler signs packed binary structs: an 8-byte header (total size and purpose number, both
//! big-endian) followed by fixed-size fields. A verifier rebuilds that struct from the request
//! and checks plain Ed25519 over its bytes, so each struct here must be laid out exactly as in
//! the C exchange. Verification is strict, as libsodium's (which GNUnet uses): non-canonical
//! `S`, non-canonical or small-order keys and small-order `R` are all rejected.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha512};

use crate::base32::{self, Base32Error};
use crate::timestamp::Timestamp;

/// Signature purpose numbers (`TALER_SIGNATURE_*`), kept in one place.
pub mod purpose {
    /// `TALER_SIGNATURE_MASTER_ADD_AUDITOR`: the master key enables an auditor.
    pub const MASTER_ADD_AUDITOR: u32 = 1026;
    /// `TALER_SIGNATURE_MASTER_DEL_AUDITOR`: the master key disables an auditor.
    pub const MASTER_DEL_AUDITOR: u32 = 1027;
    /// `TALER_SIGNATURE_EXTERN_BULK_UPLOAD`: a third party binds a KYC upload to an account.
    ///
    /// **Decision**: not yet registered upstream; taken from the free block 1352-1399. Change it
    /// here once GNUnet's registry assigns a number.
    pub const EXTERN_BULK_UPLOAD: u32 = 1361;
}

/// Defines a fixed-size byte value whose text form is GNUnet base32.
macro_rules! base32_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Size in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Parses the base32 text form (exactly ceil(8n/5) characters).
            pub fn from_base32(s: &str) -> Result<Self, Base32Error> {
                base32::decode_fixed::<$len>(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&base32::encode(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), base32::encode(&self.0))
            }
        }

        impl FromStr for $name {
            type Err = Base32Error;
            fn from_str(s: &str) -> Result<Self, Base32Error> {
                Self::from_base32(s)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&base32::encode(&self.0))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(Base32Visitor::<$len>).map(Self)
            }
        }
    };
}

/// Decodes a JSON string straight into its bytes: the string is borrowed from
/// the request (or serde's scratch buffer when it has escapes), never copied
/// into a `String` of its own (the registration handler decodes three of these
/// per request).
struct Base32Visitor<const N: usize>;

impl<const N: usize> serde::de::Visitor<'_> for Base32Visitor<N> {
    type Value = [u8; N];

    // The same wording as serde's own string types, so that errors read as before.
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<[u8; N], E> {
        base32::decode_fixed::<N>(s).map_err(E::custom)
    }
}

base32_bytes!(
    /// An Ed25519 public key (32 bytes, 52 base32 characters).
    EddsaPublicKey,
    32
);
base32_bytes!(
    /// An Ed25519 signature (64 bytes, 103 base32 characters).
    EddsaSignature,
    64
);
base32_bytes!(
    /// A SHA-512 hash, GNUnet's `HashCode` (64 bytes, 103 base32 characters).
    HashCode,
    64
);
base32_bytes!(
    /// The first 32 bytes of a SHA-512 hash, e.g. a full or normalized payto hash.
    ShortHashCode,
    32
);

/// SHA-512 of `data`.
pub fn sha512(data: &[u8]) -> HashCode {
    HashCode(Sha512::digest(data).into())
}

/// SHA-512 of the string's bytes followed by a NUL, as Taler hashes strings inside its structs
/// (the C code hashes `strlen + 1` bytes).
pub fn hash_str_nul(s: &str) -> HashCode {
    let mut h = Sha512::new();
    h.update(s.as_bytes());
    h.update([0u8]);
    HashCode(h.finalize().into())
}

impl HashCode {
    /// The first 32 bytes, the form Taler uses for payto hashes.
    pub fn truncate(&self) -> ShortHashCode {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.0[..32]);
        ShortHashCode(out)
    }
}

/// The bytes a Taler signature covers: `uint32 size` (header included) and `uint32 purpose`,
/// both big-endian, then the packed payload.
///
/// A payload too large for a 32-bit size cannot occur for Taler's fixed structs; should one be
/// passed, the size field saturates, and no real signer can have produced a matching signature.
pub fn purpose_bytes(purpose: u32, payload: &[u8]) -> Vec<u8> {
    let size = u32::try_from(payload.len().saturating_add(8)).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&purpose.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Whether `key` is the canonical encoding of its y coordinate (y < 2^255 - 19).
///
/// `ed25519-dalek` decompresses non-canonical encodings (ZIP-215 rules); libsodium rejects them,
/// and a verifier that accepts what GNUnet rejects would not be byte-for-byte compatible.
fn is_canonical_point(key: &[u8; 32]) -> bool {
    let high_all_ones = key[31] & 0x7f == 0x7f && key[1..31].iter().all(|&b| b == 0xff);
    !(high_all_ones && key[0] >= 0xed)
}

impl EddsaPublicKey {
    /// Strict Ed25519 verification of `sig` over the raw bytes `msg`.
    ///
    /// Returns `false` (never panics) for keys that do not decompress, are non-canonical or have
    /// small order, for non-canonical signatures, and of course for wrong signatures.
    pub fn verify(&self, msg: &[u8], sig: &EddsaSignature) -> bool {
        if !is_canonical_point(&self.0) {
            return false;
        }
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        key.verify_strict(msg, &sig).is_ok()
    }

    /// Verifies `sig` over the purpose struct made of `purpose` and `payload`.
    pub fn verify_purpose(&self, purpose: u32, payload: &[u8], sig: &EddsaSignature) -> bool {
        self.verify(&purpose_bytes(purpose, payload), sig)
    }
}

/// An Ed25519 private key: the 32-byte seed, as GNUnet stores it.
///
/// Its `Debug` output never contains the secret; it has no `Display` so that it cannot end up
/// in a log by accident. Use [`EddsaPrivateKey::to_base32`] to export it deliberately.
#[derive(Clone)]
pub struct EddsaPrivateKey(SigningKey);

impl EddsaPrivateKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(Self::from_seed(seed))
    }

    /// The key for a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The 32-byte seed.
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Parses the seed from base32 (52 characters).
    pub fn from_base32(s: &str) -> Result<Self, Base32Error> {
        base32::decode_fixed::<32>(s).map(Self::from_seed)
    }

    /// The seed as base32, for storing the key.
    pub fn to_base32(&self) -> String {
        base32::encode(&self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> EddsaPublicKey {
        EddsaPublicKey(self.0.verifying_key().to_bytes())
    }

    /// Plain Ed25519 signature over the raw bytes `msg`.
    pub fn sign(&self, msg: &[u8]) -> EddsaSignature {
        EddsaSignature(self.0.sign(msg).to_bytes())
    }

    /// Signature over the purpose struct made of `purpose` and `payload`.
    pub fn sign_purpose(&self, purpose: u32, payload: &[u8]) -> EddsaSignature {
        self.sign(&purpose_bytes(purpose, payload))
    }
}

impl fmt::Debug for EddsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EddsaPrivateKey(pub={})", self.public_key())
    }
}

impl FromStr for EddsaPrivateKey {
    type Err = Base32Error;
    fn from_str(s: &str) -> Result<Self, Base32Error> {
        Self::from_base32(s)
    }
}

/// A Taler signed struct: a purpose number and a packed payload.
pub trait SignedStruct {
    /// The `TALER_SIGNATURE_*` purpose number.
    const PURPOSE: u32;

    /// The packed fields after the 8-byte header.
    fn payload(&self) -> Vec<u8>;

    /// The whole struct as signed: header and payload.
    fn to_bytes(&self) -> Vec<u8> {
        purpose_bytes(Self::PURPOSE, &self.payload())
    }

    /// Signs the struct.
    fn sign(&self, key: &EddsaPrivateKey) -> EddsaSignature {
        key.sign_purpose(Self::PURPOSE, &self.payload())
    }

    /// Strictly verifies `sig` by `public` over the struct.
    fn verify(&self, public: &EddsaPublicKey, sig: &EddsaSignature) -> bool {
        public.verify_purpose(Self::PURPOSE, &self.payload(), sig)
    }
}

/// `TALER_MasterAddAuditorPS`: the exchange's master key enables an auditor from `start_date`.
/// The auditor's name is not signed (as upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAddAuditorPS {
    /// When the auditor becomes active (`validity_start`).
    pub start_date: Timestamp,
    /// The auditor's public key.
    pub auditor_pub: EddsaPublicKey,
    /// SHA-512 of the auditor's base URL including its terminating NUL.
    pub h_auditor_url: HashCode,
}

impl MasterAddAuditorPS {
    /// Builds the struct from the URL exactly as sent, hashing it with its NUL.
    pub fn new(start_date: Timestamp, auditor_pub: EddsaPublicKey, auditor_url: &str) -> Self {
        Self { start_date, auditor_pub, h_auditor_url: hash_str_nul(auditor_url) }
    }
}

impl SignedStruct for MasterAddAuditorPS {
    const PURPOSE: u32 = purpose::MASTER_ADD_AUDITOR;

    fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 + 64);
        out.extend_from_slice(&self.start_date.to_nbo());
        out.extend_from_slice(self.auditor_pub.as_bytes());
        out.extend_from_slice(self.h_auditor_url.as_bytes());
        out
    }
}

/// `TALER_MasterDelAuditorPS`: the master key disables an auditor from `end_date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterDelAuditorPS {
    /// When the auditor stops being active (`validity_end`).
    pub end_date: Timestamp,
    /// The auditor's public key.
    pub auditor_pub: EddsaPublicKey,
}

impl SignedStruct for MasterDelAuditorPS {
    const PURPOSE: u32 = purpose::MASTER_DEL_AUDITOR;

    fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32);
        out.extend_from_slice(&self.end_date.to_nbo());
        out.extend_from_slice(self.auditor_pub.as_bytes());
        out
    }
}

/// Binds a bulk KYC upload to an account: a third party signs the body's hash together with the
/// full payto hash of `Taler-Customer-Payto`. **Decision** (purpose 1361, see [`purpose`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternKycDataBulkBindingPS {
    /// SHA-512 of the uploaded body.
    pub h_body: HashCode,
    /// Full payto hash of the customer's account, as sent.
    pub h_payto: ShortHashCode,
}

impl SignedStruct for ExternKycDataBulkBindingPS {
    const PURPOSE: u32 = purpose::EXTERN_BULK_UPLOAD;

    fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 32);
        out.extend_from_slice(self.h_body.as_bytes());
        out.extend_from_slice(self.h_payto.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[derive(Deserialize)]
    struct EddsaVectors {
        cases: Vec<EddsaCase>,
    }
    #[derive(Deserialize)]
    struct EddsaCase {
        seed: String,
        #[serde(rename = "pub")]
        public: EddsaPublicKey,
        purpose: u32,
        payload_hex: String,
        signed_bytes_hex: String,
        sig: EddsaSignature,
    }

    #[test]
    fn eddsa_vectors() {
        let v: EddsaVectors = serde_json::from_str(include_str!("../test-data/eddsa.json")).unwrap();
        assert_eq!(v.cases.len(), 3);
        for case in v.cases {
            let key: EddsaPrivateKey = case.seed.parse().unwrap();
            assert_eq!(key.to_base32(), case.seed);
            assert_eq!(key.public_key(), case.public);
            let payload = unhex(&case.payload_hex);
            let signed = purpose_bytes(case.purpose, &payload);
            assert_eq!(signed, unhex(&case.signed_bytes_hex));
            // Ed25519 is deterministic: the signature must be reproduced exactly.
            assert_eq!(key.sign_purpose(case.purpose, &payload), case.sig);
            assert_eq!(key.sign(&signed), case.sig);
            assert!(case.public.verify_purpose(case.purpose, &payload, &case.sig));
            assert!(case.public.verify(&signed, &case.sig));

            // Any change to purpose, payload or signature must fail.
            assert!(!case.public.verify_purpose(case.purpose + 1, &payload, &case.sig));
            let mut tampered = payload.clone();
            tampered[0] ^= 1;
            assert!(!case.public.verify_purpose(case.purpose, &tampered, &case.sig));
            assert!(!case.public.verify(&payload, &case.sig));
            let mut bad_sig = *case.sig.as_bytes();
            bad_sig[5] ^= 0x10;
            let bad_sig = EddsaSignature::from_bytes(bad_sig);
            assert!(!case.public.verify_purpose(case.purpose, &payload, &bad_sig));
        }
    }

    #[derive(Deserialize)]
    struct KycBulk {
        extern_seed: String,
        extern_pub: EddsaPublicKey,
        payto: String,
        payto_full_hash: ShortHashCode,
        normalized_payto: String,
        normalized_payto_hash: ShortHashCode,
        body_hex: String,
        h_body: HashCode,
        signature: EddsaSignature,
    }

    #[test]
    fn kyc_bulk_vector() {
        let v: KycBulk = serde_json::from_str(include_str!("../test-data/kyc-bulk.json")).unwrap();
        let key: EddsaPrivateKey = v.extern_seed.parse().unwrap();
        assert_eq!(key.public_key(), v.extern_pub);
        let body = unhex(&v.body_hex);
        assert_eq!(sha512(&body), v.h_body);
        assert_eq!(hash_str_nul(&v.payto).truncate(), v.payto_full_hash);
        assert_eq!(hash_str_nul(&v.normalized_payto).truncate(), v.normalized_payto_hash);
        let payto: crate::payto::Payto = v.payto.parse().unwrap();
        assert_eq!(payto.full_hash(), v.payto_full_hash);
        assert_eq!(payto.normalized(), v.normalized_payto);
        assert_eq!(payto.normalized_hash(), v.normalized_payto_hash);

        let ps = ExternKycDataBulkBindingPS { h_body: sha512(&body), h_payto: payto.full_hash() };
        assert_eq!(ps.to_bytes().len(), 104);
        assert_eq!(ps.to_bytes()[..8], [0, 0, 0, 104, 0, 0, 0x05, 0x51]);
        assert!(ps.verify(&v.extern_pub, &v.signature));
        assert_eq!(ps.sign(&key), v.signature);

        // The normalized hash is not what is signed.
        let wrong = ExternKycDataBulkBindingPS { h_payto: v.normalized_payto_hash, ..ps.clone() };
        assert!(!wrong.verify(&v.extern_pub, &v.signature));
        let wrong_body = ExternKycDataBulkBindingPS { h_body: sha512(b"other body"), ..ps };
        assert!(!wrong_body.verify(&v.extern_pub, &v.signature));
    }

    #[derive(Deserialize)]
    struct Auditors {
        master_seed: String,
        master_pub: EddsaPublicKey,
        enable_t1700000000: Enable,
        enable_t1700000100: Enable,
        disable_t1700000050: Disable,
        enable_with_tampered_url_expect_403: Enable,
    }
    #[derive(Deserialize)]
    struct Enable {
        auditor_url: String,
        auditor_pub: EddsaPublicKey,
        master_sig: EddsaSignature,
        validity_start: Timestamp,
    }
    #[derive(Deserialize)]
    struct Disable {
        path_auditor_pub: EddsaPublicKey,
        body: DisableBody,
    }
    #[derive(Deserialize)]
    struct DisableBody {
        master_sig: EddsaSignature,
        validity_end: Timestamp,
    }

    fn add_ps(e: &Enable) -> MasterAddAuditorPS {
        MasterAddAuditorPS::new(e.validity_start, e.auditor_pub, &e.auditor_url)
    }

    #[test]
    fn auditor_vectors() {
        let v: Auditors = serde_json::from_str(include_str!("../test-data/auditors.json")).unwrap();
        let master: EddsaPrivateKey = v.master_seed.parse().unwrap();
        assert_eq!(master.public_key(), v.master_pub);

        for e in [&v.enable_t1700000000, &v.enable_t1700000100] {
            let ps = add_ps(e);
            assert_eq!(ps.to_bytes().len(), 112);
            assert!(ps.verify(&v.master_pub, &e.master_sig));
            assert_eq!(ps.sign(&master), e.master_sig);
            // Signed as an add, it must not pass as anything else.
            assert!(!v.master_pub.verify_purpose(purpose::MASTER_DEL_AUDITOR, &ps.payload(), &e.master_sig));
            let later = MasterAddAuditorPS {
                start_date: Timestamp::from_secs(e.validity_start.secs().unwrap() + 1),
                ..ps
            };
            assert!(!later.verify(&v.master_pub, &e.master_sig));
        }
        // The two enable signatures are for different dates.
        assert!(!add_ps(&v.enable_t1700000100).verify(&v.master_pub, &v.enable_t1700000000.master_sig));

        let d = &v.disable_t1700000050;
        let del = MasterDelAuditorPS { end_date: d.body.validity_end, auditor_pub: d.path_auditor_pub };
        assert_eq!(del.to_bytes().len(), 48);
        assert!(del.verify(&v.master_pub, &d.body.master_sig));
        assert_eq!(del.sign(&master), d.body.master_sig);
        let other_key = MasterDelAuditorPS { auditor_pub: v.master_pub, ..del };
        assert!(!other_key.verify(&v.master_pub, &d.body.master_sig));

        let tampered = &v.enable_with_tampered_url_expect_403;
        assert!(!add_ps(tampered).verify(&v.master_pub, &tampered.master_sig));
    }

    #[test]
    fn hashes() {
        // SHA-512("") is well known: cf83e135...
        assert_eq!(sha512(b"").as_bytes()[..4], [0xcf, 0x83, 0xe1, 0x35]);
        assert_eq!(hash_str_nul("abc"), sha512(b"abc\0"));
        assert_eq!(hash_str_nul("").truncate().as_bytes()[..], sha512(b"\0").as_bytes()[..32]);
    }

    #[test]
    fn purpose_header() {
        assert_eq!(purpose_bytes(1026, &[]), vec![0, 0, 0, 8, 0, 0, 4, 2]);
        assert_eq!(purpose_bytes(0x01020304, b"ab")[..8], [0, 0, 0, 10, 1, 2, 3, 4]);
        assert_eq!(purpose::EXTERN_BULK_UPLOAD, 1361);
    }

    #[test]
    fn bad_keys_fail_without_panic() {
        let msg = b"hello";
        let sig = EddsaSignature::from_bytes([0; 64]);
        // Identity point (small order), all-zero (small order), non-decompressing, non-canonical.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut non_canonical = [0xff; 32];
        non_canonical[31] = 0x7f;
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        for bytes in [identity, [0; 32], not_on_curve, non_canonical, [0xff; 32]] {
            let k = EddsaPublicKey::from_bytes(bytes);
            assert!(!k.verify(msg, &sig));
            assert!(!k.verify_purpose(1, msg, &sig));
        }
        // A small-order key with the trivial "signature" (R = identity, S = 0) verifies under
        // lax rules for every message; strict verification must refuse it.
        let mut trivial = [0u8; 64];
        trivial[0] = 1;
        let k = EddsaPublicKey::from_bytes(identity);
        assert!(!k.verify(msg, &EddsaSignature::from_bytes(trivial)));
    }

    #[test]
    fn non_canonical_s_rejected() {
        let key = EddsaPrivateKey::from_seed([7; 32]);
        let sig = key.sign(b"m");
        assert!(key.public_key().verify(b"m", &sig));
        // S + L is the same scalar mod L but not canonical: libsodium rejects it.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut bytes = *sig.as_bytes();
        let mut carry = 0u16;
        for i in 0..32 {
            let s = u16::from(bytes[32 + i]) + u16::from(L[i]) + carry;
            bytes[32 + i] = s as u8;
            carry = s >> 8;
        }
        assert_eq!(carry, 0);
        assert!(!key.public_key().verify(b"m", &EddsaSignature::from_bytes(bytes)));
    }

    #[test]
    fn private_key_basics() {
        let a = EddsaPrivateKey::generate().unwrap();
        let b = EddsaPrivateKey::generate().unwrap();
        assert_ne!(a.public_key(), b.public_key());
        let debug = format!("{a:?}");
        assert!(!debug.contains(&a.to_base32()), "{debug}");
        assert!(debug.contains(&a.public_key().to_string()));
        let again = EddsaPrivateKey::from_base32(&a.to_base32()).unwrap();
        assert_eq!(again.public_key(), a.public_key());
        assert_eq!(again.to_seed(), a.to_seed());
        assert!(EddsaPrivateKey::from_str("short").is_err());
    }

    #[test]
    fn serde_and_text_forms() {
        let k = EddsaPrivateKey::from_seed([1; 32]).public_key();
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"{k}\""));
        assert_eq!(serde_json::from_str::<EddsaPublicKey>(&json).unwrap(), k);
        assert_eq!(k.to_string().parse::<EddsaPublicKey>().unwrap(), k);
        assert_eq!(format!("{k:?}"), format!("EddsaPublicKey({k})"));

        let short = format!("\"{}\"", &k.to_string()[..51]);
        let err = serde_json::from_str::<EddsaPublicKey>(&short).unwrap_err().to_string();
        assert!(err.contains("expected 52 base32 characters, got 51"), "{err}");
        let err = serde_json::from_str::<EddsaSignature>("\"\"").unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("103"), "{err}");
        let err = serde_json::from_str::<HashCode>("17").unwrap_err().to_string();
        assert!(err.contains("string"), "{err}");
        let mut bad = k.to_string();
        bad.replace_range(3..4, "#");
        let err = serde_json::from_str::<EddsaPublicKey>(&format!("\"{bad}\"")).unwrap_err().to_string();
        assert!(err.contains("'#'") && err.contains("index 3"), "{err}");
        // Escaped strings in JSON decode too (not only borrowed ones).
        let escaped = format!("\"\\u00{:02x}{}\"", k.to_string().as_bytes()[0], &k.to_string()[1..]);
        assert_eq!(serde_json::from_str::<EddsaPublicKey>(&escaped).unwrap(), k);
    }

    proptest! {
        #[test]
        fn sign_verify(seed in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..64), purpose in any::<u32>()) {
            let key = EddsaPrivateKey::from_seed(seed);
            let sig = key.sign_purpose(purpose, &msg);
            prop_assert!(key.public_key().verify_purpose(purpose, &msg, &sig));
            prop_assert!(!key.public_key().verify_purpose(purpose ^ 1, &msg, &sig));
        }

        #[test]
        fn verify_never_panics(key in any::<[u8; 32]>(), sig in proptest::collection::vec(any::<u8>(), 64)) {
            let mut s = [0u8; 64];
            s.copy_from_slice(&sig);
            let _ = EddsaPublicKey::from_bytes(key).verify(b"x", &EddsaSignature::from_bytes(s));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = s.parse::<EddsaPublicKey>();
            let _ = s.parse::<EddsaSignature>();
            let _ = s.parse::<EddsaPrivateKey>();
        }
    }
}
