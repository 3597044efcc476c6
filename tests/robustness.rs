//! Robustness of the real binary over real HTTP (issue 6):
//!
//! - crash: `kill -9` at random moments under mixed load, 20 times; every
//!   acknowledged write survives, nothing unacknowledged is half there,
//!   `integrity_check` passes and no staged upload is left;
//! - disk full (`--max-db-pages`): uploads and registrations get 500 / code 52,
//!   nothing is corrupted, reads go on, and writes succeed again with room;
//! - overload and slow clients: hundreds of connections, headers one byte at a
//!   time, bodies that stop: the others are served without 5xx or dropped
//!   connections, idle requests are cut after `--request-timeout` and what
//!   they staged is removed;
//! - bad input: proptest throws random and mutated bodies, headers, path
//!   segments, query strings and methods at every endpoint: never a 5xx, never
//!   a panic, errors are always `ErrorDetail` JSON, and a refused request
//!   stores nothing;
//! - access: every operator route (`/private/`, wire-gateway admin and
//!   history) refuses a missing or wrong token with 401 / code 40 and changes
//!   nothing.
//!
//! Every loop is bounded in count and time; everything talks to 127.0.0.1 only.
//! Random choices outside proptest come from a seed printed on failure
//! (`ROBUSTNESS_SEED` replays one).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestServer;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use taler_lite::crypto::{
    EddsaPrivateKey, EddsaPublicKey, ExternKycDataBulkBindingPS, HashCode, MasterAddAuditorPS, SignedStruct,
};
use taler_lite::payto::Payto;
use taler_lite::timestamp::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ACCOUNT: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";
const PAYTO: &str = "payto://iban/DE89370400440532013000?receiver-name=Erika%20Mustermann";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A small deterministic generator for the non-proptest randomness (kill
/// moments, body bytes), so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("ROBUSTNESS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        eprintln!("{test}: ROBUSTNESS_SEED={seed}");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Unique bytes with a PDF magic, so they pass the content sniffing.
fn pdf_body(seed: u64, len: usize) -> Vec<u8> {
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

fn hash(body: &[u8]) -> HashCode {
    let digest: [u8; 64] = Sha512::digest(body).into();
    HashCode::from_bytes(digest)
}

fn upload_signature(party: &EddsaPrivateKey, h_body: HashCode, payto: &str) -> String {
    let payto: Payto = payto.parse().unwrap();
    ExternKycDataBulkBindingPS { h_body, h_payto: payto.full_hash() }.sign(party).to_string()
}

fn upload_request(
    client: &reqwest::Client,
    url: &str,
    party: &EddsaPrivateKey,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    upload_headers(client, url, party, hash(&body)).body(body)
}

/// An upload's headers, for a body with hash `h` sent separately.
fn upload_headers(
    client: &reqwest::Client,
    url: &str,
    party: &EddsaPrivateKey,
    h: HashCode,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{url}kyc-bulk/{}", party.public_key()))
        .header("Content-Type", "application/pdf")
        .header("Taler-Customer-Payto", PAYTO)
        .header("Taler-Extern-Signature", upload_signature(party, h, PAYTO))
        .header("If-None-Match", h.to_string())
}

fn registration(auth: &EddsaPrivateKey) -> Value {
    json!({
        "credit_account": ACCOUNT,
        "type": "reserve",
        "recurrent": false,
        "credit_amount": "KUDOS:1",
        "alg": "EdDSA",
        "account_pub": auth.public_key().to_string(),
        "authorization_pub": auth.public_key().to_string(),
        "authorization_sig": auth.sign(auth.public_key().as_bytes()).to_string(),
    })
}

fn auditor_enable(master: &EddsaPrivateKey, auditor: &EddsaPublicKey) -> Value {
    let url = "https://auditor.example.com/";
    let t = 1_700_000_000;
    let sig = MasterAddAuditorPS::new(Timestamp::from_secs(t), *auditor, url).sign(master);
    json!({
        "auditor_url": url,
        "auditor_name": "Auditor",
        "auditor_pub": auditor.to_string(),
        "master_sig": sig.to_string(),
        "validity_start": {"t_s": t},
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn integrity_ok(server: &TestServer) {
    let ok: String = server.db().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}

fn staged_left(server: &TestServer) -> (i64, i64) {
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
fn wait_until_no_staged(server: &TestServer, within: Duration) {
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
fn bodies_are_whole(server: &TestServer) {
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
fn fingerprint(conn: &rusqlite::Connection) -> Vec<u8> {
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
fn is_error_detail(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<u64, String> {
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

// ---------------------------------------------------------------------------
// Crash
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Acknowledged {
    registrations: Vec<String>,
    auditors: Vec<String>,
    uploads: Vec<HashCode>,
    /// Answers that are neither the success nor a connection cut by the kill.
    unexpected: Vec<String>,
}

const CRASH_ROUNDS: usize = 20;

/// Runs `work` until `stop` (set just before the kill) or an error; an error
/// before `stop` (a request failing while the server lives) is returned.
async fn worker<F, Fut>(stop: Arc<AtomicBool>, mut work: F) -> Option<String>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), reqwest::Error>>,
{
    for i in 0..10_000u64 {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Err(e) = work(i).await {
            return (!stop.load(Ordering::Relaxed)).then(|| format!("request failed before the kill: {e:?}"));
        }
    }
    None
}

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_write() {
    let started = Instant::now();
    let mut rng = Rng::from_env("crash");
    let rt = runtime();
    let master = EddsaPrivateKey::generate().unwrap();
    let party = Arc::new(EddsaPrivateKey::generate().unwrap());
    let master_pub = master.public_key().to_string();
    let extern_arg = format!("{}=Crash Party", party.public_key());
    let args = ["--master-public-key", master_pub.as_str(), "--extern-key", extern_arg.as_str()];
    let master = Arc::new(master);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut killed_during_upload = 0;

    for round in 0..=CRASH_ROUNDS {
        let server = TestServer::start_in(dir.clone(), &args);
        // After a restart: everything acknowledged before the kill is there.
        verify_after_restart(&server, &acked.lock().unwrap(), round);
        if round == CRASH_ROUNDS {
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        let url = server.url.clone();
        let upload_in_flight = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
            tasks.push(rt.spawn(worker(stop.clone(), move |_| {
                let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
                async move {
                    let auth = EddsaPrivateKey::generate().unwrap();
                    let r = client
                        .post(format!("{url}taler-prepared-transfer/registration"))
                        .json(&registration(&auth))
                        .send()
                        .await?;
                    let status = r.status().as_u16();
                    let body = r.bytes().await?;
                    let mut a = acked.lock().unwrap();
                    if status == 200 {
                        a.registrations.push(auth.public_key().to_string());
                    } else {
                        a.unexpected
                            .push(format!("registration {status}: {}", String::from_utf8_lossy(&body)));
                    }
                    Ok(())
                }
            })));
        }
        {
            let (client, url, acked, master) = (client.clone(), url.clone(), acked.clone(), master.clone());
            tasks.push(rt.spawn(worker(stop.clone(), move |_| {
                let (client, url, acked, master) =
                    (client.clone(), url.clone(), acked.clone(), master.clone());
                async move {
                    let auditor = EddsaPrivateKey::generate().unwrap().public_key();
                    let r = client
                        .post(format!("{url}management/auditors"))
                        .json(&auditor_enable(&master, &auditor))
                        .send()
                        .await?;
                    let status = r.status().as_u16();
                    let body = r.bytes().await?;
                    let mut a = acked.lock().unwrap();
                    if status == 204 {
                        a.auditors.push(auditor.to_string());
                    } else {
                        a.unexpected.push(format!("auditor {status}: {}", String::from_utf8_lossy(&body)));
                    }
                    Ok(())
                }
            })));
        }
        // Small uploads, and a large one streamed slowly so that kills often
        // land while its chunks are staged.
        // The large body's filler is made once (the test crate is not
        // optimised); each upload gets a unique first part.
        let filler: Vec<Bytes> =
            pdf_body(rng.next(), 3 << 20).chunks(256 << 10).map(Bytes::copy_from_slice).collect();
        for (big, seed) in [(false, rng.next()), (true, rng.next())] {
            let (client, url, acked, party) = (client.clone(), url.clone(), acked.clone(), party.clone());
            let (in_flight, filler) = (upload_in_flight.clone(), filler.clone());
            tasks.push(rt.spawn(worker(stop.clone(), move |i| {
                let (client, url, acked, party) = (client.clone(), url.clone(), acked.clone(), party.clone());
                let (in_flight, filler) = (in_flight.clone(), filler.clone());
                async move {
                    let (request, h) = if big {
                        let mut parts = vec![Bytes::from(format!("%PDF-1.7\n% {seed} {i}\n"))];
                        parts.extend(filler);
                        let mut hasher = Sha512::new();
                        parts.iter().for_each(|p| hasher.update(p));
                        let h = HashCode::from_bytes(hasher.finalize().into());
                        let size: usize = parts.iter().map(Bytes::len).sum();
                        let stream =
                            futures_util::stream::unfold(parts.into_iter(), |mut parts| async move {
                                let next = parts.next()?;
                                tokio::time::sleep(Duration::from_millis(15)).await;
                                Some((Ok::<_, std::io::Error>(next), parts))
                            });
                        let request = upload_headers(&client, &url, &party, h)
                            .header("Content-Length", size)
                            .body(reqwest::Body::wrap_stream(stream));
                        (request, h)
                    } else {
                        let body = pdf_body(seed.wrapping_add(i), 2000 + (i as usize % 7) * 9000);
                        let h = hash(&body);
                        (upload_request(&client, &url, &party, body), h)
                    };
                    if big {
                        in_flight.store(true, Ordering::Relaxed);
                    }
                    let r = request.send().await?;
                    let status = r.status().as_u16();
                    let answer = r.bytes().await?;
                    if big {
                        in_flight.store(false, Ordering::Relaxed);
                    }
                    let mut a = acked.lock().unwrap();
                    if status == 204 {
                        a.uploads.push(h);
                    } else {
                        a.unexpected.push(format!("upload {status}: {}", String::from_utf8_lossy(&answer)));
                    }
                    Ok(())
                }
            })));
        }
        let pause = Duration::from_millis(50 + rng.below(700));
        rt.block_on(async { tokio::time::sleep(pause).await });
        if upload_in_flight.load(Ordering::Relaxed) {
            killed_during_upload += 1;
        }
        stop.store(true, Ordering::Relaxed);
        server.kill9();
        rt.block_on(async {
            for t in tasks {
                let failed =
                    tokio::time::timeout(Duration::from_secs(30), t).await.expect("a worker hung").unwrap();
                acked.lock().unwrap().unexpected.extend(failed);
            }
        });
        let a = acked.lock().unwrap();
        assert!(a.unexpected.is_empty(), "round {round}: {:?}", a.unexpected);
    }
    let a = acked.lock().unwrap();
    eprintln!(
        "crash: {CRASH_ROUNDS} kills ({killed_during_upload} during a large upload), {} registrations, {} auditors, {} uploads acknowledged, {:.1}s",
        a.registrations.len(),
        a.auditors.len(),
        a.uploads.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(!a.registrations.is_empty() && !a.auditors.is_empty() && !a.uploads.is_empty());
}

fn verify_after_restart(server: &TestServer, acked: &Acknowledged, round: usize) {
    integrity_ok(server);
    // Start-up removes staged uploads before it listens: none may be seen now.
    assert_eq!(staged_left(server), (0, 0), "round {round}: staged upload data survived a restart");
    bodies_are_whole(server);
    let conn = server.db();
    let registrations: HashSet<String> = {
        let mut stmt = conn.prepare("SELECT authorization_pub, response FROM registrations").unwrap();
        stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(|row| {
                let (key, response) = row.unwrap();
                // A registration is whole: its stored answer is the full JSON.
                let v: Value = serde_json::from_str(&response).expect("stored response is JSON");
                assert!(!v["subjects"].as_array().unwrap().is_empty());
                key_text(&key)
            })
            .collect()
    };
    for key in &acked.registrations {
        assert!(registrations.contains(key), "round {round}: acknowledged registration {key} lost");
    }
    let auditors: HashSet<String> = {
        let mut stmt = conn.prepare("SELECT auditor_pub FROM auditors WHERE is_active = 1").unwrap();
        stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap().map(|k| key_text(&k.unwrap())).collect()
    };
    for key in &acked.auditors {
        assert!(auditors.contains(key), "round {round}: acknowledged auditor {key} lost");
    }
    let uploads: HashSet<Vec<u8>> = {
        let mut stmt = conn.prepare("SELECT h_body FROM kyc_uploads").unwrap();
        stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap().map(Result::unwrap).collect()
    };
    for h in &acked.uploads {
        assert!(uploads.contains(h.as_bytes().as_slice()), "round {round}: acknowledged upload {h} lost");
    }
}

fn key_text(bytes: &[u8]) -> String {
    let raw: [u8; 32] = bytes.try_into().expect("32-byte key");
    EddsaPublicKey::from_bytes(raw).to_string()
}

// ---------------------------------------------------------------------------
// Disk full
// ---------------------------------------------------------------------------

#[test]
fn a_full_database_answers_52_stays_sound_and_recovers_with_room() {
    let rt = runtime();
    let party = EddsaPrivateKey::generate().unwrap();
    let extern_arg = format!("{}=Full Party", party.public_key());
    // 192 pages of 16 KiB: 3 MiB, about 1.7 MiB of room besides the schema.
    let server = TestServer::start(&["--extern-key", &extern_arg, "--max-db-pages", "192"]);
    let url = server.url.clone();
    let client = reqwest::Client::new();
    let mut acked_registrations = Vec::new();
    let mut acked_uploads = Vec::new();
    let expect_52 = |what: &str, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]| {
        assert_eq!(status, 500, "{what}: {}", String::from_utf8_lossy(body));
        assert_eq!(is_error_detail(headers, body), Ok(52), "{what}: {}", String::from_utf8_lossy(body));
    };

    rt.block_on(async {
        // Uploads until the file is full: each either 204 or 500 / 52.
        let mut upload_failed = false;
        for i in 0..64u64 {
            let body = pdf_body(1000 + i, 256 << 10);
            let h = hash(&body);
            let r = upload_request(&client, &url, &party, body).send().await.unwrap();
            let (status, headers) = (r.status().as_u16(), r.headers().clone());
            let answer = r.bytes().await.unwrap();
            if status == 204 {
                acked_uploads.push(h);
                continue;
            }
            expect_52("upload into a full database", status, &headers, &answer);
            upload_failed = true;
            break;
        }
        assert!(upload_failed, "64 uploads of 256 KiB fitted into 192 pages");
        assert!(!acked_uploads.is_empty(), "not even one upload fitted");
    });
    // The refused upload's chunks are removed (deleting needs no new pages).
    wait_until_no_staged(&server, Duration::from_secs(20));

    rt.block_on(async {
        // Registrations, 16 at a time (one group commit), until one is refused.
        let mut refused = 0;
        for _ in 0..300 {
            let mut batch = Vec::new();
            for _ in 0..16 {
                let auth = EddsaPrivateKey::generate().unwrap();
                let request = client
                    .post(format!("{url}taler-prepared-transfer/registration"))
                    .json(&registration(&auth));
                batch.push(tokio::spawn(async move {
                    let r = request.send().await.unwrap();
                    let (status, headers) = (r.status().as_u16(), r.headers().clone());
                    (auth.public_key().to_string(), status, headers, r.bytes().await.unwrap())
                }));
            }
            for t in batch {
                let (key, status, headers, body) = t.await.unwrap();
                if status == 200 {
                    acked_registrations.push(key);
                } else {
                    expect_52("registration into a full database", status, &headers, &body);
                    refused += 1;
                }
            }
            // Reads keep working while writes fail.
            assert_eq!(server.get("config").await.status, 200);
            assert_eq!(server.get_private("private/registrations?limit=-5").await.status, 200);
            if refused > 0 {
                break;
            }
        }
        assert!(refused > 0, "4800 registrations fitted into 192 pages");
        // Now both kinds of write are refused, with 52, and the server answers.
        let auth = EddsaPrivateKey::generate().unwrap();
        let r = server.post_json("taler-prepared-transfer/registration", &registration(&auth)).await;
        if r.status == 200 {
            acked_registrations.push(auth.public_key().to_string());
        } else {
            expect_52("registration", r.status, &r.headers, &r.body);
        }
        let r = server.send(upload_request(&client, &url, &party, pdf_body(7, 200 << 10))).await;
        expect_52("upload", r.status, &r.headers, &r.body);
        assert_eq!(server.get("config").await.status, 200);
        assert_eq!(server.get_private("private/kyc-bulk").await.status, 200);
    });
    wait_until_no_staged(&server, Duration::from_secs(20));
    integrity_ok(&server);
    bodies_are_whole(&server);
    let check_acked = |server: &TestServer| {
        let conn = server.db();
        for key in &acked_registrations {
            let raw = taler_lite::base32::decode(key).unwrap();
            let n: i64 = conn
                .query_row("SELECT count(*) FROM registrations WHERE authorization_pub = ?1", [raw], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(n, 1, "acknowledged registration {key} lost");
        }
        for h in &acked_uploads {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM kyc_uploads WHERE h_body = ?1",
                    [h.as_bytes().as_slice()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "acknowledged upload {h} lost");
        }
    };
    check_acked(&server);

    // Room again: `max_page_count` is a per-connection setting, not stored in
    // the file, so a restart without the flag lifts the cap (as freeing disk
    // space would). The same file then takes writes again.
    let (status, dir) = server.terminate();
    assert!(status.success(), "{status}");
    let server = TestServer::start_in(dir, &["--extern-key", &extern_arg]);
    integrity_ok(&server);
    check_acked(&server);
    rt.block_on(async {
        let auth = EddsaPrivateKey::generate().unwrap();
        assert_eq!(
            server.post_json("taler-prepared-transfer/registration", &registration(&auth)).await.status,
            200
        );
        let r = server.send(upload_request(&client, &server.url, &party, pdf_body(7, 200 << 10))).await;
        assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    });
    integrity_ok(&server);
    eprintln!(
        "disk full: {} registrations and {} uploads fitted before 52",
        acked_registrations.len(),
        acked_uploads.len()
    );
}

// ---------------------------------------------------------------------------
// Overload and slow clients
// ---------------------------------------------------------------------------

const REQUEST_TIMEOUT_S: u64 = 2;

/// Reads until the server closes the connection (or `limit` passes); returns
/// what was read and when the connection ended (`None`: still open).
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn addr(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

#[test]
fn slow_and_idle_clients_are_cut_off_while_everyone_else_is_served() {
    let rt = runtime();
    let party = EddsaPrivateKey::generate().unwrap();
    let extern_arg = format!("{}=Slow Party", party.public_key());
    let timeout = Duration::from_secs(REQUEST_TIMEOUT_S);
    let server = TestServer::start(&[
        "--extern-key",
        &extern_arg,
        "--request-timeout",
        &format!("{REQUEST_TIMEOUT_S}s"),
    ]);
    let addr = addr(&server);
    let before = fingerprint(&server.db());
    let started = Instant::now();

    rt.block_on(async {
        // 300 connections that never send a byte.
        let mut idle = Vec::new();
        for _ in 0..300 {
            idle.push(TcpStream::connect(&addr).await.unwrap());
        }
        // 20 clients sending request headers one byte every 500 ms.
        let mut slow_headers = Vec::new();
        for i in 0..20 {
            let addr = addr.clone();
            slow_headers.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(&addr).await.unwrap();
                let head = format!(
                    "POST /taler-prepared-transfer/registration HTTP/1.1\r\nHost: {addr}\r\nX-Client: {i}\r\n\r\n"
                );
                let t0 = Instant::now();
                for b in head.bytes() {
                    if s.write_all(&[b]).await.is_err() {
                        break;
                    }
                    // A read that returns means the server answered or closed.
                    let mut probe = [0u8; 1];
                    if let Ok(r) = tokio::time::timeout(Duration::from_millis(500), s.read(&mut probe)).await {
                        return (t0.elapsed(), r.map(|n| n == 0).unwrap_or(true));
                    }
                }
                (t0.elapsed(), false)
            }));
        }
        // Uploads and JSON requests whose body stops half-way (connection kept open).
        let mut stalled = Vec::new();
        for i in 0..4u64 {
            let body = pdf_body(50 + i, 3 << 20);
            let h = hash(&body);
            let head = format!(
                "POST /kyc-bulk/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\nTaler-Customer-Payto: {PAYTO}\r\nTaler-Extern-Signature: {}\r\nIf-None-Match: {h}\r\n\r\n",
                party.public_key(),
                body.len(),
                upload_signature(&party, h, PAYTO)
            );
            let sent = [head.as_bytes(), &body[..(3 << 19)]].concat();
            stalled.push(("upload", sent));
        }
        let json_body = serde_json::to_vec(&registration(&EddsaPrivateKey::generate().unwrap())).unwrap();
        for path in ["taler-prepared-transfer/registration", "management/auditors", "taler-prepared-transfer/unregistration"] {
            let head = format!(
                "POST /{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                json_body.len()
            );
            stalled.push(("json", [head.as_bytes(), &json_body[..40]].concat()));
        }
        let token = server.token.clone();
        let head = format!(
            "POST /private/extern-keys HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"name\":"
        );
        stalled.push(("json", head.into_bytes()));
        let mut stalled_tasks = Vec::new();
        for (kind, sent) in stalled {
            let addr = addr.clone();
            stalled_tasks.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(&addr).await.unwrap();
                s.write_all(&sent).await.unwrap();
                let t0 = Instant::now();
                let (answer, closed) = read_until_closed(&mut s, timeout * 4 + Duration::from_secs(4)).await;
                (kind, t0.elapsed(), String::from_utf8_lossy(&answer).into_owned(), closed.is_some())
            }));
        }

        // Meanwhile, well-formed requests: 200 registrations and 100 reads at
        // once, on as many connections. Every one is answered, none with 5xx.
        let wave = |n: usize| {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
            let url = server.url.clone();
            async move {
                let mut tasks = Vec::new();
                for i in 0..n {
                    let (client, url) = (client.clone(), url.clone());
                    tasks.push(tokio::spawn(async move {
                        let t0 = Instant::now();
                        let r = if i % 3 == 2 {
                            client.get(format!("{url}config")).send().await
                        } else {
                            let auth = EddsaPrivateKey::generate().unwrap();
                            client
                                .post(format!("{url}taler-prepared-transfer/registration"))
                                .json(&registration(&auth))
                                .send()
                                .await
                        };
                        let r = r.unwrap_or_else(|e| panic!("a well-formed request was dropped: {e}"));
                        let status = r.status().as_u16();
                        r.bytes().await.unwrap_or_else(|e| panic!("an answer was cut: {e}"));
                        (status, t0.elapsed())
                    }));
                }
                let mut slowest = Duration::ZERO;
                for t in tasks {
                    let (status, took) = t.await.unwrap();
                    assert_eq!(status, 200);
                    slowest = slowest.max(took);
                }
                slowest
            }
        };
        let slowest = wave(300).await;
        eprintln!("overload: 300 requests beside 300 idle and 28 slow connections, slowest {slowest:?}");
        assert!(slowest < Duration::from_secs(10), "a request took {slowest:?}");

        for t in slow_headers {
            let (took, closed) = t.await.unwrap();
            assert!(closed, "a client sending headers byte by byte was never cut off ({took:?})");
            assert!(took < timeout + Duration::from_secs(3), "cut off only after {took:?}");
        }
        for t in stalled_tasks {
            let (kind, took, answer, closed) = t.await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 408"), "{kind} stalled mid-body: {took:?}, answer {answer:?}");
            assert!(answer.contains("application/json") && answer.contains("\"code\":26"), "{answer}");
            assert!(closed, "{kind}: connection left open after the 408");
            assert!(took < timeout + Duration::from_secs(4), "{kind}: cut off only after {took:?}");
        }
        // Connections that never sent a request are closed too (they would
        // otherwise hold a file descriptor each forever).
        let mut open = 0;
        for mut s in idle {
            let (_, closed) = read_until_closed(&mut s, Duration::from_millis(100)).await;
            open += usize::from(closed.is_none());
        }
        assert_eq!(open, 0, "{open} idle connections still open after {:?}", started.elapsed());

        // And the server is as responsive as before.
        let slowest = wave(60).await;
        assert!(slowest < Duration::from_secs(10), "after the slow clients: {slowest:?}");
    });
    // What the stalled uploads staged is gone, and none of them stored anything.
    wait_until_no_staged(&server, Duration::from_secs(20));
    assert_eq!(server.count("kyc_uploads"), 0);
    assert_eq!(server.count("auditors"), 0);
    assert_eq!(server.count("extern_keys"), 1);
    assert_ne!(fingerprint(&server.db()), before, "the registrations were stored");
    integrity_ok(&server);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// What the property tests share: one server, one runtime, known keys.
struct Fuzz {
    rt: tokio::runtime::Runtime,
    server: TestServer,
    client: reqwest::Client,
    master: EddsaPrivateKey,
    party: EddsaPrivateKey,
    /// A registered authorization key (for add-mapped and unregistration).
    registered: EddsaPrivateKey,
    accepted: Mutex<usize>,
}

impl Fuzz {
    fn start() -> Fuzz {
        let rt = runtime();
        let master = EddsaPrivateKey::generate().unwrap();
        let party = EddsaPrivateKey::generate().unwrap();
        let server = TestServer::start(&[
            "--master-public-key",
            &master.public_key().to_string(),
            "--extern-key",
            &format!("{}=Fuzz Party", party.public_key()),
        ]);
        let registered = EddsaPrivateKey::generate().unwrap();
        rt.block_on(async {
            let r =
                server.post_json("taler-prepared-transfer/registration", &registration(&registered)).await;
            assert_eq!(r.status, 200);
            let r = server.send(upload_request(&server.client, &server.url, &party, pdf_body(1, 3000))).await;
            assert_eq!(r.status, 204);
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Fuzz { rt, server, client, master, party, registered, accepted: Mutex::new(0) }
    }

    /// Sends one request and checks the properties every answer must have.
    fn check(&self, request: reqwest::RequestBuilder, what: &str) -> Result<(), TestCaseError> {
        // A HEAD answer has no body by definition: only its status is checked.
        let head = what.starts_with("HEAD ");
        let before = fingerprint(&self.server.db());
        let (status, headers, body) = self.rt.block_on(async {
            let r =
                request.send().await.map_err(|e| TestCaseError::fail(format!("{what}: no answer: {e}")))?;
            let (status, headers) = (r.status().as_u16(), r.headers().clone());
            let body =
                r.bytes().await.map_err(|e| TestCaseError::fail(format!("{what}: answer cut: {e}")))?;
            Ok::<_, TestCaseError>((status, headers, body))
        })?;
        let text = String::from_utf8_lossy(&body);
        prop_assert!(status < 500, "{}: {} {}", what, status, text);
        if status >= 400
            && !head
            && let Err(e) = is_error_detail(&headers, &body)
        {
            return Err(TestCaseError::fail(format!("{what}: {status} is no ErrorDetail ({e}): {text}")));
        }
        if status >= 400 {
            prop_assert!(
                fingerprint(&self.server.db()) == before,
                "{}: refused with {} but the database changed: {}",
                what,
                status,
                text
            );
        } else {
            *self.accepted.lock().unwrap() += 1;
        }
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url, path)
    }

    /// The valid body of each JSON endpoint, to be mutated.
    fn valid_json(&self, endpoint: usize) -> (String, Value) {
        let fresh = EddsaPrivateKey::generate().unwrap();
        let auditor = fresh.public_key();
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
        match endpoint % JSON_ENDPOINTS {
            0 => ("management/auditors".into(), auditor_enable(&self.master, &auditor)),
            1 => {
                let sig = taler_lite::crypto::MasterDelAuditorPS {
                    end_date: Timestamp::from_secs(1_700_000_001),
                    auditor_pub: auditor,
                }
                .sign(&self.master);
                (
                    format!("management/auditors/{auditor}/disable"),
                    json!({"master_sig": sig.to_string(), "validity_end": {"t_s": 1_700_000_001}}),
                )
            }
            2 => ("taler-prepared-transfer/registration".into(), registration(&fresh)),
            3 => (
                "taler-prepared-transfer/unregistration".into(),
                json!({
                    "timestamp": now,
                    "authorization_pub": fresh.public_key().to_string(),
                    "authorization_sig": fresh.sign(now.as_bytes()).to_string(),
                }),
            ),
            4 => ("private/extern-keys".into(), json!({"extern_pub": auditor.to_string(), "name": "Fuzzed"})),
            5 => (format!("private/extern-keys/{auditor}/disable"), json!({})),
            6 => (
                "taler-wire-gateway/admin/add-mapped".into(),
                json!({
                    "amount": "KUDOS:1",
                    "authorization_pub": self.registered.public_key().to_string(),
                    "debit_account": PAYTO,
                }),
            ),
            _ => (
                "taler-wire-gateway/admin/add-incoming-subject".into(),
                json!({"amount": "KUDOS:1", "subject": format!("{}", fresh.public_key()), "debit_account": PAYTO}),
            ),
        }
    }
}

const JSON_ENDPOINTS: usize = 8;

/// Arbitrary JSON values, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        "\\PC{0,60}".prop_map(Value::from),
        "[0-9A-Z]{50,54}".prop_map(Value::from),
        "(KUDOS|EUR|kudos|X)?:?[0-9]{0,20}(\\.[0-9]{0,10})?".prop_map(Value::from),
        "payto://[a-z]{0,6}/[A-Z0-9]{0,30}(\\?[a-z-]{0,12}=[^&]{0,10})?".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// How a valid body is spoiled.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Remove(usize),
    Replace(usize, Value),
    Nest(usize),
    AddField(String, Value),
    FlipByte(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Random(Vec<u8>),
    Whole(Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::None),
        3 => any::<usize>().prop_map(Mutation::Remove),
        6 => (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<usize>().prop_map(Mutation::Nest),
        1 => ("[a-z_]{1,12}", any_json()).prop_map(|(k, v)| Mutation::AddField(k, v)),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Mutation::Random),
        1 => any_json().prop_map(Mutation::Whole),
    ]
}

fn apply(mutation: &Mutation, valid: &Value) -> Vec<u8> {
    let mut v = valid.clone();
    let keys: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let pick = |i: usize| keys.get(i % keys.len().max(1)).cloned();
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    match mutation {
        Mutation::None => bytes(&v),
        Mutation::Remove(i) => {
            if let Some(k) = pick(*i) {
                v.as_object_mut().unwrap().remove(&k);
            }
            bytes(&v)
        }
        Mutation::Replace(i, new) => {
            if let Some(k) = pick(*i) {
                v[k] = new.clone();
            }
            bytes(&v)
        }
        Mutation::Nest(i) => {
            if let Some(k) = pick(*i) {
                let old = v[&k].take();
                v[k] = json!([old]);
            }
            bytes(&v)
        }
        Mutation::AddField(k, new) => {
            v[k.as_str()] = new.clone();
            bytes(&v)
        }
        Mutation::FlipByte(i, b) => {
            let mut out = bytes(&v);
            let at = i % out.len();
            out[at] ^= b.max(&1);
            out
        }
        Mutation::Truncate(i) => {
            let mut out = bytes(&v);
            out.truncate(i % out.len());
            out
        }
        Mutation::Insert(i, extra) => {
            let mut out = bytes(&v);
            let at = i % (out.len() + 1);
            out.splice(at..at, extra.iter().copied());
            out
        }
        Mutation::Random(raw) => raw.clone(),
        Mutation::Whole(other) => bytes(other),
    }
}

/// Who the request claims to be.
fn authorization(fuzz: &Fuzz, choice: u8) -> Option<String> {
    match choice % 4 {
        0 => None,
        1 => Some("Bearer secret-token:WRONG".into()),
        _ => Some(format!("Bearer {}", fuzz.server.token)),
    }
}

fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        // The cases run against a live server: a regression file would replay
        // against another server with other keys, so none is kept.
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    })
}

#[test]
fn random_and_mutated_requests_never_get_a_5xx_or_store_anything_when_refused() {
    let fuzz = Fuzz::start();
    let started = Instant::now();

    // 1. JSON endpoints: a valid body mutated, any content type, any token.
    let strategy = (
        0..JSON_ENDPOINTS,
        mutation(),
        any::<u8>(),
        prop_oneof![
            Just("application/json"),
            Just("text/plain"),
            Just("application/json; charset=latin1"),
            Just(""),
        ],
    );
    runner(256)
        .run(&strategy, |(endpoint, m, auth, content_type)| {
            let (path, valid) = fuzz.valid_json(endpoint);
            let body = apply(&m, &valid);
            let mut r = fuzz.client.post(fuzz.url(&path)).body(body);
            if !content_type.is_empty() {
                r = r.header("Content-Type", content_type);
            }
            if let Some(a) = authorization(&fuzz, auth) {
                r = r.header("Authorization", a);
            }
            fuzz.check(r, &format!("POST /{path} {m:?}"))
        })
        .unwrap();

    // 2. Uploads: each header valid, missing or replaced; the body whole,
    // cut, altered or random.
    #[derive(Debug, Clone)]
    enum Part {
        Valid,
        Missing,
        Text(String),
    }
    let part = || {
        prop_oneof![
            6 => Just(Part::Valid),
            1 => Just(Part::Missing),
            2 => "[ -~]{0,120}".prop_map(Part::Text),
            1 => "[0-9A-Z]{100,106}".prop_map(Part::Text),
        ]
    };
    let strategy = (
        (part(), part(), part(), part(), part()),
        prop_oneof![Just(0usize), Just(1), Just(2), Just(3)],
        mutation(),
        any::<u64>(),
    );
    runner(192)
        .run(&strategy, |((path_key, ct, payto, sig, h), body_kind, m, seed)| {
            let body = pdf_body(seed, 100 + (seed % 5000) as usize);
            let h_valid = hash(&body);
            let body = match body_kind {
                0 => body,
                1 => body[..body.len() / 2].to_vec(),
                2 => apply(&m, &json!({"a": String::from_utf8_lossy(&body[..40])})),
                _ => {
                    let mut b = body;
                    let at = (seed as usize) % b.len();
                    b[at] ^= 0x55;
                    b
                }
            };
            let key = match &path_key {
                Part::Valid => fuzz.party.public_key().to_string(),
                Part::Missing => String::new(),
                Part::Text(t) => percent_encode(t),
            };
            let mut r = fuzz.client.post(fuzz.url(&format!("kyc-bulk/{key}"))).body(body);
            let headers = [
                ("Content-Type", &ct, "application/pdf".to_owned()),
                ("Taler-Customer-Payto", &payto, PAYTO.to_owned()),
                ("Taler-Extern-Signature", &sig, upload_signature(&fuzz.party, h_valid, PAYTO)),
                ("If-None-Match", &h, h_valid.to_string()),
            ];
            for (name, p, valid) in headers {
                match p {
                    Part::Valid => r = r.header(name, valid),
                    Part::Missing => {}
                    Part::Text(t) => r = r.header(name, t.as_str()),
                }
            }
            fuzz.check(r, &format!("upload {path_key:?} {ct:?} {payto:?} {sig:?} {h:?} body {body_kind}"))
        })
        .unwrap();

    // 3. Paths, query strings and methods on every route.
    let routes = [
        "config",
        "auditors",
        "management/auditors",
        "management/auditors/{}/disable",
        "kyc-bulk/{}",
        "private/extern-keys",
        "private/extern-keys/{}/disable",
        "private/kyc-bulk",
        "private/kyc-bulk/{}",
        "private/registrations",
        "taler-prepared-transfer/config",
        "taler-prepared-transfer/registration",
        "taler-prepared-transfer/unregistration",
        "taler-wire-gateway/config",
        "taler-wire-gateway/admin/add-mapped",
        "taler-wire-gateway/admin/add-incoming-subject",
        "taler-wire-gateway/history/incoming",
        "{}",
        "private/{}",
        "taler-wire-gateway/{}/{}",
    ];
    let segment = prop_oneof![
        "\\PC{0,60}".prop_map(|s| percent_encode(&s)),
        "[0-9A-Za-z]{0,110}",
        Just("..".to_owned()),
        Just("%00".to_owned()),
        Just("%zz".to_owned()),
        Just("%C3%28".to_owned()),
    ];
    let query_value = prop_oneof![
        "-?[0-9]{1,25}".boxed(),
        Just("-9223372036854775808".to_owned()).boxed(),
        Just("9223372036854775808".to_owned()).boxed(),
        "\\PC{0,40}".prop_map(|s| percent_encode(&s)).boxed(),
        "payto://iban/[A-Z0-9]{0,24}(\\?receiver-name=[a-z]{0,8})?".prop_map(|s| percent_encode(&s)).boxed(),
        Just("%zz".to_owned()).boxed(),
    ];
    let query = proptest::collection::vec(
        (
            prop_oneof![
                Just("limit"),
                Just("offset"),
                Just("payto"),
                Just("delta"),
                Just("start"),
                Just("x")
            ],
            query_value,
        ),
        0..4,
    );
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("DELETE"),
        Just("HEAD"),
        Just("PATCH"),
        Just("OPTIONS")
    ];
    let strategy = (
        0..routes.len(),
        proptest::collection::vec(segment, 2),
        query,
        method,
        any::<u8>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("Accept".to_owned()),
                    Just("Content-Type".to_owned()),
                    Just("If-None-Match".to_owned()),
                    Just("Expect".to_owned()),
                    Just("Taler-Customer-Payto".to_owned()),
                    Just("X-Forwarded-For".to_owned()),
                    "[a-z][a-z0-9-]{0,20}"
                ],
                "[ -~]{0,80}",
            ),
            0..4,
        ),
    );
    runner(256)
        .run(&strategy, |(route, segments, query, method, auth, body, headers)| {
            let mut path = routes[route].to_owned();
            for s in &segments {
                path = path.replacen("{}", s, 1);
            }
            let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let url = if query.is_empty() {
                fuzz.url(&path)
            } else {
                format!("{}?{}", fuzz.url(&path), query.join("&"))
            };
            let mut r = fuzz.client.request(method.parse().unwrap(), &url);
            for (name, value) in &headers {
                // Expect: 100-continue and friends are reqwest's to send; anything else goes.
                if !name.eq_ignore_ascii_case("expect") || value.is_empty() {
                    r = r.header(name.as_str(), value.as_str());
                }
            }
            if let Some(a) = authorization(&fuzz, auth) {
                r = r.header("Authorization", a);
            }
            if let Some(b) = body {
                r = r.body(b);
            }
            fuzz.check(r, &format!("{method} {url} {headers:?}"))
        })
        .unwrap();

    let server = &fuzz.server;
    wait_until_no_staged(server, Duration::from_secs(20));
    integrity_ok(server);
    bodies_are_whole(server);
    assert!(!server.log().contains("panicked"), "{}", server.log());
    fuzz.rt.block_on(async { assert_eq!(server.get("config").await.status, 200) });
    eprintln!(
        "bad input: 704 cases, {} accepted (2xx), {:.1}s",
        fuzz.accepted.lock().unwrap(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------

#[test]
fn operator_routes_refuse_missing_and_wrong_tokens_and_change_nothing() {
    let rt = runtime();
    let party = EddsaPrivateKey::generate().unwrap();
    let server = TestServer::start(&["--extern-key", &format!("{}=Access Party", party.public_key())]);
    let client = &server.client;
    let url = &server.url;
    let token = server.token.clone();
    let registered = EddsaPrivateKey::generate().unwrap();
    // A second one for add-mapped: add-incoming-subject uses up the first.
    let mapped = EddsaPrivateKey::generate().unwrap();
    let body = pdf_body(9, 5000);
    let h_body = hash(&body);
    rt.block_on(async {
        for key in [&registered, &mapped] {
            assert_eq!(
                server.post_json("taler-prepared-transfer/registration", &registration(key)).await.status,
                200
            );
        }
        assert_eq!(server.send(upload_request(client, url, &party, body)).await.status, 204);
    });
    let new_party = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let party_pub = party.public_key().to_string();
    // Every operator route, with a request that the right token makes succeed.
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "private/extern-keys".into(), None),
        ("POST", "private/extern-keys".into(), Some(json!({"extern_pub": new_party, "name": "New"}))),
        ("GET", "private/kyc-bulk".into(), None),
        ("GET", format!("private/kyc-bulk/{h_body}"), None),
        ("GET", "private/registrations".into(), None),
        ("GET", "taler-wire-gateway/history/incoming".into(), None),
        (
            "POST",
            "taler-wire-gateway/admin/add-incoming-subject".into(),
            Some(
                json!({"amount": "KUDOS:1", "subject": registered.public_key().to_string(), "debit_account": PAYTO}),
            ),
        ),
        (
            "POST",
            "taler-wire-gateway/admin/add-mapped".into(),
            Some(
                json!({"amount": "KUDOS:1", "authorization_pub": mapped.public_key().to_string(), "debit_account": PAYTO}),
            ),
        ),
        ("POST", format!("private/extern-keys/{party_pub}/disable"), Some(json!({}))),
    ];
    let (head, last) = token.split_at(token.len() - 1);
    let wrong: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Bearer {head}")),
        Some(format!("Bearer {token}x")),
        Some(format!("Bearer {head}{}", if last == "A" { "B" } else { "A" })),
        Some(format!("Bearer {}", token.to_lowercase())),
        Some(token.clone()),
        Some(format!("Basic {token}")),
        Some(format!("Token {token}")),
        Some(format!("Bearer secret-token:{}", "A".repeat(52))),
        Some(format!("Bearer {token} {token}")),
    ];
    rt.block_on(async {
        for (method, path, body) in &routes {
            let before = fingerprint(&server.db());
            for auth in &wrong {
                // The token in the query string or a cookie is no token either.
                let mut r = client
                    .request(method.parse().unwrap(), format!("{url}{path}?token={}", percent_encode(&token)))
                    .header("Cookie", format!("token={token}"));
                if let Some(a) = auth {
                    r = r.header("Authorization", a.as_str());
                }
                if let Some(b) = body {
                    r = r.json(b);
                }
                let answer = server.send(r).await;
                assert_eq!(
                    (answer.status, answer.code()),
                    (401, 40),
                    "{method} /{path} with {auth:?}: {}",
                    String::from_utf8_lossy(&answer.body)
                );
            }
            assert_eq!(
                fingerprint(&server.db()),
                before,
                "{method} /{path}: a refused request changed the database"
            );
            // The same request with the token is accepted: the 401s were about the token only.
            let mut r = client.request(method.parse().unwrap(), format!("{url}{path}")).bearer_auth(&token);
            if let Some(b) = body {
                r = r.json(b);
            }
            let answer = server.send(r).await;
            assert!(
                answer.status / 100 == 2,
                "{method} /{path} with the token: {} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
    });
}
