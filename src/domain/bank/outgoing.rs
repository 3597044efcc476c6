//! Transfers out of the exchange's account (`POST transfer`): what `taler-exchange-transfer`
//! pays merchants with and the closer returns reserves with.
//!
//! Idempotent on `request_uid`: the exchange re-sends the identical stored body after a
//! network error or a 5xx (up to 16 times, also after its own restart), and a retry must get
//! the original `row_id` and `timestamp`, never a 4xx (the exchange gives up on 404/409 and
//! exits on 400/401). The same `request_uid` with other details is 409, code 5112; a `wtid`
//! already used under another `request_uid` is 409, code 5154. Every transfer settles at once
//! (this bank has no pending state), so every status is `success`.

use serde::{Deserialize, Serialize};

use super::gateway::{self, Direction, GatewayAccount};
use crate::amount::Amount;
use crate::config::Settings;
use crate::crypto::{HashCode, ShortHashCode};
use crate::error::ApiError;
use crate::store::gateway::{self as sql, Outgoing};
use crate::store::{Durability, Page, Store, WriteTx};
use crate::timestamp::Timestamp;
use crate::wakeup::Wakeups;

/// Longest `exchange_base_url`, in bytes.
const MAX_BASE_URL: usize = 2048;

/// The body of `POST transfer`.
#[derive(Debug, Clone, Deserialize)]
pub struct TransferRequest {
    pub request_uid: HashCode,
    pub amount: Amount,
    pub exchange_base_url: String,
    pub wtid: ShortHashCode,
    pub credit_account: String,
    #[serde(default)]
    pub metadata: Option<String>,
}

/// The answer of `POST transfer` (also of a retry: the original values).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TransferResponse {
    pub row_id: i64,
    pub timestamp: Timestamp,
}

/// `metadata` of v5: `[a-zA-Z0-9-.:]{1,40}`.
fn check_metadata(metadata: &str) -> Result<(), ApiError> {
    let ok = (1..=40).contains(&metadata.len())
        && metadata.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
    if ok { Ok(()) } else { Err(ApiError::field("metadata", "must be 1-40 characters of a-z A-Z 0-9 - . :")) }
}

/// An http(s) URL ending in `/`, as the exchange's base URL always is.
fn check_base_url(url: &str) -> Result<(), ApiError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
    let host_ok = url.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if !scheme_ok || !host_ok || !url.ends_with('/') || url.len() > MAX_BASE_URL {
        return Err(ApiError::field("exchange_base_url", "must be an http:// or https:// URL ending in '/'"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::field("exchange_base_url", "contains whitespace or a control character"));
    }
    Ok(())
}

/// The request checked and ready for its transaction.
pub fn prepare(
    settings: &Settings,
    account: &GatewayAccount,
    request: TransferRequest,
    now_us: i64,
    fixture: bool,
) -> Result<Outgoing, ApiError> {
    super::accounts::check_gateway_amount(settings, "amount", &request.amount)?;
    check_base_url(&request.exchange_base_url)?;
    let credit_account = gateway::full_payto("credit_account", &request.credit_account)?;
    if let Some(metadata) = &request.metadata {
        check_metadata(metadata)?;
    }
    Ok(Outgoing {
        request_uid: request.request_uid,
        wtid: request.wtid,
        date_us: now_us,
        amount: request.amount.to_string(),
        exchange_base_url: request.exchange_base_url,
        metadata: request.metadata,
        debit_account: account.uri().to_owned(),
        credit_account: credit_account.full().to_owned(),
        fixture,
    })
}

/// What the transaction found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new transfer.
    New { row_id: i64, date_us: i64 },
    /// The same request again: the original.
    Replayed { row_id: i64, date_us: i64 },
}

impl Recorded {
    pub fn response(self) -> TransferResponse {
        let (Recorded::New { row_id, date_us } | Recorded::Replayed { row_id, date_us }) = self;
        TransferResponse { row_id, timestamp: Timestamp::from_unix_micros(date_us) }
    }
}

/// Whether `t` asks for what `stored` recorded (its `request_uid` given again): the same
/// transfer, whenever and however it was made.
fn same_request(stored: &Outgoing, t: &Outgoing) -> bool {
    Outgoing { date_us: t.date_us, fixture: t.fixture, ..stored.clone() } == *t
}

/// The transaction of `POST transfer` (also of an `[[outgoing]]` fixture).
pub fn record(tx: &WriteTx<'_>, t: &Outgoing) -> Result<Recorded, ApiError> {
    if let Some(stored) = sql::by_request_uid(tx, &t.request_uid)? {
        return if same_request(&stored.transfer, t) {
            Ok(Recorded::Replayed { row_id: stored.row_id, date_us: stored.transfer.date_us })
        } else {
            Err(ApiError::BankTransferRequestUidReused(t.request_uid.to_string()))
        };
    }
    if sql::by_wtid(tx, &t.wtid)?.is_some() {
        return Err(ApiError::BankTransferWtidReused(t.wtid.to_string()));
    }
    let row_id = sql::insert_outgoing(tx, t)?;
    Ok(Recorded::New { row_id, date_us: t.date_us })
}

/// `POST transfer`, durably, waking the account's outgoing long polls.
pub async fn transfer(
    store: &Store,
    settings: &Settings,
    wakeups: &Wakeups,
    account: &GatewayAccount,
    request: TransferRequest,
    now_us: i64,
) -> Result<TransferResponse, ApiError> {
    let t = prepare(settings, account, request, now_us, false)?;
    let recorded = store.write(Durability::Durable, move |tx| record(tx, &t)).await?;
    if let Recorded::New { .. } = recorded {
        wakeups.wake(&gateway::channel(&account.name, Direction::Outgoing));
    }
    Ok(recorded.response())
}

/// `status` of a transfer: this bank settles at once.
pub const SUCCESS: &str = "success";

/// The statuses `GET transfers?status=` accepts.
const STATUSES: [&str; 4] = ["pending", "transient_failure", "permanent_failure", "success"];

/// An entry of `GET transfers`.
#[derive(Debug, Serialize)]
pub struct TransferListStatus {
    pub row_id: i64,
    pub status: &'static str,
    pub amount: String,
    pub credit_account: String,
    pub timestamp: Timestamp,
}

/// `GET transfers/{row_id}`.
#[derive(Debug, Serialize)]
pub struct TransferStatus {
    pub status: &'static str,
    pub amount: String,
    pub exchange_base_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    pub wtid: ShortHashCode,
    pub credit_account: String,
    pub timestamp: Timestamp,
}

/// The query of `GET transfers`.
#[derive(Debug, Default, Deserialize)]
pub struct TransfersQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub status: Option<String>,
}

/// A page of `account`'s transfers; empty means 204.
pub async fn list(
    store: &Store,
    account: &GatewayAccount,
    query: TransfersQuery,
) -> Result<Vec<TransferListStatus>, ApiError> {
    let limit = query.limit.unwrap_or(-20);
    if limit == 0 {
        return Err(ApiError::parameter("limit", "must not be 0"));
    }
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::parameter(
            "status",
            format!("'{status}' is not one of {}", STATUSES.join(", ")),
        ));
    }
    if query.status.as_deref().is_some_and(|s| s != SUCCESS) {
        return Ok(Vec::new());
    }
    let descending = limit < 0;
    let page = Page {
        limit: limit.saturating_abs().min(gateway::MAX_HISTORY_PAGE),
        descending,
        start: query.offset.unwrap_or(if descending { i64::MAX } else { 0 }),
    };
    let uri = account.uri().to_owned();
    let rows = store.read(move |db| sql::outgoing_history(db, &uri, &page)).await?;
    Ok(rows
        .into_iter()
        .map(|r| TransferListStatus {
            row_id: r.row_id,
            status: SUCCESS,
            amount: r.transfer.amount,
            credit_account: r.transfer.credit_account,
            timestamp: Timestamp::from_unix_micros(r.transfer.date_us),
        })
        .collect())
}

/// One of `account`'s transfers; 404, code 5106, when it has none with this id.
pub async fn get(
    store: &Store,
    account: &GatewayAccount,
    row_id_text: &str,
) -> Result<TransferStatus, ApiError> {
    let unknown = || ApiError::BankUnknownTransfer(row_id_text.to_owned());
    let row_id: i64 = row_id_text.parse().map_err(|_| ApiError::parameter("row_id", "not a row id"))?;
    if row_id <= 0 {
        return Err(unknown());
    }
    let uri = account.uri().to_owned();
    let row = store.read(move |db| sql::outgoing(db, &uri, row_id)).await?.ok_or_else(unknown)?.transfer;
    Ok(TransferStatus {
        status: SUCCESS,
        amount: row.amount,
        exchange_base_url: row.exchange_base_url,
        metadata: row.metadata,
        wtid: row.wtid,
        credit_account: row.credit_account,
        timestamp: Timestamp::from_unix_micros(row.date_us),
    })
}
