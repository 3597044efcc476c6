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
use crate::error::{ApiError, json_response};
use crate::http::{PageQuery, PathParams, Request, Route};
use crate::payto::Payto;
use crate::store::registrations::{self, LiveKey, LiveRegistration, TransferType};
use crate::store::transfers::{self, Incoming, IncomingTransaction};
use crate::store::{Db, Durability, StoreError, WriteTx};
use crate::subject::{self, MAX_SUBJECT_CHARS, SubjectMatch};
use crate::timestamp::Timestamp;

/// Wire gateway protocol version (`current:revision:age`).
pub const WIRE_GATEWAY_VERSION: &str = "5:0:0";

#[derive(Deserialize)]
struct AddMapped {
    amount: Amount,
    authorization_pub: EddsaPublicKey,
    debit_account: Payto,
}

/// Body of `add-incoming-subject` (and what an `[[incoming]]` fixture holds).
#[derive(Debug, Clone, Deserialize)]
pub struct AddIncomingSubject {
    pub amount: Amount,
    pub subject: String,
    pub debit_account: Payto,
    pub credit_account: Option<Payto>,
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

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::public(Method::GET, "/taler-wire-gateway/config", get_config),
        Route::operator(Method::POST, "/taler-wire-gateway/admin/add-mapped", add_mapped),
        Route::operator(Method::POST, "/taler-wire-gateway/admin/add-incoming-subject", add_incoming_subject),
        Route::operator(Method::GET, "/taler-wire-gateway/history/incoming", history_incoming),
    ]
}

#[derive(Serialize)]
struct WireGatewayConfig<'a> {
    name: &'static str,
    version: &'static str,
    currency: &'a str,
    implementation: &'static str,
}

/// `GET /taler-wire-gateway/config`
async fn get_config(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &WireGatewayConfig {
            name: "taler-wire-gateway",
            version: WIRE_GATEWAY_VERSION,
            currency: &state.settings.currency,
            implementation: crate::api::exchange::IMPLEMENTATION,
        },
    ))
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
async fn add_mapped(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let body: AddMapped = req.json(state.settings.max_json).await?;
    check_amount(&state.settings, &body.amount)?;
    let incoming = Incoming {
        date_us: state.clock.now_us(),
        amount: body.amount.to_string(),
        debit_account: body.debit_account.full().to_owned(),
        credit_account: default_credit_account(&state.settings),
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
    _: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
    let body: AddIncomingSubject = req.json(state.settings.max_json).await?;
    let transfer = prepare_incoming(&state.settings, body, state.clock.now_us())?;
    let outcome = state.store.write(Durability::Durable, move |tx| record_incoming(tx, &transfer)).await?;
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

/// `GET /taler-wire-gateway/history/incoming?limit=&offset=`: credited transfers.
async fn history_incoming(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    // Upstream's default: the 20 newest.
    let page = req.query::<PageQuery>()?.resolve(-20)?;
    let incoming_transactions = state.store.read(move |db| transfers::history(db, &page)).await?;
    Ok(json_response(
        StatusCode::OK,
        &IncomingHistory { credit_account: default_credit_account(&state.settings), incoming_transactions },
    ))
}
