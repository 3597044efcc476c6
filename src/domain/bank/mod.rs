//! The bank's concepts: prepared-transfer registrations and the subjects derived from them, the
//! exchange's accounts, and the transfers that the Wire Gateway moves in and out of them.

pub mod admin;
pub mod gateway;
pub mod outgoing;
