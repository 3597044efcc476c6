//! `extern add|list|disable`, `kyc-bulk list|export` and `client kyc-bulk`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use sha2::{Digest, Sha512};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CliError;
use crate::clock::Clock;
use crate::config::{self, FileConfig, GlobalArgs};
use crate::crypto::{EddsaPublicKey, ExternKycDataBulkBindingPS, HashCode, SignedStruct};
use crate::payto::Payto;
use crate::store::kyc::{self, CHUNK_SIZE};
use crate::store::{Db, Durability, Page, Store, extern_keys};

#[derive(Subcommand, Debug)]
pub enum ExternCommand {
    /// Allow a third party (EdDSA public key) to upload
    Add {
        #[arg(value_name = "PUB")]
        extern_pub: String,
        #[arg(long)]
        name: String,
    },
    /// List third parties
    List,
    /// Disable a third party
    Disable {
        #[arg(value_name = "PUB")]
        extern_pub: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KycBulkCommand {
    /// List uploads, optionally of one customer
    List {
        /// Customer payto URI (matched in normalized form)
        #[arg(long)]
        payto: Option<String>,
    },
    /// Write a stored body to a file
    Export {
        /// Body hash (base32)
        #[arg(value_name = "HASH")]
        h_body: String,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct ClientKycBulkArgs {
    /// File holding the third party's private key (base32 seed)
    #[arg(long, value_name = "FILE")]
    pub extern_key: PathBuf,
    /// The customer's payto URI
    #[arg(long)]
    pub payto: String,
    /// The file to upload
    pub file: PathBuf,
    /// Exchange base URL
    #[arg(long, default_value = super::DEFAULT_URL)]
    pub url: String,
}

pub async fn extern_command(
    global: &GlobalArgs,
    file: &FileConfig,
    cmd: ExternCommand,
) -> Result<(), CliError> {
    let store = match cmd {
        ExternCommand::List => super::open_read_only(global, file)?,
        ExternCommand::Add { .. } | ExternCommand::Disable { .. } => super::open_for_edit(global, file)?,
    };
    let result = match cmd {
        ExternCommand::Add { extern_pub, name } => {
            let key: EddsaPublicKey =
                extern_pub.parse().map_err(|e| CliError::Failed(format!("PUB: {e}")))?;
            if name.trim().is_empty() {
                return Err(CliError::Failed("--name must not be empty".into()));
            }
            let now_us = Clock::default().now_us();
            let new = store
                .write(Durability::Durable, move |tx| extern_keys::upsert(tx, &key, name.trim(), now_us))
                .await?;
            eprintln!("{} third party {key}", if new { "added" } else { "re-activated" });
            Ok(())
        }
        ExternCommand::List => {
            let keys = store.read(extern_keys::list).await?;
            println!("{:<52}  {:<8}  NAME", "EXTERN_PUB", "STATE");
            for k in keys {
                println!("{}  {:<8}  {}", k.extern_pub, if k.active { "active" } else { "disabled" }, k.name);
            }
            Ok(())
        }
        ExternCommand::Disable { extern_pub } => {
            let key: EddsaPublicKey =
                extern_pub.parse().map_err(|e| CliError::Failed(format!("PUB: {e}")))?;
            if store.write(Durability::Durable, move |tx| extern_keys::disable(tx, &key)).await? {
                eprintln!("disabled third party {key}");
                Ok(())
            } else {
                Err(CliError::Failed(format!("third party {key} is unknown")))
            }
        }
    };
    store.close();
    result
}

pub async fn kyc_bulk_command(
    global: &GlobalArgs,
    file: &FileConfig,
    cmd: KycBulkCommand,
) -> Result<(), CliError> {
    let store = super::open_read_only(global, file)?;
    let result = match cmd {
        KycBulkCommand::List { payto } => {
            let customer = match payto {
                Some(p) => Some(
                    Payto::parse_account(&p)
                        .map_err(|e| CliError::Failed(format!("--payto: {e}")))?
                        .normalized_hash(),
                ),
                None => None,
            };
            println!(
                "{:<103}  {:>12}  {:<20}  {:<16}  PAYTO",
                "H_BODY", "SIZE", "CONTENT_TYPE", "THIRD_PARTY"
            );
            let query = move |db: &Db<'_>, page: &Page| kyc::list(db, customer, page);
            super::for_each_page(
                &store,
                query,
                |u| u.row_id,
                |rows| {
                    for u in rows {
                        println!(
                            "{}  {:>12}  {:<20}  {:<16}  {}",
                            u.h_body, u.size, u.content_type, u.extern_name, u.payto
                        );
                    }
                },
            )
            .await
        }
        KycBulkCommand::Export { h_body, output } => export(&store, &h_body, &output).await,
    };
    store.close();
    result
}

async fn export(store: &Store, h_body: &str, output: &Path) -> Result<(), CliError> {
    let h: HashCode = h_body.parse().map_err(|e| CliError::Failed(format!("HASH: {e}")))?;
    let found = store.read(move |db| kyc::find_blob(db, &h)).await?;
    let Some(kyc::Blob { body, content_type }) = found else {
        return Err(CliError::Failed(format!("no upload with hash {h_body}")));
    };
    let size = body.size;
    let mut out = tokio::fs::File::create(output).await?;
    let mut progress = Progress::new("export", size);
    let mut hasher = Sha512::new();
    let chunks = i64::try_from(size.div_ceil(CHUNK_SIZE as u64)).unwrap_or(i64::MAX);
    for seq in 0..chunks {
        let chunk = store.read(move |db| kyc::read_chunk(db, body.content_id, seq)).await?;
        hasher.update(&chunk);
        out.write_all(&chunk).await?;
        progress.add(chunk.len() as u64);
    }
    out.sync_all().await?;
    progress.finish();
    let digest: [u8; 64] = hasher.finalize().into();
    if HashCode::from_bytes(digest) != h {
        return Err(CliError::Failed("the stored body does not match its hash".into()));
    }
    eprintln!("wrote {} ({size} bytes, {content_type})", output.display());
    Ok(())
}

/// `client kyc-bulk`: hash the file, sign, upload it streamed with the hash header.
pub async fn client_upload(args: ClientKycBulkArgs) -> Result<(), CliError> {
    let key = config::read_master_key(&args.extern_key)
        .map_err(|e| CliError::Failed(format!("--extern-key: {}", e.reason)))?;
    let payto: Payto = args.payto.parse().map_err(|e| CliError::Failed(format!("--payto: {e}")))?;
    let size = tokio::fs::metadata(&args.file).await?.len();
    let content_type =
        mime_guess::from_path(&args.file).first().map(|m| m.essence_str().to_owned()).ok_or_else(|| {
            CliError::Failed(format!("cannot tell the type of {} from its name", args.file.display()))
        })?;
    // First pass: the hash, so that the server can refuse before the upload.
    let mut file = tokio::fs::File::open(&args.file).await?;
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut progress = Progress::new("hash", size);
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.add(n as u64);
    }
    progress.finish();
    let digest: [u8; 64] = hasher.finalize().into();
    let h_body = HashCode::from_bytes(digest);
    let signature = ExternKycDataBulkBindingPS { h_body, h_payto: payto.full_hash() }.sign(&key);

    let file = tokio::fs::File::open(&args.file).await?;
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Progress::new("upload", size)));
    let counted = progress.clone();
    let stream =
        futures_util::stream::unfold((file, vec![0u8; 256 << 10]), |(mut file, mut buf)| async move {
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => Some((Ok(bytes::Bytes::copy_from_slice(&buf[..n])), (file, buf))),
                Err(e) => Some((Err(e), (file, buf))),
            }
        })
        .inspect(move |chunk| {
            if let (Ok(c), Ok(mut p)) = (chunk, counted.lock()) {
                p.add(c.len() as u64);
            }
        });
    let url = format!("{}kyc-bulk/{}", super::base_url(&args.url), key.public_key());
    let response = reqwest::Client::new()
        .post(&url)
        .header("Content-Type", &content_type)
        .header("Content-Length", size)
        .header("Taler-Customer-Payto", payto.full())
        .header("Taler-Extern-Signature", signature.to_string())
        .header("If-None-Match", h_body.to_string())
        .header("Expect", "100-continue")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| CliError::Http(format!("POST {url}: {e}")))?;
    if let Ok(mut p) = progress.lock() {
        p.finish();
    }
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    match status.as_u16() {
        204 => {
            eprintln!("uploaded {} ({size} bytes, {content_type}), hash {h_body}", args.file.display());
            Ok(())
        }
        412 => {
            eprintln!("the exchange already has {} for this customer (hash {h_body})", args.file.display());
            Ok(())
        }
        _ => Err(CliError::Http(format!("POST {url}: {status}: {text}"))),
    }
}

/// Progress of a long operation on stderr, only when stderr is a terminal.
pub struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    shown_percent: Option<u64>,
    enabled: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: u64) -> Progress {
        Progress {
            label,
            total,
            done: 0,
            shown_percent: None,
            enabled: std::io::stderr().is_terminal() && total > (8 << 20),
        }
    }

    pub fn add(&mut self, n: u64) {
        self.done += n;
        if !self.enabled {
            return;
        }
        let percent = self.done.saturating_mul(100) / self.total.max(1);
        if self.shown_percent != Some(percent) {
            self.shown_percent = Some(percent);
            eprint!("\r{}: {percent:>3}% ({} of {} MiB)", self.label, self.done >> 20, self.total >> 20);
        }
    }

    pub fn finish(&mut self) {
        if self.enabled && self.shown_percent.is_some() {
            eprintln!();
        }
        self.enabled = false;
    }
}
