//! Third-party bulk KYC uploads: `POST /kyc-bulk/$EXTERN_PUB`, the operator's
//! third-party keys and read-back under `/private/`.
//!
//! The upload answers every check it can from the headers alone (checks 1-8 of
//! `docs/kyc-bulk.md`, whose numbers the comments below carry) before it touches the body, so a client with
//! `Expect: 100-continue` never sends a body that would be refused. The body is
//! then hashed as it arrives and staged in 1 MiB chunks ([`crate::store::kyc`]): memory
//! stays flat whatever the size, and the write lock is held per chunk, not per
//! upload. Content checks (magic bytes, ZIP directory) run on the first bytes
//! and on the staged data, never on an extracted copy. The 204 comes after one
//! short durable commit that stores the body once per hash and records who sent
//! it about whom.

use std::pin::Pin;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::app::AppState;
use crate::crypto::{EddsaPublicKey, EddsaSignature, ExternKycDataBulkBindingPS, HashCode, SignedStruct};
use crate::domain::exchange::third_parties;
use crate::error::{ApiError, json_response};
use crate::http::stream::stream_body;
use crate::http::{PageQuery, PathParams, Request, Route, Signer, no_content};
use crate::kyc_content::{self, DeclaredType};
use crate::payto::Payto;
use crate::staged_budget::Reservation;
use crate::store::kyc::{self, CHUNK_SIZE, Recorded, Staging, StoredBody, UploadEntry, UploadRecord};
use crate::store::{Durability, Store, StoreError, extern_keys};

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::signed(Method::POST, "/kyc-bulk/{extern_pub}", Signer::ThirdParty, upload)
            .answers("204; 400 (25/26), 403 (1903), 404 (1904), 408, 411, 412 (1905), 413 (32)"),
        Route::operator(Method::GET, "/private/extern-keys", list_extern_keys).answers("the third parties"),
        Route::operator(Method::POST, "/private/extern-keys", add_extern_key)
            .body(r#"`{"extern_pub","name"}`"#)
            .answers("204: the third party added, or re-enabled and renamed"),
        Route::operator(Method::POST, "/private/extern-keys/{extern_pub}/disable", disable_extern_key)
            .answers("204; 404 (1904)"),
        Route::operator(Method::GET, "/private/kyc-bulk", list_uploads)
            .query("payto=&limit=&offset=")
            .answers("uploads, of one customer or of all"),
        Route::operator(Method::GET, "/private/kyc-bulk/{h_body}", download)
            .answers("the body, streamed, with `Content-Type`, `Content-Length`, `ETag`; 404 (1906) for an unknown hash"),
    ]
}

fn parse_key(name: &str, text: &str) -> Result<EddsaPublicKey, ApiError> {
    text.parse().map_err(|e| ApiError::parameter(name, e))
}

/// A hash header; entity tags may come quoted (`"..."`).
fn parse_hash_header(req: &Request, name: &'static str) -> Result<Option<HashCode>, ApiError> {
    let Some(value) = req.header(name)? else { return Ok(None) };
    let unquoted = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    unquoted.parse::<HashCode>().map(Some).map_err(|e| ApiError::header(name, e))
}

/// The body hash a client announced, and under which header name (upstream's
/// `If-Not-Match` or HTTP's `If-None-Match`), so that errors name what it sent.
#[derive(Clone, Copy)]
struct GivenHash {
    h_body: HashCode,
    header: &'static str,
}

/// What the headers say about an upload, checked (checks 3-7 of `docs/kyc-bulk.md`).
struct UploadHeaders {
    declared_size: u64,
    declared: DeclaredType,
    content_type: String,
    payto: Payto,
    signature: EddsaSignature,
    given: Option<GivenHash>,
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
    let given = match (parse_hash_header(req, "If-Not-Match")?, parse_hash_header(req, "If-None-Match")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::header(
                "If-None-Match",
                "If-Not-Match and If-None-Match give different hashes",
            ));
        }
        (Some(h_body), _) => Some(GivenHash { h_body, header: "If-Not-Match" }),
        (None, Some(h_body)) => Some(GivenHash { h_body, header: "If-None-Match" }),
        (None, None) => None,
    };
    Ok(UploadHeaders { declared_size, declared, content_type, payto, signature, given })
}

fn signature_valid(extern_pub: &EddsaPublicKey, h: &UploadHeaders, h_body: HashCode) -> bool {
    ExternKycDataBulkBindingPS { h_body, h_payto: h.payto.full_hash() }.verify(extern_pub, &h.signature)
}

/// A staged body, deleted again unless the upload committed it, whatever way
/// the handler ends (an error, or the client going away and the future dropped).
struct Staged {
    store: Store,
    content: Option<Staging>,
    /// An unverified upload's share of the staging budget: given back once the body is
    /// committed, or once its rows are deleted (not when the handler ends: the budget
    /// bounds what is in the file).
    reservation: Option<Reservation>,
}

impl Staged {
    async fn begin(state: &AppState, reservation: Option<Reservation>) -> Result<Staged, ApiError> {
        let content = kyc::begin(&state.store, state.clock.now_us()).await?;
        Ok(Staged { store: state.store.clone(), content: Some(content), reservation })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(content) = self.content.take() {
            kyc::discard_later(&self.store, content, self.reservation.take());
        }
    }
}

/// Where the streamed body goes.
enum Destination {
    /// A body the exchange does not have: staged chunk by chunk.
    Stage(Staged),
    /// The client gave the hash of a body stored already: the stream is only
    /// hashed, and compared with the stored one.
    Compare(StoredBody),
}

impl Destination {
    fn staged(&self) -> Option<Staging> {
        match self {
            Destination::Stage(staged) => staged.content,
            Destination::Compare(_) => None,
        }
    }
}

/// What reading the body produced.
struct Received {
    h_body: HashCode,
    size: u64,
}

/// `POST /kyc-bulk/$EXTERN_PUB`: a third party uploads a document about a
/// customer (checks 1-14 of `docs/kyc-bulk.md`).
async fn upload(state: AppState, params: PathParams, mut req: Request) -> Result<Response, ApiError> {
    // 1-2. The third party.
    let extern_pub = parse_key("EXTERN_PUB", params.get("extern_pub"))?;
    if !third_parties::is_active(&state.store, extern_pub).await? {
        return Err(ApiError::ExternUnknown(extern_pub.to_string()));
    }
    // 3-7.
    let headers = check_headers(&req, state.settings.max_upload)?;
    let h_customer = headers.payto.normalized_hash();
    // 8. With the hash given, the signature and duplicates are checked now,
    // before a byte of the body is read.
    let destination = match headers.given {
        Some(given) => {
            if !signature_valid(&extern_pub, &headers, given.h_body) {
                return Err(ApiError::KycBulkSignatureInvalid(
                    "Taler-Extern-Signature does not verify over the given body hash and customer payto",
                ));
            }
            let h_body = given.h_body;
            let (known, stored) = state
                .store
                .read(move |db| Ok((kyc::is_known(db, &h_customer, &h_body)?, kyc::find(db, &h_body)?)))
                .await?;
            if known {
                return Err(ApiError::KycBulkAlreadyKnown);
            }
            match stored {
                Some(body) => Destination::Compare(body),
                None => Destination::Stage(Staged::begin(&state, None).await?),
            }
        }
        None => {
            // Unverified until whole: within the budget of staged bytes, or not at all.
            let reservation = state
                .staged_budget
                .reserve(*extern_pub.as_bytes(), headers.declared_size)
                .map_err(staged_refusal)?;
            Destination::Stage(Staged::begin(&state, Some(reservation)).await?)
        }
    };

    // 9-10. Stream: hash, sniff the first bytes, stage.
    let received = receive(&state, &mut req, &headers, destination.staged()).await?;

    // 11. ZIP archives: the central directory and each entry's first bytes,
    // read from the stored chunks.
    if headers.declared == DeclaredType::Zip {
        let target = match &destination {
            Destination::Stage(staged) => {
                staged.content.map(|s| StoredBody { content_id: s.content, size: received.size })
            }
            // The stored body is this one if the hashes agree; otherwise check
            // 12 refuses the upload (400) anyway.
            Destination::Compare(body) => {
                (headers.given.map(|g| g.h_body) == Some(received.h_body)).then_some(*body)
            }
        };
        if let Some(body) = target {
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
                let reader = kyc::ChunkReader::new(&store, body)?;
                kyc_content::check_zip(reader).map(|_| ()).map_err(|e| ApiError::header("Content-Type", e))
            })
            .await
            .map_err(|e| ApiError::Internal(format!("ZIP check task failed: {e}")))??;
        }
    }

    // 12. The hash, and the signature if it could not be checked before.
    match headers.given {
        Some(given) if given.h_body != received.h_body => {
            return Err(ApiError::header(
                given.header,
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
    let staged = destination.staged();
    let recorded =
        state.store.write(Durability::Durable, move |tx| kyc::record_upload(tx, staged, &record)).await?;
    match (recorded, destination) {
        (Recorded::Stored { duplicate }, Destination::Stage(mut staged)) => {
            // Committed: the body must stay, unless it turned out to be a
            // second copy of a stored one.
            staged.content = duplicate;
        }
        (Recorded::Stored { .. }, Destination::Compare(_)) => {}
        (Recorded::ExternUnknown, _) => return Err(ApiError::ExternUnknown(extern_pub.to_string())),
        // Known already: an error when the client asked for it with the hash;
        // without the hash the upload is idempotent (the staged copy goes).
        (Recorded::AlreadyKnown, _) if headers.given.is_some() => return Err(ApiError::KycBulkAlreadyKnown),
        (Recorded::AlreadyKnown, _) => {}
    }
    // 14. Stored and durable: 204, no body.
    Ok(no_content())
}

/// The 503 for an unverified upload beyond the budget (README "Known limits").
fn staged_refusal(refused: crate::staged_budget::Refused) -> ApiError {
    use crate::staged_budget::Refused;
    let what = match refused {
        Refused::Bytes { reserved, max } => format!(
            "{reserved} of the {max} bytes allowed for uploads without the body's hash (--max-staged) are taken; \
             send the hash (If-None-Match) to have the signature checked first, or retry later"
        ),
        Refused::Party { max } => format!(
            "this third party has {max} uploads without the body's hash under way, the most allowed at once; \
             send the hash (If-None-Match) to have the signature checked first, or retry later"
        ),
    };
    ApiError::Busy { what, retry_after_s: 10, close: true }
}

/// A chunk write under way.
type ChunkWrite = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// Reads the body: hashes it, checks its first bytes, stages it in chunks
/// (with one chunk write in flight while the next is read).
async fn receive(
    state: &AppState,
    req: &mut Request,
    headers: &UploadHeaders,
    staged: Option<Staging>,
) -> Result<Received, ApiError> {
    let mut hasher = Sha512::new();
    let mut first = Vec::with_capacity(kyc_content::SNIFF_LEN);
    let mut sniffed = false;
    let mut buf = BytesMut::with_capacity(CHUNK_SIZE);
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
        if let Some(content) = staged {
            buf.extend_from_slice(&chunk);
            while buf.len() >= CHUNK_SIZE {
                let data = buf.split_to(CHUNK_SIZE).freeze();
                if let Some(previous) = in_flight.take() {
                    previous.await?;
                }
                in_flight = Some(Box::pin(kyc::append(&state.store, content, seq, data)));
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
    if let (Some(content), false) = (staged, buf.is_empty()) {
        kyc::append(&state.store, content, seq, buf.freeze()).await?;
    }
    let digest: [u8; 64] = hasher.finalize().into();
    Ok(Received { h_body: HashCode::from_bytes(digest), size: total })
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

/// `GET /private/extern-keys`: the third parties.
async fn list_extern_keys(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    let keys = third_parties::list(&state.store).await?;
    Ok(json_response(StatusCode::OK, &ExternKeyList { extern_keys: keys }))
}

/// `POST /private/extern-keys`: adds (or re-enables and renames) a third party.
async fn add_extern_key(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let new: NewExternKey = req.json(state.settings.max_json).await?;
    third_parties::add(&state.store, new.extern_pub, &new.name, state.clock.now_us()).await?;
    Ok(no_content())
}

/// `POST /private/extern-keys/$EXTERN_PUB/disable`: a third party may no longer upload.
async fn disable_extern_key(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    let extern_pub = parse_key("EXTERN_PUB", params.get("extern_pub"))?;
    third_parties::disable(&state.store, extern_pub).await?;
    Ok(no_content())
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

/// `GET /private/kyc-bulk?payto=&limit=&offset=`: uploads, of one customer or of all.
async fn list_uploads(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let query: ListQuery = req.query()?;
    let customer = match &query.payto {
        Some(p) => {
            Some(Payto::parse_account(p).map_err(|e| ApiError::parameter("payto", e))?.normalized_hash())
        }
        None => None,
    };
    let page = PageQuery { limit: query.limit, offset: query.offset }.resolve(20)?;
    let uploads = state.store.read(move |db| kyc::list(db, customer, &page)).await?;
    Ok(json_response(StatusCode::OK, &UploadList { uploads }))
}

/// Whether an `If-None-Match` value (RFC 9110: `*`, or a list of entity tags,
/// weak or strong) matches the body's tag.
fn none_match(value: &str, h_body: &HashCode) -> bool {
    let value = value.trim();
    value == "*"
        || value.split(',').any(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let tag = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(tag);
            tag.parse::<HashCode>().is_ok_and(|h| h == *h_body)
        })
}

/// `GET /private/kyc-bulk/$H_BODY`: a stored body, streamed.
async fn download(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    let h_body: HashCode = params.get("h_body").parse().map_err(|e| ApiError::parameter("H_BODY", e))?;
    let Some(blob) = state.store.read(move |db| kyc::find_blob(db, &h_body)).await? else {
        return Err(ApiError::KycBulkUnknown(h_body.to_string()));
    };
    let not_modified = req.header("If-None-Match")?.is_some_and(|v| none_match(v, &h_body));
    let mut response = if not_modified {
        let mut r = Response::new(Default::default());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = stream_body(&state.store, blob.body);
        let headers = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&blob.content_type) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        r
    };
    if let Ok(v) = HeaderValue::from_str(&format!("\"{h_body}\"")) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_follows_rfc_9110() {
        let h = HashCode::from_bytes([7; 64]);
        let other = HashCode::from_bytes([8; 64]);
        assert!(none_match("*", &h));
        assert!(none_match(&format!("\"{h}\""), &h));
        assert!(none_match(&format!("W/\"{h}\""), &h));
        assert!(none_match(&format!("\"{other}\", W/\"{h}\""), &h));
        assert!(none_match(&h.to_string(), &h));
        assert!(!none_match(&format!("\"{other}\""), &h));
        assert!(!none_match("\"nonsense\"", &h));
    }
}
