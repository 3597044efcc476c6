//! The Taler Wire Gateway's rules (README, "The Wire Gateway"): the exchange's accounts as the
//! gateway names them, the accounts and amounts a request may carry, and the two histories with
//! their pagination and long polling.
//!
//! Long polling: a history request that finds nothing subscribes to its account's channel
//! ([`Wakeups`]) *before* it reads, and waits on it; whoever commits a row for that account and
//! direction wakes the channel once the commit is durable ([`wake`]). Nothing polls the
//! database, and a waiting request holds neither a thread nor a connection.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::accounts;
use crate::config::Settings;
use crate::error::ApiError;
use crate::payto::Payto;
use crate::store::gateway::{self, OutgoingRow};
use crate::store::transfers::IncomingTransaction;
use crate::store::{Page, Store};
use crate::timestamp::Timestamp;
use crate::wakeup::{Wakeups, Woken};

/// The largest page a history answers (what the exchange asks for).
pub const MAX_HISTORY_PAGE: i64 = 1024;

/// The longest a history request waits (wirewatch waits 60 s, the auditor longer).
pub const MAX_LONG_POLL: Duration = Duration::from_secs(300);

/// One of the exchange's accounts, as its gateway serves it.
#[derive(Debug, Clone)]
pub struct GatewayAccount {
    pub name: String,
    pub payto: Payto,
}

impl GatewayAccount {
    /// The account's full payto URI, as stored in its transfers.
    pub fn uri(&self) -> &str {
        self.payto.full()
    }
}

/// The account named `name` (a path's `{account}`), or the first one for the paths without.
pub fn account(settings: &Settings, name: Option<&str>) -> Result<GatewayAccount, ApiError> {
    let index = match name {
        None => 0,
        Some(name) => settings
            .account_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| ApiError::BankUnknownAccount(name.to_owned()))?,
    };
    match (settings.account_names.get(index), settings.credit_accounts.get(index)) {
        (Some(name), Some(payto)) => Ok(GatewayAccount { name: name.clone(), payto: payto.clone() }),
        _ => Err(ApiError::BankUnknownAccount(name.unwrap_or_default().to_owned())),
    }
}

/// The gateway account that `account` names, by the one account rule ([`accounts::position`]).
pub fn account_of(settings: &Settings, account: &Payto) -> Option<GatewayAccount> {
    let index = accounts::position(settings, account)?;
    match (settings.account_names.get(index), settings.credit_accounts.get(index)) {
        (Some(name), Some(payto)) => Some(GatewayAccount { name: name.clone(), payto: payto.clone() }),
        _ => None,
    }
}

/// An account a gateway request names: a payto URI with `receiver-name`, which the exchange's
/// client needs in every history entry (it rejects a whole page otherwise). 400, code 24.
pub fn full_payto(field: &str, text: &str) -> Result<Payto, ApiError> {
    let payto = Payto::parse(text)
        .map_err(|e| ApiError::PaytoMalformed { field: field.to_owned(), detail: e.to_string() })?;
    match payto.receiver_name() {
        Some(name) if !name.is_empty() => Ok(payto),
        _ => Err(ApiError::PaytoMalformed {
            field: field.to_owned(),
            detail: "receiver-name is missing (a full payto URI is needed)".into(),
        }),
    }
}

/// Which history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

/// The channel of an account's history in one direction.
pub fn channel(account: &str, direction: Direction) -> String {
    match direction {
        Direction::Incoming => format!("{account}/incoming"),
        Direction::Outgoing => format!("{account}/outgoing"),
    }
}

/// Wakes the long polls of the account that holds `stored_account` (a transfer's full credit
/// or debit account as stored), after a durable commit.
pub fn wake(settings: &Settings, wakeups: &Wakeups, stored_account: &str, direction: Direction) {
    let named = Payto::parse_account(stored_account).ok();
    if let Some(account) = named.and_then(|named| account_of(settings, &named)) {
        wakeups.wake(&channel(&account.name, direction));
    }
}

/// Wakes every history of every account (after `POST /private/reset` and the like).
pub fn wake_all(settings: &Settings, wakeups: &Wakeups) {
    for name in &settings.account_names {
        wakeups.wake(&channel(name, Direction::Incoming));
        wakeups.wake(&channel(name, Direction::Outgoing));
    }
}

/// A history's query: v2's `limit`, `offset`, `timeout_ms` and the deprecated `delta`, `start`,
/// `long_poll_ms` that the exchange's C client still sends.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub timeout_ms: Option<u64>,
    pub delta: Option<i64>,
    pub start: Option<i64>,
    pub long_poll_ms: Option<u64>,
}

/// A history request, resolved.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRequest {
    pub page: Page,
    /// How long to wait when nothing matches (zero: answer at once).
    pub wait: Duration,
}

/// One parameter given under either of its names: both with different values is 400.
fn either<T: PartialEq + Copy + std::fmt::Display>(
    new: Option<T>,
    new_name: &str,
    old: Option<T>,
    old_name: &str,
) -> Result<Option<T>, ApiError> {
    match (new, old) {
        (Some(a), Some(b)) if a != b => Err(ApiError::parameter(
            new_name,
            format!("{new_name}={a} and {old_name}={b} disagree (they are the same parameter)"),
        )),
        (Some(a), _) | (None, Some(a)) => Ok(Some(a)),
        (None, None) => Ok(None),
    }
}

impl HistoryQuery {
    pub fn resolve(self) -> Result<HistoryRequest, ApiError> {
        let limit = either(self.limit, "limit", self.delta, "delta")?.unwrap_or(-20);
        let offset = either(self.offset, "offset", self.start, "start")?;
        let timeout_ms =
            either(self.timeout_ms, "timeout_ms", self.long_poll_ms, "long_poll_ms")?.unwrap_or(0);
        if limit == 0 {
            return Err(ApiError::parameter("limit", "must not be 0"));
        }
        let descending = limit < 0;
        let page = Page {
            limit: limit.saturating_abs().min(MAX_HISTORY_PAGE),
            descending,
            start: offset.unwrap_or(if descending { i64::MAX } else { 0 }),
        };
        // Only a request for newer rows can be answered by a later commit.
        let wait =
            if descending { Duration::ZERO } else { Duration::from_millis(timeout_ms).min(MAX_LONG_POLL) };
        Ok(HistoryRequest { page, wait })
    }
}

/// An entry of the outgoing history (upstream's `OutgoingBankTransaction`).
#[derive(Debug, Clone, Serialize)]
pub struct OutgoingTransaction {
    pub row_id: i64,
    pub date: Timestamp,
    pub amount: String,
    pub credit_account: String,
    pub wtid: crate::crypto::ShortHashCode,
    pub exchange_base_url: String,
}

impl From<OutgoingRow> for OutgoingTransaction {
    fn from(OutgoingRow { row_id, transfer: t }: OutgoingRow) -> Self {
        OutgoingTransaction {
            row_id,
            date: Timestamp::from_unix_micros(t.date_us),
            amount: t.amount,
            credit_account: t.credit_account,
            wtid: t.wtid,
            exchange_base_url: t.exchange_base_url,
        }
    }
}

/// A page of `account`'s incoming history, waiting for a commit when the request says so.
/// Empty means 204.
pub async fn incoming_history(
    store: &Store,
    wakeups: &Wakeups,
    account: &GatewayAccount,
    request: HistoryRequest,
) -> Result<Vec<IncomingTransaction>, ApiError> {
    let uri = account.uri().to_owned();
    let page = request.page;
    long_poll(wakeups, &channel(&account.name, Direction::Incoming), request.wait, || {
        let uri = uri.clone();
        store.read(move |db| gateway::incoming_history(db, &uri, &page))
    })
    .await
}

/// A page of `account`'s outgoing history; as [`incoming_history`].
pub async fn outgoing_history(
    store: &Store,
    wakeups: &Wakeups,
    account: &GatewayAccount,
    request: HistoryRequest,
) -> Result<Vec<OutgoingTransaction>, ApiError> {
    let uri = account.uri().to_owned();
    let page = request.page;
    let rows = long_poll(wakeups, &channel(&account.name, Direction::Outgoing), request.wait, || {
        let uri = uri.clone();
        store.read(move |db| gateway::outgoing_history(db, &uri, &page))
    })
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Reads; when the read finds nothing and `wait` is not zero, waits for a commit on `channel`
/// (or the deadline, or shutdown) and reads again, until rows come or time is up.
async fn long_poll<T, F, Fut>(
    wakeups: &Wakeups,
    channel: &str,
    wait: Duration,
    mut read: F,
) -> Result<Vec<T>, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, crate::store::StoreError>>,
{
    if wait.is_zero() {
        return Ok(read().await?);
    }
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before the read: a commit between the read and the wait still wakes us.
    let mut waiter = wakeups.subscribe(channel);
    loop {
        let rows = read().await?;
        if !rows.is_empty() {
            return Ok(rows);
        }
        match waiter.wait(deadline).await {
            Woken::Changed => {}
            Woken::TimedOut | Woken::Closed => return Ok(Vec::new()),
        }
    }
}
