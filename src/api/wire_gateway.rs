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

use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::amount::Amount;
use crate::app::AppState;
use crate::config::Settings;
use crate::crypto::EddsaPublicKey;
use crate::domain::bank::gateway::{self, Direction, GatewayAccount};
use crate::domain::bank::{admin, outgoing};
use crate::error::{ApiError, json_response};
use crate::http::{PathParams, Request, Route, no_content};
use crate::payto::Payto;
use crate::store::registrations::{self, LiveKey, LiveRegistration, TransferType};
use crate::store::transfers::{self, Incoming, IncomingTransaction};
use crate::store::{Db, Durability, StoreError, WriteTx};
use crate::subject::{self, MAX_SUBJECT_CHARS, SubjectMatch};
use crate::timestamp::Timestamp;

/// Wire gateway protocol version (`current:revision:age`).
pub const WIRE_GATEWAY_VERSION: &str = "5:0:5";

#[derive(Deserialize)]
struct AddMapped {
    amount: Amount,
    authorization_pub: EddsaPublicKey,
    debit_account: String,
}

/// Body of `add-incoming-subject` (and what an `[[incoming]]` fixture holds).
#[derive(Debug, Clone, Deserialize)]
pub struct AddIncomingSubject {
    pub amount: Amount,
    pub subject: String,
    pub debit_account: Payto,
    pub credit_account: Option<Payto>,
}

/// `add-incoming-subject`'s body as it arrives: the accounts are checked as full payto URIs
/// (400, code 24, naming the field) before they become [`AddIncomingSubject`]'s.
#[derive(Deserialize)]
struct AddIncomingSubjectRequest {
    amount: Amount,
    subject: String,
    debit_account: String,
    credit_account: Option<String>,
}

#[derive(Serialize)]
struct AddedTransfer {
    row_id: i64,
    timestamp: Timestamp,
}

/// Answer of `add-incoming-subject`.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SubjectOutcome {
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

/// The gateway's paths, under `/taler-wire-gateway/` (the first account) and under
/// `/accounts/{account}/taler-wire-gateway/` (each configured account by name).
macro_rules! both {
    ($make:ident, $method:expr, $path:literal, $handler:expr) => {
        [
            Route::$make($method, concat!("/taler-wire-gateway/", $path), $handler),
            Route::$make($method, concat!("/accounts/{account}/taler-wire-gateway/", $path), $handler),
        ]
    };
}

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    [
        both!(public, Method::GET, "config", get_config),
        both!(wire_gateway, Method::GET, "account/check", account_check),
        both!(wire_gateway, Method::POST, "transfer", transfer),
        both!(wire_gateway, Method::GET, "transfers", transfers),
        both!(wire_gateway, Method::GET, "transfers/{row_id}", transfer_status),
        both!(wire_gateway, Method::GET, "history/incoming", history_incoming),
        both!(wire_gateway, Method::GET, "history/outgoing", history_outgoing),
        both!(wire_gateway, Method::POST, "admin/add-incoming", add_incoming),
        both!(wire_gateway, Method::POST, "admin/add-kycauth", add_kycauth),
        both!(wire_gateway, Method::POST, "admin/add-mapped", add_mapped),
        both!(wire_gateway, Method::POST, "admin/add-incoming-subject", add_incoming_subject),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The account a request's path names: `{account}`, or the first for the short paths.
fn path_account(state: &AppState, params: &PathParams) -> Result<GatewayAccount, ApiError> {
    let name = params.get("account");
    gateway::account(&state.settings, (!name.is_empty()).then_some(name))
}

#[derive(Serialize)]
struct WireGatewayConfig<'a> {
    name: &'static str,
    version: &'static str,
    currency: &'a str,
    implementation: &'static str,
    support_account_check: bool,
}

/// `GET /taler-wire-gateway/config` (and `/accounts/{account}/taler-wire-gateway/config`)
async fn get_config(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    path_account(&state, &params)?;
    Ok(json_response(
        StatusCode::OK,
        &WireGatewayConfig {
            name: "taler-wire-gateway",
            version: WIRE_GATEWAY_VERSION,
            currency: &state.settings.currency,
            implementation: crate::api::exchange::IMPLEMENTATION,
            support_account_check: false,
        },
    ))
}

/// `GET /taler-wire-gateway/account/check`: 501, as the protocol allows a bank that cannot
/// check accounts (its config says `support_account_check: false`).
async fn account_check(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    path_account(&state, &params)?;
    Err(ApiError::NotImplemented("account/check"))
}

/// `POST /taler-wire-gateway/transfer`: the exchange pays out; idempotent on `request_uid`.
async fn transfer(state: AppState, params: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let body: outgoing::TransferRequest = req.json(state.settings.max_json).await?;
    let answer = outgoing::transfer(
        &state.store,
        &state.settings,
        &state.wakeups,
        &account,
        body,
        state.clock.now_us(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &answer))
}

/// `POST /taler-wire-gateway/admin/add-incoming`: a reserve credit (the exchange's test
/// harness funds reserves this way); 409, code 5114, for a reserve key already used.
async fn add_incoming(state: AppState, params: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let body: admin::AddIncoming = req.json(state.settings.max_json).await?;
    let added = admin::credit(
        &state.store,
        &state.settings,
        &state.wakeups,
        &account,
        TransferType::Reserve,
        &body.amount,
        body.reserve_pub,
        &body.debit_account,
        state.clock.now_us(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &added))
}

/// `POST /taler-wire-gateway/admin/add-kycauth`: a KYC authentication transfer.
async fn add_kycauth(state: AppState, params: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let body: admin::AddKycauth = req.json(state.settings.max_json).await?;
    let added = admin::credit(
        &state.store,
        &state.settings,
        &state.wakeups,
        &account,
        TransferType::Kyc,
        &body.amount,
        body.account_pub,
        &body.debit_account,
        state.clock.now_us(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &added))
}

#[derive(Serialize)]
struct TransferList {
    debit_account: String,
    transfers: Vec<outgoing::TransferListStatus>,
}

/// `GET /taler-wire-gateway/transfers?limit=&offset=&status=`: the account's transfers, 204
/// when there are none.
async fn transfers(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let transfers = outgoing::list(&state.store, &account, req.query()?).await?;
    if transfers.is_empty() {
        return Ok(no_content());
    }
    Ok(json_response(StatusCode::OK, &TransferList { debit_account: account.uri().to_owned(), transfers }))
}

/// `GET /taler-wire-gateway/transfers/{row_id}`: one transfer of the account; 404, code 5106,
/// for an unknown one or another account's.
async fn transfer_status(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let status = outgoing::get(&state.store, &account, params.get("row_id")).await?;
    Ok(json_response(StatusCode::OK, &status))
}

impl SubjectOutcome {
    /// The transfer's row, credited or bounced.
    pub fn row_id(&self) -> i64 {
        match self {
            SubjectOutcome::Credited { row_id, .. } | SubjectOutcome::Bounced { row_id, .. } => *row_id,
        }
    }
}

fn check_amount(settings: &Settings, amount: &Amount) -> Result<(), ApiError> {
    if amount.currency() != settings.currency {
        return Err(ApiError::field(
            "amount",
            format!("currency {} is not the bank's {}", amount.currency(), settings.currency),
        ));
    }
    if amount.is_zero() {
        return Err(ApiError::field("amount", "must be positive"));
    }
    Ok(())
}

/// `POST /taler-wire-gateway/admin/add-mapped`: a transfer to a registration,
/// named by its authorization key (upstream wire gateway v5).
async fn add_mapped(state: AppState, params: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let body: AddMapped = req.json(state.settings.max_json).await?;
    gateway::check_amount(&state.settings, "amount", &body.amount)?;
    let debit_account = gateway::full_payto("debit_account", &body.debit_account)?;
    let incoming = Incoming {
        date_us: state.clock.now_us(),
        amount: body.amount.to_string(),
        debit_account: debit_account.full().to_owned(),
        credit_account: account.uri().to_owned(),
        subject: None,
    };
    // One instant for the record, the liveness check and the answer.
    let now_s = incoming.date_us.div_euclid(1_000_000);
    let date_us = incoming.date_us;
    let row_id = state
        .store
        .write(Durability::Durable, move |tx| {
            let auth = body.authorization_pub;
            let Some(reg) = registrations::find_live(tx, LiveKey::AuthorizationPub(&auth), now_s)? else {
                return Err(ApiError::BankUnknownRegistration {
                    authorization_pub: auth.to_string(),
                    conflict: true,
                });
            };
            if reg.used && !reg.recurrent {
                return Err(ApiError::BankTransferMappingReused(auth.to_string()));
            }
            if reg.transfer_type == TransferType::Reserve
                && transfers::is_reserve_credited(tx, &reg.account_pub)?
            {
                return Err(ApiError::BankDuplicateReservePub(
                    "the registration's reserve key was already credited",
                ));
            }
            Ok(transfers::credit(tx, &incoming, reg.transfer_type, &reg.account_pub, Some(&reg))?)
        })
        .await?;
    state.wakeups.wake(&gateway::channel(&account.name, Direction::Incoming));
    Ok(json_response(
        StatusCode::OK,
        &AddedTransfer { row_id, timestamp: Timestamp::from_unix_micros(date_us) },
    ))
}

fn default_credit_account(settings: &Settings) -> String {
    settings.credit_accounts.first().map(|a| a.full().to_owned()).unwrap_or_default()
}

/// Where a transfer goes: its type, the key credited, and the registration
/// that mapped it (none for a plain key).
type Target = (TransferType, EddsaPublicKey, Option<LiveRegistration>);

/// A candidate of a subject, decoded before the write transaction.
enum Candidate {
    Key { kyc: bool, key: EddsaPublicKey },
    QrReference(String),
    Short(String),
}

/// Parses what the customer typed, outside the writer: the work grows with
/// the text, the writer's share must not.
fn candidates(text: &str, short_length: usize) -> Vec<Candidate> {
    subject::parse_subject(text, short_length)
        .into_iter()
        .filter_map(|c| match c {
            SubjectMatch::Key { kyc, key_text } => {
                key_text.parse().ok().map(|key| Candidate::Key { kyc, key })
            }
            SubjectMatch::QrReference(r) => Some(Candidate::QrReference(r)),
            SubjectMatch::Short(s) => Some(Candidate::Short(s)),
        })
        .collect()
}

/// What the candidates of a subject refer to, decided inside the write
/// transaction: the target, or why the transfer bounces.
fn resolve_subject(
    db: &Db<'_>,
    candidates: &[Candidate],
    now_s: i64,
) -> Result<Result<Target, String>, StoreError> {
    let mut plain_keys: Vec<(TransferType, EddsaPublicKey)> = Vec::new();
    for candidate in candidates {
        let registration = match candidate {
            Candidate::Key { kyc, key } => {
                match registrations::find_live(db, LiveKey::AuthorizationPub(key), now_s)? {
                    Some(reg) => reg,
                    None => {
                        let transfer_type = if *kyc { TransferType::Kyc } else { TransferType::Reserve };
                        if !plain_keys.iter().any(|(_, k)| k == key) {
                            plain_keys.push((transfer_type, *key));
                        }
                        continue;
                    }
                }
            }
            Candidate::QrReference(reference) => {
                match registrations::find_live(db, LiveKey::QrReference(reference), now_s)? {
                    Some(reg) => reg,
                    None => return Ok(Err(format!("no live registration holds QR reference {reference}"))),
                }
            }
            Candidate::Short(short) => {
                match registrations::find_live(db, LiveKey::ShortSubject(short), now_s)? {
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

/// `POST /taler-wire-gateway/admin/add-incoming-subject`: a transfer with the
/// subject as a customer typed it; credited or bounced.
async fn add_incoming_subject(
    state: AppState,
    params: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let request: AddIncomingSubjectRequest = req.json(state.settings.max_json).await?;
    let body = AddIncomingSubject {
        amount: request.amount,
        subject: request.subject,
        debit_account: gateway::full_payto("debit_account", &request.debit_account)?,
        credit_account: Some(match &request.credit_account {
            Some(text) => gateway::full_payto("credit_account", text)?,
            None => account.payto.clone(),
        }),
    };
    let transfer = prepare_incoming(&state.settings, body, state.clock.now_us())?;
    let credit_account = transfer.incoming.credit_account.clone();
    let outcome = state.store.write(Durability::Durable, move |tx| record_incoming(tx, &transfer)).await?;
    if let SubjectOutcome::Credited { .. } = outcome {
        gateway::wake(&state.settings, &state.wakeups, &credit_account, Direction::Incoming);
    }
    Ok(json_response(StatusCode::OK, &outcome))
}

/// An incoming transfer checked and parsed, ready for its transaction.
pub struct PreparedIncoming {
    candidates: Vec<Candidate>,
    pub incoming: Incoming,
}

/// Everything `add-incoming-subject` does before its transaction, also for the
/// `[[incoming]]` fixtures: checks, the subject parsed, the record made at `now_us`.
pub fn prepare_incoming(
    settings: &Settings,
    body: AddIncomingSubject,
    now_us: i64,
) -> Result<PreparedIncoming, ApiError> {
    check_amount(settings, &body.amount)?;
    if body.subject.chars().nth(MAX_SUBJECT_CHARS).is_some() {
        return Err(ApiError::field("subject", format!("is longer than {MAX_SUBJECT_CHARS} characters")));
    }
    let credit_account = match &body.credit_account {
        Some(account) => settings
            .credit_accounts
            .iter()
            .find(|a| a.normalized() == account.normalized())
            .map(|a| a.full().to_owned())
            .ok_or_else(|| ApiError::BankUnknownCreditor(account.full().to_owned()))?,
        None => default_credit_account(settings),
    };
    let candidates = candidates(&body.subject, settings.short_subject_length);
    let incoming = Incoming {
        date_us: now_us,
        amount: body.amount.to_string(),
        debit_account: body.debit_account.full().to_owned(),
        credit_account,
        subject: Some(body.subject),
    };
    Ok(PreparedIncoming { candidates, incoming })
}

/// The transaction of `add-incoming-subject`: the transfer credited or bounced.
pub fn record_incoming(tx: &WriteTx<'_>, transfer: &PreparedIncoming) -> Result<SubjectOutcome, StoreError> {
    let incoming = &transfer.incoming;
    // One instant for the record, the liveness check and the answer.
    let now_s = incoming.date_us.div_euclid(1_000_000);
    let timestamp = Timestamp::from_unix_micros(incoming.date_us);
    let outcome = match resolve_subject(tx, &transfer.candidates, now_s)? {
        Ok((transfer_type, account_pub, registration)) => {
            if transfer_type == TransferType::Reserve && transfers::is_reserve_credited(tx, &account_pub)? {
                let reason = format!("reserve key {account_pub} was already credited");
                SubjectOutcome::Bounced {
                    row_id: transfers::bounce(tx, incoming, &reason)?,
                    timestamp,
                    reason,
                }
            } else {
                let row_id =
                    transfers::credit(tx, incoming, transfer_type, &account_pub, registration.as_ref())?;
                SubjectOutcome::Credited {
                    row_id,
                    timestamp,
                    transfer_type: transfer_type.wire_name(),
                    account_pub,
                }
            }
        }
        Err(reason) => {
            SubjectOutcome::Bounced { row_id: transfers::bounce(tx, incoming, &reason)?, timestamp, reason }
        }
    };
    Ok(outcome)
}

#[derive(Serialize)]
struct IncomingHistory {
    credit_account: String,
    incoming_transactions: Vec<IncomingTransaction>,
}

/// `GET /taler-wire-gateway/history/incoming?limit=&offset=&timeout_ms=` (also `delta`,
/// `start`, `long_poll_ms`): credited transfers; 204 when none, after waiting for one when
/// asked to.
async fn history_incoming(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let request = req.query::<gateway::HistoryQuery>()?.resolve()?;
    let incoming_transactions =
        gateway::incoming_history(&state.store, &state.wakeups, &account, request).await?;
    if incoming_transactions.is_empty() {
        return Ok(no_content());
    }
    Ok(json_response(
        StatusCode::OK,
        &IncomingHistory { credit_account: account.uri().to_owned(), incoming_transactions },
    ))
}

#[derive(Serialize)]
struct OutgoingHistory {
    debit_account: String,
    outgoing_transactions: Vec<gateway::OutgoingTransaction>,
}

/// `GET /taler-wire-gateway/history/outgoing?limit=&offset=&timeout_ms=` (also the deprecated
/// names): transfers out; 204 when none, after waiting for one when asked to.
async fn history_outgoing(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let request = req.query::<gateway::HistoryQuery>()?.resolve()?;
    let outgoing_transactions =
        gateway::outgoing_history(&state.store, &state.wakeups, &account, request).await?;
    if outgoing_transactions.is_empty() {
        return Ok(no_content());
    }
    Ok(json_response(
        StatusCode::OK,
        &OutgoingHistory { debit_account: account.uri().to_owned(), outgoing_transactions },
    ))
}
