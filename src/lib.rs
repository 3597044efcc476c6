//! taler-lite: one binary that speaks three GNU Taler APIs from one SQLite file.
//!
//! Layers, each importing only from the ones below it:
//!
//! ```text
//! main -> cli -> server -> api -> http, app, error, config -> store -> primitives
//! ```
//!
//! - Primitives, small and pure: [`base32`] (GNUnet's Crockford variant),
//!   [`crypto`] (keys, signatures, hashes, signed purpose structs), [`amount`],
//!   [`timestamp`], [`payto`], [`subject`] (wire-transfer subjects: derivation
//!   and parsing), [`kyc_content`] (what an upload may hold), [`qr_bill`] (Swiss
//!   QR bill and EPC QR code payloads, drawn as SVG), [`clock`].
//! - [`store`]: the SQLite file and *all* SQL: `schema.sql` and migrations, a
//!   read pool, one group-committing writer thread, and one module per table
//!   group ([`store::auditors`], [`store::extern_keys`], [`store::kyc`],
//!   [`store::registrations`], [`store::transfers`]) with typed inputs and outputs;
//!   the operator's whole-file tools beside them: [`store::backup`],
//!   [`store::check`], and the numbers of [`store::stats`],
//!   and [`store::fixtures`] for what only the fixtures and the reset need.
//! - [`config`]: settings (flag > environment > TOML > default); [`app`]: the
//!   state every handler gets, with the request [`metrics`] that the
//!   dispatcher records; [`error`]: the one error type of the API layer,
//!   with the table of Taler codes; [`http`]: request reading, and the route
//!   table's dispatcher (token checks, 405, HEAD, CORS).
//! - [`api`]: one module per API with its routes and handlers, and in
//!   [`api::route_table`] every route of the server. To find a route: its row
//!   is in its module's `routes()`, the handler just below, its SQL in the
//!   `store` module of the same name, its tests in `tests/<api>.rs`.
//!   [`api::console`] is the operator console (HTML pages under `/console/`,
//!   its queries in [`store::console`], its in-memory sessions in
//!   [`http::session`], which the dispatcher checks for `Access::Console` rows).
//!   [`api::fixtures`] applies a fixture file through the other APIs' own
//!   functions, and holds the development route `POST /private/reset`.
//! - [`server`]: listener, accept loop, start-up (ephemeral folder, fixtures)
//!   and shutdown ([`run`] serves a bound listener until a shutdown future
//!   resolves, for in-process tests; `serve` adds the summary, the ready line on
//!   stdout and the signals and end of stdin that stop it);
//!   [`linger`]: the lingering close after an early answer; [`cli`]: the commands, and the log formats (human, JSON).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod amount;
pub mod api;
pub mod app;
pub mod base32;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod kyc_content;
pub mod linger;
pub mod metrics;
pub mod payto;
pub mod qr_bill;
pub mod server;
pub mod store;
pub mod subject;
pub mod timestamp;

pub use server::{Listener, run};
