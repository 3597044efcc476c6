//! The exchange's concepts: its auditors (changes signed with the offline master key), the third
//! parties allowed to upload KYC attachments, and those uploads.

pub mod auditors;
pub mod kyc_uploads;
pub mod third_parties;
