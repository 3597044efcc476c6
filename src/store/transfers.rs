//! The wire-gateway simulation's incoming transfers, credited or bounced.
//!
//! A reserve key is never credited twice, whatever the path: a UNIQUE index
//! enforces it, not only a check.

use rusqlite::params;
use serde::Serialize;

use super::{Db, Page, StoreError, WriteTx};
use crate::crypto::EddsaPublicKey;
use crate::timestamp::Timestamp;

/// A transfer to record.
pub struct Incoming {
    pub date_us: i64,
    pub amount: String,
    pub debit_account: String,
    pub credit_account: String,
    /// The subject as typed (`add-incoming-subject`); none for `add-mapped`.
    pub subject: Option<String>,
}

/// The id of the next transfer, incoming or outgoing: one sequence over both directions
/// ([`super::gateway`] says why).
pub fn next_row_id(tx: &WriteTx<'_>) -> Result<i64, StoreError> {
    Ok(tx
        .query_optional(
            "SELECT max(coalesce((SELECT max(row_id) FROM incoming_transfers), 0),
                        coalesce((SELECT max(row_id) FROM outgoing_transfers), 0)) + 1 AS next",
            [],
            |r| r.get("next"),
        )?
        .unwrap_or(1))
}

/// Whether a reserve key was credited already.
pub fn is_reserve_credited(db: &Db<'_>, account_pub: &EddsaPublicKey) -> Result<bool, StoreError> {
    Ok(db
        .query_optional(
            "SELECT 1 FROM incoming_transfers WHERE account_pub = ?1 AND status = 'credited' AND type = 'RESERVE'",
            [account_pub],
            |_| Ok(()),
        )?
        .is_some())
}

/// Records a credited transfer of type `wire_type` (`RESERVE`, `KYCAUTH`), with the
/// registration that mapped it (its authorization key and id) if any; returns the row id.
pub fn credit(
    tx: &WriteTx<'_>,
    t: &Incoming,
    wire_type: &str,
    account_pub: &EddsaPublicKey,
    registration: Option<(&EddsaPublicKey, i64)>,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO incoming_transfers (date_us, amount, debit_account, credit_account, subject, status, type,
           account_pub, authorization_pub, registration_id, row_id)
         VALUES (?1, ?2, ?3, ?4, ?5, 'credited', ?6, ?7, ?8, ?9, ?10)",
        params![
            t.date_us,
            t.amount,
            t.debit_account,
            t.credit_account,
            t.subject,
            wire_type,
            account_pub,
            registration.map(|r| r.0),
            registration.map(|r| r.1),
            next_row_id(tx)?
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Records a bounced transfer with its reason; returns the row id.
pub fn bounce(tx: &WriteTx<'_>, t: &Incoming, reason: &str) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO incoming_transfers (date_us, amount, debit_account, credit_account, subject, status, bounce_reason,
           row_id)
         VALUES (?1, ?2, ?3, ?4, ?5, 'bounced', ?6, ?7)",
        params![t.date_us, t.amount, t.debit_account, t.credit_account, t.subject, reason, next_row_id(tx)?],
    )?;
    Ok(tx.last_insert_rowid())
}

/// One credited transfer of the incoming history (upstream's `IncomingBankTransaction`).
#[derive(Debug, Clone, Serialize)]
pub struct IncomingTransaction {
    #[serde(rename = "type")]
    pub transfer_type: String,
    pub row_id: i64,
    pub date: Timestamp,
    pub amount: String,
    pub debit_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserve_pub: Option<EddsaPublicKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_pub: Option<EddsaPublicKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_pub: Option<EddsaPublicKey>,
}

/// A row of `incoming_transfers`, credited or bounced. Every read of the table gives this, its
/// columns read by name ([`row`]); the histories' [`IncomingTransaction`] and the console's
/// lists are built from it.
#[derive(Debug, Clone)]
pub struct IncomingRow {
    pub row_id: i64,
    pub date_us: i64,
    pub amount: String,
    pub debit_account: String,
    pub credit_account: String,
    pub subject: Option<String>,
    /// `credited` or `bounced`.
    pub status: String,
    /// `RESERVE` or `KYCAUTH` (credited only).
    pub transfer_type: Option<String>,
    /// The reserve or account key (credited only).
    pub account_pub: Option<EddsaPublicKey>,
    /// The key of the registration that mapped it, if one did.
    pub authorization_pub: Option<EddsaPublicKey>,
    pub registration_id: Option<i64>,
    /// Why it bounced.
    pub bounce_reason: Option<String>,
}

/// The columns [`row`] reads, as a literal for `concat!` (one `&'static str` per statement).
macro_rules! columns {
    () => {
        "row_id, date_us, amount, debit_account, credit_account, subject, status, type, account_pub,
  authorization_pub, registration_id, bounce_reason"
    };
}
pub(super) use columns;

/// A row of [`columns!`].
pub fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IncomingRow> {
    Ok(IncomingRow {
        row_id: r.get("row_id")?,
        date_us: r.get("date_us")?,
        amount: r.get("amount")?,
        debit_account: r.get("debit_account")?,
        credit_account: r.get("credit_account")?,
        subject: r.get("subject")?,
        status: r.get("status")?,
        transfer_type: r.get("type")?,
        account_pub: r.get("account_pub")?,
        authorization_pub: r.get("authorization_pub")?,
        registration_id: r.get("registration_id")?,
        bounce_reason: r.get("bounce_reason")?,
    })
}

impl IncomingRow {
    pub fn date(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.date_us)
    }
}

impl IncomingTransaction {
    /// The history's view of a credited row: the reserve or account key by the transfer's type.
    pub fn of(row: IncomingRow) -> IncomingTransaction {
        let reserve = row.transfer_type.as_deref() == Some("RESERVE");
        IncomingTransaction {
            row_id: row.row_id,
            date: row.date(),
            amount: row.amount,
            debit_account: row.debit_account,
            reserve_pub: row.account_pub.filter(|_| reserve),
            account_pub: row.account_pub.filter(|_| !reserve),
            authorization_pub: row.authorization_pub,
            transfer_type: row.transfer_type.unwrap_or_default(),
        }
    }
}

/// A credited row, as the histories show it.
pub(super) fn incoming_transaction(r: &rusqlite::Row<'_>) -> rusqlite::Result<IncomingTransaction> {
    row(r).map(IncomingTransaction::of)
}

/// Credited transfers, a page at a time.
pub fn history(db: &Db<'_>, page: &Page) -> Result<Vec<IncomingTransaction>, StoreError> {
    let sql = format!(
        concat!(
            "SELECT ",
            columns!(),
            " FROM incoming_transfers WHERE status = 'credited' AND {} ORDER BY row_id {} LIMIT ?2"
        ),
        page.condition("row_id", "?1"),
        page.order()
    );
    db.query_all(&sql, params![page.start, page.limit], incoming_transaction)
}
