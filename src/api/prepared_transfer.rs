//! The bank's prepared transfers: `/taler-prepared-transfer/config`,
//! `registration`, `unregistration`, and the operator's list.
//!
//! A wallet registers a key; the bank hands back the wire-transfer subjects it
//! will recognise for it, in each configured format. Short subjects (a short
//! SIMPLE subject, a Swiss QR reference) are derived from the authorization key
//! alone ([`crate::subject`]) and are unique among live registrations by a
//! UNIQUE constraint, so two concurrent registrations can never both hold one.
//! A registration lives until its expiration; expired rows are treated as
//! absent and give up their subjects to the next registration that derives
//! them. Everything about one registration happens in one write transaction.

use serde::{Deserialize, Serialize};
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::amount::Amount;
use crate::app::AppState;
use crate::config::{Settings, SimpleSubjectStyle, SubjectFormat};
use crate::crypto::{EddsaPublicKey, EddsaSignature};
use crate::error::{ApiError, json_response};
use crate::http::{PageQuery, PathParams, Request, Route, no_content};
use crate::payto::Payto;
pub use crate::store::registrations::TransferType;
use crate::store::registrations::{self, NewRegistration, Registered, RegistrationEntry};
use crate::store::{Durability, WriteTx};
use crate::subject;
use crate::timestamp::Timestamp;

/// Protocol version of the prepared-transfer API (`current:revision:age`).
pub const PREPARED_TRANSFER_VERSION: &str = "1:0:0";

/// How far an unregistration's timestamp may be from the server's clock.
pub const UNREGISTRATION_WINDOW_S: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alg {
    EdDSA,
}

/// Body of `POST /registration`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationRequest {
    pub credit_account: Payto,
    #[serde(rename = "type")]
    pub transfer_type: TransferType,
    pub recurrent: bool,
    pub credit_amount: Amount,
    pub alg: Alg,
    pub account_pub: EddsaPublicKey,
    pub authorization_pub: EddsaPublicKey,
    pub authorization_sig: EddsaSignature,
}

/// One subject of a `RegistrationResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TransferSubject {
    #[serde(rename = "SIMPLE")]
    Simple { credit_amount: Amount, subject: String },
    #[serde(rename = "URI")]
    Uri { credit_amount: Amount, uri: String },
    #[serde(rename = "CH_QR_BILL")]
    SwissQrBill { credit_amount: Amount, qr_reference_number: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationResponse {
    pub subjects: Vec<TransferSubject>,
    pub expiration: Timestamp,
}

/// Body of `POST /unregistration`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unregistration {
    pub timestamp: String,
    pub authorization_pub: EddsaPublicKey,
    pub authorization_sig: EddsaSignature,
}

#[derive(Serialize)]
struct PreparedTransferConfig<'a> {
    name: &'static str,
    version: &'static str,
    currency: &'a str,
    implementation: &'static str,
    supported_formats: Vec<&'static str>,
}

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::public(Method::GET, "/taler-prepared-transfer/config", get_config),
        Route::public(Method::POST, "/taler-prepared-transfer/registration", register),
        Route::public(Method::POST, "/taler-prepared-transfer/unregistration", unregister),
        Route::operator(Method::GET, "/private/registrations", list_registrations),
    ]
}

/// `GET /taler-prepared-transfer/config`: currency and subject formats.
async fn get_config(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &PreparedTransferConfig {
            name: "taler-prepared-transfer",
            version: PREPARED_TRANSFER_VERSION,
            currency: &state.settings.currency,
            implementation: crate::api::exchange::IMPLEMENTATION,
            supported_formats: state.settings.subject_formats.iter().map(|f| f.name()).collect(),
        },
    ))
}

/// The subjects a registration derives, before they are stored.
struct Derived {
    /// The short SIMPLE subject, when SIMPLE subjects are short.
    short: Option<String>,
    /// The QR reference, when CH_QR_BILL applies to the credit account.
    qr: Option<String>,
    response: RegistrationResponse,
}

fn derive(
    s: &Settings,
    req: &RegistrationRequest,
    account: &Payto,
    expiration: Timestamp,
) -> Result<Derived, ApiError> {
    let key = req.authorization_pub.as_bytes();
    let formats = &s.subject_formats;
    let short = (formats.contains(&SubjectFormat::Simple) && s.simple_subject == SimpleSubjectStyle::Short)
        .then(|| subject::short_subject(key, s.short_subject_length));
    let qr = if formats.contains(&SubjectFormat::ChQrBill) && account.is_qr_iban() {
        Some(
            subject::qr_reference(key, &s.qr_reference_prefix)
                .map_err(|e| ApiError::Internal(format!("QR reference prefix: {e}")))?,
        )
    } else {
        None
    };
    let simple = match (&short, req.transfer_type) {
        (Some(short), _) => short.clone(),
        (None, TransferType::Reserve) => req.authorization_pub.to_string(),
        (None, TransferType::Kyc) => format!("KYC:{}", req.authorization_pub),
    };
    let amount = req.credit_amount.clone();
    let mut subjects = Vec::new();
    for format in formats {
        match format {
            SubjectFormat::Simple => subjects
                .push(TransferSubject::Simple { credit_amount: amount.clone(), subject: simple.clone() }),
            SubjectFormat::Uri => subjects.push(TransferSubject::Uri {
                credit_amount: amount.clone(),
                uri: subject::uri_subject(account.full(), &amount.to_string(), &simple),
            }),
            SubjectFormat::ChQrBill => {
                if let Some(qr) = &qr {
                    subjects.push(TransferSubject::SwissQrBill {
                        credit_amount: amount.clone(),
                        qr_reference_number: qr.clone(),
                    });
                }
            }
        }
    }
    Ok(Derived { short, qr, response: RegistrationResponse { subjects, expiration } })
}

/// `POST /taler-prepared-transfer/registration`: registers a key and answers
/// the subjects that will credit it.
async fn register(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let reg: RegistrationRequest = req.json(state.settings.max_json).await?;
    let new = prepare_registration(&state.settings, &reg, state.clock.now_us())?;
    let body = state.store.write(Durability::Durable, move |tx| store_registration(tx, &new)).await?;
    let mut response = Response::new(body.into());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Steps 1-3 of a registration and everything derived for step 4, before its transaction:
/// what `POST /registration` and the `[[registration]]` fixtures both run.
pub fn prepare_registration(
    settings: &Settings,
    reg: &RegistrationRequest,
    now_us: i64,
) -> Result<NewRegistration, ApiError> {
    // 1. Values the types could not check.
    if reg.credit_amount.currency() != settings.currency {
        return Err(ApiError::field(
            "credit_amount",
            format!("currency {} is not the bank's {}", reg.credit_amount.currency(), settings.currency),
        ));
    }
    if reg.credit_amount.is_zero() {
        return Err(ApiError::field("credit_amount", "must be positive"));
    }
    // 2. The authorization key signed the account key.
    if !reg.authorization_pub.verify(reg.account_pub.as_bytes(), &reg.authorization_sig) {
        return Err(ApiError::BankBadSignature(
            "authorization_sig is not a signature of account_pub by authorization_pub",
        ));
    }
    // 3. One of our accounts.
    let account = settings
        .credit_accounts
        .iter()
        .find(|a| a.normalized() == reg.credit_account.normalized())
        .cloned()
        .ok_or_else(|| ApiError::BankUnknownCreditor(reg.credit_account.full().to_owned()))?;
    // 4. Everything derived before the transaction.
    let now_s = now_us.div_euclid(1_000_000);
    let lifetime = if reg.recurrent { settings.recurrent_lifetime } else { settings.registration_lifetime };
    let expiration_s = now_s.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    let expiration = Timestamp::from_secs(u64::try_from(expiration_s).unwrap_or(u64::MAX));
    let derived = derive(settings, reg, &account, expiration)?;
    let response = serde_json::to_string(&derived.response)
        .map_err(|e| ApiError::Internal(format!("cannot encode the response: {e}")))?;
    Ok(NewRegistration {
        authorization_pub: reg.authorization_pub,
        account_pub: reg.account_pub,
        transfer_type: reg.transfer_type,
        recurrent: reg.recurrent,
        credit_amount: reg.credit_amount.to_string(),
        credit_account: reg.credit_account.normalized().to_owned(),
        authorization_sig: reg.authorization_sig,
        short_subject: derived.short,
        qr_reference: derived.qr,
        response,
        now_us,
        expiration_s,
    })
}

/// Step 4 of a registration, inside its write transaction: the answer's body.
pub fn store_registration(tx: &WriteTx<'_>, new: &NewRegistration) -> Result<String, ApiError> {
    match registrations::register(tx, new)? {
        Registered::Stored(body) | Registered::Identical(body) => Ok(body),
        Registered::AccountPubRegistered => {
            Err(ApiError::BankDuplicateReservePub("account_pub is registered by another authorization key"))
        }
        Registered::ReserveAlreadyCredited => Err(ApiError::BankDuplicateReservePub(
            "account_pub was already credited: reserve keys are single-use",
        )),
        Registered::SubjectTaken { format, subject } => {
            Err(ApiError::BankDerivationReuse { format, subject })
        }
    }
}

/// `POST /taler-prepared-transfer/unregistration`: deletes a registration,
/// signed over a fresh timestamp.
async fn unregister(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let body: Unregistration = req.json(state.settings.max_json).await?;
    // 1. The timestamp must be RFC 3339.
    let at = time::OffsetDateTime::parse(&body.timestamp, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            ApiError::field("timestamp", format!("'{}' is not an RFC 3339 time: {e}", body.timestamp))
        })?;
    let at_us = i64::try_from(at.unix_timestamp_nanos() / 1000)
        .map_err(|_| ApiError::field("timestamp", "out of range"))?;
    // 2. Signed by the authorization key, over the timestamp exactly as sent.
    if !body.authorization_pub.verify(body.timestamp.as_bytes(), &body.authorization_sig) {
        return Err(ApiError::BankBadSignature(
            "authorization_sig is not a signature of timestamp by authorization_pub",
        ));
    }
    let now_us = state.clock.now_us();
    let now_s = now_us.div_euclid(1_000_000);
    state
        .store
        .write(Durability::Durable, move |tx| {
            // 3. A live registration.
            let Some(live) = registrations::live_row(tx, &body.authorization_pub, now_s)? else {
                return Err(ApiError::BankUnknownRegistration {
                    authorization_pub: body.authorization_pub.to_string(),
                    conflict: false,
                });
            };
            // 4. Fresh, and not older than the registration it deletes. In
            // whole seconds, as Taler's timestamps are: a client that writes
            // seconds can unregister in the second it registered.
            if (at_us - now_us).abs() > UNREGISTRATION_WINDOW_S * 1_000_000 {
                return Err(ApiError::BankOldTimestamp(format!(
                    "timestamp {} is more than {UNREGISTRATION_WINDOW_S} s away from the server's clock",
                    body.timestamp
                )));
            }
            if at_us.div_euclid(1_000_000) < live.last_change_us.div_euclid(1_000_000) {
                return Err(ApiError::BankOldTimestamp(format!(
                    "timestamp {} is earlier than the registration's last change",
                    body.timestamp
                )));
            }
            // 5. Gone, and its subjects free.
            registrations::delete(tx, live.registration_id)?;
            Ok(())
        })
        .await?;
    Ok(no_content())
}

#[derive(Serialize)]
struct RegistrationList {
    registrations: Vec<RegistrationEntry>,
}

/// `GET /private/registrations?limit=&offset=`: registrations, live and expired.
async fn list_registrations(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let page = req.query::<PageQuery>()?.resolve(20)?;
    let now_s = state.clock.now_s();
    let registrations = state.store.read(move |db| registrations::list(db, &page, now_s)).await?;
    Ok(json_response(StatusCode::OK, &RegistrationList { registrations }))
}
