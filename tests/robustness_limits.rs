//! What a client can hold, bounded (README "Known limits"): bodies sent at a byte every
//! three seconds are cut off by the minimum body rate; 1100 idle connections under a soft
//! open-file limit of 1024 (and under a hard one) keep nobody else out; connections beyond
//! `--max-connections` that all hold a request get a clear 503; SIGTERM during a slow
//! upload answers it 503 when the shutdown's grace ends; and unverified uploads beyond the
//! staging budget get 503 before their bodies, the budget coming back only once a refused
//! body is deleted, and its space going back to the file system. Against the real binary.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use common::raw::read_answer;
use common::robust::*;
use taler_lite::crypto::EddsaPrivateKey;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Sends `head`, then the body one byte every `every` until an answer comes; the answer
/// and the body bytes sent.
async fn trickle(addr: String, head: String, body: Vec<u8>, every: Duration) -> (String, usize) {
    let s = TcpStream::connect(&addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    w.write_all(head.as_bytes()).await.unwrap();
    let sender = tokio::spawn(async move {
        let mut sent = 0;
        for b in body {
            if w.write_all(&[b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(every).await;
        }
        sent
    });
    let answer = read_answer(&mut r, Duration::from_secs(120)).await.unwrap_or_else(|partial| partial);
    sender.abort();
    let sent = sender.await.unwrap_or_default();
    (answer, sent)
}

#[test]
fn bodies_at_a_byte_every_three_seconds_are_cut_off() {
    let rt = runtime();
    // Pauses of 3 s are well within --request-timeout; only the rate cuts these bodies off.
    let (server, party) = server_with_party(&["--body-rate-grace", "4s"]);
    let addr = server.addr();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..10u64 {
            let json = serde_json::to_vec(&registration(&EddsaPrivateKey::generate().unwrap())).unwrap();
            let head = raw_json_head(&addr, "taler-prepared-transfer/registration", json.len());
            tasks.push((
                "json",
                json.len(),
                tokio::spawn(trickle(addr.clone(), head, json, Duration::from_secs(3))),
            ));
            let body = pdf_body(100 + i, 4096);
            let head = raw_upload_head(&addr, &party, &body);
            tasks.push((
                "upload",
                body.len(),
                tokio::spawn(trickle(addr.clone(), head, body, Duration::from_secs(3))),
            ));
        }
        // Meanwhile a well-formed request is served.
        let ok = server
            .post_json(
                "taler-prepared-transfer/registration",
                &registration(&EddsaPrivateKey::generate().unwrap()),
            )
            .await;
        assert_eq!(ok.status, 200);
        for (kind, length, task) in tasks {
            let (answer, sent) = task.await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 408"), "{kind}: {answer}");
            assert!(answer.contains("\"code\":26") && answer.contains("too slowly"), "{kind}: {answer}");
            assert!(sent < length, "{kind}: the whole body was sent ({sent} bytes) before the answer");
            eprintln!("{kind}: cut off after {sent} of {length} bytes");
        }
    });
    wait_until_no_staged(&server, Duration::from_secs(20));
    assert_eq!(server.count("kyc_uploads"), 0);
    assert_eq!(server.count("registrations"), 1);
}

/// A script that runs the real binary under `ulimit` (`ulimit_args`, e.g. `-S -n 1024`).
fn under_ulimit(dir: &std::path::Path, ulimit_args: &str) -> PathBuf {
    let script = dir.join("under-ulimit.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nulimit {ulimit_args} || exit 97\nexec {} \"$@\"\n", common::BIN),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).unwrap();
    script
}

/// 1100 idle connections, then 30 registrations on new connections: every one is served.
fn idle_connections_keep_nobody_out(ulimit_args: &str) -> TestServer {
    let scripts = tempfile::tempdir().unwrap();
    let script = under_ulimit(scripts.path(), ulimit_args);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = TestServer::try_start_with(&script, dir, &[], None).unwrap_or_else(|log| panic!("{log}"));
    let addr = server.addr();
    let rt = runtime();
    rt.block_on(async {
        let mut idle = Vec::new();
        for _ in 0..1100 {
            idle.push(TcpStream::connect(&addr).await.unwrap());
        }
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        for _ in 0..30 {
            let answer = client
                .post(server.endpoint("taler-prepared-transfer/registration"))
                .json(&registration(&EddsaPrivateKey::generate().unwrap()))
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("beside 1100 idle connections ({ulimit_args}): {e}\n{}", server.log())
                });
            assert_eq!(answer.status(), 200);
            // A new connection for each: the pool would otherwise reuse one.
            drop(answer);
        }
        drop(idle);
    });
    assert_eq!(server.count("registrations"), 30);
    server
}

#[test]
fn idle_connections_under_a_soft_limit_of_1024_keep_nobody_out() {
    let server = idle_connections_keep_nobody_out("-S -n 1024");
    assert!(server.log().contains("open-file limit raised from 1024"), "{}", server.log());
}

#[test]
fn idle_connections_under_a_hard_limit_of_1024_keep_nobody_out() {
    // The limit cannot be raised: the connection cap (from the limit) closes idle ones for new ones.
    idle_connections_keep_nobody_out("-n 1024");
}

#[test]
fn connections_beyond_the_cap_all_in_a_request_get_503() {
    let server = TestServer::start(&["--max-connections", "4"]);
    let addr = server.addr();
    let rt = runtime();
    rt.block_on(async {
        // Four requests half-sent: each connection holds a request.
        let mut busy = Vec::new();
        for _ in 0..4 {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(
                format!("{}{{", raw_json_head(&addr, "taler-prepared-transfer/registration", 100)).as_bytes(),
            )
            .await
            .unwrap();
            busy.push(s);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = TcpStream::connect(&addr).await.unwrap();
        let (mut r, mut w) = s.into_split();
        w.write_all(format!("GET /config HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
        let answer = read_answer(&mut r, Duration::from_secs(10)).await.unwrap_or_else(|partial| partial);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("retry-after: 1") && lower.contains("connection: close"), "{answer}");
        assert!(answer.contains("\"code\":9920") && answer.contains("maximum of 4 connections"), "{answer}");
        // Once one of them is done, new connections are served again.
        drop(busy.pop());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(server.get("config").await.status, 200);
    });
}

#[test]
fn sigterm_during_a_slow_upload_answers_it_503_when_the_grace_ends() {
    let (server, party) = server_with_party(&["--shutdown-grace", "2s"]);
    let addr = server.addr();
    let rt = runtime();
    let len: usize = 64 << 20;
    let answer = rt.block_on(async {
        let body = pdf_body(7, len);
        let head = raw_upload_head(&addr, &party, &body);
        let s = TcpStream::connect(&addr).await.unwrap();
        let (mut r, mut w) = s.into_split();
        w.write_all(head.as_bytes()).await.unwrap();
        // 4 MiB/s: 64 KiB every 1/64 s; the whole body would take 16 s.
        let sender = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(1000 / 64));
            for piece in body.chunks(64 << 10) {
                ticks.tick().await;
                if w.write_all(piece).await.is_err() {
                    return;
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pid = server.pid().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let answer = read_answer(&mut r, Duration::from_secs(30)).await.unwrap_or_else(|partial| partial);
        sender.abort();
        answer
    });
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}\n{}", server.log());
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("connection: close") && lower.contains("retry-after"), "{answer}");
    assert!(answer.contains("\"code\":9920") && answer.contains("shutting down"), "{answer}");
    let (status, _dir) = server.terminate();
    assert!(status.success(), "{status:?}");
}

/// The attack: six concurrent uploads of 300 MiB with an all-zero signature and no
/// body hash (so checked only once whole) to one known third party, against the default
/// `--max-staged` (1 GiB): three are staged (and refused 403 when whole), the three beyond
/// the cap get 503 with `Retry-After` and an ErrorDetail before their bodies are read (in
/// answer to `Expect: 100-continue`, as curl sends a large body); nothing is stored or left
/// staged, and the database file goes back near its size before the attack (its size on
/// disk, not only its free pages: auto-vacuum and a checkpoint). Bodies are made on the fly.
#[test]
fn unverified_uploads_beyond_the_staging_cap_get_503_and_their_space_goes_back() {
    let (server, party) = server_with_party(&[]);
    let db_file = server.path().join("taler-lite.sqlite3");
    let size = || std::fs::metadata(&db_file).unwrap().len();
    let before = size();
    let addr = server.addr();
    let len: usize = 300 << 20;
    let rt = runtime();
    let answers = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..6u64 {
            let addr = addr.clone();
            // An all-zero signature: it cannot verify.
            let head = format!(
                "POST /kyc-bulk/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pdf\r\nContent-Length: {len}\r\nTaler-Customer-Payto: {PAYTO}\r\nTaler-Extern-Signature: {}\r\nExpect: 100-continue\r\n\r\n",
                party.public_key(),
                "0".repeat(103)
            );
            tasks.push(tokio::spawn(async move {
                let s = TcpStream::connect(&addr).await.unwrap();
                let (mut r, mut w) = s.into_split();
                w.write_all(head.as_bytes()).await.unwrap();
                let first = read_answer(&mut r, Duration::from_secs(60)).await.unwrap_or_else(|partial| partial);
                if !first.starts_with("HTTP/1.1 100") {
                    return first;
                }
                let sender = tokio::spawn(async move {
                    // One MiB of the body, sent over and over: a PDF's first bytes, then noise.
                    let piece = pdf_body(200 + i, 1 << 20);
                    for _ in 0..len / piece.len() {
                        if w.write_all(&piece).await.is_err() {
                            break;
                        }
                    }
                    w
                });
                let answer = read_answer(&mut r, Duration::from_secs(600)).await.unwrap_or_else(|partial| partial);
                drop(sender.await);
                answer
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        answers
    });
    let busy: Vec<&String> = answers.iter().filter(|a| a.starts_with("HTTP/1.1 503")).collect();
    let refused: Vec<&String> = answers.iter().filter(|a| a.starts_with("HTTP/1.1 403")).collect();
    assert_eq!((busy.len(), refused.len()), (3, 3), "{answers:#?}\n{}", server.log());
    for a in busy {
        let lower = a.to_ascii_lowercase();
        let body = &a[a.find("\r\n\r\n").unwrap() + 4..];
        let detail: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            lower.contains("retry-after: 10")
                && detail["code"] == 9920
                && detail["hint"].is_string()
                && detail["detail"].as_str().unwrap().contains("--max-staged"),
            "{a}"
        );
    }
    wait_until_no_staged(&server, Duration::from_secs(300));
    assert_eq!(server.count("kyc_uploads"), 0);
    // The three staged bodies took 900 MiB; what is left of them once given back is a few
    // pages (the WAL aside, which the checkpoint restarts).
    let deadline = Instant::now() + Duration::from_secs(300);
    while size() > before + (8 << 20) {
        let free: i64 = server.db().query_row("PRAGMA freelist_count", [], |r| r.get(0)).unwrap();
        assert!(
            Instant::now() < deadline,
            "the file stayed at {} bytes ({free} free pages), from {before} before\n{}",
            size(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let free: i64 = server.db().query_row("PRAGMA freelist_count", [], |r| r.get(0)).unwrap();
    assert!(free < 2048, "{free} free pages left");
    integrity_ok(&server);
}

/// The budget of staged bytes is given back only once a refused body's rows are deleted:
/// with `--max-staged` the size of one upload, an unverified upload refused 403 is
/// followed at once by another one, which is refused 503 while the first body is being
/// deleted (a budget given back when the handler ends would let it in at once) and retried
/// until it is let in; when it is (its `100 Continue`, before it sends a byte), nothing of
/// the first body is in the file.
#[test]
fn the_staging_budget_comes_back_only_once_the_rows_are_gone() {
    let len: usize = 48 << 20;
    let (server, party) = server_with_party(&["--max-staged", "48MiB"]);
    let addr = server.addr();
    let rt = runtime();
    let head = format!(
        "POST /kyc-bulk/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pdf\r\nContent-Length: {len}\r\nTaler-Customer-Payto: {PAYTO}\r\nTaler-Extern-Signature: {}\r\nExpect: 100-continue\r\n\r\n",
        party.public_key(),
        "0".repeat(103)
    );
    let body = pdf_body(7, len);
    rt.block_on(async {
        let mut busy = 0;
        for round in 0..3 {
            // Let in (a 503 while the previous body is still being deleted is retried).
            let (mut r, mut w) = loop {
                let (mut r, mut w) = TcpStream::connect(&addr).await.unwrap().into_split();
                w.write_all(head.as_bytes()).await.unwrap();
                let first =
                    read_answer(&mut r, Duration::from_secs(60)).await.unwrap_or_else(|partial| partial);
                if first.starts_with("HTTP/1.1 100") {
                    break (r, w);
                }
                assert!(first.starts_with("HTTP/1.1 503"), "{first}");
                busy += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            // Let in: only this upload's (empty) staged row may be in the file.
            let conn = server.db();
            let (contents, chunks): (i64, i64) = conn
                .query_row(
                    "SELECT (SELECT count(*) FROM kyc_contents), (SELECT count(*) FROM kyc_chunks)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((contents, chunks), (1, 0), "round {round}: let in beside another body's rows");
            drop(conn);
            let sender = {
                let body = body.clone();
                tokio::spawn(async move {
                    let _ = w.write_all(&body).await;
                    w
                })
            };
            let answer =
                read_answer(&mut r, Duration::from_secs(120)).await.unwrap_or_else(|partial| partial);
            assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
            drop(sender.await);
        }
        // The body's deletion takes a while: the next upload came while it ran.
        assert!(busy > 0, "no upload was ever refused while a body was being deleted");
    });
    wait_until_no_staged(&server, Duration::from_secs(60));
}

/// An upload refused 503 from its headers (beyond `--max-staged`) by a client that sends
/// no `Expect: 100-continue`, and so sends its whole body before it reads: every time, the
/// client reads the whole 503 (the server reads and discards the rest of the body before it
/// closes, the lingering close, instead of closing with unread bytes, which makes the
/// kernel answer with a reset that can destroy the answer), and every byte it sent was
/// taken. Twenty tries of 32 MiB one after the other, then six at once.
#[test]
fn a_503_before_the_body_reaches_a_client_that_sends_its_whole_body_first() {
    let (server, party) = server_with_party(&["--max-staged", "16MiB"]);
    let addr = server.addr();
    let len: usize = 32 << 20;
    let head = format!(
        "POST /kyc-bulk/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pdf\r\nContent-Length: {len}\r\nTaler-Customer-Payto: {PAYTO}\r\nTaler-Extern-Signature: {}\r\n\r\n",
        party.public_key(),
        "0".repeat(103)
    );
    let body = Arc::new(pdf_body(9, len));
    let rt = runtime();
    let one = |addr: String, head: String, body: Arc<Vec<u8>>| async move {
        let (mut r, mut w) = TcpStream::connect(&addr).await.unwrap().into_split();
        // As most clients do: the whole request written, and only then the answer read.
        let sender = tokio::spawn(async move {
            w.write_all(head.as_bytes()).await?;
            for piece in body.chunks(64 << 10) {
                w.write_all(piece).await?;
            }
            w.flush().await?;
            Ok::<_, std::io::Error>(w)
        });
        let sent = sender.await.unwrap();
        let answer = read_answer(&mut r, Duration::from_secs(60)).await;
        (sent.map(|_| ()).map_err(|e| e.to_string()), answer)
    };
    rt.block_on(async {
        for attempt in 0..20 {
            let (sent, answer) = one(addr.clone(), head.clone(), body.clone()).await;
            let answer =
                answer.unwrap_or_else(|partial| panic!("try {attempt}: no whole answer, only {partial:?}"));
            assert!(sent.is_ok(), "try {attempt}: sending failed: {sent:?}");
            let (status, detail) = common::raw::status_and_body(&answer).unwrap();
            assert_eq!(status, 503, "{answer}");
            assert!(detail.contains("\"code\":9920") && detail.contains("--max-staged"), "{answer}");
            assert!(answer.to_ascii_lowercase().contains("retry-after: 10"), "{answer}");
        }
        let together: Vec<_> =
            (0..6).map(|_| tokio::spawn(one(addr.clone(), head.clone(), body.clone()))).collect();
        for t in together {
            let (sent, answer) = t.await.unwrap();
            let answer = answer.unwrap_or_else(|partial| panic!("no whole answer, only {partial:?}"));
            assert!(sent.is_ok() && answer.starts_with("HTTP/1.1 503"), "{sent:?} {answer}");
        }
    });
    assert_eq!(server.count("kyc_contents"), 0);
}
