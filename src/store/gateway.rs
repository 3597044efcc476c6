//! The Wire Gateway's SQL: the one row-id sequence of incoming and outgoing transfers, the
//! outgoing transfers (`POST transfer`), and each account's two histories.
//!
//! Row ids: an account's history is one sequence over both directions (the exchange keeps one
//! offset per direction, the auditor compares them), so incoming and outgoing rows take their
//! ids from [`next_row_id`], one above the largest id of either table. Only the single writer
//! inserts, so two transactions never draw the same id; rows are never deleted outside
//! `POST /private/reset`, so an id is never given twice.

use rusqlite::params;

use super::transfers::{self, IncomingTransaction, incoming_transaction, next_row_id};
use super::{Db, Page, StoreError, WriteTx};
use crate::crypto::{HashCode, ShortHashCode};

/// An outgoing transfer: what `POST transfer` (or an `[[outgoing]]` fixture) records, and,
/// with its row id, what every read of `outgoing_transfers` gives ([`OutgoingRow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub request_uid: HashCode,
    pub wtid: ShortHashCode,
    pub date_us: i64,
    pub amount: String,
    pub exchange_base_url: String,
    pub metadata: Option<String>,
    /// The exchange's account as configured.
    pub debit_account: String,
    /// The payee as sent.
    pub credit_account: String,
    /// Made by an `[[outgoing]]` fixture.
    pub fixture: bool,
}

/// A row of `outgoing_transfers`.
#[derive(Debug, Clone)]
pub struct OutgoingRow {
    pub row_id: i64,
    pub transfer: Outgoing,
}

/// The columns [`outgoing_row`] reads, as a literal for `concat!` (one `&'static str` per statement).
macro_rules! columns {
    () => {
        "row_id, request_uid, wtid, date_us, amount, exchange_base_url, metadata, debit_account,
  credit_account, fixture"
    };
}

/// A row of [`columns!`], its columns read by name.
fn outgoing_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutgoingRow> {
    Ok(OutgoingRow {
        row_id: r.get("row_id")?,
        transfer: Outgoing {
            request_uid: r.get("request_uid")?,
            wtid: r.get("wtid")?,
            date_us: r.get("date_us")?,
            amount: r.get("amount")?,
            exchange_base_url: r.get("exchange_base_url")?,
            metadata: r.get("metadata")?,
            debit_account: r.get("debit_account")?,
            credit_account: r.get("credit_account")?,
            fixture: r.get("fixture")?,
        },
    })
}

/// The transfer recorded under `request_uid`, if any.
pub fn by_request_uid(db: &Db<'_>, request_uid: &HashCode) -> Result<Option<OutgoingRow>, StoreError> {
    db.query_optional(
        concat!("SELECT ", columns!(), " FROM outgoing_transfers WHERE request_uid = ?1"),
        [request_uid],
        outgoing_row,
    )
}

/// The transfer recorded with `wtid`, if any.
pub fn by_wtid(db: &Db<'_>, wtid: &ShortHashCode) -> Result<Option<OutgoingRow>, StoreError> {
    db.query_optional(
        concat!("SELECT ", columns!(), " FROM outgoing_transfers WHERE wtid = ?1"),
        [wtid],
        outgoing_row,
    )
}

/// Transfer `row_id` from `debit_account`, if there is one.
pub fn outgoing(db: &Db<'_>, debit_account: &str, row_id: i64) -> Result<Option<OutgoingRow>, StoreError> {
    db.query_optional(
        concat!("SELECT ", columns!(), " FROM outgoing_transfers WHERE row_id = ?1 AND debit_account = ?2"),
        params![row_id, debit_account],
        outgoing_row,
    )
}

/// Records an outgoing transfer; returns its row id.
pub fn insert_outgoing(tx: &WriteTx<'_>, t: &Outgoing) -> Result<i64, StoreError> {
    let row_id = next_row_id(tx)?;
    tx.execute(
        "INSERT INTO outgoing_transfers (row_id, request_uid, wtid, date_us, amount, exchange_base_url, metadata,
           debit_account, credit_account, fixture)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            row_id,
            t.request_uid,
            t.wtid,
            t.date_us,
            t.amount,
            t.exchange_base_url,
            t.metadata,
            t.debit_account,
            t.credit_account,
            t.fixture
        ],
    )?;
    Ok(row_id)
}

/// A page of `debit_account`'s outgoing transfers.
pub fn outgoing_history(
    db: &Db<'_>,
    debit_account: &str,
    page: &Page,
) -> Result<Vec<OutgoingRow>, StoreError> {
    let sql = format!(
        concat!(
            "SELECT ",
            columns!(),
            " FROM outgoing_transfers WHERE debit_account = ?3 AND {} ORDER BY row_id {} LIMIT ?2"
        ),
        page.condition("row_id", "?1"),
        page.order()
    );
    db.query_all(&sql, params![page.start, page.limit, debit_account], outgoing_row)
}

/// The newest outgoing transfers of every account, newest first (the console).
pub fn latest_outgoing(db: &Db<'_>, before: i64, limit: i64) -> Result<Vec<OutgoingRow>, StoreError> {
    db.query_all(
        concat!(
            "SELECT ",
            columns!(),
            " FROM outgoing_transfers WHERE row_id < ?1 ORDER BY row_id DESC LIMIT ?2"
        ),
        params![before, limit],
        outgoing_row,
    )
}

/// A page of the transfers credited to `credit_account`.
pub fn incoming_history(
    db: &Db<'_>,
    credit_account: &str,
    page: &Page,
) -> Result<Vec<IncomingTransaction>, StoreError> {
    let sql = format!(
        concat!(
            "SELECT ",
            transfers::columns!(),
            " FROM incoming_transfers WHERE status = 'credited' AND credit_account = ?3 AND {}
             ORDER BY row_id {} LIMIT ?2"
        ),
        page.condition("row_id", "?1"),
        page.order()
    );
    db.query_all(&sql, params![page.start, page.limit, credit_account], incoming_transaction)
}

/// Whether an `[[outgoing]]` fixture with this `request_uid` is stored.
pub fn fixture_outgoing(db: &Db<'_>, request_uid: &HashCode) -> Result<bool, StoreError> {
    Ok(db
        .query_optional(
            "SELECT 1 FROM outgoing_transfers WHERE request_uid = ?1 AND fixture = 1",
            [request_uid],
            |_| Ok(()),
        )?
        .is_some())
}
