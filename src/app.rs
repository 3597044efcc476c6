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
use crate::metrics::Metrics;
use crate::session::Sessions;
use crate::store::Store;

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
    /// The operator console's logins (in memory: a restart logs everyone out).
    pub sessions: Sessions,
}

pub type AppState = Arc<AppContext>;
