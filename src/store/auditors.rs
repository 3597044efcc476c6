//! Auditors (`POST /management/auditors`, its `/disable`, `GET /auditors`).
//!
//! Rows are never deleted: the time of the last accepted change must be
//! remembered forever, so that a replayed old enable cannot undo a newer
//! disable.

use rusqlite::params;
use serde::Serialize;

use super::{Db, StoreError, WriteTx};
use crate::crypto::{EddsaPublicKey, EddsaSignature};

/// Seconds value stored for a Taler "never".
pub const NEVER_S: i64 = i64::MAX;

/// An auditor as the operator tools show it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditorRow {
    pub auditor_pub: EddsaPublicKey,
    pub auditor_url: String,
    pub auditor_name: String,
    pub is_active: bool,
    /// `validity_start` or `validity_end` of the last accepted change, in seconds.
    pub last_change_s: i64,
    /// The master signature of that change, kept as evidence.
    pub master_sig: EddsaSignature,
}

/// A change older than the one stored (seconds of the stored one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoreRecentPresent(pub i64);

/// How a disable went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    Done,
    Unknown,
    MoreRecentPresent(MoreRecentPresent),
}

/// A change to apply.
pub struct AuditorChange<'a> {
    pub auditor_pub: &'a EddsaPublicKey,
    /// `validity_start` / `validity_end` in seconds ([`NEVER_S`] for never).
    pub at_s: i64,
    pub master_sig: &'a EddsaSignature,
}

fn last_change(db: &Db<'_>, auditor_pub: &EddsaPublicKey) -> Result<Option<i64>, StoreError> {
    db.query_optional("SELECT last_change_s FROM auditors WHERE auditor_pub = ?1", [auditor_pub], |r| {
        r.get("last_change_s")
    })
}

/// Enables (or re-enables, with new URL and name) an auditor unless a more
/// recent change is stored.
pub fn enable(
    tx: &WriteTx<'_>,
    change: &AuditorChange<'_>,
    url: &str,
    name: &str,
) -> Result<Result<(), MoreRecentPresent>, StoreError> {
    if let Some(stored) = last_change(tx, change.auditor_pub)?
        && stored > change.at_s
    {
        return Ok(Err(MoreRecentPresent(stored)));
    }
    tx.execute(
        "INSERT INTO auditors (auditor_pub, auditor_url, auditor_name, is_active, last_change_s, master_sig)
         VALUES (?1, ?2, ?3, 1, ?4, ?5)
         ON CONFLICT (auditor_pub) DO UPDATE SET auditor_url = excluded.auditor_url,
           auditor_name = excluded.auditor_name, is_active = 1,
           last_change_s = excluded.last_change_s, master_sig = excluded.master_sig",
        params![change.auditor_pub, url, name, change.at_s, change.master_sig],
    )?;
    Ok(Ok(()))
}

/// Disables a known auditor unless a more recent change is stored.
pub fn disable(tx: &WriteTx<'_>, change: &AuditorChange<'_>) -> Result<Disabled, StoreError> {
    match last_change(tx, change.auditor_pub)? {
        None => Ok(Disabled::Unknown),
        Some(stored) if stored > change.at_s => Ok(Disabled::MoreRecentPresent(MoreRecentPresent(stored))),
        Some(_) => {
            tx.execute(
                "UPDATE auditors SET is_active = 0, last_change_s = ?2, master_sig = ?3 WHERE auditor_pub = ?1",
                params![change.auditor_pub, change.at_s, change.master_sig],
            )?;
            Ok(Disabled::Done)
        }
    }
}

/// The columns [`row`] reads, as a literal for `concat!` (one `&'static str` per statement).
macro_rules! columns {
    () => {
        "auditor_pub, auditor_url, auditor_name, is_active, last_change_s, master_sig"
    };
}

/// A row of `auditors`, its columns read by name: every read of the table gives an [`AuditorRow`].
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditorRow> {
    Ok(AuditorRow {
        auditor_pub: r.get("auditor_pub")?,
        auditor_url: r.get("auditor_url")?,
        auditor_name: r.get("auditor_name")?,
        is_active: r.get("is_active")?,
        last_change_s: r.get("last_change_s")?,
        master_sig: r.get("master_sig")?,
    })
}

/// The enabled auditors, by key.
pub fn active(db: &Db<'_>) -> Result<Vec<AuditorRow>, StoreError> {
    db.query_all(
        concat!("SELECT ", columns!(), " FROM auditors WHERE is_active = 1 ORDER BY auditor_pub"),
        [],
        row,
    )
}

/// Every auditor, enabled or not, by key.
pub fn all(db: &Db<'_>) -> Result<Vec<AuditorRow>, StoreError> {
    db.query_all(concat!("SELECT ", columns!(), " FROM auditors ORDER BY auditor_pub"), [], row)
}

/// One auditor.
pub fn get(db: &Db<'_>, auditor_pub: &EddsaPublicKey) -> Result<Option<AuditorRow>, StoreError> {
    db.query_optional(
        concat!("SELECT ", columns!(), " FROM auditors WHERE auditor_pub = ?1"),
        [auditor_pub],
        row,
    )
}
