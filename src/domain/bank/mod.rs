//! The bank's concepts: prepared-transfer registrations and the subjects derived from them, the
//! exchange's accounts, and the transfers that the Wire Gateway moves in and out of them.

pub mod accounts;
pub mod admin;
pub mod gateway;
pub mod outgoing;
pub mod registrations;
pub mod transfers;

use serde::{Deserialize, Serialize};

/// What a registration's money, and the transfer that brings it, is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferType {
    Reserve,
    Kyc,
}

impl TransferType {
    /// The prepared-transfer API's name, also the registrations table's (`reserve`, `kyc`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransferType::Reserve => "reserve",
            TransferType::Kyc => "kyc",
        }
    }

    /// The wire gateway's name (`RESERVE`, `KYCAUTH`), also the transfers table's.
    pub fn wire_name(self) -> &'static str {
        match self {
            TransferType::Reserve => "RESERVE",
            TransferType::Kyc => "KYCAUTH",
        }
    }

    /// The type a registrations row names (the schema's CHECK allows only these two).
    pub fn from_stored(name: &str) -> Result<TransferType, crate::store::StoreError> {
        match name {
            "reserve" => Ok(TransferType::Reserve),
            "kyc" => Ok(TransferType::Kyc),
            other => Err(crate::store::StoreError::Invariant(format!("unknown registration type {other}"))),
        }
    }
}
