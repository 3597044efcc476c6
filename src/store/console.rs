//! What the operator console reads: counts, recent events, and the lists it
//! pages through newest first by row id (keyset paging: the 1000th page costs
//! what the first does, whatever the table's size).

use rusqlite::params;

use super::registrations::{self, COLUMNS, RegistrationRow};
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
    let uploads = db.query_all(
        "SELECT uploaded_us, h_body, payto, content_type FROM kyc_uploads ORDER BY upload_id DESC LIMIT ?1",
        [limit],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, HashCode>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        },
    )?;
    for (at, h, payto, ct) in uploads {
        events.push(Event {
            kind: "upload".into(),
            at: Timestamp::from_unix_micros(at),
            key: h.to_string(),
            detail: format!("{ct} about {payto}"),
        });
    }
    let regs = db.query_all(
        "SELECT last_change_us, authorization_pub, type, credit_amount FROM registrations
         ORDER BY registration_id DESC LIMIT ?1",
        [limit],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, EddsaPublicKey>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        },
    )?;
    for (at, k, t, amount) in regs {
        events.push(Event {
            kind: "registration".into(),
            at: Timestamp::from_unix_micros(at),
            key: k.to_string(),
            detail: format!("{t}, {amount}"),
        });
    }
    let transfers = db.query_all(
        "SELECT date_us, row_id, status, amount FROM incoming_transfers ORDER BY row_id DESC LIMIT ?1",
        [limit],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)),
    )?;
    for (at, row, status, amount) in transfers {
        events.push(Event {
            kind: "transfer".into(),
            at: Timestamp::from_unix_micros(at),
            key: row.to_string(),
            detail: format!("{status}, {amount}"),
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
    let filter = match state {
        RegistrationState::Live => "expiration_s > ?2",
        RegistrationState::Expired => "expiration_s <= ?2",
        RegistrationState::All => "?2 = ?2",
    };
    db.query_all(
        &format!(
            "SELECT {COLUMNS} FROM registrations WHERE registration_id < ?1 AND {filter}
             ORDER BY registration_id DESC LIMIT ?3"
        ),
        params![before, now_s, limit],
        registrations::row,
    )
}

/// An incoming transfer, credited or bounced.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub row_id: i64,
    pub date: Timestamp,
    pub amount: String,
    pub debit_account: String,
    pub subject: Option<String>,
    pub status: String,
    pub transfer_type: Option<String>,
    pub account_pub: Option<EddsaPublicKey>,
    pub bounce_reason: Option<String>,
}

/// Up to `limit` transfers (of one status, or all) with a row id below `before`, newest first.
pub fn transfers(
    db: &Db<'_>,
    status: Option<&str>,
    before: i64,
    limit: i64,
) -> Result<Vec<Transfer>, StoreError> {
    db.query_all(
        "SELECT row_id, date_us, amount, debit_account, subject, status, type, account_pub, bounce_reason
         FROM incoming_transfers WHERE row_id < ?1 AND (?2 IS NULL OR status = ?2)
         ORDER BY row_id DESC LIMIT ?3",
        params![before, status, limit],
        |r| {
            Ok(Transfer {
                row_id: r.get(0)?,
                date: Timestamp::from_unix_micros(r.get(1)?),
                amount: r.get(2)?,
                debit_account: r.get(3)?,
                subject: r.get(4)?,
                status: r.get(5)?,
                transfer_type: r.get(6)?,
                account_pub: r.get(7)?,
                bounce_reason: r.get(8)?,
            })
        },
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
        "SELECT u.extern_pub, e.name, u.payto, u.content_type, u.size, u.uploaded_us
         FROM kyc_uploads u JOIN extern_keys e ON e.extern_pub = u.extern_pub
         WHERE u.content_id = (SELECT content_id FROM kyc_contents WHERE h_body = ?1) ORDER BY u.upload_id LIMIT ?2",
        params![h_body, limit],
        |r| {
            Ok(BodyUpload {
                extern_pub: r.get(0)?,
                extern_name: r.get(1)?,
                payto: r.get(2)?,
                content_type: r.get(3)?,
                size: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                uploaded: Timestamp::from_unix_micros(r.get(5)?),
            })
        },
    )
}
