//! `client register|unregister` and `registrations list`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{CliError, escape};
use crate::clock::Clock;
use crate::config::{self, FileConfig, GlobalArgs};
use crate::crypto::{EddsaPrivateKey, EddsaPublicKey};
use crate::domain::bank::registrations::{RegistrationResponse, TransferSubject};
use crate::store::registrations;
use crate::store::{Db, Page};
use crate::subject;

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// Bank base URL
    #[arg(long, default_value = super::DEFAULT_URL)]
    pub url: String,
    /// Authorization private key file (base32 seed); made (mode 0600) if it does not exist.
    /// Without it a fresh key is made and its seed printed.
    #[arg(long, value_name = "FILE")]
    pub authorization_key: Option<PathBuf>,
    /// Account public key to credit [default: the authorization key's public key]
    #[arg(long)]
    pub account_pub: Option<String>,
    /// reserve or kyc
    #[arg(long = "type", default_value = "reserve")]
    pub transfer_type: String,
    /// Keep the subject for recurrent transfers
    #[arg(long)]
    pub recurrent: bool,
    /// Amount to transfer, e.g. KUDOS:10
    #[arg(long)]
    pub amount: String,
    /// The exchange's bank account (payto URI)
    #[arg(long, default_value = config::DEFAULT_CREDIT_ACCOUNT)]
    pub credit_account: String,
    /// Attempts after the first on a 5xx answer or a connection failure, with
    /// back-off from 200 ms, doubling up to 10 s (a registration is idempotent)
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
}

#[derive(Args, Debug)]
pub struct UnregisterArgs {
    /// Bank base URL
    #[arg(long, default_value = super::DEFAULT_URL)]
    pub url: String,
    /// Authorization private key file (base32 seed)
    #[arg(long, value_name = "FILE")]
    pub authorization_key: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum RegistrationsCommand {
    /// List registrations (live and expired)
    List {
        /// One JSON array on stdout, as `GET /private/registrations` names the fields
        #[arg(long)]
        json: bool,
    },
}

fn load_or_make_key(path: Option<&Path>) -> Result<EddsaPrivateKey, CliError> {
    match path {
        Some(p) if p.exists() => Ok(config::read_master_key(p)
            .map_err(|e| CliError::Failed(format!("--authorization-key: {}", e.reason)))?),
        Some(p) => {
            let key = EddsaPrivateKey::generate().map_err(|e| CliError::Failed(e.to_string()))?;
            config::create_secret_file(p, &key.to_base32())?;
            eprintln!("new authorization key saved in {}", p.display());
            Ok(key)
        }
        None => {
            let key = EddsaPrivateKey::generate().map_err(|e| CliError::Failed(e.to_string()))?;
            eprintln!("new authorization key (keep it to unregister): {}", key.to_base32());
            Ok(key)
        }
    }
}

async fn post(url: &str, body: &serde_json::Value) -> Result<(u16, Vec<u8>), CliError> {
    send(url, body).await.map_err(|problem| CliError::Http(format!("POST {url}: {problem}")))
}

/// One attempt: the answer, or why there was none.
async fn send(url: &str, body: &serde_json::Value) -> Result<(u16, Vec<u8>), String> {
    let response =
        reqwest::Client::new().post(url).json(body).send().await.map_err(|e| super::error_chain(&e))?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await.map(|b| b.to_vec()).unwrap_or_default()))
}

/// [`send`] until an answer below 500 comes, at most `1 + retries` times, with back-off
/// (the requests this is used for are idempotent).
async fn post_retrying(
    url: &str,
    body: &serde_json::Value,
    retries: u32,
) -> Result<(u16, Vec<u8>), CliError> {
    let mut backoff = super::kyc::FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        let problem = match send(url, body).await {
            Ok((status, text)) if status >= 500 => super::describe_answer(status, &text),
            Ok(answer) => return Ok(answer),
            Err(problem) => problem,
        };
        if attempt >= retries {
            let tries =
                if attempt == 0 { "1 attempt".to_owned() } else { format!("{} attempts", attempt + 1) };
            return Err(CliError::Http(format!("POST {url}: {problem} (gave up after {tries})")));
        }
        attempt += 1;
        eprintln!("POST {url}: {problem}; retry {attempt} of {retries} in {} ms", backoff.as_millis());
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(super::kyc::MAX_BACKOFF);
    }
}

pub async fn client_register(args: RegisterArgs) -> Result<(), CliError> {
    let key = load_or_make_key(args.authorization_key.as_deref())?;
    let authorization_pub = key.public_key();
    let account_pub: EddsaPublicKey = match &args.account_pub {
        Some(k) => k.parse().map_err(|e| CliError::Failed(format!("--account-pub: {e}")))?,
        None => authorization_pub,
    };
    let body = serde_json::json!({
        "credit_account": args.credit_account,
        "type": args.transfer_type,
        "recurrent": args.recurrent,
        "credit_amount": args.amount,
        "alg": "EdDSA",
        "account_pub": account_pub.to_string(),
        "authorization_pub": authorization_pub.to_string(),
        "authorization_sig": key.sign(account_pub.as_bytes()).to_string(),
    });
    let url = format!("{}taler-prepared-transfer/registration", super::base_url(&args.url));
    let (status, text) = post_retrying(&url, &body, args.retries).await?;
    if status != 200 {
        return Err(CliError::Http(format!("POST {url}: {}", super::describe_answer(status, &text))));
    }
    let answer: RegistrationResponse = serde_json::from_slice(&text).map_err(|e| {
        CliError::Http(format!("unexpected answer ({e}): {}", escape(&String::from_utf8_lossy(&text))))
    })?;
    println!("authorization_pub: {authorization_pub}");
    println!("account_pub:       {account_pub}");
    for s in &answer.subjects {
        match s {
            TransferSubject::Simple { subject, credit_amount } => {
                println!("SIMPLE:            {}  ({credit_amount})", escape(subject))
            }
            TransferSubject::Uri { uri, .. } => println!("URI:               {}", escape(uri)),
            TransferSubject::SwissQrBill { qr_reference_number, .. } => println!(
                "CH_QR_BILL:        {}  ({})",
                escape(qr_reference_number),
                escape(&subject::group_qr_reference(qr_reference_number))
            ),
        }
    }
    match answer.expiration.secs().and_then(|s| time::OffsetDateTime::from_unix_timestamp(s as i64).ok()) {
        Some(t) => println!(
            "expiration:        {}",
            t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
        ),
        None => println!("expiration:        never"),
    }
    Ok(())
}

pub async fn client_unregister(args: UnregisterArgs) -> Result<(), CliError> {
    let key = config::read_master_key(&args.authorization_key)
        .map_err(|e| CliError::Failed(format!("--authorization-key: {}", e.reason)))?;
    // Full precision: a registration made within the same second must still be
    // older than this unregistration.
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let body = serde_json::json!({
        "timestamp": timestamp,
        "authorization_pub": key.public_key().to_string(),
        "authorization_sig": key.sign(timestamp.as_bytes()).to_string(),
    });
    let url = format!("{}taler-prepared-transfer/unregistration", super::base_url(&args.url));
    let (status, text) = post(&url, &body).await?;
    if status != 204 {
        return Err(CliError::Http(format!("POST {url}: {}", super::describe_answer(status, &text))));
    }
    eprintln!("unregistered {}", key.public_key());
    Ok(())
}

pub async fn registrations_command(
    global: &GlobalArgs,
    file: &FileConfig,
    cmd: RegistrationsCommand,
) -> Result<(), CliError> {
    match cmd {
        RegistrationsCommand::List { json: true } => {
            let store = super::open_read_only(global, file)?;
            let now_s = Clock::default().now_s();
            let query = move |db: &Db<'_>, page: &Page| registrations::list(db, page, now_s);
            let mut out = super::JsonArray::start();
            let listed = super::for_each_page(
                &store,
                query,
                |r| r.row_id,
                |rows| rows.iter().for_each(|r| out.push(r)),
            )
            .await;
            store.close();
            listed.and_then(|()| out.finish())
        }
        RegistrationsCommand::List { json: false } => {
            let store = super::open_read_only(global, file)?;
            let now_s = Clock::default().now_s();
            println!(
                "{:<52}  {:<7}  {:<9}  {:<14}  {:<12}  {:<27}  STATE",
                "AUTHORIZATION_PUB", "TYPE", "RECURRENT", "AMOUNT", "SHORT", "QR_REFERENCE"
            );
            let query = move |db: &Db<'_>, page: &Page| registrations::list(db, page, now_s);
            let listed = super::for_each_page(
                &store,
                query,
                |r| r.row_id,
                |rows| {
                    for r in rows {
                        println!(
                            "{}  {:<7}  {:<9}  {:<14}  {:<12}  {:<27}  {}",
                            r.authorization_pub,
                            r.transfer_type.as_str(),
                            r.recurrent,
                            escape(&r.credit_amount),
                            escape(r.short_subject.as_deref().unwrap_or("-")),
                            escape(r.qr_reference_number.as_deref().unwrap_or("-")),
                            match (r.live, r.used) {
                                (false, _) => "expired",
                                (true, true) => "used",
                                (true, false) => "live",
                            }
                        );
                    }
                },
            )
            .await;
            store.close();
            listed
        }
    }
}
