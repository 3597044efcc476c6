//! Third-party bulk KYC uploads: `POST /kyc-bulk/$EXTERN_PUB`, the operator's
//! third-party keys and read-back under `/private/`.
//!
//! The upload answers every check it can from the headers alone (steps 1-8 of
//! `kyc-bulk.md`) before it touches the body, so a client with
//! `Expect: 100-continue` never sends a body that would be refused. The body is
//! then hashed as it arrives and staged in 1 MiB chunks ([`staging`]): memory
//! stays flat whatever the size, and the write lock is held per chunk, not per
//! upload. Content checks (magic bytes, ZIP directory) run on the first bytes
//! and on the staged data, never on an extracted copy. The 204 comes after one
//! short durable commit that stores the body once per hash and records who sent
//! it about whom.

pub mod extern_keys;
pub mod staging;

use std::io;

use bytes::{Bytes, BytesMut};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{
    EddsaPublicKey, EddsaSignature, ExternKycDataBulkBindingPS, HashCode, ShortHashCode, SignedStruct,
};
use crate::error::{ApiError, json_response};
use crate::http::{Page, PageQuery, Request, no_content, route, route_with};
use crate::kyc_content::{self, DeclaredType};
use crate::payto::Payto;
use crate::server::{AppState, streamed_response};
use crate::store::{Store, StoreError};
use crate::timestamp::Timestamp;

pub fn routes(state: &AppState) -> BoxedFilter<(Response,)> {
    upload_route(state)
        .or(keys_route(state))
        .unify()
        .or(disable_route(state))
        .unify()
        .or(list_route(state))
        .unify()
        .or(blob_route(state))
        .unify()
        .boxed()
}

/// `POST /kyc-bulk/$EXTERN_PUB`
fn upload_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route_with(warp::path!("kyc-bulk" / String), state, upload)
}

/// `GET /private/extern-keys`, `POST /private/extern-keys`
fn keys_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("private" / "extern-keys"), state, extern_keys_endpoint)
}

/// `POST /private/extern-keys/$EXTERN_PUB/disable`
fn disable_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route_with(warp::path!("private" / "extern-keys" / String / "disable"), state, disable_extern_key)
}

/// `GET /private/kyc-bulk?payto=&limit=&offset=`
fn list_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("private" / "kyc-bulk"), state, list_uploads)
}

/// `GET /private/kyc-bulk/$H_BODY`
fn blob_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route_with(warp::path!("private" / "kyc-bulk" / String), state, download)
}

/// Start-up work: drop staged uploads a crash left behind, load the
/// configured third parties.
pub async fn on_start(store: &Store, settings: &Settings, clock: Clock) -> Result<(), StoreError> {
    let removed = staging::discard_all_staged(store).await?;
    if removed > 0 {
        log::info!("removed {removed} staged upload(s) left by an earlier run");
    }
    let keys = settings.extern_keys.clone();
    let now_us = clock.now_us();
    if !keys.is_empty() {
        store
            .write(move |conn| {
                for (key, name) in &keys {
                    extern_keys::upsert(conn, key, name, now_us)?;
                }
                Ok::<_, StoreError>(())
            })
            .await?;
    }
    Ok(())
}

fn parse_key(name: &str, text: &str) -> Result<EddsaPublicKey, ApiError> {
    text.parse().map_err(|e| ApiError::ParameterMalformed { name: name.into(), detail: format!("{e}") })
}

/// A hash header; entity tags may come quoted (`"..."`).
fn parse_hash_header(req: &Request, name: &'static str) -> Result<Option<HashCode>, ApiError> {
    let Some(value) = req.header(name)? else { return Ok(None) };
    let unquoted = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    unquoted.parse::<HashCode>().map(Some).map_err(|e| ApiError::header(name, e))
}

/// What the headers say about an upload, checked (steps 3-7).
struct UploadHeaders {
    declared_size: u64,
    declared: DeclaredType,
    content_type: String,
    payto: Payto,
    signature: EddsaSignature,
    h_body: Option<HashCode>,
}

fn check_headers(req: &Request, max_upload: u64) -> Result<UploadHeaders, ApiError> {
    // 3. Content-Length: required, so that the size is known before the body.
    if req.headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(ApiError::LengthRequired);
    }
    let declared_size = req.content_length()?.ok_or(ApiError::LengthRequired)?;
    if declared_size == 0 {
        return Err(ApiError::header("Content-Length", "an upload cannot be empty"));
    }
    if declared_size > max_upload {
        return Err(ApiError::UploadTooLarge { limit: max_upload });
    }
    // 4. Content-Type.
    let ct = req.header("Content-Type")?.ok_or(ApiError::HeaderMissing { header: "Content-Type" })?;
    let (declared, content_type) =
        kyc_content::parse_content_type(ct).map_err(|e| ApiError::header("Content-Type", e))?;
    // 5. The customer.
    let payto = req
        .header("Taler-Customer-Payto")?
        .ok_or(ApiError::HeaderMissing { header: "Taler-Customer-Payto" })?
        .parse::<Payto>()
        .map_err(|e| ApiError::header("Taler-Customer-Payto", e))?;
    // 6. The signature.
    let signature = req
        .header("Taler-Extern-Signature")?
        .ok_or(ApiError::HeaderMissing { header: "Taler-Extern-Signature" })?
        .parse::<EddsaSignature>()
        .map_err(|e| ApiError::header("Taler-Extern-Signature", e))?;
    // 7. The body hash, under upstream's name or HTTP's.
    let h_body = match (parse_hash_header(req, "If-Not-Match")?, parse_hash_header(req, "If-None-Match")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::header(
                "If-None-Match",
                "If-Not-Match and If-None-Match give different hashes",
            ));
        }
        (a, b) => a.or(b),
    };
    Ok(UploadHeaders { declared_size, declared, content_type, payto, signature, h_body })
}

fn signature_valid(extern_pub: &EddsaPublicKey, h: &UploadHeaders, h_body: HashCode) -> bool {
    ExternKycDataBulkBindingPS { h_body, h_payto: h.payto.full_hash() }.verify(extern_pub, &h.signature)
}

/// Deletes a staged body unless the upload was committed, whatever way the
/// handler ends (an error, or the client going away and the future dropped).
struct StagedGuard {
    store: Store,
    content_id: Option<i64>,
}

impl Drop for StagedGuard {
    fn drop(&mut self) {
        if let Some(id) = self.content_id.take() {
            staging::discard_later(&self.store, id);
        }
    }
}

/// What reading the body produced.
struct Received {
    h_body: HashCode,
    size: u64,
}

async fn upload(state: AppState, extern_pub: String, mut req: Request) -> Result<Response, ApiError> {
    req.allow(&Method::POST, "POST")?;
    // 1-2. The third party.
    let extern_pub = parse_key("EXTERN_PUB", &extern_pub)?;
    let active = state
        .store
        .read(move |conn| extern_keys::is_active(conn, &extern_pub))
        .await
        .map_err(ApiError::fetch)?;
    if !active {
        return Err(ApiError::ExternUnknown(extern_pub.to_string()));
    }
    // 3-7.
    let headers = check_headers(&req, state.settings.max_upload)?;
    let h_customer = headers.payto.normalized_hash();
    // 8. With the hash given, the signature and duplicates are checked now,
    // before a byte of the body is read.
    let mut existing = None;
    if let Some(h_body) = headers.h_body {
        if !signature_valid(&extern_pub, &headers, h_body) {
            return Err(ApiError::KycBulkSignatureInvalid(
                "Taler-Extern-Signature does not verify over the given body hash and customer payto",
            ));
        }
        let (known, stored) = state
            .store
            .read(move |conn| {
                let known = conn
                    .query_row(
                        "SELECT 1 FROM kyc_uploads WHERE h_normalized_payto = ?1 AND h_body = ?2",
                        params![h_customer, h_body],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                Ok((known, staging::find(conn, &h_body)?))
            })
            .await
            .map_err(ApiError::fetch)?;
        if known {
            return Err(ApiError::KycBulkAlreadyKnown);
        }
        existing = stored;
    }

    // 9-10. Stream: hash, sniff the first bytes, stage (unless an identical
    // body is stored already: then it is only hashed and compared).
    let mut guard = StagedGuard { store: state.store.clone(), content_id: None };
    if existing.is_none() {
        guard.content_id = Some(staging::begin(&state.store, state.clock.now_us()).await?);
    }
    let received = receive(&state, &mut req, &headers, guard.content_id).await?;

    // 11. ZIP archives: the central directory and each entry's first bytes.
    if headers.declared == DeclaredType::Zip {
        let target = match (guard.content_id, existing) {
            (Some(id), _) => Some((id, received.size)),
            // Only hashed: the stored body is this one if the hashes agree;
            // otherwise step 12 refuses the upload (400, code 26) anyway.
            (None, Some(found)) => (headers.h_body == Some(received.h_body)).then_some(found),
            (None, None) => return Err(ApiError::from(StoreError::Invariant("no body to check".into()))),
        };
        if let Some((content_id, size)) = target {
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
                let reader = staging::ChunkReader::new(&store, content_id, size).map_err(ApiError::fetch)?;
                kyc_content::check_zip(reader).map(|_| ()).map_err(|e| ApiError::header("Content-Type", e))
            })
            .await
            .map_err(|e| ApiError::from(StoreError::Invariant(format!("ZIP check failed: {e}"))))??;
        }
    }

    // 12. The hash, and the signature if it could not be checked before.
    match headers.h_body {
        Some(given) if given != received.h_body => {
            return Err(ApiError::header(
                "If-Not-Match",
                format!("the body's SHA-512 is {}, not the given hash", received.h_body),
            ));
        }
        Some(_) => {}
        None => {
            if !signature_valid(&extern_pub, &headers, received.h_body) {
                return Err(ApiError::KycBulkSignatureInvalid(
                    "Taler-Extern-Signature does not verify over the body's hash and customer payto",
                ));
            }
        }
    }
    // 13. One short durable commit.
    let record = UploadRecord {
        extern_pub,
        payto: headers.payto.full().to_owned(),
        h_customer,
        h_body: received.h_body,
        content_type: headers.content_type.clone(),
        size: received.size,
        uploaded_us: state.clock.now_us(),
    };
    let staged = guard.content_id;
    let hash_given = headers.h_body.is_some();
    let duplicate_staged = state.store.write(move |conn| commit(conn, staged, &record, hash_given)).await?;
    // Committed: the guard must no longer delete the body, unless it turned out
    // to be a second copy of a stored one.
    guard.content_id = duplicate_staged;
    drop(guard);
    // 14.
    Ok(no_content())
}

/// A chunk write under way.
type ChunkWrite = std::pin::Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send>>;

/// Reads the body: hashes it, checks its first bytes, stages it in chunks
/// (with one chunk write in flight while the next is read).
async fn receive(
    state: &AppState,
    req: &mut Request,
    headers: &UploadHeaders,
    content_id: Option<i64>,
) -> Result<Received, ApiError> {
    let mut hasher = Sha512::new();
    let mut first = Vec::with_capacity(kyc_content::SNIFF_LEN);
    let mut sniffed = false;
    let mut buf = BytesMut::with_capacity(staging::CHUNK_SIZE);
    let mut seq = 0i64;
    let mut total = 0u64;
    let mut in_flight: Option<ChunkWrite> = None;
    let sniff = |first: &[u8]| {
        kyc_content::check_magic(headers.declared, first).map_err(|e| ApiError::header("Content-Type", e))
    };
    loop {
        let Some(chunk) = req.next_chunk().await? else { break };
        let chunk = chunk
            .map_err(|e| ApiError::BodyIncomplete { detail: format!("reading the body failed: {e}") })?;
        total += chunk.len() as u64;
        if total > headers.declared_size {
            return Err(ApiError::header("Content-Length", "the body is longer than Content-Length"));
        }
        hasher.update(&chunk);
        if !sniffed {
            let take = (kyc_content::SNIFF_LEN - first.len()).min(chunk.len());
            first.extend_from_slice(&chunk[..take]);
            if first.len() == kyc_content::SNIFF_LEN {
                sniff(&first)?;
                sniffed = true;
            }
        }
        if let Some(id) = content_id {
            buf.extend_from_slice(&chunk);
            while buf.len() >= staging::CHUNK_SIZE {
                let data = buf.split_to(staging::CHUNK_SIZE).freeze();
                if let Some(previous) = in_flight.take() {
                    previous.await?;
                }
                in_flight = Some(Box::pin(staging::append(&state.store, id, seq, data)));
                seq += 1;
            }
        }
    }
    if total < headers.declared_size {
        return Err(ApiError::BodyIncomplete {
            detail: format!("the body ended after {total} of {} bytes", headers.declared_size),
        });
    }
    if !sniffed {
        sniff(&first)?;
    }
    if let Some(previous) = in_flight.take() {
        previous.await?;
    }
    if let (Some(id), false) = (content_id, buf.is_empty()) {
        staging::append(&state.store, id, seq, buf.freeze()).await?;
    }
    let digest: [u8; 64] = hasher.finalize().into();
    Ok(Received { h_body: HashCode::from_bytes(digest), size: total })
}

struct UploadRecord {
    extern_pub: EddsaPublicKey,
    payto: String,
    h_customer: ShortHashCode,
    h_body: HashCode,
    content_type: String,
    size: u64,
    uploaded_us: i64,
}

/// Stores the body once per hash and records the upload. Returns a staged body
/// that turned out to duplicate a stored one (to be discarded).
fn commit(
    conn: &rusqlite::Connection,
    staged: Option<i64>,
    r: &UploadRecord,
    hash_given: bool,
) -> Result<Option<i64>, ApiError> {
    if !extern_keys::is_active(conn, &r.extern_pub)? {
        return Err(ApiError::ExternUnknown(r.extern_pub.to_string()));
    }
    let size = i64::try_from(r.size).map_err(|_| StoreError::Invariant("size overflow".into()))?;
    let (content_id, duplicate) = match (staging::find(conn, &r.h_body)?, staged) {
        (Some((id, _)), staged) => (id, staged),
        (None, Some(id)) => {
            conn.execute(
                "UPDATE kyc_contents SET h_body = ?2, size = ?3 WHERE content_id = ?1",
                params![id, r.h_body.as_bytes(), size],
            )?;
            (id, None)
        }
        (None, None) => return Err(StoreError::Invariant("the stored body vanished".into()).into()),
    };
    let inserted = conn.execute(
        "INSERT INTO kyc_uploads (content_id, extern_pub, payto, h_normalized_payto, h_body, content_type, size, uploaded_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (h_normalized_payto, h_body) DO NOTHING",
        params![
            content_id,
            r.extern_pub,
            r.payto,
            r.h_customer,
            r.h_body,
            r.content_type,
            size,
            r.uploaded_us
        ],
    )?;
    if inserted == 0 && hash_given {
        // A concurrent upload of the same body for the same customer won.
        return Err(ApiError::KycBulkAlreadyKnown);
    }
    Ok(duplicate)
}

#[derive(Deserialize)]
struct NewExternKey {
    extern_pub: EddsaPublicKey,
    name: String,
}

#[derive(Serialize)]
struct ExternKeyList {
    extern_keys: Vec<extern_keys::ExternKey>,
}

async fn extern_keys_endpoint(state: AppState, mut req: Request) -> Result<Response, ApiError> {
    req.authorize(&state.token)?;
    if req.method != Method::GET && req.method != Method::POST {
        return Err(ApiError::MethodNotAllowed { method: req.method.to_string(), allow: "GET, POST" });
    }
    if req.method == Method::GET {
        let keys = state.store.read(extern_keys::list).await.map_err(ApiError::fetch)?;
        return Ok(json_response(StatusCode::OK, &ExternKeyList { extern_keys: keys }));
    }
    let new: NewExternKey = req.json(state.settings.max_json).await?;
    if new.name.trim().is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
    let now_us = state.clock.now_us();
    state
        .store
        .write(move |conn| {
            extern_keys::upsert(conn, &new.extern_pub, new.name.trim(), now_us).map_err(ApiError::from)
        })
        .await?;
    Ok(no_content())
}

async fn disable_extern_key(state: AppState, extern_pub: String, req: Request) -> Result<Response, ApiError> {
    // The token first: without it, not even the methods of a route are told.
    req.authorize(&state.token)?;
    req.allow(&Method::POST, "POST")?;
    let extern_pub = parse_key("EXTERN_PUB", &extern_pub)?;
    let known = state
        .store
        .write(move |conn| extern_keys::disable(conn, &extern_pub).map_err(ApiError::from))
        .await?;
    if known { Ok(no_content()) } else { Err(ApiError::ExternUnknown(extern_pub.to_string())) }
}

/// An upload as the operator API lists it.
#[derive(Debug, Serialize)]
pub struct UploadEntry {
    pub row_id: i64,
    pub h_body: HashCode,
    pub content_type: String,
    pub size: u64,
    pub uploaded_at: Timestamp,
    pub extern_pub: EddsaPublicKey,
    pub extern_name: String,
    pub payto: String,
}

#[derive(Serialize)]
struct UploadList {
    uploads: Vec<UploadEntry>,
}

#[derive(Deserialize)]
struct ListQuery {
    payto: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Uploads, of one customer (by normalized payto) or of all, a page at a time.
pub fn list(
    conn: &rusqlite::Connection,
    customer: Option<ShortHashCode>,
    page: &Page,
) -> Result<Vec<UploadEntry>, StoreError> {
    let sql = format!(
        "SELECT u.upload_id, u.h_body, u.content_type, u.size, u.uploaded_us, u.extern_pub, e.name, u.payto
         FROM kyc_uploads u JOIN extern_keys e ON e.extern_pub = u.extern_pub
         WHERE (?1 IS NULL OR u.h_normalized_payto = ?1) AND {}
         ORDER BY u.upload_id {} LIMIT ?3",
        page.condition("u.upload_id", "?2"),
        page.order()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![customer, page.start, page.limit], |r| {
        Ok(UploadEntry {
            row_id: r.get(0)?,
            h_body: r.get(1)?,
            content_type: r.get(2)?,
            size: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            uploaded_at: Timestamp::from_unix_micros(r.get(4)?),
            extern_pub: r.get(5)?,
            extern_name: r.get(6)?,
            payto: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

async fn list_uploads(state: AppState, req: Request) -> Result<Response, ApiError> {
    // The token first: without it, not even the methods of a route are told.
    req.authorize(&state.token)?;
    req.allow(&Method::GET, "GET")?;
    let query: ListQuery = req.query()?;
    let customer = match &query.payto {
        Some(p) => Some(
            Payto::parse_account(p)
                .map_err(|e| ApiError::ParameterMalformed { name: "payto".into(), detail: e.to_string() })?
                .normalized_hash(),
        ),
        None => None,
    };
    let page = PageQuery { limit: query.limit, offset: query.offset }.resolve(20)?;
    let uploads = state.store.read(move |conn| list(conn, customer, &page)).await.map_err(ApiError::fetch)?;
    Ok(json_response(StatusCode::OK, &UploadList { uploads }))
}

/// A stored body's id, size and the Content-Type it was last uploaded with.
pub fn find_blob(
    conn: &rusqlite::Connection,
    h_body: &HashCode,
) -> Result<Option<(i64, u64, String)>, StoreError> {
    let Some((content_id, size)) = staging::find(conn, h_body)? else { return Ok(None) };
    let content_type: String = conn
        .query_row(
            "SELECT content_type FROM kyc_uploads WHERE content_id = ?1 ORDER BY upload_id DESC LIMIT 1",
            [content_id],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok(Some((content_id, size, content_type)))
}

/// Streams a stored body's chunks from a blocking reader thread.
pub fn blob_chunks(store: &Store, content_id: i64, size: u64) -> crate::server::BodyChunks {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(2);
    let store = store.clone();
    let chunks = size.div_ceil(staging::CHUNK_SIZE as u64);
    tokio::task::spawn_blocking(move || {
        let conn = match store.reader() {
            Ok(conn) => conn,
            Err(e) => {
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                return;
            }
        };
        for seq in 0..chunks as i64 {
            let item = staging::read_chunk(&conn, content_id, seq)
                .map(Bytes::from)
                .map_err(|e| io::Error::other(e.to_string()));
            let failed = item.is_err();
            // The client went away: stop reading.
            if tx.blocking_send(item).is_err() || failed {
                break;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

async fn download(state: AppState, h_body: String, req: Request) -> Result<Response, ApiError> {
    // The token first: without it, not even the methods of a route are told.
    req.authorize(&state.token)?;
    req.allow(&Method::GET, "GET")?;
    let h_body: HashCode = h_body
        .parse()
        .map_err(|e| ApiError::ParameterMalformed { name: "H_BODY".into(), detail: format!("{e}") })?;
    let found = state.store.read(move |conn| find_blob(conn, &h_body)).await.map_err(ApiError::fetch)?;
    let Some((content_id, size, content_type)) = found else {
        return Err(ApiError::ResourceUnknown { what: format!("upload {h_body}") });
    };
    let etag = format!("\"{h_body}\"");
    let mut response = if parse_hash_header(&req, "If-None-Match").ok().flatten() == Some(h_body) {
        let mut r = Response::new(Default::default());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = streamed_response(blob_chunks(&state.store, content_id, size));
        let headers = r.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        if let Ok(v) = HeaderValue::from_str(&content_type) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        r
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}
