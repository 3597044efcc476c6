//! The third parties allowed to upload KYC attachments (`extern_pub` keys with a name): added
//! by the operator (JSON API, console, CLI, `--extern-key`, `[[extern]]` fixtures), disabled,
//! never deleted, so that their uploads keep naming who sent them.

use crate::crypto::EddsaPublicKey;
use crate::domain::text;
use crate::error::ApiError;
use crate::store::extern_keys::{self, ExternKey};
use crate::store::{Durability, Store, StoreError, WriteTx};

/// A third party's name as it is stored: trimmed, not empty, at most
/// [`text::MAX_NAME_CHARS`] characters, no control character. Every way of adding one
/// applies this rule and no other.
pub fn name(name: &str) -> Result<String, ApiError> {
    text::name("name", name)
}

/// Whether adding made a new third party or re-activated (and renamed) a known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    Reactivated,
}

/// Adds (or re-enables and renames) a third party, durably. The name is checked by [`name`].
pub async fn add(
    store: &Store,
    extern_pub: EddsaPublicKey,
    given_name: &str,
    now_us: i64,
) -> Result<Added, ApiError> {
    let name = name(given_name)?;
    let new = store
        .write(Durability::Durable, move |tx| extern_keys::upsert(tx, &extern_pub, &name, now_us))
        .await?;
    Ok(if new { Added::New } else { Added::Reactivated })
}

/// Disables a third party, durably; an unknown key is an error.
pub async fn disable(store: &Store, extern_pub: EddsaPublicKey) -> Result<(), ApiError> {
    let known = store.write(Durability::Durable, move |tx| extern_keys::disable(tx, &extern_pub)).await?;
    if known { Ok(()) } else { Err(ApiError::ExternUnknown(extern_pub.to_string())) }
}

/// Every third party, active or not.
pub async fn list(store: &Store) -> Result<Vec<ExternKey>, StoreError> {
    store.read(extern_keys::list).await
}

/// Adds (or re-enables and renames) the configured third parties (`--extern-key`, whose
/// names the configuration checked with [`name`]): at start, and after a reset emptied the
/// tables.
pub fn preload(tx: &WriteTx<'_>, keys: &[(EddsaPublicKey, String)], now_us: i64) -> Result<(), StoreError> {
    for (key, name) in keys {
        extern_keys::upsert(tx, key, name, now_us)?;
    }
    Ok(())
}

/// Whether a third party may upload now.
pub async fn is_active(store: &Store, extern_pub: EddsaPublicKey) -> Result<bool, StoreError> {
    store.read(move |db| extern_keys::is_active(db, &extern_pub)).await
}
