//! Third parties' KYC uploads: a body about a customer, stored once per hash and recorded per
//! customer and third party. The JSON API streams one from a request (its handler owns the
//! streaming); an upload from a file (the `[[upload]]` fixtures) is checked and stored here,
//! with the same content checks: not empty, at most `max_upload` bytes, the declared type's
//! first bytes and, for a ZIP, its central directory.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use sha2::{Digest, Sha512};

use crate::config::Settings;
use crate::crypto::{EddsaPublicKey, HashCode, ShortHashCode};
use crate::kyc_content::{self, DeclaredType};
use crate::payto::Payto;
use crate::regular_file::open_regular;
use crate::store::kyc::{self, CHUNK_SIZE, ContentId, Recorded, UploadRecord};
use crate::store::stop::Stop;
use crate::store::{Db, Store, StoreError, WriteTx, extern_keys};

/// Start-up work: drops the staged bodies of uploads that a crash interrupted.
pub async fn discard_interrupted(store: &Store) -> Result<(), StoreError> {
    let removed = kyc::discard_all_staged(store).await?;
    if removed > 0 {
        log::info!("removed {removed} staged upload(s) left by an earlier run");
    }
    Ok(())
}

/// Why reading an upload's file ended early.
pub const STOPPED_READING: &str = "stopped while it was being read (the start-up was stopped)";

/// An upload from a file, checked as the API checks one, waiting to be stored.
pub struct FileUpload {
    pub extern_pub: EddsaPublicKey,
    pub payto: String,
    pub h_customer: ShortHashCode,
    pub h_body: HashCode,
    pub content_type: String,
    pub size: u64,
    pub path: PathBuf,
}

impl FileUpload {
    /// Checks the file at `path` as an upload of `extern_pub` about `payto`: its size, its
    /// Content-Type (given, or from its name as `client kyc-bulk` sends it), its first bytes
    /// and, for a ZIP, its directory; and hashes it. Blocking.
    pub fn prepare(
        settings: &Settings,
        extern_pub: EddsaPublicKey,
        payto: &Payto,
        path: PathBuf,
        content_type: Option<&str>,
        stop: &Stop,
    ) -> Result<FileUpload, String> {
        let shown = path.display();
        let given = match content_type {
            Some(ct) => ct.to_owned(),
            None => kyc_content::content_type_for_name(&path)
                .ok_or_else(|| format!("cannot tell the type of {shown} from its name: give content_type"))?,
        };
        let (declared, content_type) =
            kyc_content::parse_content_type(&given).map_err(|e| format!("content_type: {e}"))?;
        let mut file = open_regular(&path).map_err(|e| format!("{shown}: {e}"))?;
        let size = file.metadata().map_err(|e| format!("{shown}: {e}"))?.len();
        if size == 0 {
            return Err(format!("{shown} is empty, and an upload cannot be"));
        }
        if size > settings.max_upload {
            return Err(format!("{shown} has {size} bytes, more than max_upload ({})", settings.max_upload));
        }
        let mut hasher = Sha512::new();
        let mut first = Vec::with_capacity(kyc_content::SNIFF_LEN);
        let mut buf = vec![0u8; CHUNK_SIZE];
        loop {
            // A file of gigabytes takes seconds to read: a stop is not kept waiting.
            stop.check().map_err(|_| format!("{shown}: {STOPPED_READING}"))?;
            let n = file.read(&mut buf).map_err(|e| format!("{shown}: {e}"))?;
            if n == 0 {
                break;
            }
            let take = (kyc_content::SNIFF_LEN - first.len()).min(n);
            first.extend_from_slice(&buf[..take]);
            hasher.update(&buf[..n]);
        }
        kyc_content::check_magic(declared, &first).map_err(|e| format!("{shown}: {e}"))?;
        if declared == DeclaredType::Zip {
            let archive = open_regular(&path).map_err(|e| format!("{shown}: {e}"))?;
            kyc_content::check_zip(archive).map_err(|e| format!("{shown}: {e}"))?;
        }
        let digest: [u8; 64] = hasher.finalize().into();
        Ok(FileUpload {
            extern_pub,
            payto: payto.full().to_owned(),
            h_customer: payto.normalized_hash(),
            h_body: HashCode::from_bytes(digest),
            content_type,
            size,
            path,
        })
    }
}

/// What is stored already of a file upload.
pub enum FileHeld {
    /// This customer does not have this body.
    No,
    /// The same upload: same third party, payto and type.
    Same,
    /// The customer has the body from another third party, payto or type (said in the text).
    Different(String),
}

/// Whether the customer of `u` has its body already, and from the same upload.
pub fn held(db: &Db<'_>, u: &FileUpload) -> Result<FileHeld, StoreError> {
    Ok(match kyc::upload_of(db, &u.h_customer, &u.h_body)? {
        None => FileHeld::No,
        Some(held)
            if held.extern_pub == u.extern_pub
                && held.payto == u.payto
                && held.content_type == u.content_type =>
        {
            FileHeld::Same
        }
        Some(held) => FileHeld::Different(format!(
            "from {} as {} for {}",
            held.extern_pub, held.content_type, held.payto
        )),
    })
}

/// Why a file upload could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum FileRefused {
    /// The upload is refused (one line).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Stores a file upload inside a write transaction, streaming its body a chunk at a time
/// when the body is new; `true` if it was stored now, `false` if it was known already.
pub fn store_file(tx: &WriteTx<'_>, u: &FileUpload, now_us: i64, stop: &Stop) -> Result<bool, FileRefused> {
    let inactive =
        || FileRefused::Refused(format!("extern_pub {} is not an active third party", u.extern_pub));
    if !extern_keys::is_active(tx, &u.extern_pub)? {
        return Err(inactive());
    }
    let staged = match kyc::find(tx, &u.h_body)? {
        Some(_) => None,
        None => Some(kyc::staged_in(stage_file(tx, u, now_us, stop)?)),
    };
    let record = UploadRecord {
        extern_pub: u.extern_pub,
        payto: u.payto.clone(),
        h_customer: u.h_customer,
        h_body: u.h_body,
        content_type: u.content_type.clone(),
        size: u.size,
        uploaded_us: now_us,
    };
    match kyc::record_upload(tx, staged, &record)? {
        Recorded::Stored { .. } => Ok(true),
        Recorded::AlreadyKnown => Ok(false),
        Recorded::ExternUnknown => Err(inactive()),
    }
}

/// Streams an upload's file into a staged body, in the chunks an upload writes, checking
/// that it is still the file [`FileUpload::prepare`] hashed.
fn stage_file(tx: &WriteTx<'_>, u: &FileUpload, now_us: i64, stop: &Stop) -> Result<ContentId, FileRefused> {
    let shown = u.path.display();
    let io_error = |e: io::Error| FileRefused::Refused(format!("{shown}: {e}"));
    let content = kyc::begin_in(tx, now_us)?;
    let mut file = open_regular(&u.path).map_err(io_error)?;
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    let (mut seq, mut total) = (0i64, 0u64);
    loop {
        stop.check().map_err(|_| FileRefused::Refused(format!("{shown}: {STOPPED_READING}")))?;
        let n = fill(&mut file, &mut buf).map_err(io_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        kyc::append_in(tx, content, seq, &buf[..n])?;
        seq += 1;
        total += n as u64;
        if n < CHUNK_SIZE {
            break;
        }
    }
    let digest: [u8; 64] = hasher.finalize().into();
    if total != u.size || HashCode::from_bytes(digest) != u.h_body {
        return Err(FileRefused::Refused(format!("{shown} changed while it was being loaded")));
    }
    Ok(content)
}

/// Reads until `buf` is full or the file ends: every stored chunk but the last is whole.
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
