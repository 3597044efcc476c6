//! What the operator console reads: counts, recent events, and the lists it
//! pages through newest first by row id (keyset paging: the 1000th page costs
//! what the first does, whatever the table's size).

use rusqlite::params;

use super::kyc::{self, UploadRow, upload_columns};
use super::registrations::{self, RegistrationRow};
use super::transfers::{self, IncomingRow};
use super::{Db, StoreError};
use crate::crypto::{EddsaPublicKey, HashCode};
use crate::timestamp::Timestamp;

/// The overview's numbers.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub auditors_active: u64,
    pub auditors_disabled: u64,
    pub extern_keys: u64,
    pub uploads: u64,
    pub upload_bytes: u64,
    pub bodies: u64,
    pub registrations_live: u64,
    pub registrations_expired: u64,
    pub credited: u64,
    pub bounced: u64,
}

fn count(db: &Db<'_>, sql: &str, now_s: i64) -> Result<u64, StoreError> {
    // One column, whatever its expression's name.
    let n: Option<i64> = db.query_optional(sql, params![now_s], |r| r.get(0))?;
    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
}

/// Every count of the overview.
pub fn overview(db: &Db<'_>, now_s: i64) -> Result<Overview, StoreError> {
    // `?1` appears in each statement so that one helper binds them all.
    Ok(Overview {
        auditors_active: count(db, "SELECT count(*) FROM auditors WHERE is_active = 1 AND ?1 = ?1", now_s)?,
        auditors_disabled: count(db, "SELECT count(*) FROM auditors WHERE is_active = 0 AND ?1 = ?1", now_s)?,
        extern_keys: count(db, "SELECT count(*) FROM extern_keys WHERE ?1 = ?1", now_s)?,
        uploads: count(db, "SELECT count(*) FROM kyc_uploads WHERE ?1 = ?1", now_s)?,
        upload_bytes: count(db, "SELECT coalesce(sum(size), 0) FROM kyc_uploads WHERE ?1 = ?1", now_s)?,
        bodies: count(db, "SELECT count(*) FROM kyc_contents WHERE h_body IS NOT NULL AND ?1 = ?1", now_s)?,
        registrations_live: count(db, "SELECT count(*) FROM registrations WHERE expiration_s > ?1", now_s)?,
        registrations_expired: count(
            db,
            "SELECT count(*) FROM registrations WHERE expiration_s <= ?1",
            now_s,
        )?,
        credited: count(
            db,
            "SELECT count(*) FROM incoming_transfers WHERE status = 'credited' AND ?1 = ?1",
            now_s,
        )?,
        bounced: count(
            db,
            "SELECT count(*) FROM incoming_transfers WHERE status = 'bounced' AND ?1 = ?1",
            now_s,
        )?,
    })
}

/// One line of the overview's recent events.
#[derive(Debug, Clone)]
pub struct Event {
    /// `upload`, `registration` or `transfer`.
    pub kind: String,
    pub at: Timestamp,
    /// What the link points at: a body hash, an authorization key, a transfer row.
    pub key: String,
    pub detail: String,
}

/// The `limit` most recent events, newest first. Unregistrations delete their
/// row, so only their absence is left to show.
pub fn recent_events(db: &Db<'_>, limit: i64) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    let uploads: Vec<UploadRow> = db.query_all(
        concat!("SELECT ", upload_columns!(), " FROM kyc_uploads ORDER BY upload_id DESC LIMIT ?1"),
        [limit],
        kyc::upload_row,
    )?;
    for u in uploads {
        events.push(Event {
            kind: "upload".into(),
            at: u.uploaded(),
            key: u.h_body.to_string(),
            detail: format!("{} about {}", u.content_type, u.payto),
        });
    }
    let regs = db.query_all(
        concat!(
            "SELECT ",
            registrations::columns!(),
            " FROM registrations ORDER BY registration_id DESC LIMIT ?1"
        ),
        [limit],
        registrations::row,
    )?;
    for r in regs {
        events.push(Event {
            kind: "registration".into(),
            at: Timestamp::from_unix_micros(r.last_change_us),
            key: r.authorization_pub.to_string(),
            detail: format!("{}, {}", r.transfer_type, r.credit_amount),
        });
    }
    let incoming: Vec<IncomingRow> = db.query_all(
        concat!("SELECT ", transfers::columns!(), " FROM incoming_transfers ORDER BY row_id DESC LIMIT ?1"),
        [limit],
        transfers::row,
    )?;
    for t in incoming {
        events.push(Event {
            kind: "transfer".into(),
            at: t.date(),
            key: t.row_id.to_string(),
            detail: format!("{}, {}", t.status, t.amount),
        });
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.at));
    events.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(events)
}

/// Which registrations a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    Live,
    Expired,
    All,
}

/// Up to `limit` registrations in `state` with a row id below `before`, newest first.
pub fn registrations(
    db: &Db<'_>,
    state: RegistrationState,
    before: i64,
    limit: i64,
    now_s: i64,
) -> Result<Vec<RegistrationRow>, StoreError> {
    // The state's condition on `?2`, each statement one `&'static str`.
    macro_rules! select {
        ($filter:literal) => {
            concat!(
                "SELECT ",
                registrations::columns!(),
                " FROM registrations WHERE registration_id < ?1 AND ",
                $filter,
                " ORDER BY registration_id DESC LIMIT ?3"
            )
        };
    }
    db.query_all(
        match state {
            RegistrationState::Live => select!("expiration_s > ?2"),
            RegistrationState::Expired => select!("expiration_s <= ?2"),
            RegistrationState::All => select!("?2 = ?2"),
        },
        params![before, now_s, limit],
        registrations::row,
    )
}

/// Up to `limit` transfers (of one status, or all) with a row id below `before`, newest first.
pub fn transfers(
    db: &Db<'_>,
    status: Option<&str>,
    before: i64,
    limit: i64,
) -> Result<Vec<IncomingRow>, StoreError> {
    db.query_all(
        concat!(
            "SELECT ",
            transfers::columns!(),
            " FROM incoming_transfers WHERE row_id < ?1 AND (?2 IS NULL OR status = ?2)
             ORDER BY row_id DESC LIMIT ?3"
        ),
        params![before, status, limit],
        transfers::row,
    )
}

/// One reference to a stored body: who uploaded it about whom.
#[derive(Debug, Clone)]
pub struct BodyUpload {
    pub extern_pub: EddsaPublicKey,
    pub extern_name: String,
    pub payto: String,
    pub content_type: String,
    pub size: u64,
    pub uploaded: Timestamp,
}

/// The first `limit` uploads of one body.
pub fn uploads_of_body(db: &Db<'_>, h_body: &HashCode, limit: i64) -> Result<Vec<BodyUpload>, StoreError> {
    db.query_all(
        concat!(
            "SELECT ",
            upload_columns!(),
            ", (SELECT name FROM extern_keys e WHERE e.extern_pub = kyc_uploads.extern_pub) AS extern_name
             FROM kyc_uploads WHERE content_id = (SELECT content_id FROM kyc_contents WHERE h_body = ?1)
             ORDER BY upload_id LIMIT ?2"
        ),
        params![h_body, limit],
        |r| {
            let u = kyc::upload_row(r)?;
            Ok(BodyUpload {
                uploaded: u.uploaded(),
                extern_pub: u.extern_pub,
                extern_name: r.get("extern_name")?,
                payto: u.payto,
                content_type: u.content_type,
                size: u.size,
            })
        },
    )
}
