//! Wire-transfer subjects for prepared transfers: derivation, Swiss QR references, and tolerant
//! parsing of what a customer actually typed.
//!
//! A full 52-character key fits in a SEPA remittance field but not in a Swiss QR bill reference
//! (27 digits) or in other short subject fields, so the bank side hands out *derived* subjects that
//! it remembers next to the registration. Everything here is pure (no I/O, no database): the
//! registration handler derives subjects with [`short_subject`], [`qr_reference`] and
//! [`uri_subject`] (how: `derive.rs`); the incoming-transfer handler turns free text into
//! candidates with [`parse_subject`] and looks them up (how, at what cost, and what it cannot find:
//! `parse.rs`).

mod derive;
mod parse;
#[cfg(test)]
mod test_support;

pub use derive::{
    SHORT_ALPHABET, SubjectError, derive_digits, group_qr_reference, qr_check_digit, qr_reference,
    qr_reference_valid, short_subject, uri_subject,
};
pub use parse::{MAX_CANDIDATES, MAX_SHORT_LENGTH, MAX_SUBJECT_CHARS, SubjectMatch, parse_subject};
