//! taler-lite: one binary that speaks three GNU Taler APIs from one SQLite file.
//!
//! Layers, each importing only from the ones below it (`tests/layers.rs` holds every import
//! to this line):
//!
//! ```text
//! main -> cli -> server -> api -> domain -> http, app, error, config, metrics -> store -> session, auth_failures, staged_budget, wakeup, journal, faults -> primitives
//! ```
//!
//! - Primitives, small and pure: [`base32`], [`crypto`] (keys, signatures,
//!   hashes, signed purpose structs), [`amount`], [`timestamp`], [`payto`],
//!   [`subject`] (subjects: derivation and parsing), [`kyc_content`] (what an
//!   upload may hold), [`qr_bill`] (Swiss QR bill and EPC payloads as SVG), [`clock`] (the
//!   server's one clock, movable on a development server), [`regular_file`] (opening a file
//!   an operator names without hanging on a FIFO); in tests, `readme_tables` (the README's
//!   tables, which tests hold to the code).
//! - In-memory state the server holds, below the store and the dispatcher that both use it:
//!   [`session`] (the console's logins), [`auth_failures`] (the budget of wrong credentials), [`staged_budget`] (bytes
//!   staged unverified),
//!   [`wakeup`] (the channels that wake the Wire Gateway's long polls after a commit), [`journal`] (the development server's bounded journal of
//!   requests), [`faults`] (faults on demand).
//! - [`store`]: the SQLite file and *all* SQL (`schema.sql`, migrations, a read
//!   pool, one group-committing writer), one module per table group with typed
//!   inputs and outputs ([`store::auditors`], [`store::extern_keys`],
//!   [`store::kyc`], [`store::registrations`], [`store::transfers`], [`store::gateway`],
//!   [`store::fixtures`], [`store::console`]), the whole-file tools ([`store::backup`],
//!   [`store::check`], [`store::stats`], [`store::snapshots`]) and the file's guards
//!   ([`store::lock`]: one writer per file; [`store::identity`]: the files are still the ones
//!   at their paths).
//! - [`http`]: request reading and the route table's dispatcher (token, 405,
//!   `HEAD`, CORS, console sessions, faults, journal), bodies streamed from the store
//!   ([`http::stream`]); [`app`]: the state every handler gets; [`error`]: the one
//!   error type, with the table of Taler codes; [`config`]: settings;
//!   [`metrics`]: what `/metrics` shows.
//! - [`domain`]: the rules, one module per Taler concept under [`domain::exchange`]
//!   (auditors, third parties, KYC uploads) and [`domain::bank`] (registrations, transfers
//!   in, accounts and amounts, the Wire Gateway's accounts and histories, transfers out, its
//!   admin credits), with [`domain::text`] for free text; every adapter (JSON API, console,
//!   fixtures, CLI) calls the same operation and only translates its inputs and outputs.
//! - [`api`]: the adapters, one module per API with its routes and handlers (none imports
//!   another); every route is a
//!   row of [`api::route_table`]. To find a route: its row in its module's
//!   `routes()`, the handler below it, its rules in `domain`, its SQL in `store`,
//!   its tests in `tests/<api>.rs` (and `tests/access.rs` for all of them).
//!   [`api::console`] is the operator console (HTML under `/console/`);
//!   [`api::controls`] the development server's fixture controls (clock, faults, journal,
//!   snapshots).
//! - [`server`]: listener, accept loop, start-up and shutdown ([`run`] serves a
//!   bound listener until a shutdown future resolves, for in-process tests), with
//!   [`linger`] (the lingering close after an early answer); [`cli`]: the commands.
//! - [`log_sink`] (below everything, std only): the thread that writes `serve`'s log lines to
//!   stderr, and [`log_sink::flush`] for whoever prints to stderr directly.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod amount;
pub mod api;
pub mod app;
pub mod auth_failures;
pub mod base32;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod faults;
pub mod http;
pub mod journal;
pub mod kyc_content;
pub mod linger;
pub mod log_sink;
pub mod metrics;
pub mod payto;
pub mod qr_bill;
#[cfg(test)]
mod readme_tables;
pub mod regular_file;
pub mod server;
pub mod session;
pub mod staged_budget;
pub mod store;
pub mod subject;
pub mod timestamp;
pub mod wakeup;

pub use server::{Listener, run};
