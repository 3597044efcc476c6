//! The rules: one module per Taler concept, each owning its validation, its outcome types and
//! its operations over the store. The adapters (the JSON API, the console, the fixtures, the
//! CLI) call these operations and only translate their inputs and outputs; a rule that two
//! adapters share lives here once.
//!
//! The domain sits below the adapters and above `http`/`app`/`store` and the primitives: it
//! never imports `api`, `server` or `cli`.

pub mod bank;
pub mod exchange;
