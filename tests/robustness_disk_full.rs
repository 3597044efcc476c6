//! A full disk, for the real binary over real HTTP (issue 6): with the file
//! capped by `--max-db-pages`, uploads and registrations get 500 / code 52,
//! acknowledged writes stay, nothing is corrupted or left staged, reads go
//! on, and after a restart with room the same file takes writes again.

mod common;

use std::time::Duration;

use common::TestServer;
use common::robust::*;
use taler_lite::crypto::EddsaPrivateKey;

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
