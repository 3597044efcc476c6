//! The CLI as a client of the real binary: `client kyc-bulk` waits for
//! `100 Continue`, reads early answers, retries what is worth retrying; and the
//! list commands never pass control characters to the terminal.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::auditors::enable_auditor_cli;
use common::kyc::party_arg;
use common::{TestServer, run_cli};
use sha2::{Digest, Sha512};
use taler_lite::crypto::{EddsaPrivateKey, HashCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PAYTO: &str = "payto://iban/DE89370400440532013000?receiver-name=Erika%20Mustermann";
const MIB: usize = 1 << 20;

/// A PDF of `size` bytes (magic, then pseudo-random filler); returns its hash.
fn write_pdf(path: &Path, size: usize) -> HashCode {
    let mut body = b"%PDF-1.7\n".to_vec();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while body.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.extend_from_slice(&x.to_le_bytes());
    }
    body.truncate(size);
    std::fs::write(path, &body).unwrap();
    let digest: [u8; 64] = Sha512::digest(&body).into();
    HashCode::from_bytes(digest)
}

/// A fresh third-party key, saved as `name` in `dir`.
fn party_key(dir: &Path, name: &str) -> EddsaPrivateKey {
    let key = EddsaPrivateKey::generate().unwrap();
    std::fs::write(dir.join(name), key.to_base32()).unwrap();
    key
}

/// A server that knows the third party whose key is `party.key` in its folder.
fn server_with_party(extra: &[&str]) -> TestServer {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let key = party_key(dir.path(), "party.key");
    TestServer::start_in(dir, &[&["--extern-key", &party_arg(&key)][..], extra].concat())
}

/// `client kyc-bulk` of `file` with `key`, off the async threads (the test's
/// proxy and fake servers run on them meanwhile).
async fn cli_kyc_bulk(dir: &Path, key: &str, url: &str, file: &str, extra: &[&str]) -> Output {
    let dir = dir.to_owned();
    let args: Vec<String> =
        [&["client", "kyc-bulk", "--extern-key", key, "--payto", PAYTO, "--url", url, file][..], extra]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&dir, &args)
    })
    .await
    .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A TCP proxy to `upstream` that counts, per connection, the bytes the client
/// sent: what reached the server, whatever the client claims.
struct CountingProxy {
    url: String,
    sent: Arc<Mutex<Vec<u64>>>,
}

impl CountingProxy {
    async fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let (mut client_rd, mut client_wr) = client.into_split();
                    let (mut server_rd, mut server_wr) = server.into_split();
                    let up = async move {
                        let mut count = 0u64;
                        let mut buf = vec![0u8; 64 << 10];
                        while let Ok(n @ 1..) = client_rd.read(&mut buf).await {
                            count += n as u64;
                            if server_wr.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        log.lock().unwrap().push(count);
                        let _ = server_wr.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut server_rd, &mut client_wr).await;
                        let _ = client_wr.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        CountingProxy { url, sent }
    }

    /// The counts of the first `n` connections, once they have all ended.
    async fn counts(&self, n: usize) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let sent = self.sent.lock().unwrap().clone();
            if sent.len() >= n || Instant::now() > deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn upstream(server: &TestServer) -> SocketAddr {
    server.url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_upload_is_already_uploaded_and_never_sends_the_body() {
    let server = server_with_party(&[]);
    let size = 8 * MIB;
    let h = write_pdf(&server.path().join("scan.pdf"), size);
    let proxy = CountingProxy::start(upstream(&server)).await;

    let out = cli_kyc_bulk(server.path(), "party.key", &proxy.url, "scan.pdf", &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("uploaded") && stderr(&out).contains(&h.to_string()), "{}", stderr(&out));
    // The proxy sees a real upload whole: what the re-uploads are measured with.
    assert!(proxy.counts(1).await[0] >= size as u64);

    for round in 1..=20 {
        let out = cli_kyc_bulk(server.path(), "party.key", &proxy.url, "scan.pdf", &[]).await;
        assert_eq!(out.status.code(), Some(0), "round {round}: {}", stderr(&out));
        let said = stderr(&out);
        assert!(said.contains("already uploaded") && said.contains(&h.to_string()), "round {round}: {said}");
    }
    let counts = proxy.counts(21).await;
    assert_eq!(counts.len(), 21, "{counts:?}");
    for (round, sent) in counts[1..].iter().enumerate() {
        assert!(*sent < 64 << 10, "re-upload {} sent {sent} bytes of an {size}-byte file", round + 1);
    }
    assert_eq!(server.count("kyc_uploads"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refusals_are_read_every_time() {
    // 404: a third party the server does not know.
    let server = server_with_party(&["--max-upload", "1MiB"]);
    party_key(server.path(), "stranger.key");
    write_pdf(&server.path().join("big.pdf"), 12 * MIB);
    for (key, status, code) in [("stranger.key", "404", "code 1904"), ("party.key", "413", "code 32")] {
        for round in 1..=10 {
            let out = cli_kyc_bulk(server.path(), key, &server.url, "big.pdf", &[]).await;
            let said = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{status} round {round}: {said}");
            assert!(said.contains(status) && said.contains(code), "{status} round {round}: {said}");
            // One line, no retry: a 4xx is the answer.
            assert_eq!(said.trim_end().lines().count(), 1, "{said}");
        }
    }
    assert_eq!(server.count("kyc_uploads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_listening_is_retried_then_named() {
    let dir = tempfile::tempdir().unwrap();
    party_key(dir.path(), "party.key");
    write_pdf(&dir.path().join("scan.pdf"), 4096);
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/");
    let started = Instant::now();
    let out = cli_kyc_bulk(dir.path(), "party.key", &url, "scan.pdf", &["--retries", "2"]).await;
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("cannot connect") && said.contains("refused"), "{said}");
    assert!(said.contains("gave up after 3 attempts"), "{said}");
    assert_eq!(said.matches("retry ").count(), 2, "{said}");
    // 200 ms, then 400 ms of back-off.
    assert!(started.elapsed() >= Duration::from_millis(600), "{:?}", started.elapsed());
}

/// Reads an upload's request head, returning its `Content-Length` and the
/// bytes read past the head.
async fn read_head(s: &mut TcpStream) -> (usize, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the head ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            assert!(head.starts_with("post /prefix/kyc-bulk/"), "{head}");
            assert!(head.contains("expect: 100-continue"), "{head}");
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap();
            return (length, buf[end + 4..].to_vec());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_and_a_silent_server_gets_the_body_after_a_second() {
    let dir = tempfile::tempdir().unwrap();
    party_key(dir.path(), "party.key");
    let size = 100_000;
    write_pdf(&dir.path().join("scan.pdf"), size);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/prefix/", listener.local_addr().unwrap());
    let fake = tokio::spawn(async move {
        // Twice an early 503, with the body unread.
        for _ in 0..2 {
            let (mut s, _) = listener.accept().await.unwrap();
            read_head(&mut s).await;
            let body = r#"{"code":52,"hint":"database busy","detail":"try later"}"#;
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(answer.as_bytes()).await.unwrap();
        }
        // Then a server that ignores `Expect`: no 100, it just reads.
        let (mut s, _) = listener.accept().await.unwrap();
        let asked = Instant::now();
        let (length, mut body) = read_head(&mut s).await;
        let mut chunk = vec![0u8; 64 << 10];
        while body.len() < length {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            body.extend_from_slice(&chunk[..n]);
        }
        s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await.unwrap();
        (length, body.len(), asked.elapsed())
    });
    let out = cli_kyc_bulk(dir.path(), "party.key", &url, "scan.pdf", &["--retries", "2"]).await;
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert_eq!(
        said.matches("503 Service Unavailable: code 52: database busy: try later").count(),
        2,
        "{said}"
    );
    assert!(said.contains("uploaded scan.pdf"), "{said}");
    let (length, received, waited) = fake.await.unwrap();
    assert_eq!((length, received), (size, size));
    assert!(waited >= Duration::from_millis(900), "the body came after {waited:?}, without a pause");
}

#[tokio::test]
async fn list_commands_escape_control_characters() {
    let server = server_with_party(&[]);
    let dir = server.path().to_owned();
    write_pdf(&dir.join("scan.pdf"), 4096);
    let out = run_cli(
        &dir,
        &[
            "client",
            "kyc-bulk",
            "--extern-key",
            "party.key",
            "--payto",
            PAYTO,
            "--url",
            &server.url,
            "scan.pdf",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_cli(&dir, &["client", "register", "--url", &server.url, "--amount", "KUDOS:7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let auditor = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let out = enable_auditor_cli(&dir, &server.db, &auditor, "Auditor", &server.url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The server refuses control characters; a database edited by hand (or an
    // older version) may still hold them.
    let copy = dir.join("edited.sqlite3");
    server.db().execute("VACUUM INTO ?1", [copy.to_str().unwrap()]).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.execute_batch(
        "UPDATE auditors SET auditor_name = 'Evil' || char(27) || '[2J', auditor_url = 'https://a.example/' || char(7);
         UPDATE extern_keys SET name = 'Party' || char(27) || '[2J';
         UPDATE kyc_uploads SET content_type = 'application/pdf' || char(155) || '0m', payto = payto || char(27) || '[2J';
         UPDATE registrations SET short_subject = 'S' || char(27) || '[2J', credit_amount = 'KUDOS:7' || char(13);",
    )
    .unwrap();
    drop(conn);
    let copy = copy.to_str().unwrap();
    for (command, escaped) in [
        (&["auditors", "list"][..], &["Evil\\u{1b}[2J", "https://a.example/\\u{7}"][..]),
        (&["extern", "list"], &["Party\\u{1b}[2J"]),
        (&["kyc-bulk", "list"], &["application/pdf\\u{9b}0m", "Party\\u{1b}[2J", "Mustermann\\u{1b}[2J"]),
        (&["registrations", "list"], &["S\\u{1b}[2J", "KUDOS:7\\u{d}"]),
    ] {
        let out = run_cli(&dir, &[&["--database", copy][..], command].concat());
        assert!(out.status.success(), "{command:?}: {}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        for b in text.bytes() {
            assert!(b == b'\n' || !b.is_ascii_control(), "{command:?} printed byte {b:#x}: {text}");
        }
        assert!(!text.contains('\u{9b}'), "{command:?}: {text}");
        for e in escaped {
            assert!(text.contains(e), "{command:?} lacks {e}: {text}");
        }
    }
}
