//! `offline enable-auditor|disable-auditor` and `auditors list`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliError, escape};
use crate::clock::Clock;
use crate::config::{self, FileConfig, GlobalArgs};
use crate::crypto::{EddsaPrivateKey, EddsaPublicKey, MasterAddAuditorPS, MasterDelAuditorPS, SignedStruct};
use crate::domain::exchange::auditors::{AuditorSetupMessage, AuditorTeardownMessage};
use crate::store::auditors;
use crate::timestamp::Timestamp;

#[derive(Subcommand, Debug)]
pub enum OfflineCommand {
    /// Sign an AuditorSetupMessage; print it, or POST it with --upload
    EnableAuditor(EnableAuditorArgs),
    /// Sign an AuditorTeardownMessage; print it, or POST it with --upload
    DisableAuditor(DisableAuditorArgs),
}

#[derive(Args, Debug)]
pub struct SigningArgs {
    /// Master private key file [default: taler-lite-master.key beside the database]
    #[arg(long, env = "TALER_LITE_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Time of the change, seconds since the epoch or RFC 3339 [default: now]
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// POST the body to this exchange base URL instead of printing it
    #[arg(long, value_name = "BASE_URL")]
    pub upload: Option<String>,
}

#[derive(Args, Debug)]
pub struct EnableAuditorArgs {
    #[arg(long)]
    pub auditor_pub: String,
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Args, Debug)]
pub struct DisableAuditorArgs {
    #[arg(long)]
    pub auditor_pub: String,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Subcommand, Debug)]
pub enum AuditorsCommand {
    /// List auditors (active and disabled) from the database
    List {
        /// One JSON array on stdout (the API's field names, plus the state)
        #[arg(long)]
        json: bool,
    },
}

pub async fn offline_command(
    global: &GlobalArgs,
    file: &FileConfig,
    cmd: OfflineCommand,
) -> Result<(), CliError> {
    match cmd {
        OfflineCommand::EnableAuditor(args) => {
            let key = signing_key(global, file, &args.signing)?;
            let validity_start = parse_time(args.signing.at.as_deref())?;
            let auditor_pub: EddsaPublicKey =
                args.auditor_pub.parse().map_err(|e| CliError::Failed(format!("--auditor-pub: {e}")))?;
            let lower = args.url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                return Err(CliError::Failed(format!(
                    "--url: '{}' is not an http:// or https:// URL",
                    args.url
                )));
            }
            let master_sig = MasterAddAuditorPS::new(validity_start, auditor_pub, &args.url).sign(&key);
            let body = AuditorSetupMessage {
                auditor_url: args.url,
                auditor_name: args.name,
                auditor_pub,
                master_sig,
                validity_start,
            };
            deliver(&args.signing, "management/auditors", &serde_json::to_value(&body).map_err(json_error)?)
                .await
        }
        OfflineCommand::DisableAuditor(args) => {
            let key = signing_key(global, file, &args.signing)?;
            let validity_end = parse_time(args.signing.at.as_deref())?;
            let auditor_pub: EddsaPublicKey =
                args.auditor_pub.parse().map_err(|e| CliError::Failed(format!("--auditor-pub: {e}")))?;
            let master_sig = MasterDelAuditorPS { end_date: validity_end, auditor_pub }.sign(&key);
            let body = AuditorTeardownMessage { master_sig, validity_end };
            let path = format!("management/auditors/{auditor_pub}/disable");
            deliver(&args.signing, &path, &serde_json::to_value(&body).map_err(json_error)?).await
        }
    }
}

fn json_error(e: serde_json::Error) -> CliError {
    CliError::Failed(format!("cannot encode the body: {e}"))
}

/// The master private key: the flag, the environment, the config file, or the
/// development key beside the database (as `serve` makes it).
fn signing_key(
    global: &GlobalArgs,
    file: &FileConfig,
    args: &SigningArgs,
) -> Result<EddsaPrivateKey, CliError> {
    let path = args.master_key_file.clone().or_else(|| file.master_key_file.clone()).unwrap_or_else(|| {
        config::beside_database(&config::database_path(global, file), config::MASTER_KEY_FILE_NAME)
    });
    Ok(config::read_master_key(&path)?)
}

/// `--at`: seconds since the epoch or RFC 3339; now (whole seconds) by default.
pub fn parse_time(at: Option<&str>) -> Result<Timestamp, CliError> {
    let Some(at) = at else {
        return Ok(Clock::default().now());
    };
    if let Ok(secs) = at.trim().parse::<u64>() {
        return Ok(Timestamp::from_secs(secs));
    }
    let t = time::OffsetDateTime::parse(at.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| CliError::Failed(format!("--at: '{at}' is neither seconds nor RFC 3339 ({e})")))?;
    u64::try_from(t.unix_timestamp())
        .map(Timestamp::from_secs)
        .map_err(|_| CliError::Failed(format!("--at: '{at}' is before 1970")))
}

/// Prints the body, or POSTs it and reports the answer.
async fn deliver(args: &SigningArgs, path: &str, body: &serde_json::Value) -> Result<(), CliError> {
    let Some(base) = &args.upload else {
        println!("{}", serde_json::to_string_pretty(body).map_err(json_error)?);
        return Ok(());
    };
    let url = format!("{}{path}", super::base_url(base));
    let response = reqwest::Client::new()
        .post(&url)
        .json(body)
        .send()
        .await
        .map_err(|e| CliError::Http(format!("POST {url}: {}", super::error_chain(&e))))?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        eprintln!("POST {url}: {status}");
        Ok(())
    } else {
        Err(CliError::Http(format!("POST {url}: {}", super::describe_answer(status.as_u16(), &body))))
    }
}

pub async fn auditors_command(
    global: &GlobalArgs,
    file: &FileConfig,
    cmd: AuditorsCommand,
) -> Result<(), CliError> {
    match cmd {
        AuditorsCommand::List { json } => {
            let store = super::open_read_only(global, file)?;
            let rows = store.read(auditors::all).await;
            store.close();
            let rows = rows?;
            if json {
                let mut out = super::JsonArray::start();
                for row in &rows {
                    out.push(row);
                }
                return out.finish();
            }
            println!("{:<52}  {:<8}  {:<20}  {:<30}  NAME", "AUDITOR_PUB", "STATE", "LAST_CHANGE", "URL");
            for row in &rows {
                // A date for people; `--json` keeps the seconds (`last_change_s`).
                let last_change = u64::try_from(row.last_change_s)
                    .ok()
                    .and_then(Timestamp::try_from_secs)
                    .map_or_else(|| "never".to_owned(), |t| t.rfc3339());
                println!(
                    "{}  {:<8}  {:<20}  {:<30}  {}",
                    row.auditor_pub,
                    if row.is_active { "active" } else { "disabled" },
                    last_change,
                    escape(&row.auditor_url),
                    escape(&row.auditor_name)
                );
            }
            Ok(())
        }
    }
}
