//! Third parties ("extern keys") allowed to upload bulk KYC data, as the
//! operator API, the CLI and the start-up pre-loading all see them.

use rusqlite::params;
use serde::Serialize;

use super::{Db, StoreError, WriteTx};
use crate::crypto::EddsaPublicKey;
use crate::timestamp::Timestamp;

/// A row of `extern_keys` (every read of the table gives this, its columns read by name by
/// [`row`]), as `GET /private/extern-keys` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ExternKey {
    pub extern_pub: EddsaPublicKey,
    pub name: String,
    pub active: bool,
    pub created: Timestamp,
}

/// Adds a third party, or re-activates and renames a known one. Returns
/// whether it was new.
pub fn upsert(
    tx: &WriteTx<'_>,
    extern_pub: &EddsaPublicKey,
    name: &str,
    now_us: i64,
) -> Result<bool, StoreError> {
    let known = tx
        .query_optional("SELECT 1 FROM extern_keys WHERE extern_pub = ?1", [extern_pub], |_| Ok(()))?
        .is_some();
    tx.execute(
        "INSERT INTO extern_keys (extern_pub, name, is_active, created_us) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (extern_pub) DO UPDATE SET name = excluded.name, is_active = 1",
        params![extern_pub, name, now_us],
    )?;
    Ok(!known)
}

/// Disables a third party; `false` when it is unknown.
pub fn disable(tx: &WriteTx<'_>, extern_pub: &EddsaPublicKey) -> Result<bool, StoreError> {
    Ok(tx.execute("UPDATE extern_keys SET is_active = 0 WHERE extern_pub = ?1", [extern_pub])? > 0)
}

/// Whether the key may upload now.
pub fn is_active(db: &Db<'_>, extern_pub: &EddsaPublicKey) -> Result<bool, StoreError> {
    Ok(db
        .query_optional("SELECT is_active FROM extern_keys WHERE extern_pub = ?1", [extern_pub], |r| {
            r.get::<_, bool>("is_active")
        })?
        .unwrap_or(false))
}

/// The columns [`row`] reads, as a literal for `concat!` (one `&'static str` per statement).
macro_rules! columns {
    () => {
        "extern_pub, name, is_active, created_us"
    };
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExternKey> {
    Ok(ExternKey {
        extern_pub: r.get("extern_pub")?,
        name: r.get("name")?,
        active: r.get("is_active")?,
        created: Timestamp::from_unix_micros(r.get("created_us")?),
    })
}

/// One third party, active or not.
pub fn find(db: &Db<'_>, extern_pub: &EddsaPublicKey) -> Result<Option<ExternKey>, StoreError> {
    db.query_optional(
        concat!("SELECT ", columns!(), " FROM extern_keys WHERE extern_pub = ?1"),
        [extern_pub],
        row,
    )
}

/// Every third party, oldest first.
pub fn list(db: &Db<'_>) -> Result<Vec<ExternKey>, StoreError> {
    db.query_all(concat!("SELECT ", columns!(), " FROM extern_keys ORDER BY created_us, extern_pub"), [], row)
}
