//! The rules: one module per Taler concept, each owning its validation, its outcome types and
//! its operations over the store. The adapters (the JSON API, the console, the fixtures, the
//! CLI) call these operations and only translate their inputs and outputs; a rule that two
//! adapters share lives here once.
//!
//! The domain sits below the adapters and above `http`/`app`/`store` and the primitives: it
//! never imports `api`, `server` or `cli`. Its errors are [`ApiError`](crate::error::ApiError)s,
//! whose table gives each its status and Taler code; an adapter that is not HTTP (the console's
//! forms, the fixtures, the CLI) shows the error's text.

pub mod bank;
pub mod exchange;
pub mod text;

/// Names this implementation to clients: the `implementation` of every API's config.
pub const IMPLEMENTATION: &str = "urn:net:taler:specs:taler-lite";
