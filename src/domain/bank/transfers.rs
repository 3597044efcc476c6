//! The transfers into the exchange's account that the Wire Gateway simulation moves: fed in by
//! a registration's authorization key (`add-mapped`) or by the subject a customer typed
//! (`add-incoming-subject`, the console's simulation, the `[[incoming]]` fixtures), and read
//! back as the incoming history.
//!
//! Rules: a one-shot registration is used up by its first credited transfer; a recurrent one
//! maps every transfer to its current `account_pub` until it expires or is unregistered; a
//! reserve key is never credited twice ([`reserve_spent`], and a UNIQUE index besides);
//! whatever cannot be credited is recorded as bounced, with the reason.

use serde::{Deserialize, Serialize};

use super::TransferType;
use super::accounts;
use super::gateway::{self, Direction, GatewayAccount};
use crate::amount::Amount;
use crate::config::Settings;
use crate::crypto::EddsaPublicKey;
use crate::error::ApiError;
use crate::payto::Payto;
use crate::store::registrations::{self, LiveKey, RegistrationRow};
use crate::store::transfers::{self, Incoming, IncomingTransaction};
use crate::store::{Db, Durability, Page, Store, StoreError, WriteTx};
use crate::subject::{self, MAX_SUBJECT_CHARS, SubjectMatch};
use crate::timestamp::Timestamp;
use crate::wakeup::Wakeups;

/// The reserve-key rule: a reserve key is credited once. Whether crediting (or registering)
/// `account_pub` for `transfer_type` would break it; a KYC key may be credited any number of times.
pub fn reserve_spent(
    db: &Db<'_>,
    transfer_type: TransferType,
    account_pub: &EddsaPublicKey,
) -> Result<bool, StoreError> {
    Ok(transfer_type == TransferType::Reserve && transfers::is_reserve_credited(db, account_pub)?)
}

/// Why a reserve key cannot be credited as it stands, without a registration (the Wire
/// Gateway's `admin/add-incoming`): the reserve-key rule, and a key that a live reserve
/// registration holds (crediting it directly would use up the customer's reserve behind the
/// registration's back).
pub fn reserve_refused(
    db: &Db<'_>,
    transfer_type: TransferType,
    account_pub: &EddsaPublicKey,
    now_s: i64,
) -> Result<Option<&'static str>, StoreError> {
    if transfer_type != TransferType::Reserve {
        return Ok(None);
    }
    if reserve_spent(db, transfer_type, account_pub)? {
        return Ok(Some("reserve_pub was already credited"));
    }
    if registrations::reserve_key_registered(db, account_pub, now_s)? {
        return Ok(Some("reserve_pub is the account_pub of a live reserve registration"));
    }
    Ok(None)
}

/// A live registration as a transfer sees it: its type read.
struct Mapped {
    row: RegistrationRow,
    transfer_type: TransferType,
}

fn find_live(db: &Db<'_>, key: LiveKey<'_>, now_s: i64) -> Result<Option<Mapped>, StoreError> {
    match registrations::find_live(db, key, now_s)? {
        Some(row) => Ok(Some(Mapped { transfer_type: TransferType::from_stored(&row.transfer_type)?, row })),
        None => Ok(None),
    }
}

/// Records a credited transfer and marks a one-shot registration used; returns the row id.
pub(super) fn credit(
    tx: &WriteTx<'_>,
    incoming: &Incoming,
    transfer_type: TransferType,
    account_pub: &EddsaPublicKey,
    registration: Option<&RegistrationRow>,
) -> Result<i64, StoreError> {
    let row_id = transfers::credit(
        tx,
        incoming,
        transfer_type.wire_name(),
        account_pub,
        registration.map(|r| (&r.authorization_pub, r.registration_id)),
    )?;
    if let Some(r) = registration {
        registrations::mark_used(tx, r.registration_id, incoming.date_us)?;
    }
    Ok(row_id)
}

/// The incoming row of a Wire Gateway credit into `account` (`add-mapped`, `add-incoming`,
/// `add-kycauth`) at `now_us`, once the amount's currency and the full payto of `debit_account`
/// are checked.
pub(super) fn gateway_incoming(
    settings: &Settings,
    account: &GatewayAccount,
    amount: &Amount,
    debit_account: &str,
    now_us: i64,
) -> Result<Incoming, ApiError> {
    accounts::check_gateway_amount(settings, "amount", amount)?;
    let debit_account = gateway::full_payto("debit_account", debit_account)?;
    Ok(Incoming {
        date_us: now_us,
        amount: amount.to_string(),
        debit_account: debit_account.full().to_owned(),
        credit_account: account.uri().to_owned(),
        subject: None,
    })
}

/// A transfer to a registration named by its authorization key (`add-mapped`) into the gateway
/// account `account`, durably, its long polls woken: the row id. Refused when no live
/// registration has the key, when a one-shot one was used, and by the reserve-key rule.
#[allow(clippy::too_many_arguments)]
pub async fn add_mapped(
    store: &Store,
    settings: &Settings,
    wakeups: &Wakeups,
    account: &GatewayAccount,
    amount: &Amount,
    authorization_pub: EddsaPublicKey,
    debit_account: &str,
    now_us: i64,
) -> Result<i64, ApiError> {
    let incoming = gateway_incoming(settings, account, amount, debit_account, now_us)?;
    // One instant for the record, the liveness check and the answer.
    let now_s = now_us.div_euclid(1_000_000);
    let row_id = store
        .write(Durability::Durable, move |tx| {
            let auth = authorization_pub;
            let Some(reg) = find_live(tx, LiveKey::AuthorizationPub(&auth), now_s)? else {
                return Err(ApiError::BankUnknownRegistration {
                    authorization_pub: auth.to_string(),
                    conflict: true,
                });
            };
            if reg.row.used() && !reg.row.recurrent {
                return Err(ApiError::BankTransferMappingReused(auth.to_string()));
            }
            if reserve_spent(tx, reg.transfer_type, &reg.row.account_pub)? {
                return Err(ApiError::BankDuplicateReservePub(
                    "the registration's reserve key was already credited",
                ));
            }
            Ok(credit(tx, &incoming, reg.transfer_type, &reg.row.account_pub, Some(&reg.row))?)
        })
        .await?;
    wakeups.wake(&gateway::channel(&account.name, Direction::Incoming));
    Ok(row_id)
}

/// Body of `add-incoming-subject` (and what an `[[incoming]]` fixture holds).
#[derive(Debug, Clone, Deserialize)]
pub struct AddIncomingSubject {
    pub amount: Amount,
    pub subject: String,
    pub debit_account: Payto,
    pub credit_account: Option<Payto>,
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

impl SubjectOutcome {
    /// The transfer's row, credited or bounced.
    pub fn row_id(&self) -> i64 {
        match self {
            SubjectOutcome::Credited { row_id, .. } | SubjectOutcome::Bounced { row_id, .. } => *row_id,
        }
    }
}

/// Where a transfer goes: its type, the key credited, and the registration
/// that mapped it (none for a plain key).
type Target = (TransferType, EddsaPublicKey, Option<RegistrationRow>);

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
            Candidate::Key { kyc, key } => match find_live(db, LiveKey::AuthorizationPub(key), now_s)? {
                Some(reg) => reg,
                None => {
                    let transfer_type = if *kyc { TransferType::Kyc } else { TransferType::Reserve };
                    if !plain_keys.iter().any(|(_, k)| k == key) {
                        plain_keys.push((transfer_type, *key));
                    }
                    continue;
                }
            },
            Candidate::QrReference(reference) => {
                match find_live(db, LiveKey::QrReference(reference), now_s)? {
                    Some(reg) => reg,
                    None => return Ok(Err(format!("no live registration holds QR reference {reference}"))),
                }
            }
            Candidate::Short(short) => match find_live(db, LiveKey::ShortSubject(short), now_s)? {
                Some(reg) => reg,
                None => continue,
            },
        };
        if registration.row.used() && !registration.row.recurrent {
            return Ok(Err(format!(
                "the one-shot registration of {} was already used",
                registration.row.authorization_pub
            )));
        }
        return Ok(Ok((registration.transfer_type, registration.row.account_pub, Some(registration.row))));
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

/// An incoming transfer checked and parsed, ready for its transaction.
pub struct PreparedIncoming {
    candidates: Vec<Candidate>,
    pub incoming: Incoming,
}

/// Everything a transfer with a typed subject needs before its transaction: the checks
/// (amount, subject length, credit account), the subject parsed, the record made at `now_us`.
pub fn prepare_incoming(
    settings: &Settings,
    body: AddIncomingSubject,
    now_us: i64,
) -> Result<PreparedIncoming, ApiError> {
    accounts::check_amount(settings, "amount", &body.amount)?;
    if body.subject.chars().nth(MAX_SUBJECT_CHARS).is_some() {
        return Err(ApiError::field("subject", format!("is longer than {MAX_SUBJECT_CHARS} characters")));
    }
    let credit_account = match &body.credit_account {
        Some(account) => accounts::credit_account(settings, account)?.full().to_owned(),
        None => accounts::default_credit_account(settings),
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

/// A transfer with a typed subject inside its write transaction: credited or bounced.
pub fn record_incoming(tx: &WriteTx<'_>, transfer: &PreparedIncoming) -> Result<SubjectOutcome, StoreError> {
    let incoming = &transfer.incoming;
    // One instant for the record, the liveness check and the answer.
    let now_s = incoming.date_us.div_euclid(1_000_000);
    let timestamp = Timestamp::from_unix_micros(incoming.date_us);
    let outcome = match resolve_subject(tx, &transfer.candidates, now_s)? {
        Ok((transfer_type, account_pub, registration)) => {
            if reserve_spent(tx, transfer_type, &account_pub)? {
                let reason = format!("reserve key {account_pub} was already credited");
                SubjectOutcome::Bounced {
                    row_id: transfers::bounce(tx, incoming, &reason)?,
                    timestamp,
                    reason,
                }
            } else {
                let row_id = credit(tx, incoming, transfer_type, &account_pub, registration.as_ref())?;
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

/// A transfer with a typed subject, durably: credited or bounced; a credit wakes the long polls
/// of the account it went to.
pub async fn add_incoming(
    store: &Store,
    settings: &Settings,
    wakeups: &Wakeups,
    body: AddIncomingSubject,
    now_us: i64,
) -> Result<SubjectOutcome, ApiError> {
    let transfer = prepare_incoming(settings, body, now_us)?;
    let credit_account = transfer.incoming.credit_account.clone();
    let outcome = store.write(Durability::Durable, move |tx| record_incoming(tx, &transfer)).await?;
    if let SubjectOutcome::Credited { .. } = outcome {
        gateway::wake(settings, wakeups, &credit_account, Direction::Incoming);
    }
    Ok(outcome)
}

/// [`add_incoming`] as the Wire Gateway's `admin/add-incoming-subject` takes it: a full payto
/// URI as debit account, and the path's account as credit account when the body names none.
pub async fn add_gateway_incoming(
    store: &Store,
    settings: &Settings,
    wakeups: &Wakeups,
    account: &GatewayAccount,
    mut body: AddIncomingSubject,
    now_us: i64,
) -> Result<SubjectOutcome, ApiError> {
    gateway::full_payto("debit_account", body.debit_account.full())?;
    if body.credit_account.is_none() {
        body.credit_account = Some(account.payto.clone());
    }
    add_incoming(store, settings, wakeups, body, now_us).await
}

/// Credited transfers, a page at a time.
pub fn history(db: &Db<'_>, page: &Page) -> Result<Vec<IncomingTransaction>, StoreError> {
    transfers::history(db, page)
}
