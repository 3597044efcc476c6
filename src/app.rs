//! What every handler can reach: the application's state.
//!
//! It sits below the APIs and above the store, so that the API modules, the
//! HTTP plumbing and the server all depend on it and it depends on none of
//! them. The clock is part of it, so that an in-process test can move time.

use std::sync::Arc;
use std::time::Instant;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::EddsaPublicKey;
use crate::faults::Faults;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::session::Sessions;
use crate::store::Store;
use crate::store::snapshots::Shelf;
use crate::wakeup::Wakeups;

/// The server's state, shared by every request.
pub struct AppContext {
    pub settings: Settings,
    /// The exchange's master public key: verifies auditor changes.
    pub master_pub: EddsaPublicKey,
    /// The operator's bearer token.
    pub token: String,
    pub store: Store,
    pub clock: Clock,
    /// With a trailing slash.
    pub base_url: String,
    /// For the uptime the console shows.
    pub started: Instant,
    /// Recorded by the dispatcher, exposed by `GET /metrics`.
    pub metrics: Metrics,
    /// The schedule that holds requests with wrong credentials (README "Operator access").
    pub auth_failures: std::sync::Arc<crate::auth_failures::AuthFailures>,
    /// Bytes staged for uploads whose signature is not checked yet (`--max-staged`).
    pub staged_budget: std::sync::Arc<crate::staged_budget::StagedBudget>,
    /// The operator console's logins (in memory: a restart logs everyone out).
    pub sessions: Sessions,
    /// The long polls of the Wire Gateway's histories, woken by the commits they wait for.
    pub wakeups: Wakeups,
    /// The journal of requests: on a development server, unless `--journal-size 0`.
    pub journal: Option<Journal>,
    /// Faults on demand (only a development server has the routes that add them).
    pub faults: Faults,
    /// The snapshots of a development server; one operation on them at a time.
    pub snapshots: tokio::sync::Mutex<Shelf>,
}

pub type AppState = Arc<AppContext>;
