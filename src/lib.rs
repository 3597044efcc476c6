//! taler-lite
