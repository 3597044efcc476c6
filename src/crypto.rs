//! Keys, signatures and hashes as Taler puts them on the wire.
//!
//! Fixed-size values travel as GNUnet base32 ([`crate::base32`]) and are
//! rejected on input with a reason naming the expected size. A Taler signature
//! is plain Ed25519 over a *purpose struct*: `uint32 size || uint32 purpose`
//! (big-endian, size including these 8 bytes) followed by the packed fields, so
//! a signature made for one purpose can never verify for another. Verification
//! is strict (no small-order keys or points, canonical `S`), as libsodium's.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha512};

use crate::base32::{self, Base32Error};
use crate::timestamp::Timestamp;

/// Registered signature purposes (GNU Taler's `taler_signatures.h`).
pub mod purpose {
    /// `TALER_SIGNATURE_MASTER_ADD_AUDITOR`
    pub const MASTER_ADD_AUDITOR: u32 = 1026;
    /// `TALER_SIGNATURE_MASTER_DEL_AUDITOR`
    pub const MASTER_DEL_AUDITOR: u32 = 1027;
    /// `TALER_SIGNATURE_EXTERN_BULK_UPLOAD`. **Decision**: not yet registered
    /// upstream; the block 1352-1399 is free. Change it here when it is.
    pub const EXTERN_BULK_UPLOAD: u32 = 1361;
}

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                $name(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&base32::encode(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = Base32Error;
            fn from_str(s: &str) -> Result<Self, Base32Error> {
                base32::decode_fixed::<$len>(s).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fixed_bytes!(
    /// An Ed25519 public key (`EddsaPublicKey`).
    EddsaPublicKey, 32
);
fixed_bytes!(
    /// An Ed25519 signature (`EddsaSignature`).
    EddsaSignature, 64
);
fixed_bytes!(
    /// A SHA-512 hash (`HashCode`).
    HashCode, 64
);
fixed_bytes!(
    /// The first 32 bytes of a SHA-512 hash (`ShortHashCode`), e.g. payto hashes.
    ShortHashCode, 32
);

/// SHA-512 of `data`.
pub fn sha512(data: &[u8]) -> HashCode {
    HashCode(Sha512::digest(data).into())
}

/// SHA-512 of a string with its terminating NUL, as C code hashes strings.
pub fn hash_str_nul(s: &str) -> HashCode {
    let mut h = Sha512::new();
    h.update(s.as_bytes());
    h.update([0u8]);
    HashCode(h.finalize().into())
}

/// The bytes a purpose signature is made over.
pub fn purpose_bytes(purpose: u32, payload: &[u8]) -> Vec<u8> {
    let size = u32::try_from(8 + payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&purpose.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

impl EddsaPublicKey {
    /// Strict Ed25519 verification of `sig` over `msg`; a key that is not a
    /// valid point, or a weak one, verifies nothing.
    pub fn verify(&self, msg: &[u8], sig: &EddsaSignature) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else { return false };
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        key.verify_strict(msg, &sig).is_ok()
    }

    /// Verification over a purpose struct.
    pub fn verify_purpose(&self, purpose: u32, payload: &[u8], sig: &EddsaSignature) -> bool {
        self.verify(&purpose_bytes(purpose, payload), sig)
    }
}

/// An Ed25519 private key: the 32-byte seed (GNUnet's `EddsaPrivateKey`).
#[derive(Clone)]
pub struct EddsaPrivateKey(SigningKey);

impl EddsaPrivateKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<EddsaPrivateKey, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(EddsaPrivateKey::from_seed(seed))
    }

    pub fn from_seed(seed: [u8; 32]) -> EddsaPrivateKey {
        EddsaPrivateKey(SigningKey::from_bytes(&seed))
    }

    pub fn public_key(&self) -> EddsaPublicKey {
        EddsaPublicKey(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, msg: &[u8]) -> EddsaSignature {
        EddsaSignature(self.0.sign(msg).to_bytes())
    }

    pub fn sign_purpose(&self, purpose: u32, payload: &[u8]) -> EddsaSignature {
        self.sign(&purpose_bytes(purpose, payload))
    }
}

/// The seed in base32, as key files hold it.
impl fmt::Display for EddsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32::encode(&self.0.to_bytes()))
    }
}

/// Never prints the secret.
impl fmt::Debug for EddsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EddsaPrivateKey(public {})", self.public_key())
    }
}

impl FromStr for EddsaPrivateKey {
    type Err = Base32Error;
    fn from_str(s: &str) -> Result<Self, Base32Error> {
        base32::decode_fixed::<32>(s).map(EddsaPrivateKey::from_seed)
    }
}

/// `TALER_MasterAddAuditorPS`: the master key enables an auditor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterAddAuditorPS {
    pub start_date: Timestamp,
    pub auditor_pub: EddsaPublicKey,
    pub h_auditor_url: HashCode,
}

impl MasterAddAuditorPS {
    pub fn new(start_date: Timestamp, auditor_pub: EddsaPublicKey, auditor_url: &str) -> Self {
        MasterAddAuditorPS { start_date, auditor_pub, h_auditor_url: hash_str_nul(auditor_url) }
    }

    pub fn payload(&self) -> Vec<u8> {
        [&self.start_date.to_nbo()[..], &self.auditor_pub.0, &self.h_auditor_url.0].concat()
    }

    pub fn sign(&self, key: &EddsaPrivateKey) -> EddsaSignature {
        key.sign_purpose(purpose::MASTER_ADD_AUDITOR, &self.payload())
    }

    pub fn verify(&self, master_pub: &EddsaPublicKey, sig: &EddsaSignature) -> bool {
        master_pub.verify_purpose(purpose::MASTER_ADD_AUDITOR, &self.payload(), sig)
    }
}

/// `TALER_MasterDelAuditorPS`: the master key disables an auditor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterDelAuditorPS {
    pub end_date: Timestamp,
    pub auditor_pub: EddsaPublicKey,
}

impl MasterDelAuditorPS {
    pub fn payload(&self) -> Vec<u8> {
        [&self.end_date.to_nbo()[..], &self.auditor_pub.0].concat()
    }

    pub fn sign(&self, key: &EddsaPrivateKey) -> EddsaSignature {
        key.sign_purpose(purpose::MASTER_DEL_AUDITOR, &self.payload())
    }

    pub fn verify(&self, master_pub: &EddsaPublicKey, sig: &EddsaSignature) -> bool {
        master_pub.verify_purpose(purpose::MASTER_DEL_AUDITOR, &self.payload(), sig)
    }
}

/// `TALER_ExternKycDataBulkBindingPS`: a third party binds a body to a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternKycDataBulkBindingPS {
    pub h_body: HashCode,
    /// `FullPaytoHash` of `Taler-Customer-Payto`.
    pub h_payto: ShortHashCode,
}

impl ExternKycDataBulkBindingPS {
    pub fn payload(&self) -> Vec<u8> {
        [&self.h_body.0[..], &self.h_payto.0].concat()
    }

    pub fn sign(&self, key: &EddsaPrivateKey) -> EddsaSignature {
        key.sign_purpose(purpose::EXTERN_BULK_UPLOAD, &self.payload())
    }

    pub fn verify(&self, extern_pub: &EddsaPublicKey, sig: &EddsaSignature) -> bool {
        extern_pub.verify_purpose(purpose::EXTERN_BULK_UPLOAD, &self.payload(), sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn eddsa_vectors_of_libgnunetutil() {
        let v = vectors(include_str!("../test-data/eddsa.json"));
        for case in v["cases"].as_array().unwrap() {
            let key: EddsaPrivateKey = case["seed"].as_str().unwrap().parse().unwrap();
            assert_eq!(key.public_key().to_string(), case["pub"]);
            let purpose = case["purpose"].as_u64().unwrap() as u32;
            let payload = hex(case["payload_hex"].as_str().unwrap());
            assert_eq!(purpose_bytes(purpose, &payload), hex(case["signed_bytes_hex"].as_str().unwrap()));
            let sig = key.sign_purpose(purpose, &payload);
            assert_eq!(sig.to_string(), case["sig"]);
            let public: EddsaPublicKey = case["pub"].as_str().unwrap().parse().unwrap();
            assert!(public.verify_purpose(purpose, &payload, &sig));
            assert!(!public.verify_purpose(purpose + 1, &payload, &sig));
            let mut tampered = payload.clone();
            tampered[0] ^= 1;
            assert!(!public.verify_purpose(purpose, &tampered, &sig));
        }
    }

    #[test]
    fn auditor_vectors_verify_and_tampering_does_not() {
        let v = vectors(include_str!("../test-data/auditors.json"));
        let master: EddsaPublicKey = v["master_pub"].as_str().unwrap().parse().unwrap();
        let seed: EddsaPrivateKey = v["master_seed"].as_str().unwrap().parse().unwrap();
        assert_eq!(seed.public_key(), master);
        for (name, valid) in [("enable_t1700000000", true), ("enable_t1700000100", true), ("enable_with_tampered_url_expect_403", false)] {
            let e = &v[name];
            let ps = MasterAddAuditorPS::new(
                Timestamp::from_secs(e["validity_start"]["t_s"].as_u64().unwrap()),
                e["auditor_pub"].as_str().unwrap().parse().unwrap(),
                e["auditor_url"].as_str().unwrap(),
            );
            let sig: EddsaSignature = e["master_sig"].as_str().unwrap().parse().unwrap();
            assert_eq!(ps.verify(&master, &sig), valid, "{name}");
            if valid {
                assert_eq!(ps.sign(&seed), sig, "{name}");
            }
        }
        let d = &v["disable_t1700000050"];
        let ps = MasterDelAuditorPS {
            end_date: Timestamp::from_secs(d["body"]["validity_end"]["t_s"].as_u64().unwrap()),
            auditor_pub: d["path_auditor_pub"].as_str().unwrap().parse().unwrap(),
        };
        let sig: EddsaSignature = d["body"]["master_sig"].as_str().unwrap().parse().unwrap();
        assert!(ps.verify(&master, &sig));
        // A disable signature never passes as an enable one.
        let as_add = MasterAddAuditorPS::new(ps.end_date, ps.auditor_pub, "https://auditor.example.com/");
        assert!(!as_add.verify(&master, &sig));
    }

    #[test]
    fn kyc_bulk_vector_verifies() {
        let v = vectors(include_str!("../test-data/kyc-bulk.json"));
        let key: EddsaPrivateKey = v["extern_seed"].as_str().unwrap().parse().unwrap();
        assert_eq!(key.public_key().to_string(), v["extern_pub"]);
        let body = hex(v["body_hex"].as_str().unwrap());
        assert_eq!(sha512(&body).to_string(), v["h_body"]);
        let h_payto: ShortHashCode = v["payto_full_hash"].as_str().unwrap().parse().unwrap();
        let ps = ExternKycDataBulkBindingPS { h_body: sha512(&body), h_payto };
        let sig: EddsaSignature = v["signature"].as_str().unwrap().parse().unwrap();
        assert!(ps.verify(&key.public_key(), &sig));
        assert_eq!(ps.sign(&key), sig);
        let other = ExternKycDataBulkBindingPS { h_body: sha512(b"other"), h_payto };
        assert!(!other.verify(&key.public_key(), &sig));
    }

    #[test]
    fn strict_verification_rejects_weak_keys_and_bad_input() {
        // The identity point (a small-order key) must not verify anything.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = EddsaPublicKey::from_bytes(identity);
        let sig = EddsaSignature::from_bytes([0u8; 64]);
        assert!(!weak.verify(b"", &sig));
        // Not a point at all.
        assert!(!EddsaPublicKey::from_bytes([0xff; 32]).verify(b"x", &sig));
    }

    #[test]
    fn decoding_names_the_expected_size() {
        let err = "ABC".parse::<EddsaPublicKey>().unwrap_err().to_string();
        assert!(err.contains("52"), "{err}");
        let err = "ABC".parse::<EddsaSignature>().unwrap_err().to_string();
        assert!(err.contains("103"), "{err}");
        let json = serde_json::to_string(&sha512(b"")).unwrap();
        assert_eq!(serde_json::from_str::<HashCode>(&json).unwrap(), sha512(b""));
        assert!(format!("{:?}", EddsaPrivateKey::from_seed([7; 32])).contains("public"));
    }
}
