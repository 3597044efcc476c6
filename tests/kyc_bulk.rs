//! POST /kyc-bulk/$EXTERN_PUB and its read-back over real HTTP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::bank::{EXCHANGE_ACCOUNT, reserve_registration};
use common::kyc::{
    CUSTOMER as PAYTO, body_hash as hash, party_arg, server_with_party, signed_upload,
    upload_signature as sign, zip_of,
};
use common::{Answer, TestServer, open_db, vectors};
use serde_json::json;
use sha2::{Digest, Sha512};
use taler_lite::crypto::{EddsaPrivateKey, HashCode};

const OTHER_PAYTO: &str = "payto://iban/CH4431999123000889012?receiver-name=Other";
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";

struct Upload<'a> {
    body: Vec<u8>,
    content_type: &'a str,
    payto: &'a str,
    with_hash: bool,
}

impl Upload<'_> {
    fn pdf() -> Upload<'static> {
        Upload { body: PDF.to_vec(), content_type: "application/pdf", payto: PAYTO, with_hash: true }
    }
}

async fn send(server: &TestServer, party: &EddsaPrivateKey, u: &Upload<'_>) -> Answer {
    let h = hash(&u.body);
    let mut request =
        signed_upload(&server.client, &server.url, party, u.payto, u.content_type, h).body(u.body.clone());
    if u.with_hash {
        request = request.header("If-None-Match", h.to_string());
    }
    server.send(request).await
}

#[tokio::test]
async fn the_vector_uploads_and_reads_back_byte_identical() {
    let v = vectors("kyc-bulk.json");
    let party: EddsaPrivateKey = v["extern_seed"].as_str().unwrap().parse().unwrap();
    assert_eq!(party.public_key().to_string(), v["extern_pub"]);
    let server =
        TestServer::start(&["--extern-key", &format!("{}=Vector", v["extern_pub"].as_str().unwrap())]);
    let body = hex(v["body_hex"].as_str().unwrap());
    assert_eq!(hash(&body).to_string(), v["h_body"]);
    // Upstream's header name, and the vector's own signature.
    let answer = server
        .send(
            server
                .client
                .post(server.endpoint(&format!("kyc-bulk/{}", v["extern_pub"].as_str().unwrap())))
                .header("Content-Type", v["content_type"].as_str().unwrap())
                .header("Taler-Customer-Payto", v["payto"].as_str().unwrap())
                .header("Taler-Extern-Signature", v["signature"].as_str().unwrap())
                .header("If-Not-Match", v["h_body"].as_str().unwrap())
                .body(body.clone()),
        )
        .await;
    assert_eq!(answer.status, 204, "{}", String::from_utf8_lossy(&answer.body));
    assert!(answer.body.is_empty());

    let back = server.get_private(&format!("private/kyc-bulk/{}", v["h_body"].as_str().unwrap())).await;
    assert_eq!(back.status, 200);
    assert_eq!(back.body, body);
    assert_eq!(back.headers["content-type"], "application/pdf");
    assert_eq!(back.headers["content-length"], body.len().to_string().as_str());
    assert_eq!(back.headers["etag"], format!("\"{}\"", v["h_body"].as_str().unwrap()).as_str());

    let list = server
        .get_private(&format!("private/kyc-bulk?payto={}", urlencode(v["payto"].as_str().unwrap())))
        .await
        .json();
    let uploads = list["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0]["h_body"], v["h_body"]);
    assert_eq!(uploads[0]["payto"], v["payto"]);
    assert_eq!(uploads[0]["extern_name"], "Vector");
    assert_eq!(uploads[0]["size"], body.len());
    // Matched by normalized payto: the same account with another name.
    // An operator may look an account up without a receiver name.
    let bare = urlencode("payto://iban/DE89370400440532013000");
    assert_eq!(
        server.get_private(&format!("private/kyc-bulk?payto={bare}")).await.json()["uploads"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let same = urlencode("payto://iban/DE89370400440532013000?receiver-name=E");
    assert_eq!(
        server.get_private(&format!("private/kyc-bulk?payto={same}")).await.json()["uploads"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let other = urlencode(OTHER_PAYTO);
    assert!(
        server.get_private(&format!("private/kyc-bulk?payto={other}")).await.json()["uploads"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    server.get(&format!("private/kyc-bulk/{}", v["h_body"].as_str().unwrap())).await.expect_error(401, 40);
    server.get_private(&format!("private/kyc-bulk/{}", hash(b"nothing"))).await.expect_error(404, 1906);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn every_status_of_docs_kyc_bulk() {
    let (server, party) = server_with_party(&["--max-upload", "64KiB"]);
    let path = format!("kyc-bulk/{}", party.public_key());

    // 204, with and without the hash header.
    assert_eq!(send(&server, &party, &Upload::pdf()).await.status, 204);
    let png = Upload {
        body: PNG.to_vec(),
        content_type: "image/png; name=scan.png",
        payto: PAYTO,
        with_hash: false,
    };
    assert_eq!(send(&server, &party, &png).await.status, 204);
    let zip = zip_of(&[("a/scan.pdf", PDF), ("b.png", PNG)]);
    let zipped = Upload { body: zip, content_type: "application/zip", payto: PAYTO, with_hash: true };
    assert_eq!(send(&server, &party, &zipped).await.status, 204);
    assert_eq!(server.count("kyc_uploads"), 3);

    // 400: the path key.
    server
        .send(server.client.post(server.endpoint("kyc-bulk/NOTAKEY")).body("x"))
        .await
        .expect_error(400, 26);
    // 404: unknown third party.
    let stranger = EddsaPrivateKey::generate().unwrap();
    send(&server, &stranger, &Upload::pdf()).await.expect_error(404, 1904);

    // 400 for each header: the good headers with one replaced (None: left out).
    let h = hash(PDF);
    let good_sig = sign(&party, h, PAYTO);
    let good: Vec<(&str, String)> = vec![
        ("Content-Type", "application/pdf".into()),
        ("Taler-Customer-Payto", PAYTO.into()),
        ("Taler-Extern-Signature", good_sig.clone()),
        ("If-None-Match", h.to_string()),
    ];
    let with = |name: &str, value: Option<&str>, body: &'static [u8]| {
        let mut r = server.client.post(server.endpoint(&path));
        for (n, v) in &good {
            if *n != name {
                r = r.header(*n, v.as_str());
            }
        }
        if let Some(v) = value {
            r = r.header(name, v);
        }
        r.body(body)
    };
    let other_hash = hash(b"other").to_string();
    let cases: Vec<(reqwest::RequestBuilder, u16, u64, &str)> = vec![
        (with("Content-Type", None, PDF), 400, 25, "Content-Type"),
        (with("Content-Type", Some("text/plain"), PDF), 400, 26, "Content-Type"),
        (with("Taler-Customer-Payto", None, PDF), 400, 25, "Taler-Customer-Payto"),
        (
            with("Taler-Customer-Payto", Some("payto://iban/DE00?receiver-name=X"), PDF),
            400,
            26,
            "Taler-Customer-Payto",
        ),
        (with("Taler-Extern-Signature", None, PDF), 400, 25, "Taler-Extern-Signature"),
        (with("Taler-Extern-Signature", Some("ABC"), PDF), 400, 26, "Taler-Extern-Signature"),
        (with("If-None-Match", Some("ABC"), PDF), 400, 26, "If-None-Match"),
        (with("If-Not-Match", Some(&other_hash), PDF), 400, 26, "If-None-Match"),
        (with("Content-Length", Some("0"), b""), 400, 26, "Content-Length"),
    ];
    for (request, status, code, name) in cases {
        let answer = server.send(request).await;
        answer.expect_error(status, code);
        assert_eq!(answer.json()["parameter"], name, "{}", String::from_utf8_lossy(&answer.body));
    }
    // reqwest would set a Content-Type for some bodies; a request without one:
    let answer = server
        .send(
            server
                .client
                .post(server.endpoint(&path))
                .header("Taler-Customer-Payto", PAYTO)
                .body(PDF.to_vec()),
        )
        .await;
    answer.expect_error(400, 25);

    // 400: sniffing, archives, hash mismatch.
    let as_image =
        Upload { body: PDF.to_vec(), content_type: "image/jpeg", payto: OTHER_PAYTO, with_hash: true };
    let detail = send(&server, &party, &as_image).await.expect_error(400, 26);
    assert!(detail.contains("image") && detail.contains("pdf"), "{detail}");
    let garbage_zip = Upload {
        body: b"PK\x03\x04 this is no archive at all".to_vec(),
        content_type: "application/zip",
        payto: OTHER_PAYTO,
        with_hash: true,
    };
    send(&server, &party, &garbage_zip).await.expect_error(400, 26);
    let text_inside = Upload {
        body: zip_of(&[("scan.pdf", PDF), ("notes.txt", b"hello")]),
        content_type: "application/zip",
        payto: OTHER_PAYTO,
        with_hash: false,
    };
    let detail = send(&server, &party, &text_inside).await.expect_error(400, 26);
    assert!(detail.contains("notes.txt"), "{detail}");
    let nested = Upload {
        body: zip_of(&[("inner.zip", &zip_of(&[("a.pdf", PDF)]))]),
        content_type: "application/zip",
        payto: OTHER_PAYTO,
        with_hash: true,
    };
    send(&server, &party, &nested).await.expect_error(400, 26);
    let claimed = hash(b"%PDF-other");
    let mismatch = server
        .send(
            server
                .client
                .post(server.endpoint(&path))
                .header("Content-Type", "application/pdf")
                .header("Taler-Customer-Payto", OTHER_PAYTO)
                .header("Taler-Extern-Signature", sign(&party, claimed, OTHER_PAYTO))
                .header("If-None-Match", claimed.to_string())
                .body(PDF),
        )
        .await;
    assert!(mismatch.expect_error(400, 26).contains("SHA-512"));

    // 403 with the hash (before the body) and without (after it).
    let forged =
        Upload { body: PDF.to_vec(), content_type: "application/pdf", payto: OTHER_PAYTO, with_hash: true };
    let wrong_signer = EddsaPrivateKey::generate().unwrap();
    let request = |with_hash: bool| {
        let mut r = server
            .client
            .post(server.endpoint(&path))
            .header("Content-Type", forged.content_type)
            .header("Taler-Customer-Payto", forged.payto)
            .header("Taler-Extern-Signature", sign(&wrong_signer, hash(&forged.body), forged.payto))
            .body(forged.body.clone());
        if with_hash {
            r = r.header("If-None-Match", hash(&forged.body).to_string());
        }
        r
    };
    server.send(request(true)).await.expect_error(403, 1903);
    server.send(request(false)).await.expect_error(403, 1903);
    // In the order of `docs/kyc-bulk.md` the archive is checked (11) before a late signature (12).
    let bad_zip = zip_of(&[("scan.pdf", PDF), ("notes.txt", b"hello")]);
    let forged_zip = server
        .client
        .post(server.endpoint(&path))
        .header("Content-Type", "application/zip")
        .header("Taler-Customer-Payto", OTHER_PAYTO)
        .header("Taler-Extern-Signature", sign(&wrong_signer, hash(&bad_zip), OTHER_PAYTO))
        .body(bad_zip);
    server.send(forged_zip).await.expect_error(400, 26);

    // 411: no Content-Length (chunked).
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(PDF))]);
    let mut chunked = server.client.post(server.endpoint(&path));
    for (n, v) in &good {
        chunked = chunked.header(*n, v.as_str());
    }
    server.send(chunked.body(reqwest::Body::wrap_stream(stream))).await.expect_error(411, 25);
    // 412: already known for this customer.
    send(&server, &party, &Upload::pdf()).await.expect_error(412, 1905);
    // 413: over the limit, decided from Content-Length.
    let big = Upload {
        body: [PDF, &vec![b' '; 70_000]].concat(),
        content_type: "application/pdf",
        payto: PAYTO,
        with_hash: true,
    };
    send(&server, &party, &big).await.expect_error(413, 32);
    // 405.
    let answer = server.get(&path).await;
    answer.expect_error(405, 20);

    // Nothing of the failures stayed.
    assert_eq!(server.count("kyc_uploads"), 3);
    wait_until_no_staged(&server).await;
}

async fn wait_until_no_staged(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let staged: i64 = server
            .db()
            .query_row("SELECT count(*) FROM kyc_contents WHERE h_body IS NULL", [], |r| r.get(0))
            .unwrap();
        let orphans: i64 = server
            .db()
            .query_row("SELECT count(*) FROM kyc_chunks WHERE content_id NOT IN (SELECT content_id FROM kyc_contents WHERE h_body IS NOT NULL)", [], |r| r.get(0))
            .unwrap();
        if staged == 0 && orphans == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{staged} staged bodies and {orphans} chunks left behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn idempotent_and_deduplicated() {
    let (server, party) = server_with_party(&[]);
    let once = Upload { with_hash: false, ..Upload::pdf() };
    assert_eq!(send(&server, &party, &once).await.status, 204);
    assert_eq!(send(&server, &party, &once).await.status, 204);
    assert_eq!(server.count("kyc_uploads"), 1);
    // The same bytes for another customer: one blob, two records.
    let other = Upload { payto: OTHER_PAYTO, ..Upload::pdf() };
    assert_eq!(send(&server, &party, &other).await.status, 204);
    let other_no_hash = Upload {
        payto: "payto://iban/CH4431999123000889012?receiver-name=Third",
        with_hash: false,
        ..Upload::pdf()
    };
    // Same normalized account as OTHER_PAYTO: already known, one record.
    assert_eq!(send(&server, &party, &other_no_hash).await.status, 204);
    assert_eq!(server.count("kyc_uploads"), 2);
    // The second copy staged by the upload without a hash is discarded.
    wait_until_no_staged(&server).await;
    assert_eq!(server.count("kyc_contents"), 1);
}

/// Sends the headers of an upload by hand.
fn raw_headers(
    server: &TestServer,
    party: &EddsaPrivateKey,
    extern_pub: &str,
    length: u64,
    h: HashCode,
    expect: bool,
) -> TcpStream {
    let addr = server.url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /kyc-bulk/{extern_pub} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pdf\r\nContent-Length: {length}\r\nTaler-Customer-Payto: {PAYTO}\r\nTaler-Extern-Signature: {}\r\nIf-None-Match: {h}\r\n{}\r\n",
        sign(party, h, PAYTO),
        if expect { "Expect: 100-continue\r\n" } else { "" }
    );
    s.write_all(head.as_bytes()).unwrap();
    s
}

fn read_status(s: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).to_string()
}

#[tokio::test]
async fn early_answers_never_ask_for_the_body() {
    let (server, party) = server_with_party(&["--max-upload", "1MiB"]);
    let h = hash(PDF);
    assert_eq!(send(&server, &party, &Upload::pdf()).await.status, 204);
    let stranger = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let own = party.public_key().to_string();
    for (extern_pub, length, status) in
        [(stranger.as_str(), 100u64, "404"), (own.as_str(), 100, "412"), (own.as_str(), 2 << 20, "413")]
    {
        let mut s = raw_headers(&server, &party, extern_pub, length, h, true);
        let answer = read_status(&mut s);
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
        assert!(!answer.contains("100 Continue"), "{answer}");
        // The unread body stays on the connection: clients are told not to reuse it.
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    }
    // A good upload gets 100 Continue, then 204 once the body is sent.
    let body = [PDF, b"% more\n"].concat();
    let mut s = raw_headers(&server, &party, &own, body.len() as u64, hash(&body), true);
    let answer = read_status(&mut s);
    assert!(answer.starts_with("HTTP/1.1 100"), "{answer}");
    s.write_all(&body).unwrap();
    let answer = read_status(&mut s);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
}

/// `%PDF-` then `mib` MiB of filler, as a stream of shared 1 MiB blocks.
fn big_pdf(mib: usize) -> (Vec<Bytes>, HashCode, u64) {
    let mut block = vec![0u8; 1 << 20];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let block = Bytes::from(block);
    let mut parts = vec![Bytes::from_static(b"%PDF-1.7\n")];
    parts.extend(std::iter::repeat_n(block, mib));
    let mut h = Sha512::new();
    for p in &parts {
        h.update(p);
    }
    let digest: [u8; 64] = h.finalize().into();
    let size = parts.iter().map(|p| p.len() as u64).sum();
    (parts, HashCode::from_bytes(digest), size)
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_streams_in_bounded_memory_while_others_are_served() {
    let (server, party) = server_with_party(&[]);
    let (parts, h, size) = big_pdf(384);
    let request = signed_upload(&server.client, &server.url, &party, PAYTO, "application/pdf", h)
        .header("Content-Length", size)
        .header("If-None-Match", h.to_string())
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            parts.into_iter().map(Ok::<_, std::io::Error>),
        )));
    let upload = tokio::spawn(request.send());
    // Meanwhile: registrations and other requests are answered, correctly.
    let mut answered = 0;
    while !upload.is_finished() {
        let auth = EddsaPrivateKey::generate().unwrap();
        let body = reserve_registration(&auth, EXCHANGE_ACCOUNT, "KUDOS:1");
        assert_eq!(server.register(&body).await.status, 200);
        assert_eq!(server.get("config").await.status, 200);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), 204);
    assert!(answered > 0);
    let peak_mib = peak_rss_kib(server.pid()) / 1024;
    eprintln!("384 MiB upload: server peak RSS {peak_mib} MiB, {answered} request pairs served meanwhile");
    assert!(peak_mib < 128, "server peak RSS {peak_mib} MiB for a 384 MiB upload");
    // Read back, streamed, and identical.
    let back = server
        .client
        .get(server.endpoint(&format!("private/kyc-bulk/{h}")))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
    let mut hasher = Sha512::new();
    let mut n = 0u64;
    let mut stream = back.bytes_stream();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.unwrap();
        n += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let digest: [u8; 64] = hasher.finalize().into();
    assert_eq!((n, HashCode::from_bytes(digest)), (size, h));
}

#[tokio::test]
async fn a_client_leaving_half_way_leaves_nothing() {
    let (server, party) = server_with_party(&[]);
    let (parts, h, size) = big_pdf(16);
    let mut s = raw_headers(&server, &party, &party.public_key().to_string(), size, h, false);
    for p in parts.iter().take(6) {
        s.write_all(p).unwrap();
    }
    drop(s);
    wait_until_no_staged(&server).await;
    assert_eq!(server.count("kyc_uploads"), 0);
    assert_eq!(server.count("kyc_contents"), 0);
}

#[tokio::test]
async fn kill_9_during_an_upload_leaves_a_clean_database() {
    let (server, party) = server_with_party(&[]);
    let (parts, h, size) = big_pdf(32);
    let mut s = raw_headers(&server, &party, &party.public_key().to_string(), size, h, false);
    for p in parts.iter().take(12) {
        s.write_all(p).unwrap();
    }
    // Let some chunks reach the database.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.count("kyc_chunks") < 4 {
        assert!(Instant::now() < deadline, "no chunk was staged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let arg = party_arg(&party);
    let dir = server.kill9();
    drop(s);
    let db = dir.path().join("taler-lite.sqlite3");
    let restarted = TestServer::start_in(dir, &["--extern-key", &arg]);
    assert_eq!(restarted.get("config").await.status, 200);
    let conn = open_db(&db);
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(restarted.count("kyc_chunks"), 0);
    assert_eq!(restarted.count("kyc_contents"), 0);
    assert_eq!(restarted.count("kyc_uploads"), 0);
}

#[tokio::test]
async fn third_parties_through_the_operator_api() {
    let server = TestServer::start(&[]);
    let party = EddsaPrivateKey::generate().unwrap();
    let key = party.public_key().to_string();
    send(&server, &party, &Upload::pdf()).await.expect_error(404, 1904);
    server
        .post_json("private/extern-keys", &json!({"extern_pub": key, "name": "P"}))
        .await
        .expect_error(401, 40);
    assert_eq!(server.count("extern_keys"), 0);
    assert_eq!(
        server.post_private("private/extern-keys", &json!({"extern_pub": key, "name": "P"})).await.status,
        204
    );
    let list = server.get_private("private/extern-keys").await.json();
    assert_eq!(list["extern_keys"][0]["extern_pub"], key);
    assert_eq!(list["extern_keys"][0]["active"], true);
    assert_eq!(send(&server, &party, &Upload::pdf()).await.status, 204);
    let disable = format!("private/extern-keys/{key}/disable");
    server.post_json(&disable, &json!({})).await.expect_error(401, 40);
    assert_eq!(server.post_private(&disable, &json!({})).await.status, 204);
    let other = Upload { payto: OTHER_PAYTO, ..Upload::pdf() };
    send(&server, &party, &other).await.expect_error(404, 1904);
    let unknown = EddsaPrivateKey::generate().unwrap().public_key();
    server
        .post_private(&format!("private/extern-keys/{unknown}/disable"), &json!({}))
        .await
        .expect_error(404, 1904);
}

#[tokio::test]
async fn the_cli_manages_third_parties_uploads_and_exports() {
    let server = TestServer::start(&[]);
    let dir = server.path().to_owned();
    let db = server.db.to_str().unwrap().to_owned();
    let cli = |args: &[&str]| {
        let out = common::run_cli(&dir, &[&["--database", &db][..], args].concat());
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let public = cli(&["keygen", "acme.key"]).trim().to_owned();
    // The server holds the file's lock: the third party is added through it (`extern add`
    // is for a stopped server's file, tests/robustness_durability.rs).
    let added =
        server.post_private("private/extern-keys", &json!({"extern_pub": public, "name": "Acme KYC"})).await;
    assert_eq!(added.status, 204);
    assert!(cli(&["extern", "list"]).contains("Acme KYC"));
    std::fs::write(dir.join("passport.pdf"), PDF).unwrap();
    let upload = [
        "client",
        "kyc-bulk",
        "--extern-key",
        "acme.key",
        "--payto",
        PAYTO,
        "--url",
        &server.url,
        "passport.pdf",
    ];
    cli(&upload);
    // Again: the exchange has it (412), which the client reports as done.
    cli(&upload);
    assert_eq!(server.count("kyc_uploads"), 1);
    let h = hash(PDF).to_string();
    let listing = cli(&["kyc-bulk", "list", "--payto", "payto://iban/DE89370400440532013000"]);
    assert!(listing.contains(&h) && listing.contains("application/pdf"), "{listing}");
    cli(&["kyc-bulk", "export", &h, "-o", "copy.pdf"]);
    assert_eq!(std::fs::read(dir.join("copy.pdf")).unwrap(), PDF);
    let disabled = server.post_private(&format!("private/extern-keys/{public}/disable"), &json!({})).await;
    assert_eq!(disabled.status, 204);
    let out = common::run_cli(
        &dir,
        &[
            "client",
            "kyc-bulk",
            "--extern-key",
            "acme.key",
            "--payto",
            OTHER_PAYTO,
            "--url",
            &server.url,
            "passport.pdf",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1904"));
}
