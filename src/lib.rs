//! taler-lite: one binary that speaks three GNU Taler APIs from one SQLite file.
//!
//! Layout:
//! - Taler wire primitives, small and pure: [`base32`] (GNUnet's Crockford
//!   variant), [`crypto`] (keys, signatures, hashes, signed purpose structs),
//!   [`amount`], [`timestamp`], [`payto`]; plus [`subject`] (wire-transfer
//!   subjects derived from keys) and [`kyc_content`] (what an upload may hold).
//! - One module per API, holding its routes and handlers: [`exchange`]
//!   (`/config`), [`auditors`] (`/management/auditors`), [`kyc_bulk`]
//!   (`/kyc-bulk/$EXTERN_PUB` and its operator read-back), [`prepared_transfer`]
//!   (`/taler-prepared-transfer/`), [`wire_gateway`] (the
//!   `/taler-wire-gateway/` simulation that credits registered subjects).
//! - [`http`]: request plumbing every API shares; [`error`]: the one error type
//!   of the API layer and the table of Taler error codes.
//! - [`store`]: the SQLite file (schema in `schema.sql`, migrations, a read
//!   pool and one group-committing writer thread).
//! - [`server`]: routes, accept loop, start-up and shutdown; [`config`]:
//!   settings from flags, environment, TOML and defaults; [`cli`]: the
//!   commands besides `serve`.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod amount;
pub mod auditors;
pub mod base32;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod exchange;
pub mod http;
pub mod kyc_bulk;
pub mod kyc_content;
pub mod payto;
pub mod prepared_transfer;
pub mod qr_bill;
pub mod server;
pub mod store;
pub mod subject;
pub mod timestamp;
pub mod wire_gateway;

pub use server::{Listener, run};
