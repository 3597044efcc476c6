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

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::amount::Amount;
use crate::config::{SimpleSubjectStyle, SubjectFormat};
use crate::crypto::{EddsaPublicKey, EddsaSignature};
use crate::error::{ApiError, json_response};
use crate::exchange::IMPLEMENTATION;
use crate::http::{Page, PageQuery, Request, no_content, route};
use crate::payto::Payto;
use crate::server::AppState;
use crate::store::StoreError;
use crate::subject;
use crate::timestamp::Timestamp;

/// Protocol version of the prepared-transfer API (`current:revision:age`).
pub const PREPARED_TRANSFER_VERSION: &str = "1:0:0";

/// How far an unregistration's timestamp may be from the server's clock.
pub const UNREGISTRATION_WINDOW_S: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferType {
    Reserve,
    Kyc,
}

impl TransferType {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferType::Reserve => "reserve",
            TransferType::Kyc => "kyc",
        }
    }
}

/// Stored as its name (the schema's CHECK allows only these two).
impl rusqlite::types::FromSql for TransferType {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        match value.as_str()? {
            "reserve" => Ok(TransferType::Reserve),
            "kyc" => Ok(TransferType::Kyc),
            other => {
                Err(rusqlite::types::FromSqlError::Other(format!("unknown registration type {other}").into()))
            }
        }
    }
}

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

pub fn routes(state: &AppState) -> BoxedFilter<(Response,)> {
    config_route(state)
        .or(register_route(state))
        .unify()
        .or(unregister_route(state))
        .unify()
        .or(list_route(state))
        .unify()
        .boxed()
}

/// `GET /taler-prepared-transfer/config`
fn config_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("taler-prepared-transfer" / "config"), state, get_config)
}

/// `POST /taler-prepared-transfer/registration`
fn register_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("taler-prepared-transfer" / "registration"), state, register)
}

/// `POST /taler-prepared-transfer/unregistration`
fn unregister_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("taler-prepared-transfer" / "unregistration"), state, unregister)
}

/// `GET /private/registrations?limit=&offset=`
fn list_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("private" / "registrations"), state, list_registrations)
}

async fn get_config(state: AppState, req: Request) -> Result<Response, ApiError> {
    req.allow(&Method::GET, "GET")?;
    Ok(json_response(
        StatusCode::OK,
        &PreparedTransferConfig {
            name: "taler-prepared-transfer",
            version: PREPARED_TRANSFER_VERSION,
            currency: &state.settings.currency,
            implementation: IMPLEMENTATION,
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
    state: &AppState,
    req: &RegistrationRequest,
    account: &Payto,
    expiration: Timestamp,
) -> Result<Derived, ApiError> {
    let s = &state.settings;
    let key = req.authorization_pub.as_bytes();
    let formats = &s.subject_formats;
    let short = (formats.contains(&SubjectFormat::Simple) && s.simple_subject == SimpleSubjectStyle::Short)
        .then(|| subject::short_subject(key, s.short_subject_length));
    let qr = if formats.contains(&SubjectFormat::ChQrBill) && account.is_qr_iban() {
        Some(
            subject::qr_reference(key, &s.qr_reference_prefix)
                .map_err(|e| ApiError::from(StoreError::Invariant(format!("QR reference prefix: {e}"))))?,
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

async fn register(state: AppState, mut req: Request) -> Result<Response, ApiError> {
    req.allow(&Method::POST, "POST")?;
    let reg: RegistrationRequest = req.json(state.settings.max_json).await?;
    // 1. Values the types could not check.
    if reg.credit_amount.currency() != state.settings.currency {
        return Err(ApiError::field(
            "credit_amount",
            format!(
                "currency {} is not the bank's {}",
                reg.credit_amount.currency(),
                state.settings.currency
            ),
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
    let account = state
        .settings
        .credit_accounts
        .iter()
        .find(|a| a.normalized() == reg.credit_account.normalized())
        .cloned()
        .ok_or_else(|| ApiError::BankUnknownCreditor(reg.credit_account.full().to_owned()))?;
    // 4. One transaction.
    let now_us = state.clock.now_us();
    let now_s = now_us.div_euclid(1_000_000);
    let lifetime =
        if reg.recurrent { state.settings.recurrent_lifetime } else { state.settings.registration_lifetime };
    let expiration_s = now_s.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    let expiration = Timestamp::from_secs(u64::try_from(expiration_s).unwrap_or(u64::MAX));
    let derived = derive(&state, &reg, &account, expiration)?;
    let body = state
        .store
        .write(move |conn| store_registration(conn, &reg, &derived, now_us, now_s, expiration_s))
        .await?;
    let mut response = Response::new(body.into());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The stored registration of an authorization key, live or not.
struct StoredRegistration {
    registration_id: i64,
    account_pub: Vec<u8>,
    transfer_type: String,
    recurrent: bool,
    credit_amount: String,
    credit_account: String,
    response: String,
    expiration_s: i64,
}

fn load_by_authorization(
    conn: &Connection,
    authorization_pub: &EddsaPublicKey,
) -> Result<Option<StoredRegistration>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT registration_id, account_pub, type, recurrent, credit_amount, credit_account, response, expiration_s
             FROM registrations WHERE authorization_pub = ?1",
        )?
        .query_row(
            [authorization_pub.as_bytes()],
            |r| {
                Ok(StoredRegistration {
                    registration_id: r.get(0)?,
                    account_pub: r.get(1)?,
                    transfer_type: r.get(2)?,
                    recurrent: r.get(3)?,
                    credit_amount: r.get(4)?,
                    credit_account: r.get(5)?,
                    response: r.get(6)?,
                    expiration_s: r.get(7)?,
                })
            },
        )
        .optional()?)
}

/// Frees `column = value` if an expired registration holds it; fails if a live
/// one other than `own` does.
fn claim_subject(
    conn: &Connection,
    column: &'static str,
    format: &'static str,
    value: &str,
    own: Option<i64>,
    now_s: i64,
) -> Result<(), ApiError> {
    let holder: Option<(i64, i64)> = conn
        .prepare_cached(&format!(
            "SELECT registration_id, expiration_s FROM registrations WHERE {column} = ?1"
        ))?
        .query_row([value], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match holder {
        Some((id, _)) if Some(id) == own => Ok(()),
        Some((_, expiration_s)) if expiration_s > now_s => {
            Err(ApiError::BankDerivationReuse { format, subject: value.to_owned() })
        }
        Some((id, _)) => {
            conn.execute(
                &format!("UPDATE registrations SET {column} = NULL WHERE registration_id = ?1"),
                [id],
            )?;
            Ok(())
        }
        None => Ok(()),
    }
}

/// Whether a reserve key was credited already.
pub fn is_reserve_credited(conn: &Connection, account_pub: &EddsaPublicKey) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM incoming_transfers WHERE account_pub = ?1 AND status = 'credited' AND type = 'RESERVE'",
        )?
        .query_row(
            [account_pub],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn store_registration(
    conn: &Connection,
    reg: &RegistrationRequest,
    derived: &Derived,
    now_us: i64,
    now_s: i64,
    expiration_s: i64,
) -> Result<String, ApiError> {
    let existing = load_by_authorization(conn, &reg.authorization_pub)?;
    let live = existing.as_ref().filter(|e| e.expiration_s > now_s);
    let own_id = existing.as_ref().map(|e| e.registration_id);

    if reg.transfer_type == TransferType::Reserve {
        let other_live: bool = conn
            .prepare_cached(
                "SELECT 1 FROM registrations WHERE account_pub = ?1 AND authorization_pub != ?2 AND expiration_s > ?3",
            )?
            .query_row(
                params![reg.account_pub.as_bytes(), reg.authorization_pub.as_bytes(), now_s],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if other_live {
            return Err(ApiError::BankDuplicateReservePub(
                "account_pub is registered by another authorization key",
            ));
        }
        if is_reserve_credited(conn, &reg.account_pub)? {
            return Err(ApiError::BankDuplicateReservePub(
                "account_pub was already credited: reserve keys are single-use",
            ));
        }
    }
    if let Some(short) = &derived.short {
        claim_subject(conn, "short_subject", "SIMPLE", short, own_id, now_s)?;
    }
    if let Some(qr) = &derived.qr {
        claim_subject(conn, "qr_reference", "CH_QR_BILL", qr, own_id, now_s)?;
    }
    let amount = reg.credit_amount.to_string();
    let account = reg.credit_account.normalized().to_owned();
    if let Some(live) = live {
        let identical = live.account_pub == reg.account_pub.as_bytes()
            && live.transfer_type == reg.transfer_type.as_str()
            && live.recurrent == reg.recurrent
            && live.credit_amount == amount
            && live.credit_account == account;
        if identical {
            return Ok(live.response.clone());
        }
    }
    let response = serde_json::to_string(&derived.response)
        .map_err(|e| StoreError::Invariant(format!("cannot encode the response: {e}")))?;
    // New, replacing a live one (new data, renewed expiration), or taking over an expired row.
    conn.prepare_cached(
        "INSERT INTO registrations (authorization_pub, account_pub, type, recurrent, credit_amount, credit_account,
           authorization_sig, short_subject, qr_reference, response, created_us, last_change_us, expiration_s, used_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, NULL)
         ON CONFLICT (authorization_pub) DO UPDATE SET account_pub = excluded.account_pub, type = excluded.type,
           recurrent = excluded.recurrent, credit_amount = excluded.credit_amount,
           credit_account = excluded.credit_account, authorization_sig = excluded.authorization_sig,
           short_subject = excluded.short_subject, qr_reference = excluded.qr_reference,
           response = excluded.response, last_change_us = excluded.last_change_us,
           expiration_s = excluded.expiration_s, used_us = NULL",
    )?
    .execute(
        params![
            reg.authorization_pub.as_bytes(),
            reg.account_pub.as_bytes(),
            reg.transfer_type.as_str(),
            reg.recurrent,
            amount,
            account,
            reg.authorization_sig.as_bytes(),
            derived.short,
            derived.qr,
            response,
            now_us,
            expiration_s
        ],
    )?;
    Ok(response)
}

async fn unregister(state: AppState, mut req: Request) -> Result<Response, ApiError> {
    req.allow(&Method::POST, "POST")?;
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
        .write(move |conn| {
            // 3. A live registration.
            let row: Option<(i64, i64)> = conn
                .query_row(
                    "SELECT registration_id, last_change_us FROM registrations
                     WHERE authorization_pub = ?1 AND expiration_s > ?2",
                    params![body.authorization_pub.as_bytes(), now_s],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((id, last_change_us)) = row else {
                return Err(ApiError::BankUnknownRegistration {
                    authorization_pub: body.authorization_pub.to_string(),
                    conflict: false,
                });
            };
            // 4. Fresh, and newer than the registration it deletes.
            if (at_us - now_us).abs() > UNREGISTRATION_WINDOW_S * 1_000_000 {
                return Err(ApiError::BankOldTimestamp(format!(
                    "timestamp {} is more than {UNREGISTRATION_WINDOW_S} s away from the server's clock",
                    body.timestamp
                )));
            }
            if at_us <= last_change_us {
                return Err(ApiError::BankOldTimestamp(format!(
                    "timestamp {} is not later than the registration's last change",
                    body.timestamp
                )));
            }
            // 5. Gone, and its subjects free.
            conn.execute("DELETE FROM registrations WHERE registration_id = ?1", [id])?;
            Ok(())
        })
        .await?;
    Ok(no_content())
}

/// A registration as the operator API and the CLI list it.
#[derive(Debug, Serialize)]
pub struct RegistrationEntry {
    pub row_id: i64,
    pub authorization_pub: EddsaPublicKey,
    pub account_pub: EddsaPublicKey,
    #[serde(rename = "type")]
    pub transfer_type: TransferType,
    pub recurrent: bool,
    pub credit_amount: String,
    pub credit_account: String,
    pub short_subject: Option<String>,
    pub qr_reference_number: Option<String>,
    pub expiration: Timestamp,
    pub live: bool,
    pub used: bool,
}

pub fn list(conn: &Connection, page: &Page, now_s: i64) -> Result<Vec<RegistrationEntry>, StoreError> {
    let sql = format!(
        "SELECT registration_id, authorization_pub, account_pub, type, recurrent, credit_amount, credit_account,
                short_subject, qr_reference, expiration_s, used_us IS NOT NULL
         FROM registrations WHERE {} ORDER BY registration_id {} LIMIT ?2",
        page.condition("registration_id", "?1"),
        page.order()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![page.start, page.limit], |r| {
        let expiration_s: i64 = r.get(9)?;
        Ok(RegistrationEntry {
            row_id: r.get(0)?,
            authorization_pub: r.get(1)?,
            account_pub: r.get(2)?,
            transfer_type: r.get(3)?,
            recurrent: r.get(4)?,
            credit_amount: r.get(5)?,
            credit_account: r.get(6)?,
            short_subject: r.get(7)?,
            qr_reference_number: r.get(8)?,
            expiration: Timestamp::from_secs(u64::try_from(expiration_s).unwrap_or(0)),
            live: expiration_s > now_s,
            used: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[derive(Serialize)]
struct RegistrationList {
    registrations: Vec<RegistrationEntry>,
}

async fn list_registrations(state: AppState, req: Request) -> Result<Response, ApiError> {
    // The token first: without it, not even the methods of a route are told.
    req.authorize(&state.token)?;
    req.allow(&Method::GET, "GET")?;
    let page = req.query::<PageQuery>()?.resolve(20)?;
    let now_s = state.clock.now_s();
    let registrations =
        state.store.read(move |conn| list(conn, &page, now_s)).await.map_err(ApiError::fetch)?;
    Ok(json_response(StatusCode::OK, &RegistrationList { registrations }))
}

/// The live registration a transfer maps to.
#[derive(Debug, Clone)]
pub struct LiveRegistration {
    pub registration_id: i64,
    pub authorization_pub: EddsaPublicKey,
    pub account_pub: EddsaPublicKey,
    pub transfer_type: TransferType,
    pub recurrent: bool,
    pub used: bool,
}

/// Finds the live registration with `column = value` (for crediting transfers).
pub fn find_live(
    conn: &Connection,
    column: &'static str,
    value: &dyn rusqlite::ToSql,
    now_s: i64,
) -> Result<Option<LiveRegistration>, StoreError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT registration_id, authorization_pub, account_pub, type, recurrent, used_us IS NOT NULL
                 FROM registrations WHERE {column} = ?1 AND expiration_s > ?2"
            ),
            params![value, now_s],
            |r| {
                Ok(LiveRegistration {
                    registration_id: r.get(0)?,
                    authorization_pub: r.get(1)?,
                    account_pub: r.get(2)?,
                    transfer_type: r.get(3)?,
                    recurrent: r.get(4)?,
                    used: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// Records that a one-shot registration was used by a credited transfer.
pub fn mark_used(conn: &Connection, registration_id: i64, now_us: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE registrations SET used_us = ?2 WHERE registration_id = ?1 AND recurrent = 0",
        params![registration_id, now_us],
    )?;
    Ok(())
}
