//! What a client can hold, bounded (README "Known limits"): bodies sent at a byte every
//! three seconds are cut off by the minimum body rate; 1100 idle connections under a soft
//! open-file limit of 1024 (and under a hard one) keep nobody else out; connections beyond
//! `--max-connections` that all hold a request get a clear 503; and SIGTERM during a slow
//! upload answers it 503 when the shutdown's grace ends. Against the real binary.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

/// Six concurrent uploads with a bad signature and no body hash (so checked only once
/// whole), of 64 MiB each, against `--max-staged 160MiB`: two are staged (and refused 403
/// when whole), the four beyond the cap get 503 with `Retry-After` before their bodies are
/// read; nothing is stored or left staged. (The 300 MiB, scaled to the shared disk.)
#[test]
fn unverified_uploads_beyond_the_staging_cap_get_503_before_their_bodies() {
    let (server, party) = server_with_party(&["--max-staged", "160MiB"]);
    let addr = server.addr();
    let len: usize = 64 << 20;
    let rt = runtime();
    let answers = rt.block_on(async {
        // Made first, so that the six requests arrive together.
        let bodies: Vec<Vec<u8>> = (0..6u64).map(|i| pdf_body(200 + i, len)).collect();
        let mut tasks = Vec::new();
        for body in bodies {
            let addr = addr.clone();
            // An all-zero signature: it cannot verify.
            let head = format!(
                "POST /kyc-bulk/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pdf\r\nContent-Length: {len}\r\nTaler-Customer-Payto: {PAYTO}\r\nTaler-Extern-Signature: {}\r\nExpect: 100-continue\r\n\r\n",
                party.public_key(),
                "0".repeat(103)
            );
            tasks.push(tokio::spawn(async move {
                // As curl sends a large body: `Expect: 100-continue`, the body only after `100`.
                let s = TcpStream::connect(&addr).await.unwrap();
                let (mut r, mut w) = s.into_split();
                w.write_all(head.as_bytes()).await.unwrap();
                let first = read_answer(&mut r, Duration::from_secs(60)).await.unwrap_or_else(|partial| partial);
                if !first.starts_with("HTTP/1.1 100") {
                    return first;
                }
                let sender = tokio::spawn(async move {
                    for piece in body.chunks(1 << 20) {
                        if w.write_all(piece).await.is_err() {
                            break;
                        }
                    }
                    w
                });
                let answer = read_answer(&mut r, Duration::from_secs(300)).await.unwrap_or_else(|partial| partial);
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
    assert_eq!((busy.len(), refused.len()), (4, 2), "{answers:#?}\n{}", server.log());
    for a in busy {
        let lower = a.to_ascii_lowercase();
        assert!(
            lower.contains("retry-after: 10") && a.contains("\"code\":9920") && a.contains("--max-staged"),
            "{a}"
        );
    }
    wait_until_no_staged(&server, Duration::from_secs(60));
    assert_eq!(server.count("kyc_uploads"), 0);
}
