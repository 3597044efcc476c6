//! `extern add|list|disable`, `kyc-bulk list|export` and `client kyc-bulk`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use sha2::{Digest, Sha512};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::progress::Progress;
use super::upload::{self, Failure};
use super::{CliError, escape};
use crate::clock::Clock;
use crate::config::{self, FileConfig, GlobalArgs};
use crate::crypto::{EddsaPublicKey, ExternKycDataBulkBindingPS, HashCode, SignedStruct};
use crate::domain::exchange::third_parties::{self, Added};
use crate::error::ApiError;
use crate::payto::Payto;
use crate::store::kyc::{self, CHUNK_SIZE};
use crate::store::lock::LockError;
use crate::store::{Db, Durability, Page, Store, StoreError, extern_keys};

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
    List {
        /// One JSON array on stdout, as `GET /private/extern-keys` names the fields
        #[arg(long)]
        json: bool,
    },
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
        /// One JSON array on stdout, as `GET /private/kyc-bulk` names the fields
        #[arg(long)]
        json: bool,
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
    /// Exchange base URL. With http:// the body is sent only once the server
    /// asks for it (`Expect: 100-continue`); https:// goes through a general
    /// HTTP library that sends the body at once
    #[arg(long, default_value = super::DEFAULT_URL)]
    pub url: String,
    /// Attempts after the first on a 5xx answer or a connection failure, with
    /// back-off from 200 ms, doubling up to 10 s
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
}

pub async fn extern_command(
    global: &GlobalArgs,
    file: &FileConfig,
    cmd: ExternCommand,
) -> Result<(), CliError> {
    let store = match cmd {
        ExternCommand::List { .. } => super::open_read_only(global, file)?,
        ExternCommand::Add { .. } | ExternCommand::Disable { .. } => match super::open_for_edit(global, file)
        {
            Err(CliError::Store(StoreError::Locked(held @ LockError::Held { .. }))) => {
                return Err(CliError::Failed(format!(
                    "database: {held}; while a server runs, change third parties through it: \
                     POST /private/extern-keys or POST /private/extern-keys/PUB/disable with the operator token"
                )));
            }
            opened => opened?,
        },
    };
    let result = match cmd {
        ExternCommand::Add { extern_pub, name } => {
            let key: EddsaPublicKey =
                extern_pub.parse().map_err(|e| CliError::Failed(format!("PUB: {e}")))?;
            let now_us = Clock::default().now_us();
            match third_parties::add(&store, key, &name, now_us).await {
                Ok(added) => {
                    let what = if added == Added::New { "added" } else { "re-activated" };
                    eprintln!("{what} third party {key}");
                    Ok(())
                }
                Err(ApiError::FieldMalformed { detail, .. }) => {
                    Err(CliError::Failed(format!("--name {detail}")))
                }
                Err(ApiError::Database { source }) => Err(source.into()),
                Err(e) => Err(e.into()),
            }
        }
        ExternCommand::List { json: true } => match store.read(extern_keys::list).await {
            Ok(keys) => {
                let mut out = super::JsonArray::start();
                keys.iter().for_each(|k| out.push(k));
                out.finish()
            }
            Err(e) => Err(e.into()),
        },
        ExternCommand::List { json: false } => {
            let keys = store.read(extern_keys::list).await?;
            println!("{:<52}  {:<8}  NAME", "EXTERN_PUB", "STATE");
            for k in keys {
                let state = if k.active { "active" } else { "disabled" };
                println!("{}  {:<8}  {}", k.extern_pub, state, escape(&k.name));
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
        KycBulkCommand::List { payto, json } => {
            let customer = match payto {
                Some(p) => Some(
                    Payto::parse_account(&p)
                        .map_err(|e| CliError::Failed(format!("--payto: {e}")))?
                        .normalized_hash(),
                ),
                None => None,
            };
            let query = move |db: &Db<'_>, page: &Page| kyc::list(db, customer, page);
            if json {
                let mut out = super::JsonArray::start();
                let listed = super::for_each_page(
                    &store,
                    query,
                    |u| u.row_id,
                    |rows| rows.iter().for_each(|u| out.push(u)),
                )
                .await;
                store.close();
                return listed.and_then(|()| out.finish());
            }
            println!(
                "{:<103}  {:>12}  {:<20}  {:<16}  PAYTO",
                "H_BODY", "SIZE", "CONTENT_TYPE", "THIRD_PARTY"
            );
            super::for_each_page(
                &store,
                query,
                |u| u.row_id,
                |rows| {
                    for u in rows {
                        println!(
                            "{}  {:>12}  {:<20}  {:<16}  {}",
                            u.h_body,
                            u.size,
                            escape(&u.content_type),
                            escape(&u.extern_name),
                            escape(&u.payto)
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
    eprintln!("wrote {} ({size} bytes, {})", output.display(), escape(&content_type));
    Ok(())
}

/// First pause between attempts; it doubles up to [`MAX_BACKOFF`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(200);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// `client kyc-bulk`: hash the file, sign, upload it with the hash header.
///
/// The upload is idempotent (the server keys it by body hash and customer), so
/// a 5xx or a broken connection is simply tried again; 412 means an earlier
/// attempt, or an earlier run, already got the body there.
pub async fn client_upload(args: ClientKycBulkArgs) -> Result<(), CliError> {
    let key = config::read_master_key(&args.extern_key)
        .map_err(|e| CliError::Failed(format!("--extern-key: {}", e.reason)))?;
    let payto: Payto = args.payto.parse().map_err(|e| CliError::Failed(format!("--payto: {e}")))?;
    let size = tokio::fs::metadata(&args.file).await?.len();
    let content_type = crate::kyc_content::content_type_for_name(&args.file).ok_or_else(|| {
        CliError::Failed(format!("cannot tell the type of {} from its name", args.file.display()))
    })?;
    let target = Transport::parse(&args.url)?;
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

    let path = format!("kyc-bulk/{}", key.public_key());
    let url = format!("{}{path}", super::base_url(&args.url));
    let headers = [
        ("Content-Type", content_type.clone()),
        ("Taler-Customer-Payto", payto.full().to_owned()),
        ("Taler-Extern-Signature", signature.to_string()),
        ("If-None-Match", h_body.to_string()),
    ];
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    let answer = loop {
        let problem = match target.post_file(&path, &headers, &args.file, size).await {
            Ok(answer) if answer.status >= 500 => super::describe_answer(answer.status, &answer.body),
            Ok(answer) => break answer,
            Err(Failure::Connection(problem)) => problem,
            Err(Failure::Local(problem)) => return Err(CliError::Failed(problem)),
        };
        if attempt >= args.retries {
            let tries =
                if attempt == 0 { "1 attempt".to_owned() } else { format!("{} attempts", attempt + 1) };
            return Err(CliError::Http(format!("POST {url}: {problem} (gave up after {tries})")));
        }
        attempt += 1;
        eprintln!("POST {url}: {problem}; retry {attempt} of {} in {} ms", args.retries, backoff.as_millis());
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    };
    match answer.status {
        200..=299 => {
            eprintln!("uploaded {} ({size} bytes, {content_type}), hash {h_body}", args.file.display());
            Ok(())
        }
        412 => {
            eprintln!(
                "already uploaded: the exchange has {} for this customer, hash {h_body}",
                args.file.display()
            );
            Ok(())
        }
        status => {
            Err(CliError::Http(format!("POST {url}: {}", super::describe_answer(status, &answer.body))))
        }
    }
}

/// How an upload reaches the server: our own client for `http://` (it waits
/// for `100 Continue`), reqwest for `https://`, as before, so that TLS stays a
/// library's business. reqwest sends the body without waiting: there an early
/// answer can still be lost to a reset, which then counts as a broken
/// connection and is retried.
enum Transport {
    Http(upload::Target),
    Https(String),
}

impl Transport {
    fn parse(url: &str) -> Result<Transport, CliError> {
        if url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
            return Ok(Transport::Https(super::base_url(url)));
        }
        upload::Target::parse(url).map(Transport::Http).map_err(|e| CliError::Failed(format!("--url: {e}")))
    }

    async fn post_file(
        &self,
        path: &str,
        headers: &[(&str, String)],
        file: &Path,
        size: u64,
    ) -> Result<upload::Answer, Failure> {
        match self {
            Transport::Http(target) => upload::post_file(target, path, headers, file, size).await,
            Transport::Https(base) => reqwest_post_file(&format!("{base}{path}"), headers, file, size).await,
        }
    }
}

async fn reqwest_post_file(
    url: &str,
    headers: &[(&str, String)],
    path: &Path,
    size: u64,
) -> Result<upload::Answer, Failure> {
    let file =
        tokio::fs::File::open(path).await.map_err(|e| Failure::Local(format!("{}: {e}", path.display())))?;
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
    let mut request = reqwest::Client::new().post(url).header("Content-Length", size);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let sent = request.body(reqwest::Body::wrap_stream(stream)).send().await;
    if let Ok(mut p) = progress.lock() {
        p.finish();
    }
    let response = sent.map_err(|e| Failure::Connection(super::error_chain(&e)))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Ok(upload::Answer { status, body })
}
