//! Prepared-transfer registrations: a wallet registers a key, and the bank hands back the
//! wire-transfer subjects it will recognise for it, in each configured format.
//!
//! Short subjects (a short SIMPLE subject, a Swiss QR reference) are derived from the
//! authorization key alone ([`crate::subject`]) and are unique among live registrations by a
//! UNIQUE constraint, so two concurrent registrations can never both hold one. A registration
//! lives until its expiration; expired rows are treated as absent and give up their subjects
//! to the next registration that derives them. Everything about one registration happens in
//! one write transaction. A reserve key is single-use ([`super::transfers::reserve_spent`]).
//!
//! The JSON API, the `[[registration]]` fixtures and the CLI's client all build the same
//! [`RegistrationRequest`] and read the same [`RegistrationResponse`].

use serde::{Deserialize, Serialize};

use super::TransferType;
use super::accounts;
use super::transfers::reserve_spent;
use crate::amount::Amount;
use crate::config::{Settings, SimpleSubjectStyle, SubjectFormat};
use crate::crypto::{EddsaPublicKey, EddsaSignature};
use crate::error::ApiError;
use crate::payto::Payto;
use std::borrow::Cow;

use crate::store::registrations::{self, Registered, Registration, RegistrationEntry};
use crate::store::{Db, Durability, Page, Store, StoreError, WriteTx};
use crate::subject;
use crate::timestamp::Timestamp;

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

/// The checks of a registration and everything derived for it, before its transaction: the
/// amount, the signature, the credit account, the expiration and the subjects.
pub fn prepare(
    settings: &Settings,
    reg: &RegistrationRequest,
    now_us: i64,
) -> Result<Registration, ApiError> {
    // 1. Values the types could not check.
    accounts::check_amount(settings, "credit_amount", &reg.credit_amount)?;
    // 2. The authorization key signed the account key.
    if !reg.authorization_pub.verify(reg.account_pub.as_bytes(), &reg.authorization_sig) {
        return Err(ApiError::BankBadSignature(
            "authorization_sig is not a signature of account_pub by authorization_pub",
        ));
    }
    // 3. One of our accounts.
    let account = accounts::credit_account(settings, &reg.credit_account)?;
    // 4. Everything derived before the transaction.
    let now_s = now_us.div_euclid(1_000_000);
    let lifetime = if reg.recurrent { settings.recurrent_lifetime } else { settings.registration_lifetime };
    let expiration_s = now_s.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    let expiration = Timestamp::from_secs(u64::try_from(expiration_s).unwrap_or(u64::MAX));
    let derived = derive(settings, reg, &account, expiration)?;
    let response = serde_json::to_string(&derived.response)
        .map_err(|e| ApiError::Internal(format!("cannot encode the response: {e}")))?;
    Ok(Registration {
        authorization_pub: reg.authorization_pub,
        account_pub: reg.account_pub,
        transfer_type: Cow::Borrowed(reg.transfer_type.as_str()),
        recurrent: reg.recurrent,
        credit_amount: reg.credit_amount.to_string(),
        credit_account: reg.credit_account.normalized().to_owned(),
        authorization_sig: reg.authorization_sig,
        short_subject: derived.short,
        qr_reference: derived.qr,
        response,
        expiration_s,
    })
}

/// A registration inside its write transaction: the reserve-key rule, the derived subjects
/// claimed, the row stored at `now_us`; the answer's body (the stored one for an identical replay).
pub fn store(tx: &WriteTx<'_>, new: &Registration, now_us: i64) -> Result<String, ApiError> {
    if new.transfer_type == TransferType::Reserve.as_str() {
        let now_s = now_us.div_euclid(1_000_000);
        if registrations::account_pub_held_elsewhere(tx, &new.account_pub, &new.authorization_pub, now_s)? {
            return Err(ApiError::BankDuplicateReservePub(
                "account_pub is registered by another authorization key",
            ));
        }
        if reserve_spent(tx, TransferType::Reserve, &new.account_pub)? {
            return Err(ApiError::BankDuplicateReservePub(
                "account_pub was already credited: reserve keys are single-use",
            ));
        }
    }
    match registrations::register(tx, new, now_us)? {
        Registered::Stored(body) | Registered::Identical(body) => Ok(body),
        Registered::SubjectTaken { format, subject } => {
            Err(ApiError::BankDerivationReuse { format, subject })
        }
    }
}

/// Registers: checked and derived, then stored durably; the answer's body.
pub async fn register(
    store: &Store,
    settings: &Settings,
    reg: &RegistrationRequest,
    now_us: i64,
) -> Result<String, ApiError> {
    let new = prepare(settings, reg, now_us)?;
    store.write(Durability::Durable, move |tx| self::store(tx, &new, now_us)).await
}

/// Deletes a registration, signed over a fresh timestamp, durably.
pub async fn unregister(store: &Store, body: Unregistration, now_us: i64) -> Result<(), ApiError> {
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
    let now_s = now_us.div_euclid(1_000_000);
    store
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
        .await
}

/// Registrations, live and expired, a page at a time, as the operator API and the CLI list them.
pub fn list(db: &Db<'_>, page: &Page, now_s: i64) -> Result<Vec<RegistrationEntry>, StoreError> {
    registrations::list(db, page, now_s)
}
