//! Fixtures: the state a test suite wants in place when the server starts (`--fixtures
//! FILE`, TOML), and `POST /private/reset`, which empties every table and applies them
//! again (a route only with `--dev` or `--ephemeral`).
//!
//! Every entry goes through the code of the API request it stands for: an `[[auditor]]` is
//! an enable with a master signature made here and checked as `POST /management/auditors`
//! checks it; an `[[upload]]` gets an upload's content checks and its commit; a
//! `[[registration]]` runs `POST /registration`'s checks, derivation and statements; an
//! `[[incoming]]` is `add-incoming-subject`; an `[[outgoing]]` is the Wire Gateway's `POST
//! transfer`. All entries of a file are applied in one durable write job, so a file is applied
//! whole or not at all, in the order third parties, auditors, uploads, registrations, incoming
//! transfers, outgoing transfers (each section in file order).
//!
//! Applying is idempotent: an entry already stored as the file says is left alone, so the
//! same file applied again changes nothing; an entry that contradicts what is stored (a
//! third party under another name, a live registration of the key with other fields) stops
//! start-up with one line naming it, `fixtures: [[registration]] #2: ...`. Incoming
//! transfers have no key of their own: see `crate::store::fixtures` for their rule. An outgoing
//! transfer's key is its `request_uid` (by default derived from its `wtid`), as for the
//! exchange's retries: the same details again are left alone, other details are refused.
//!
//! What reads files or signs runs before the job ([`prepare`], on a blocking thread), except
//! the upload bodies: the job streams each into the database a chunk at a time (a large
//! file never sits in memory) and checks it against the hash taken by [`prepare`].

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_path_to_error::Segment;
use warp::http::Method;
use warp::reply::Response;

use crate::amount::Amount;
use crate::app::AppState;
use crate::config::{self, ConfigError, Settings};
use crate::crypto::{EddsaPrivateKey, EddsaPublicKey, MasterAddAuditorPS, SignedStruct};
use crate::crypto::{HashCode, ShortHashCode, sha512};
use crate::domain::bank::TransferType;
use crate::domain::bank::gateway;
use crate::domain::bank::outgoing::{self as bank_outgoing, Recorded, TransferRequest};
use crate::domain::bank::registrations::{self as bank_registrations, Alg, RegistrationRequest};
use crate::domain::bank::transfers::{
    AddIncomingSubject, PreparedIncoming, prepare_incoming, record_incoming,
};
use crate::domain::exchange::auditors::{
    self as exchange_auditors, AuditorSetupMessage, check_setup, stored_secs,
};
use crate::domain::exchange::kyc_uploads::{self, FileHeld, FileRefused, FileUpload};
use crate::domain::exchange::third_parties;
use crate::error::ApiError;
use crate::http::{PathParams, Request, Route, no_content};
use crate::payto::Payto;
use crate::regular_file::open_regular;
use crate::store::auditors;
use crate::store::gateway::Outgoing;
use crate::store::registrations::{self, Held, Registration};
use crate::store::stop::Stop;
use crate::store::transfers::Incoming;
use crate::store::{Durability, Store, StoreError, WriteTx, extern_keys, fixtures as stored};
use crate::timestamp::Timestamp;

/// The development routes, in the table only with `--dev` or `--ephemeral`.
pub fn routes() -> Vec<Route> {
    vec![Route::operator(Method::POST, "/private/reset", reset)]
}

/// `POST /private/reset`: every table emptied, the configured third parties and the
/// fixtures applied again, in one transaction; 204. The fixture file is read again, so an
/// edited file takes effect; one that cannot be applied leaves the database as it was (500).
async fn reset(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    let (settings, master_pub, now_us) = (state.settings.clone(), state.master_pub, state.clock.now_us());
    let prepared = tokio::task::spawn_blocking(move || {
        let fixtures = match &settings.fixtures {
            Some(path) => load(path)?,
            None => Fixtures::default(),
        };
        // A reset is not stopped halfway: it is one transaction, applied or not.
        prepare(fixtures, &settings, &master_pub, now_us, &Stop::default())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("fixture task failed: {e}")))?
    .map_err(|e| ApiError::Fixtures(e.to_string()))?;
    let applied = apply(&state.store, prepared, true).await.map_err(|e| match e {
        ApplyError::Entry(e) => ApiError::Fixtures(e.to_string()),
        ApplyError::Store(source) => ApiError::Database { source },
    })?;
    // The histories changed under any waiting long poll: each reads again.
    crate::domain::bank::gateway::wake_all(&state.settings, &state.wakeups);
    log::info!("reset: every table emptied, {} fixture entries applied again", applied.applied);
    Ok(no_content())
}

/// A fixture file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(default)]
    auditor: Vec<AuditorFixture>,
    #[serde(default, rename = "extern")]
    externs: Vec<ExternFixture>,
    #[serde(default)]
    upload: Vec<UploadFixture>,
    #[serde(default)]
    registration: Vec<RegistrationFixture>,
    #[serde(default)]
    incoming: Vec<IncomingFixture>,
    #[serde(default)]
    outgoing: Vec<OutgoingFixture>,
    /// The file's folder: `[[upload]]` files are named relative to it.
    #[serde(skip)]
    base: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditorFixture {
    auditor_pub: EddsaPublicKey,
    url: String,
    name: String,
    /// RFC 3339, as a string or a TOML date-time; default: now.
    validity_start: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternFixture {
    #[serde(rename = "pub")]
    key: EddsaPublicKey,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadFixture {
    extern_pub: EddsaPublicKey,
    payto: Payto,
    file: PathBuf,
    content_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrationFixture {
    /// A base32 private seed, as in key files: the fixture signs as the wallet would.
    authorization_key: String,
    account_pub: Option<EddsaPublicKey>,
    #[serde(rename = "type")]
    transfer_type: TransferType,
    #[serde(default)]
    recurrent: bool,
    credit_amount: Amount,
    credit_account: Option<Payto>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncomingFixture {
    amount: Amount,
    subject: String,
    debit_account: Payto,
    credit_account: Option<Payto>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutgoingFixture {
    /// The Wire Gateway account debited, by name; default: the first.
    account: Option<String>,
    /// Default: the SHA-512 of the `wtid`'s bytes (one transfer per `wtid` anyway).
    request_uid: Option<HashCode>,
    amount: Amount,
    exchange_base_url: String,
    wtid: ShortHashCode,
    credit_account: String,
    metadata: Option<String>,
}

/// Names an entry as the file does: `[[registration]] #2` is the second `[[registration]]`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    section: &'static str,
    number: usize,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[[{}]] #{}", self.section, self.number)
    }
}

/// The one line that stops start-up (or a reset) for an entry.
fn refused(entry: Entry, reason: impl std::fmt::Display) -> ConfigError {
    config::bad("fixtures", format!("{entry}: {reason}"))
}

/// Reads and parses a fixture file; a bad one is one line naming the entry and the line.
pub fn load(path: &Path) -> Result<Fixtures, ConfigError> {
    let text = open_regular(path)
        .and_then(|mut f| {
            let mut text = String::new();
            f.read_to_string(&mut text).map(|_| text)
        })
        .map_err(|e| config::bad("fixtures", format!("{}: {e}", path.display())))?;
    let mut fixtures = parse(&text, path)?;
    fixtures.base = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok(fixtures)
}

fn parse(text: &str, path: &Path) -> Result<Fixtures, ConfigError> {
    let at = |e: &toml::de::Error| match e.span() {
        Some(span) => {
            let line = text.get(..span.start).map_or(0, |before| before.matches('\n').count()) + 1;
            format!("{} line {line}", path.display())
        }
        None => path.display().to_string(),
    };
    let document = toml::Deserializer::parse(text)
        .map_err(|e| config::bad("fixtures", format!("{}: {}", at(&e), e.message())))?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        let mut segments = e.path().iter();
        let entry = match (segments.next(), segments.next()) {
            (Some(Segment::Map { key }), Some(Segment::Seq { index })) => {
                let field = match segments.next() {
                    Some(Segment::Map { key }) => format!("{key}: "),
                    _ => String::new(),
                };
                format!("[[{key}]] #{}: {field}", index + 1)
            }
            _ => String::new(),
        };
        config::bad("fixtures", format!("{entry}{} ({})", e.inner().message(), at(e.inner())))
    })
}

/// A fixture file checked, signed and derived: what the write job applies.
pub struct Prepared {
    now_us: i64,
    /// Stops the applying of upload files too (a start-up's signals).
    stop: Stop,
    /// The configured third parties (`--extern-key`), which a reset loads again first.
    configured_externs: Vec<(EddsaPublicKey, String)>,
    externs: Vec<(Entry, EddsaPublicKey, String)>,
    /// Each auditor's enable, and whether its `validity_start` was given (else it was now).
    auditors: Vec<(Entry, AuditorSetupMessage, bool)>,
    uploads: Vec<(Entry, FileUpload)>,
    registrations: Vec<(Entry, Registration)>,
    incoming: Vec<(Entry, PreparedIncoming)>,
    outgoing: Vec<(Entry, Outgoing)>,
}

/// Checks every entry as the API would and makes what the API's clients would send
/// (signatures included), at `now_us`. Blocking: reads and hashes the upload files.
pub fn prepare(
    fixtures: Fixtures,
    settings: &Settings,
    master_pub: &EddsaPublicKey,
    now_us: i64,
    stop: &Stop,
) -> Result<Prepared, ConfigError> {
    let entry = |section, i: usize| Entry { section, number: i + 1 };
    let mut externs = Vec::new();
    for (i, e) in fixtures.externs.iter().enumerate() {
        let at = entry("extern", i);
        externs.push((at, e.key, third_parties::name(&e.name).map_err(|err| refused(at, err))?));
    }
    let mut auditors = Vec::new();
    let mut master_key = None;
    for (i, a) in fixtures.auditor.iter().enumerate() {
        let at = entry("auditor", i);
        let key = match &master_key {
            Some(key) => key,
            None => master_key.insert(master_signing_key(settings, master_pub).map_err(|e| refused(at, e))?),
        };
        let validity_start = match &a.validity_start {
            Some(value) => rfc3339_secs(value).map_err(|e| refused(at, format!("validity_start: {e}")))?,
            None => Timestamp::from_secs(u64::try_from(now_us.div_euclid(1_000_000)).unwrap_or(0)),
        };
        let master_sig = MasterAddAuditorPS::new(validity_start, a.auditor_pub, &a.url).sign(key);
        let msg = AuditorSetupMessage {
            auditor_url: a.url.clone(),
            auditor_name: a.name.clone(),
            auditor_pub: a.auditor_pub,
            master_sig,
            validity_start,
        };
        check_setup(master_pub, &msg).map_err(|e| refused(at, e))?;
        auditors.push((at, msg, a.validity_start.is_some()));
    }
    let mut uploads = Vec::new();
    if !fixtures.upload.is_empty() {
        log::info!("fixtures: reading and hashing {} upload file(s)", fixtures.upload.len());
    }
    for (i, u) in fixtures.upload.iter().enumerate() {
        let at = entry("upload", i);
        let path = fixtures.base.join(&u.file);
        let upload =
            FileUpload::prepare(settings, u.extern_pub, &u.payto, path, u.content_type.as_deref(), stop);
        uploads.push((at, upload.map_err(|e| refused(at, e))?));
    }
    let mut registrations = Vec::new();
    for (i, r) in fixtures.registration.iter().enumerate() {
        let at = entry("registration", i);
        let key: EddsaPrivateKey = r
            .authorization_key
            .trim()
            .parse()
            .map_err(|e| refused(at, format!("authorization_key: not a base32 Ed25519 seed ({e})")))?;
        let account_pub = r.account_pub.unwrap_or_else(|| key.public_key());
        let credit_account = match &r.credit_account {
            Some(account) => account.clone(),
            None => {
                settings.credit_accounts.first().cloned().ok_or_else(|| refused(at, "no credit account"))?
            }
        };
        let request = RegistrationRequest {
            credit_account,
            transfer_type: r.transfer_type,
            recurrent: r.recurrent,
            credit_amount: r.credit_amount.clone(),
            alg: Alg::EdDSA,
            account_pub,
            authorization_pub: key.public_key(),
            authorization_sig: key.sign(account_pub.as_bytes()),
        };
        registrations
            .push((at, bank_registrations::prepare(settings, &request, now_us).map_err(|e| refused(at, e))?));
    }
    let mut incoming = Vec::new();
    for (i, t) in fixtures.incoming.iter().enumerate() {
        let at = entry("incoming", i);
        let body = AddIncomingSubject {
            amount: t.amount.clone(),
            subject: t.subject.clone(),
            debit_account: t.debit_account.clone(),
            credit_account: t.credit_account.clone(),
        };
        incoming.push((at, prepare_incoming(settings, body, now_us).map_err(|e| refused(at, e))?));
    }
    let mut outgoing = Vec::new();
    for (i, t) in fixtures.outgoing.iter().enumerate() {
        let at = entry("outgoing", i);
        let account = gateway::account(settings, t.account.as_deref()).map_err(|e| refused(at, e))?;
        let request = TransferRequest {
            request_uid: t.request_uid.unwrap_or_else(|| sha512(t.wtid.as_bytes())),
            amount: t.amount.clone(),
            exchange_base_url: t.exchange_base_url.clone(),
            wtid: t.wtid,
            credit_account: t.credit_account.clone(),
            metadata: t.metadata.clone(),
        };
        let new =
            bank_outgoing::prepare(settings, &account, request, now_us, true).map_err(|e| refused(at, e))?;
        outgoing.push((at, new));
    }
    Ok(Prepared {
        now_us,
        stop: stop.clone(),
        configured_externs: settings.extern_keys.clone(),
        externs,
        auditors,
        uploads,
        registrations,
        incoming,
        outgoing,
    })
}

/// The master private key, which an `[[auditor]]` needs to be signed with.
fn master_signing_key(settings: &Settings, master_pub: &EddsaPublicKey) -> Result<EddsaPrivateKey, String> {
    let path = &settings.master_key_file;
    if !path.exists() {
        return Err(format!(
            "signing an auditor needs the master private key, but only the master public key is configured ({} does not exist)",
            path.display()
        ));
    }
    let key = config::read_master_key(path).map_err(|e| e.to_string())?;
    if key.public_key() != *master_pub {
        return Err(format!(
            "{} holds the private key of another master public key than the configured {master_pub}",
            path.display()
        ));
    }
    Ok(key)
}

/// A `validity_start`, as an RFC 3339 string or a TOML date-time, in whole seconds.
fn rfc3339_secs(value: &toml::Value) -> Result<Timestamp, String> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => return Err(format!("{other} is not an RFC 3339 time")),
    };
    let at = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("'{text}' is not an RFC 3339 time with an offset: {e}"))?;
    u64::try_from(at.unix_timestamp())
        .map(Timestamp::from_secs)
        .map_err(|_| format!("'{text}' is before 1970"))
}

/// What applying did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    /// Entries stored now.
    pub applied: usize,
    /// Entries found stored already.
    pub held: usize,
}

/// Why a prepared file could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An entry contradicts what is stored (or its file changed under us): one line.
    #[error("{0}")]
    Entry(ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// An API error of an entry: the database's own failures stay database failures.
fn entry_failed(entry: Entry, e: ApiError) -> ApplyError {
    match e {
        ApiError::Database { source } => ApplyError::Store(source),
        other => ApplyError::Entry(refused(entry, other)),
    }
}

fn contradiction(entry: Entry, reason: impl std::fmt::Display) -> ApplyError {
    ApplyError::Entry(refused(entry, reason))
}

/// Applies a prepared file in one durable job; with `reset`, after emptying every table
/// and loading the configured third parties again.
pub async fn apply(store: &Store, prepared: Prepared, reset: bool) -> Result<Applied, ApplyError> {
    store.write(Durability::Durable, move |tx| apply_in(tx, &prepared, reset)).await
}

fn apply_in(tx: &WriteTx<'_>, p: &Prepared, reset: bool) -> Result<Applied, ApplyError> {
    if reset {
        stored::empty_tables(tx)?;
        third_parties::preload(tx, &p.configured_externs, p.now_us)?;
    }
    let mut done = Applied::default();
    let mut count = |stored_now: bool| {
        if stored_now {
            done.applied += 1;
        } else {
            done.held += 1;
        }
    };
    for (at, key, name) in &p.externs {
        match extern_keys::find(tx, key)? {
            None => {
                extern_keys::upsert(tx, key, name, p.now_us)?;
                count(true);
            }
            Some(k) if k.active && k.name == *name => count(false),
            Some(k) if !k.active => {
                return Err(contradiction(*at, format!("third party {key} is stored disabled")));
            }
            Some(k) => {
                return Err(contradiction(
                    *at,
                    format!("third party {key} is stored as '{}', not '{name}'", k.name),
                ));
            }
        }
    }
    for (at, msg, start_given) in &p.auditors {
        let at_s = stored_secs(msg.validity_start);
        match auditors::get(tx, &msg.auditor_pub)? {
            None => {
                exchange_auditors::record_enable(tx, msg).map_err(|e| match e {
                    ApiError::AuditorMoreRecentPresent { .. } => {
                        contradiction(*at, "a more recent change of this auditor is stored")
                    }
                    other => entry_failed(*at, other),
                })?;
                count(true);
            }
            Some(row)
                if row.is_active
                    && row.auditor_url == msg.auditor_url
                    && row.auditor_name == msg.auditor_name
                    && (!start_given || row.last_change_s == at_s) =>
            {
                count(false)
            }
            Some(row) => {
                let stored = if row.is_active { "enabled" } else { "disabled" };
                return Err(contradiction(
                    *at,
                    format!(
                        "auditor {} is stored {stored} as '{}' at {} since {} s",
                        msg.auditor_pub, row.auditor_name, row.auditor_url, row.last_change_s
                    ),
                ));
            }
        }
    }
    for (at, u) in &p.uploads {
        match kyc_uploads::held(tx, u)? {
            FileHeld::Same => count(false),
            FileHeld::Different(how) => {
                return Err(contradiction(*at, format!("this customer has this body already, {how}")));
            }
            FileHeld::No => match kyc_uploads::store_file(tx, u, p.now_us, &p.stop) {
                Ok(stored_now) => count(stored_now),
                Err(FileRefused::Refused(reason)) => return Err(contradiction(*at, reason)),
                Err(FileRefused::Store(e)) => return Err(e.into()),
            },
        }
    }
    for (at, new) in &p.registrations {
        match registrations::held(tx, new, p.now_us.div_euclid(1_000_000))? {
            Held::Identical => count(false),
            Held::Different => {
                return Err(contradiction(
                    *at,
                    format!(
                        "authorization key {} has a live registration with other fields",
                        new.authorization_pub
                    ),
                ));
            }
            Held::No => {
                bank_registrations::store(tx, new, p.now_us).map_err(|e| entry_failed(*at, e))?;
                count(true);
            }
        }
    }
    for (i, (_, transfer)) in p.incoming.iter().enumerate() {
        // The k-th entry of its kind in the file is applied unless k of its kind are stored.
        let same_before =
            p.incoming[..i].iter().filter(|(_, t)| alike(&t.incoming, &transfer.incoming)).count();
        if stored::fixture_transfers_like(tx, &transfer.incoming)? > same_before as i64 {
            count(false);
            continue;
        }
        let outcome = record_incoming(tx, transfer)?;
        stored::mark_fixture_transfer(tx, outcome.row_id())?;
        count(true);
    }
    for (at, transfer) in &p.outgoing {
        match bank_outgoing::record(tx, transfer) {
            Ok(Recorded::New { .. }) => count(true),
            Ok(Recorded::Replayed { .. }) => count(false),
            Err(ApiError::Database { source }) => return Err(ApplyError::Store(source)),
            Err(e) => return Err(contradiction(*at, e)),
        }
    }
    Ok(done)
}

/// Two incoming transfers with the same amount, subject and accounts.
fn alike(a: &Incoming, b: &Incoming) -> bool {
    a.amount == b.amount
        && a.subject == b.subject
        && a.debit_account == b.debit_account
        && a.credit_account == b.credit_account
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Fixtures, ConfigError> {
        parse(text, Path::new("f.toml"))
    }

    #[test]
    fn parse_errors_name_the_entry_and_the_line() {
        let key = EddsaPrivateKey::generate().unwrap().public_key();
        let text = format!(
            "[[extern]]\npub = \"{key}\"\nname = \"A\"\n\n[[registration]]\nauthorization_key = \"x\"\ntype = \"reserve\"\ncredit_amount = \"KUDOS:1\"\n\n[[registration]]\nauthorization_key = \"x\"\ntype = \"reserve\"\ncredit_amount = \"lots\"\n"
        );
        let err = parsed(&text).unwrap_err().to_string();
        assert!(err.starts_with("fixtures: [[registration]] #2: credit_amount: "), "{err}");
        assert!(err.ends_with("(f.toml line 13)"), "{err}");
        let err = parsed("[[auditr]]\n").unwrap_err().to_string();
        assert!(err.contains("auditr") && err.contains("line 1"), "{err}");
        let err = parsed(&format!("[[extern]]\npub = \"{key}\"\nname = \"A\"\ncolour = 1\n")).unwrap_err();
        assert!(err.to_string().starts_with("fixtures: [[extern]] #1: "), "{err}");
        assert_eq!(err.to_string().lines().count(), 1);
    }

    #[test]
    fn validity_start_as_text_or_toml_date_time() {
        let secs = |v: toml::Value| rfc3339_secs(&v).map(|t| t.secs());
        assert_eq!(secs(toml::Value::String("1970-01-01T00:01:00Z".into())), Ok(Some(60)));
        let f = parsed("[[auditor]]\nauditor_pub = \"87WXSE5KSPJ92JRECQ4NSRRQNA81JZXDN0PKW9H7TR9599XC5200\"\nurl = \"https://a.example/\"\nname = \"A\"\nvalidity_start = 2025-01-01T00:00:00+01:00\n").unwrap();
        let v = f.auditor[0].validity_start.clone().unwrap();
        assert_eq!(secs(v), Ok(Some(1_735_686_000)));
        assert!(secs(toml::Value::String("2025-01-01".into())).is_err());
        assert!(secs(toml::Value::Integer(5)).is_err());
    }
}
