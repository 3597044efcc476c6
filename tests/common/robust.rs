//! Helpers shared by the `robustness_*` tests: signed requests, and checks of
//! what the server's SQLite file holds (integrity, whole bodies, nothing
//! staged, a fingerprint of every committed row).

use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha512};
use taler_lite::crypto::{EddsaPrivateKey, EddsaPublicKey, HashCode};

use super::TestServer;

use super::auditors::enable_body;
pub use super::bank::EXCHANGE_ACCOUNT as ACCOUNT;
use super::bank::reserve_registration;
// Re-exported for the robustness tests, which take these from here.
use super::kyc::signed_upload;
#[allow(unused_imports)]
pub use super::kyc::{CUSTOMER as PAYTO, body_hash as hash, server_with_party, upload_signature};

/// Unique bytes with a PDF magic, so they pass the content sniffing.
pub fn pdf_body(seed: u64, len: usize) -> Vec<u8> {
    let mut body = format!("%PDF-1.7\n% {seed}\n").into_bytes();
    let mut x = seed | 1;
    while body.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.extend_from_slice(&x.to_le_bytes());
    }
    body.truncate(len.max(16));
    body
}

pub fn upload_request(
    client: &reqwest::Client,
    url: &str,
    party: &EddsaPrivateKey,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    upload_headers(client, url, party, hash(&body)).body(body)
}

/// An upload's headers, for a body with hash `h` sent separately.
pub fn upload_headers(
    client: &reqwest::Client,
    url: &str,
    party: &EddsaPrivateKey,
    h: HashCode,
) -> reqwest::RequestBuilder {
    signed_upload(client, url, party, PAYTO, "application/pdf", h).header("If-None-Match", h.to_string())
}

/// The head of a `POST /kyc-bulk/{party}` of the PDF `body` to `addr`, written by hand for a
/// raw socket: signed by `party` about [`PAYTO`], its hash in `If-None-Match`.
pub fn raw_upload_head(addr: &str, party: &EddsaPrivateKey, body: &[u8]) -> String {
    let h = hash(body);
    format!(
        "POST /kyc-bulk/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\nTaler-Customer-Payto: {PAYTO}\r\nTaler-Extern-Signature: {}\r\nIf-None-Match: {h}\r\n\r\n",
        party.public_key(),
        body.len(),
        upload_signature(party, h, PAYTO)
    )
}

/// The head of a JSON `POST /{path}` of `len` bytes to `addr`, written by hand for a raw socket.
pub fn raw_json_head(addr: &str, path: &str, len: usize) -> String {
    format!(
        "POST /{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

pub fn registration(auth: &EddsaPrivateKey) -> Value {
    reserve_registration(auth, ACCOUNT, "KUDOS:1")
}

pub fn auditor_enable(master: &EddsaPrivateKey, auditor: &EddsaPublicKey) -> Value {
    enable_body(master, auditor, "https://auditor.example.com/", "Auditor", 1_700_000_000)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub fn integrity_ok(server: &TestServer) {
    let ok: String = server.db().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}

pub fn staged_left(server: &TestServer) -> (i64, i64) {
    let conn = server.db();
    let staged =
        conn.query_row("SELECT count(*) FROM kyc_contents WHERE h_body IS NULL", [], |r| r.get(0)).unwrap();
    let orphans = conn
        .query_row(
            "SELECT count(*) FROM kyc_chunks WHERE content_id NOT IN
               (SELECT content_id FROM kyc_contents WHERE h_body IS NOT NULL)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (staged, orphans)
}

/// Failed uploads discard their chunks in the background: waits (bounded) for that.
pub fn wait_until_no_staged(server: &TestServer, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (staged, orphans) = staged_left(server);
        if staged == 0 && orphans == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{staged} staged bodies and {orphans} chunks left behind");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every stored body is whole: contiguous chunks whose bytes add up to its size
/// and hash to its `h_body`; every upload record points at such a body.
pub fn bodies_are_whole(server: &TestServer) {
    let conn = server.db();
    let mut contents = conn.prepare("SELECT content_id, h_body, size FROM kyc_contents").unwrap();
    let rows: Vec<(i64, Option<Vec<u8>>, i64)> = contents
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (id, h_body, size) in rows {
        let h_body = h_body.unwrap_or_else(|| panic!("content {id} is staged (NULL hash)"));
        let mut chunks =
            conn.prepare("SELECT seq, data FROM kyc_chunks WHERE content_id = ?1 ORDER BY seq").unwrap();
        let mut hasher = Sha512::new();
        let mut total = 0i64;
        for (i, chunk) in chunks
            .query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .enumerate()
        {
            assert_eq!(chunk.0, i as i64, "content {id}: chunk sequence has a gap");
            total += chunk.1.len() as i64;
            hasher.update(&chunk.1);
        }
        assert_eq!(total, size, "content {id}: chunks do not add up to its size");
        let digest: [u8; 64] = hasher.finalize().into();
        assert_eq!(digest.as_slice(), h_body.as_slice(), "content {id}: bytes do not match its hash");
    }
    let dangling: i64 = conn
        .query_row(
            "SELECT count(*) FROM kyc_uploads u LEFT JOIN kyc_contents c ON c.content_id = u.content_id
             WHERE c.content_id IS NULL OR c.h_body IS NOT u.h_body OR c.size != u.size",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dangling, 0, "upload records without their whole body");
}

/// A digest of every committed row (staged bodies excluded: they are removed
/// in the background after a refused upload), to prove "nothing changed".
pub fn fingerprint(conn: &rusqlite::Connection) -> Vec<u8> {
    let tables = [
        ("auditors", "SELECT * FROM auditors ORDER BY auditor_pub"),
        ("extern_keys", "SELECT * FROM extern_keys ORDER BY extern_pub"),
        ("kyc_contents", "SELECT * FROM kyc_contents WHERE h_body IS NOT NULL ORDER BY content_id"),
        (
            "kyc_chunks",
            "SELECT * FROM kyc_chunks WHERE content_id IN
               (SELECT content_id FROM kyc_contents WHERE h_body IS NOT NULL) ORDER BY content_id, seq",
        ),
        ("kyc_uploads", "SELECT * FROM kyc_uploads ORDER BY upload_id"),
        ("registrations", "SELECT * FROM registrations ORDER BY registration_id"),
        ("incoming_transfers", "SELECT * FROM incoming_transfers ORDER BY row_id"),
    ];
    let mut hasher = Sha512::new();
    for (name, sql) in tables {
        hasher.update(name.as_bytes());
        let mut stmt = conn.prepare(sql).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                hasher.update(format!("{:?}|", row.get_ref(i).unwrap()).as_bytes());
            }
            hasher.update(b"\n");
        }
    }
    hasher.finalize().to_vec()
}

/// Checks an error answer's shape: JSON `ErrorDetail` with code, hint, detail.
pub fn is_error_detail(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<u64, String> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct != "application/json" {
        return Err(format!("content-type {ct:?}"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if !v["hint"].is_string() || !v["detail"].is_string() {
        return Err(format!("no hint or detail in {v}"));
    }
    v["code"].as_u64().ok_or_else(|| format!("no code in {v}"))
}

pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
