//! A small simulation of the exchange's bank account under
//! `/taler-wire-gateway/`: feed incoming transfers in (by mapped registration,
//! or by the free-text subject a customer typed) and read the credited ones
//! back as the wire gateway's incoming history, so that prepared transfers can
//! be tried end to end without a bank.
//!
//! Rules: a one-shot registration is used up by its first credited transfer; a
//! recurrent one maps every transfer to its current `account_pub` until it
//! expires or is unregistered; a reserve key is never credited twice (a UNIQUE
//! index, not only a check); whatever cannot be credited is recorded as
//! bounced, with the reason.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::amount::Amount;
use crate::crypto::EddsaPublicKey;
use crate::error::{ApiError, json_response};
use crate::http::{Page, PageQuery, Request, route};
use crate::payto::Payto;
use crate::prepared_transfer::{self, LiveRegistration, TransferType};
use crate::server::AppState;
use crate::store::StoreError;
use crate::subject::{self, SubjectMatch};
use crate::timestamp::Timestamp;

/// Wire gateway protocol version (`current:revision:age`).
pub const WIRE_GATEWAY_VERSION: &str = "5:0:0";

#[derive(Deserialize)]
struct AddMapped {
    amount: Amount,
    authorization_pub: EddsaPublicKey,
    debit_account: Payto,
}

#[derive(Deserialize)]
struct AddIncomingSubject {
    amount: Amount,
    subject: String,
    debit_account: Payto,
    credit_account: Option<Payto>,
}

#[derive(Serialize)]
struct AddedTransfer {
    row_id: i64,
    timestamp: Timestamp,
}

/// Answer of `add-incoming-subject`.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum SubjectOutcome {
    Credited {
        row_id: i64,
        timestamp: Timestamp,
        #[serde(rename = "type")]
        transfer_type: &'static str,
        account_pub: EddsaPublicKey,
    },
    Bounced {
        row_id: i64,
        timestamp: Timestamp,
        reason: String,
    },
}

/// Wire gateway type names.
fn wire_type(t: TransferType) -> &'static str {
    match t {
        TransferType::Reserve => "RESERVE",
        TransferType::Kyc => "KYCAUTH",
    }
}

pub fn routes(state: &AppState) -> BoxedFilter<(Response,)> {
    config_route(state)
        .or(mapped_route(state))
        .unify()
        .or(by_subject_route(state))
        .unify()
        .or(history_route(state))
        .unify()
        .boxed()
}

/// `GET /taler-wire-gateway/config`
fn config_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("taler-wire-gateway" / "config"), state, get_config)
}

/// `POST /taler-wire-gateway/admin/add-mapped`
fn mapped_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("taler-wire-gateway" / "admin" / "add-mapped"), state, add_mapped)
}

/// `POST /taler-wire-gateway/admin/add-incoming-subject`
fn by_subject_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("taler-wire-gateway" / "admin" / "add-incoming-subject"), state, add_incoming_subject)
}

/// `GET /taler-wire-gateway/history/incoming?limit=&offset=`
fn history_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("taler-wire-gateway" / "history" / "incoming"), state, history_incoming)
}

#[derive(Serialize)]
struct WireGatewayConfig<'a> {
    name: &'static str,
    version: &'static str,
    currency: &'a str,
    implementation: &'static str,
}

async fn get_config(state: AppState, req: Request) -> Result<Response, ApiError> {
    req.allow(&Method::GET, "GET")?;
    Ok(json_response(
        StatusCode::OK,
        &WireGatewayConfig {
            name: "taler-wire-gateway",
            version: WIRE_GATEWAY_VERSION,
            currency: &state.settings.currency,
            implementation: crate::exchange::IMPLEMENTATION,
        },
    ))
}

fn check_amount(state: &AppState, amount: &Amount) -> Result<(), ApiError> {
    if amount.currency() != state.settings.currency {
        return Err(ApiError::field(
            "amount",
            format!("currency {} is not the bank's {}", amount.currency(), state.settings.currency),
        ));
    }
    if amount.is_zero() {
        return Err(ApiError::field("amount", "must be positive"));
    }
    Ok(())
}

/// A transfer to record.
struct Incoming {
    date_us: i64,
    amount: String,
    debit_account: String,
    credit_account: String,
    subject: Option<String>,
}

/// Records a credited transfer; marks a one-shot registration used.
fn credit(
    conn: &Connection,
    t: &Incoming,
    transfer_type: TransferType,
    account_pub: &EddsaPublicKey,
    registration: Option<&LiveRegistration>,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO incoming_transfers (date_us, amount, debit_account, credit_account, subject, status, type,
           account_pub, authorization_pub, registration_id)
         VALUES (?1, ?2, ?3, ?4, ?5, 'credited', ?6, ?7, ?8, ?9)",
        params![
            t.date_us,
            t.amount,
            t.debit_account,
            t.credit_account,
            t.subject,
            wire_type(transfer_type),
            account_pub.as_bytes(),
            registration.map(|r| r.authorization_pub.as_bytes().to_vec()),
            registration.map(|r| r.registration_id)
        ],
    )?;
    let row_id = conn.last_insert_rowid();
    if let Some(r) = registration {
        prepared_transfer::mark_used(conn, r.registration_id, t.date_us)?;
    }
    Ok(row_id)
}

fn bounce(conn: &Connection, t: &Incoming, reason: &str) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO incoming_transfers (date_us, amount, debit_account, credit_account, subject, status, bounce_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, 'bounced', ?6)",
        params![t.date_us, t.amount, t.debit_account, t.credit_account, t.subject, reason],
    )?;
    Ok(conn.last_insert_rowid())
}

async fn add_mapped(state: AppState, mut req: Request) -> Result<Response, ApiError> {
    // The token first: without it, not even the methods of a route are told.
    req.authorize(&state.token)?;
    req.allow(&Method::POST, "POST")?;
    let body: AddMapped = req.json(state.settings.max_json).await?;
    check_amount(&state, &body.amount)?;
    let incoming = Incoming {
        date_us: state.clock.now_us(),
        amount: body.amount.to_string(),
        debit_account: body.debit_account.full().to_owned(),
        credit_account: default_credit_account(&state),
        subject: None,
    };
    // One instant for the record, the liveness check and the answer.
    let now_s = incoming.date_us.div_euclid(1_000_000);
    let date_us = incoming.date_us;
    let row_id = state
        .store
        .write(move |conn| {
            let auth = body.authorization_pub;
            let Some(reg) = prepared_transfer::find_live(conn, "authorization_pub", &auth, now_s)? else {
                return Err(ApiError::BankUnknownRegistration {
                    authorization_pub: auth.to_string(),
                    conflict: true,
                });
            };
            if reg.used && !reg.recurrent {
                return Err(ApiError::BankTransferMappingReused(auth.to_string()));
            }
            if reg.transfer_type == TransferType::Reserve
                && prepared_transfer::is_reserve_credited(conn, &reg.account_pub)?
            {
                return Err(ApiError::BankDuplicateReservePub(
                    "the registration's reserve key was already credited",
                ));
            }
            Ok(credit(conn, &incoming, reg.transfer_type, &reg.account_pub, Some(&reg))?)
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &AddedTransfer { row_id, timestamp: Timestamp::from_unix_micros(date_us) },
    ))
}

fn default_credit_account(state: &AppState) -> String {
    state.settings.credit_accounts.first().map(|a| a.full().to_owned()).unwrap_or_default()
}

/// Where a transfer goes: its type, the key credited, and the registration
/// that mapped it (none for a plain key).
type Target = (TransferType, EddsaPublicKey, Option<LiveRegistration>);

/// What a subject text refers to, decided inside the write transaction:
/// the target, or why the transfer bounces.
fn resolve_subject(
    conn: &Connection,
    text: &str,
    short_length: usize,
    now_s: i64,
) -> Result<Result<Target, String>, StoreError> {
    let mut plain_keys: Vec<(TransferType, EddsaPublicKey)> = Vec::new();
    for candidate in subject::parse_subject(text, short_length) {
        let registration = match &candidate {
            SubjectMatch::Key { kyc, key_text } => {
                let Ok(key) = key_text.parse::<EddsaPublicKey>() else { continue };
                match prepared_transfer::find_live(conn, "authorization_pub", &key, now_s)? {
                    Some(reg) => reg,
                    None => {
                        let transfer_type = if *kyc { TransferType::Kyc } else { TransferType::Reserve };
                        if !plain_keys.iter().any(|(_, k)| *k == key) {
                            plain_keys.push((transfer_type, key));
                        }
                        continue;
                    }
                }
            }
            SubjectMatch::QrReference(reference) => {
                match prepared_transfer::find_live(conn, "qr_reference", reference, now_s)? {
                    Some(reg) => reg,
                    None => return Ok(Err(format!("no live registration holds QR reference {reference}"))),
                }
            }
            SubjectMatch::Short(short) => {
                match prepared_transfer::find_live(conn, "short_subject", short, now_s)? {
                    Some(reg) => reg,
                    None => continue,
                }
            }
        };
        if registration.used && !registration.recurrent {
            return Ok(Err(format!(
                "the one-shot registration of {} was already used",
                registration.authorization_pub
            )));
        }
        return Ok(Ok((registration.transfer_type, registration.account_pub, Some(registration))));
    }
    // No registration: a plain key, as banks understand subjects today, but
    // only when the text reads as one key: crediting a misread key would send
    // the money to a reserve nobody holds.
    match plain_keys.as_slice() {
        [(transfer_type, key)] => Ok(Ok((*transfer_type, *key, None))),
        [] => Ok(Err("the subject refers to no key, QR reference or live registration".into())),
        _ => Ok(Err(format!("the subject reads as {} different keys; refusing to guess", plain_keys.len()))),
    }
}

async fn add_incoming_subject(state: AppState, mut req: Request) -> Result<Response, ApiError> {
    // The token first: without it, not even the methods of a route are told.
    req.authorize(&state.token)?;
    req.allow(&Method::POST, "POST")?;
    let body: AddIncomingSubject = req.json(state.settings.max_json).await?;
    check_amount(&state, &body.amount)?;
    let credit_account = match &body.credit_account {
        Some(account) => state
            .settings
            .credit_accounts
            .iter()
            .find(|a| a.normalized() == account.normalized())
            .map(|a| a.full().to_owned())
            .ok_or_else(|| ApiError::BankUnknownCreditor(account.full().to_owned()))?,
        None => default_credit_account(&state),
    };
    let incoming = Incoming {
        date_us: state.clock.now_us(),
        amount: body.amount.to_string(),
        debit_account: body.debit_account.full().to_owned(),
        credit_account,
        subject: Some(body.subject.clone()),
    };
    let short_length = state.settings.short_subject_length;
    // One instant for the record, the liveness check and the answer.
    let now_s = incoming.date_us.div_euclid(1_000_000);
    let timestamp = Timestamp::from_unix_micros(incoming.date_us);
    let outcome = state
        .store
        .write(move |conn| {
            let outcome = match resolve_subject(conn, &body.subject, short_length, now_s)? {
                Ok((transfer_type, account_pub, registration)) => {
                    if transfer_type == TransferType::Reserve
                        && prepared_transfer::is_reserve_credited(conn, &account_pub)?
                    {
                        let reason = format!("reserve key {account_pub} was already credited");
                        SubjectOutcome::Bounced {
                            row_id: bounce(conn, &incoming, &reason)?,
                            timestamp,
                            reason,
                        }
                    } else {
                        let row_id =
                            credit(conn, &incoming, transfer_type, &account_pub, registration.as_ref())?;
                        SubjectOutcome::Credited {
                            row_id,
                            timestamp,
                            transfer_type: wire_type(transfer_type),
                            account_pub,
                        }
                    }
                }
                Err(reason) => {
                    SubjectOutcome::Bounced { row_id: bounce(conn, &incoming, &reason)?, timestamp, reason }
                }
            };
            Ok::<_, ApiError>(outcome)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &outcome))
}

/// One entry of the incoming history (upstream's `IncomingBankTransaction`).
#[derive(Debug, Serialize)]
struct IncomingTransaction {
    #[serde(rename = "type")]
    transfer_type: String,
    row_id: i64,
    date: Timestamp,
    amount: String,
    debit_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reserve_pub: Option<EddsaPublicKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_pub: Option<EddsaPublicKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_pub: Option<EddsaPublicKey>,
}

#[derive(Serialize)]
struct IncomingHistory {
    credit_account: String,
    incoming_transactions: Vec<IncomingTransaction>,
}

fn history(conn: &Connection, page: &Page) -> Result<Vec<IncomingTransaction>, StoreError> {
    let sql = format!(
        "SELECT row_id, date_us, amount, debit_account, type, account_pub, authorization_pub
         FROM incoming_transfers WHERE status = 'credited' AND {} ORDER BY row_id {} LIMIT ?2",
        page.condition("row_id", "?1"),
        page.order()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![page.start, page.limit], |r| {
        let transfer_type: String = r.get(4)?;
        let key: EddsaPublicKey = r.get(5)?;
        let reserve = transfer_type == "RESERVE";
        Ok(IncomingTransaction {
            row_id: r.get(0)?,
            date: Timestamp::from_unix_micros(r.get(1)?),
            amount: r.get(2)?,
            debit_account: r.get(3)?,
            reserve_pub: reserve.then_some(key),
            account_pub: (!reserve).then_some(key),
            authorization_pub: r.get(6)?,
            transfer_type,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

async fn history_incoming(state: AppState, req: Request) -> Result<Response, ApiError> {
    // The token first: without it, not even the methods of a route are told.
    req.authorize(&state.token)?;
    req.allow(&Method::GET, "GET")?;
    // Upstream's default: the 20 newest.
    let page = req.query::<PageQuery>()?.resolve(-20)?;
    let incoming_transactions =
        state.store.read(move |conn| history(conn, &page)).await.map_err(ApiError::fetch)?;
    Ok(json_response(
        StatusCode::OK,
        &IncomingHistory { credit_account: default_credit_account(&state), incoming_transactions },
    ))
}
