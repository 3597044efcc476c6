//! Overload and slow clients, for the real binary over real HTTP (issue 6):
//! beside hundreds of idle connections, headers sent one byte at a time and
//! bodies that stop half-way, hundreds of well-formed requests are all
//! served, without a 5xx or a dropped connection; the slow and idle ones are
//! cut off after `--request-timeout` (stalled bodies with 408 / code 26) and
//! what they staged is removed.

mod common;

use std::time::{Duration, Instant};

use common::raw::read_until_closed;
use common::robust::*;
use taler_lite::crypto::EddsaPrivateKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST_TIMEOUT_S: u64 = 2;

#[test]
fn slow_and_idle_clients_are_cut_off_while_everyone_else_is_served() {
    let rt = runtime();
    let timeout = Duration::from_secs(REQUEST_TIMEOUT_S);
    let (server, party) = server_with_party(&["--request-timeout", &format!("{REQUEST_TIMEOUT_S}s")]);
    let addr = server.addr();
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
            let head = raw_upload_head(&addr, &party, &body);
            let sent = [head.as_bytes(), &body[..(3 << 19)]].concat();
            stalled.push(("upload", sent));
        }
        let json_body = serde_json::to_vec(&registration(&EddsaPrivateKey::generate().unwrap())).unwrap();
        for path in ["taler-prepared-transfer/registration", "management/auditors", "taler-prepared-transfer/unregistration"] {
            let head = raw_json_head(&addr, path, json_body.len());
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
