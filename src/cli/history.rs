//! `client history [--follow] [--outgoing]`: a Wire Gateway history as a developer watches it
//! while an exchange runs against the bank. It pages through the rows after `--start`, and with
//! `--follow` then long-polls for new ones (as `taler-exchange-wirewatch` does), printing each row
//! as it commits. It stops cleanly (exit 0) on SIGINT, SIGTERM or SIGHUP, with
//! `--exit-on-stdin-eof` at the end of standard input (as `serve` does), and when its standard
//! output is closed.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::{CliError, escape};
use crate::server::Shutdown;
use crate::timestamp::format_rfc3339;

/// Rows asked for per request (the protocol's cap).
const PAGE: u32 = 1024;
/// How long one long poll waits before asking again (wirewatch's figure).
const LONG_POLL_MS: u64 = 60_000;

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Bank base URL
    #[arg(long, default_value = super::DEFAULT_URL)]
    pub url: String,
    /// The gateway's account name (`/accounts/NAME/taler-wire-gateway/`) [default: the first]
    #[arg(long)]
    pub account: Option<String>,
    /// The transfers out (`history/outgoing`) instead of the credits in
    #[arg(long)]
    pub outgoing: bool,
    /// After the rows there are, wait for new ones and print each as it commits
    #[arg(long)]
    pub follow: bool,
    /// Only rows after this row id (exclusive) [default: from the oldest]
    #[arg(long, value_name = "ROW_ID", default_value_t = 0)]
    pub start: i64,
    /// The operator token's file (Bearer authentication)
    #[arg(long, value_name = "FILE", default_value = "taler-lite-operator.token")]
    pub token_file: PathBuf,
    /// Ask with the deprecated `delta`/`start`/`long_poll_ms` parameters, as the exchange's C
    /// client does, instead of `limit`/`offset`/`timeout_ms`
    #[arg(long)]
    pub deprecated_params: bool,
    /// One JSON object per row (as the history names the fields) instead of a line for people
    #[arg(long)]
    pub json: bool,
    /// With --follow: stop at the end of standard input too
    #[arg(long)]
    pub exit_on_stdin_eof: bool,
}

/// Runs `client history`.
pub async fn client_history(args: HistoryArgs) -> Result<(), CliError> {
    let token = std::fs::read_to_string(&args.token_file)
        .map_err(|e| CliError::Failed(format!("--token-file {}: {e}", args.token_file.display())))?
        .trim()
        .to_owned();
    if !args.follow {
        return follow(&args, &token).await;
    }
    // Installed first: a signal while the first page loads stops the command cleanly too.
    let shutdown = Shutdown::install(args.exit_on_stdin_eof);
    tokio::select! {
        followed = follow(&args, &token) => followed,
        why = shutdown.wait() => {
            log::info!("{why}: stopping");
            Ok(())
        }
    }
}

/// Prints the rows after `--start`, then with `--follow` every new one, until stopped.
async fn follow(args: &HistoryArgs, token: &str) -> Result<(), CliError> {
    let base = super::base_url(&args.url);
    let gateway = match &args.account {
        Some(name) => format!("{base}accounts/{name}/taler-wire-gateway/"),
        None => format!("{base}taler-wire-gateway/"),
    };
    let (direction, rows_field) = if args.outgoing {
        ("outgoing", "outgoing_transactions")
    } else {
        ("incoming", "incoming_transactions")
    };
    let client = reqwest::Client::builder().build().map_err(|e| CliError::Http(e.to_string()))?;
    let mut offset = args.start;
    loop {
        // Long-poll only once caught up: a full page means more may be there already.
        let wait_ms = if args.follow { LONG_POLL_MS } else { 0 };
        let query = if args.deprecated_params {
            format!("delta={PAGE}&start={offset}&long_poll_ms={wait_ms}")
        } else {
            format!("limit={PAGE}&offset={offset}&timeout_ms={wait_ms}")
        };
        let url = format!("{gateway}history/{direction}?{query}");
        // The request itself may take the whole long poll, and a little more.
        let answer = client
            .get(&url)
            .bearer_auth(token)
            .timeout(Duration::from_millis(wait_ms + 30_000))
            .send()
            .await
            .map_err(|e| CliError::Http(format!("GET {url}: {}", super::error_chain(&e))))?;
        let status = answer.status().as_u16();
        let body = answer.bytes().await.map_err(|e| CliError::Http(format!("GET {url}: {e}")))?;
        let rows = match status {
            204 => Vec::new(),
            200 => {
                let history: Value = serde_json::from_slice(&body)
                    .map_err(|e| CliError::Http(format!("GET {url}: the history is not JSON: {e}")))?;
                history[rows_field].as_array().cloned().unwrap_or_default()
            }
            _ => return Err(CliError::Http(format!("GET {url}: {}", super::describe_answer(status, &body)))),
        };
        let mut out = std::io::stdout().lock();
        for row in &rows {
            let line = if args.json { super::json_line(row) } else { describe(row, args.outgoing) };
            if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
                // A closed pipe (`| head`) is a reader that has seen enough.
                return if e.kind() == std::io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e.into()) };
            }
            offset = offset.max(row["row_id"].as_i64().unwrap_or(offset));
        }
        if rows.len() < PAGE as usize && !args.follow {
            return Ok(());
        }
    }
}

/// One row for people: id, date, amount, and what the transfer was for.
fn describe(row: &Value, outgoing: bool) -> String {
    let text = |field: &str| row[field].as_str().unwrap_or("-").to_owned();
    let date = row["date"]["t_s"].as_i64().map_or_else(|| "-".to_owned(), |s| format_rfc3339(s * 1_000_000));
    let line = if outgoing {
        format!(
            "{} {date} {} to {} wtid {} for {}",
            row["row_id"],
            text("amount"),
            text("credit_account"),
            text("wtid"),
            text("exchange_base_url")
        )
    } else {
        let key = if row["type"] == "KYCAUTH" { text("account_pub") } else { text("reserve_pub") };
        format!(
            "{} {date} {} {} {key} from {}",
            row["row_id"],
            text("amount"),
            text("type"),
            text("debit_account")
        )
    };
    escape(&line).into_owned()
}
