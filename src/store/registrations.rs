//! Prepared-transfer registrations: one row per authorization key.
//!
//! A row whose expiration has passed is treated as absent everywhere and is
//! overwritten by the next registration of that key. Derived subjects (a
//! short SIMPLE subject, a QR reference) are unique by constraint, so two
//! concurrent registrations can never both hold one; an expired holder's
//! subjects are cleared before a new registration takes them.

use std::borrow::Cow;

use rusqlite::params;
use serde::Serialize;

use super::{Db, Page, StoreError, WriteTx};
use crate::crypto::{EddsaPublicKey, EddsaSignature};
use crate::timestamp::Timestamp;

/// A derived subject, which one registration at a time may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivedSubject<'a> {
    /// The short SIMPLE subject.
    Short(&'a str),
    /// The Swiss QR reference.
    QrReference(&'a str),
}

impl DerivedSubject<'_> {
    /// The subject format's name, for errors.
    pub fn format(&self) -> &'static str {
        match self {
            DerivedSubject::Short(_) => "SIMPLE",
            DerivedSubject::QrReference(_) => "CH_QR_BILL",
        }
    }

    pub fn text(&self) -> &str {
        match self {
            DerivedSubject::Short(s) | DerivedSubject::QrReference(s) => s,
        }
    }
}

/// What a registration asks for and what is derived for it (everything checked already): the
/// part of a row that a registration writes, read back as [`RegistrationRow::registration`].
#[derive(Debug, Clone)]
pub struct Registration {
    pub authorization_pub: EddsaPublicKey,
    pub account_pub: EddsaPublicKey,
    /// The column's name of the type (`reserve`, `kyc`): borrowed when written, owned when read.
    pub transfer_type: Cow<'static, str>,
    pub recurrent: bool,
    pub credit_amount: String,
    /// Normalized: what is compared.
    pub credit_account: String,
    pub authorization_sig: EddsaSignature,
    pub short_subject: Option<String>,
    pub qr_reference: Option<String>,
    /// The RegistrationResponse to send, stored so that a replay is answered byte for byte (it
    /// lists every subject).
    pub response: String,
    pub expiration_s: i64,
}

impl Registration {
    /// Whether it asks for the same as `other` (the signature and the derived subjects follow
    /// from these fields and the key).
    fn same_as(&self, other: &Registration) -> bool {
        self.account_pub == other.account_pub
            && self.transfer_type == other.transfer_type
            && self.recurrent == other.recurrent
            && self.credit_amount == other.credit_amount
            && self.credit_account == other.credit_account
    }
}

/// How a registration went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// New, replacing a live one, or taking over an expired row: the response.
    Stored(String),
    /// A live registration with identical fields: its stored response.
    Identical(String),
    /// A derived subject is held by another live registration.
    SubjectTaken { format: &'static str, subject: String },
}

/// A row of `registrations`: the [`Registration`] plus what the store keeps about it. Every read
/// of the table gives this, its columns read by name ([`row`]); what the operator API, the
/// console and a transfer show of a registration is built from it.
#[derive(Debug, Clone)]
pub struct RegistrationRow {
    pub registration_id: i64,
    pub registration: Registration,
    pub created_us: i64,
    pub last_change_us: i64,
    /// When a one-shot registration was credited.
    pub used_us: Option<i64>,
}

/// The columns [`row`] reads, as a literal: statements are `concat!`ed from it, so that each is
/// one `&'static str` (no formatting per call; the writer's statement cache looks them up).
macro_rules! columns {
    () => {
        "registration_id, authorization_pub, account_pub, type, recurrent, credit_amount, credit_account,
  authorization_sig, short_subject, qr_reference, response, created_us, last_change_us, expiration_s, used_us"
    };
}

pub(super) use columns;

/// A row of [`columns!`].
pub fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RegistrationRow> {
    Ok(RegistrationRow {
        registration_id: r.get("registration_id")?,
        registration: Registration {
            authorization_pub: r.get("authorization_pub")?,
            account_pub: r.get("account_pub")?,
            transfer_type: Cow::Owned(r.get("type")?),
            recurrent: r.get("recurrent")?,
            credit_amount: r.get("credit_amount")?,
            credit_account: r.get("credit_account")?,
            authorization_sig: r.get("authorization_sig")?,
            short_subject: r.get("short_subject")?,
            qr_reference: r.get("qr_reference")?,
            response: r.get("response")?,
            expiration_s: r.get("expiration_s")?,
        },
        created_us: r.get("created_us")?,
        last_change_us: r.get("last_change_us")?,
        used_us: r.get("used_us")?,
    })
}

/// Reads of one row, fields of the registration as fields of the row (`row.account_pub`).
impl std::ops::Deref for RegistrationRow {
    type Target = Registration;

    fn deref(&self) -> &Registration {
        &self.registration
    }
}

impl RegistrationRow {
    /// Whether it has not expired at `now_s` (an expired row counts as absent everywhere).
    pub fn is_live(&self, now_s: i64) -> bool {
        self.expiration_s > now_s
    }

    /// Whether a credited transfer used it (one-shot registrations only).
    pub fn used(&self) -> bool {
        self.used_us.is_some()
    }

    pub fn created(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.created_us)
    }

    pub fn expiration(&self) -> Timestamp {
        Timestamp::from_secs(u64::try_from(self.expiration_s).unwrap_or(0))
    }
}

/// The stored registration of an authorization key, live or not.
pub fn by_authorization_pub(
    db: &Db<'_>,
    authorization_pub: &EddsaPublicKey,
) -> Result<Option<RegistrationRow>, StoreError> {
    db.query_optional(
        concat!("SELECT ", columns!(), " FROM registrations WHERE authorization_pub = ?1"),
        [authorization_pub],
        row,
    )
}

/// What is stored already for a registration's authorization key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// No live registration of the key.
    No,
    /// A live registration with the same fields.
    Identical,
    /// A live registration with other fields.
    Different,
}

/// Whether a live registration of `reg`'s key is stored at `now_s`, and whether it is the same.
pub fn held(db: &Db<'_>, reg: &Registration, now_s: i64) -> Result<Held, StoreError> {
    Ok(match by_authorization_pub(db, &reg.authorization_pub)? {
        Some(live) if live.is_live(now_s) && live.same_as(reg) => Held::Identical,
        Some(live) if live.is_live(now_s) => Held::Different,
        _ => Held::No,
    })
}

/// Frees `subject` if an expired registration holds it; `false` if a live one
/// other than `own` does.
///
/// On every registration's path, so it reads the two columns it needs (by name), not a
/// [`RegistrationRow`].
fn claim(
    tx: &WriteTx<'_>,
    subject: DerivedSubject<'_>,
    own: Option<i64>,
    now_s: i64,
) -> Result<bool, StoreError> {
    let holder: Option<(i64, i64)> = tx.query_optional(
        match subject {
            DerivedSubject::Short(_) => {
                "SELECT registration_id, expiration_s FROM registrations WHERE short_subject = ?1"
            }
            DerivedSubject::QrReference(_) => {
                "SELECT registration_id, expiration_s FROM registrations WHERE qr_reference = ?1"
            }
        },
        [subject.text()],
        |r| Ok((r.get("registration_id")?, r.get("expiration_s")?)),
    )?;
    match holder {
        Some((id, _)) if Some(id) == own => Ok(true),
        Some((_, expiration_s)) if expiration_s > now_s => Ok(false),
        Some((id, _)) => {
            tx.execute(
                match subject {
                    DerivedSubject::Short(_) => {
                        "UPDATE registrations SET short_subject = NULL WHERE registration_id = ?1"
                    }
                    DerivedSubject::QrReference(_) => {
                        "UPDATE registrations SET qr_reference = NULL WHERE registration_id = ?1"
                    }
                },
                [id],
            )?;
            Ok(true)
        }
        None => Ok(true),
    }
}

/// Whether a live registration of another authorization key holds `account_pub`.
pub fn account_pub_held_elsewhere(
    db: &Db<'_>,
    account_pub: &EddsaPublicKey,
    authorization_pub: &EddsaPublicKey,
    now_s: i64,
) -> Result<bool, StoreError> {
    Ok(db
        .query_optional(
            "SELECT 1 FROM registrations WHERE account_pub = ?1 AND authorization_pub != ?2 AND expiration_s > ?3",
            params![account_pub, authorization_pub, now_s],
            |_| Ok(()),
        )?
        .is_some())
}

/// Stores a registration whose other checks passed: its derived subjects claimed (freed
/// from expired holders), then the row inserted or replaced at `now_us`; an identical live one
/// is left.
pub fn register(tx: &WriteTx<'_>, reg: &Registration, now_us: i64) -> Result<Registered, StoreError> {
    let now_s = now_us.div_euclid(1_000_000);
    let existing = by_authorization_pub(tx, &reg.authorization_pub)?;
    let own_id = existing.as_ref().map(|e| e.registration_id);
    let derived = [
        reg.short_subject.as_deref().map(DerivedSubject::Short),
        reg.qr_reference.as_deref().map(DerivedSubject::QrReference),
    ];
    for subject in derived.into_iter().flatten() {
        if !claim(tx, subject, own_id, now_s)? {
            return Ok(Registered::SubjectTaken {
                format: subject.format(),
                subject: subject.text().to_owned(),
            });
        }
    }
    if let Some(live) = existing.filter(|e| e.is_live(now_s))
        && live.same_as(reg)
    {
        return Ok(Registered::Identical(live.registration.response));
    }
    tx.execute(
        "INSERT INTO registrations (authorization_pub, account_pub, type, recurrent, credit_amount, credit_account,
           authorization_sig, short_subject, qr_reference, response, created_us, last_change_us, expiration_s, used_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, NULL)
         ON CONFLICT (authorization_pub) DO UPDATE SET account_pub = excluded.account_pub, type = excluded.type,
           recurrent = excluded.recurrent, credit_amount = excluded.credit_amount,
           credit_account = excluded.credit_account, authorization_sig = excluded.authorization_sig,
           short_subject = excluded.short_subject, qr_reference = excluded.qr_reference,
           response = excluded.response, last_change_us = excluded.last_change_us,
           expiration_s = excluded.expiration_s, used_us = NULL",
        params![
            reg.authorization_pub,
            reg.account_pub,
            reg.transfer_type,
            reg.recurrent,
            reg.credit_amount,
            reg.credit_account,
            reg.authorization_sig,
            reg.short_subject,
            reg.qr_reference,
            reg.response,
            now_us,
            reg.expiration_s
        ],
    )?;
    Ok(Registered::Stored(reg.response.clone()))
}

/// The live registration of an authorization key (an unregistration deletes it).
pub fn live_row(
    db: &Db<'_>,
    authorization_pub: &EddsaPublicKey,
    now_s: i64,
) -> Result<Option<RegistrationRow>, StoreError> {
    Ok(by_authorization_pub(db, authorization_pub)?.filter(|r| r.is_live(now_s)))
}

/// Deletes a registration, freeing its subjects.
pub fn delete(tx: &WriteTx<'_>, registration_id: i64) -> Result<(), StoreError> {
    tx.execute("DELETE FROM registrations WHERE registration_id = ?1", [registration_id])?;
    Ok(())
}

/// A registration as the operator API and the CLI list it.
#[derive(Debug, Clone, Serialize)]
pub struct RegistrationEntry {
    pub row_id: i64,
    pub authorization_pub: EddsaPublicKey,
    pub account_pub: EddsaPublicKey,
    #[serde(rename = "type")]
    pub transfer_type: String,
    pub recurrent: bool,
    pub credit_amount: String,
    pub credit_account: String,
    pub short_subject: Option<String>,
    pub qr_reference_number: Option<String>,
    pub expiration: Timestamp,
    pub live: bool,
    pub used: bool,
}

impl RegistrationEntry {
    /// The view of a row at `now_s`.
    pub fn of(row: RegistrationRow, now_s: i64) -> RegistrationEntry {
        let (live, used, expiration) = (row.is_live(now_s), row.used(), row.expiration());
        let r = row.registration;
        RegistrationEntry {
            row_id: row.registration_id,
            authorization_pub: r.authorization_pub,
            account_pub: r.account_pub,
            expiration,
            live,
            used,
            transfer_type: r.transfer_type.into_owned(),
            recurrent: r.recurrent,
            credit_amount: r.credit_amount,
            credit_account: r.credit_account,
            short_subject: r.short_subject,
            qr_reference_number: r.qr_reference,
        }
    }
}

/// Registrations, live and expired, a page at a time.
pub fn list(db: &Db<'_>, page: &Page, now_s: i64) -> Result<Vec<RegistrationEntry>, StoreError> {
    let sql = format!(
        concat!("SELECT ", columns!(), " FROM registrations WHERE {} ORDER BY registration_id {} LIMIT ?2"),
        page.condition("registration_id", "?1"),
        page.order()
    );
    let rows = db.query_all(&sql, params![page.start, page.limit], row)?;
    Ok(rows.into_iter().map(|r| RegistrationEntry::of(r, now_s)).collect())
}

/// What identifies a registration in an incoming transfer.
#[derive(Debug, Clone, Copy)]
pub enum LiveKey<'a> {
    AuthorizationPub(&'a EddsaPublicKey),
    ShortSubject(&'a str),
    QrReference(&'a str),
}

/// Finds the live registration a transfer names.
pub fn find_live(db: &Db<'_>, key: LiveKey<'_>, now_s: i64) -> Result<Option<RegistrationRow>, StoreError> {
    let (sql, value): (&'static str, &dyn rusqlite::ToSql) = match &key {
        LiveKey::AuthorizationPub(k) => (
            concat!(
                "SELECT ",
                columns!(),
                " FROM registrations WHERE authorization_pub = ?1 AND expiration_s > ?2"
            ),
            k,
        ),
        LiveKey::ShortSubject(s) => (
            concat!(
                "SELECT ",
                columns!(),
                " FROM registrations WHERE short_subject = ?1 AND expiration_s > ?2"
            ),
            s,
        ),
        LiveKey::QrReference(s) => (
            concat!(
                "SELECT ",
                columns!(),
                " FROM registrations WHERE qr_reference = ?1 AND expiration_s > ?2"
            ),
            s,
        ),
    };
    db.query_optional(sql, params![value, now_s], row)
}

/// Records that a one-shot registration was used by a credited transfer.
pub fn mark_used(tx: &WriteTx<'_>, registration_id: i64, now_us: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE registrations SET used_us = ?2 WHERE registration_id = ?1 AND recurrent = 0",
        params![registration_id, now_us],
    )?;
    Ok(())
}

/// Whether a live reserve registration holds `account_pub` (a reserve key promised to a
/// registration may not be credited by a plain transfer).
pub fn reserve_key_registered(
    db: &Db<'_>,
    account_pub: &EddsaPublicKey,
    now_s: i64,
) -> Result<bool, StoreError> {
    Ok(db
        .query_optional(
            "SELECT 1 FROM registrations WHERE account_pub = ?1 AND type = 'reserve' AND expiration_s > ?2",
            params![account_pub, now_s],
            |_| Ok(()),
        )?
        .is_some())
}
