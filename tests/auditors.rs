//! POST /management/auditors, .../disable and GET /auditors over real HTTP.

mod common;

use common::auditors::{disable_body, enable_auditor_cli, enable_body};
use common::{Http, run_cli, vectors};
use serde_json::{Value, json};
use taler_lite::crypto::{EddsaPrivateKey, MasterAddAuditorPS, SignedStruct};
use taler_lite::timestamp::Timestamp;

fn fresh_key() -> EddsaPrivateKey {
    EddsaPrivateKey::generate().unwrap()
}

/// A server whose master key is a fresh one the test holds.
async fn server_with_master() -> (common::TestApp, EddsaPrivateKey) {
    let master = fresh_key();
    let server = common::spawn_app(&["--master-public-key", &master.public_key().to_string()]).await;
    (server, master)
}

async fn active_auditors(server: &Http) -> Vec<Value> {
    let answer = server.get("auditors").await;
    assert_eq!(answer.status, 200);
    answer.json()["auditors"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vector_sequence_of_the_c_library() {
    let v = vectors("auditors.json");
    let server = common::spawn_app(&["--master-public-key", v["master_pub"].as_str().unwrap()]).await;
    let disable_path = format!(
        "management/auditors/{}/disable",
        v["disable_t1700000050"]["path_auditor_pub"].as_str().unwrap()
    );

    assert_eq!(server.post_json("management/auditors", &v["enable_t1700000000"]).await.status, 204);
    let auditors = active_auditors(&server).await;
    assert_eq!(auditors.len(), 1);
    assert_eq!(auditors[0]["auditor_pub"], v["enable_t1700000000"]["auditor_pub"]);
    assert_eq!(auditors[0]["auditor_url"], "https://auditor.example.com/");
    assert_eq!(auditors[0]["auditor_name"], "Example Auditor");
    assert_eq!(auditors[0]["denomination_keys"], json!([]));

    assert_eq!(server.post_json("management/auditors", &v["enable_t1700000000"]).await.status, 204);
    assert_eq!(server.post_json(&disable_path, &v["disable_t1700000050"]["body"]).await.status, 204);
    assert!(active_auditors(&server).await.is_empty());
    server.post_json("management/auditors", &v["enable_t1700000000"]).await.expect_error(409, 1801);
    assert!(active_auditors(&server).await.is_empty());
    assert_eq!(server.post_json("management/auditors", &v["enable_t1700000100"]).await.status, 204);
    assert_eq!(active_auditors(&server).await.len(), 1);
    server
        .post_json("management/auditors", &v["enable_with_tampered_url_expect_403"])
        .await
        .expect_error(403, 1802);
    let auditors = active_auditors(&server).await;
    assert_eq!(auditors[0]["auditor_url"], "https://auditor.example.com/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_bind_key_url_and_time_but_not_the_name() {
    let (server, master) = server_with_master().await;
    for round in 0..8u64 {
        let auditor = fresh_key().public_key();
        let t = 1_700_000_000 + round * 1000;
        let body = enable_body(&master, &auditor, "https://a.example/", "A", t);

        // Signed by another master key.
        let other = enable_body(&fresh_key(), &auditor, "https://a.example/", "A", t);
        server.post_json("management/auditors", &other).await.expect_error(403, 1802);

        let mut changed = body.clone();
        changed["auditor_url"] = json!("https://b.example/");
        server.post_json("management/auditors", &changed).await.expect_error(403, 1802);
        let mut changed = body.clone();
        changed["auditor_pub"] = json!(fresh_key().public_key().to_string());
        server.post_json("management/auditors", &changed).await.expect_error(403, 1802);
        let mut changed = body.clone();
        changed["validity_start"] = json!({"t_s": t + 1});
        server.post_json("management/auditors", &changed).await.expect_error(403, 1802);
        // A disable signature is no enable signature (different purpose).
        let mut changed = body.clone();
        changed["master_sig"] = disable_body(&master, &auditor, t)["master_sig"].clone();
        server.post_json("management/auditors", &changed).await.expect_error(403, 1802);
        assert_eq!(server.count("auditors"), round as i64);

        let mut renamed = body.clone();
        renamed["auditor_name"] = json!(format!("Renamed {round}"));
        assert_eq!(server.post_json("management/auditors", &renamed).await.status, 204);
    }
    assert_eq!(active_auditors(&server).await.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_checks_in_order() {
    let (server, master) = server_with_master().await;
    let auditor = fresh_key().public_key();
    let t = 1_700_000_000;

    server
        .post_json("management/auditors/NOTAKEY/disable", &disable_body(&master, &auditor, t))
        .await
        .expect_error(400, 26);
    let path = format!("management/auditors/{auditor}/disable");
    server.post_json(&path, &json!({"validity_end": {"t_s": t}})).await.expect_error(400, 22);
    server.post_json(&path, &disable_body(&fresh_key(), &auditor, t)).await.expect_error(403, 1803);
    server.post_json(&path, &disable_body(&master, &auditor, t)).await.expect_error(404, 1800);

    assert_eq!(
        server
            .post_json("management/auditors", &enable_body(&master, &auditor, "https://a/", "A", t))
            .await
            .status,
        204
    );
    server.post_json(&path, &disable_body(&master, &auditor, t - 1)).await.expect_error(409, 1801);
    assert_eq!(active_auditors(&server).await.len(), 1);
    assert_eq!(server.post_json(&path, &disable_body(&master, &auditor, t + 10)).await.status, 204);
    assert!(active_auditors(&server).await.is_empty());
    // Replaying the old enable after the newer disable is refused; a newer one re-enables.
    server
        .post_json("management/auditors", &enable_body(&master, &auditor, "https://a/", "A", t))
        .await
        .expect_error(409, 1801);
    assert_eq!(
        server
            .post_json("management/auditors", &enable_body(&master, &auditor, "https://a/", "A", t + 20))
            .await
            .status,
        204
    );
    assert_eq!(active_auditors(&server).await.len(), 1);
    let answer = server.get(&path).await;
    answer.expect_error(405, 20);
    assert_eq!(answer.headers["allow"], "POST, OPTIONS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_named_and_store_nothing() {
    let (server, master) = server_with_master().await;
    let auditor = fresh_key().public_key();
    let good = enable_body(&master, &auditor, "https://a.example/", "A", 1_700_000_000);
    let cases: Vec<(&str, Value, u64)> = vec![
        ("validity_start", json!({"t_s": 1.5}), 26),
        ("validity_start", json!({"t_s": -1}), 26),
        ("validity_start", json!({"t_s": "soon"}), 26),
        ("validity_start", json!(1700000000), 26),
        ("validity_start", json!({}), 26),
        ("auditor_pub", json!("ABC"), 26),
        ("auditor_pub", json!(42), 26),
        ("master_sig", json!(format!("{}U-", "0".repeat(101))), 26),
        ("auditor_url", json!("ftp://a.example/"), 26),
        ("auditor_url", json!(["https://a.example/"]), 26),
        ("auditor_name", json!(null), 26),
    ];
    for (field, value, code) in cases {
        let mut body = good.clone();
        body[field] = value.clone();
        let answer = server.post_json("management/auditors", &body).await;
        answer.expect_error(400, code);
        let parameter = answer.json()["parameter"].as_str().unwrap_or_default().to_owned();
        assert!(
            parameter == field || parameter.starts_with(&format!("{field}.")),
            "{field} = {value}: {parameter}"
        );
    }
    for field in ["auditor_url", "auditor_name", "auditor_pub", "master_sig", "validity_start"] {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        let answer = server.post_json("management/auditors", &body).await;
        answer.expect_error(400, 22);
        assert_eq!(answer.json()["parameter"], field);
    }
    assert_eq!(server.count("auditors"), 0);
    // "never" is a valid Timestamp; unknown members are ignored.
    let mut never = enable_body(&master, &auditor, "https://a.example/", "A", 0);
    let sig = MasterAddAuditorPS::new(Timestamp::NEVER, auditor, "https://a.example/").sign(&master);
    never["master_sig"] = json!(sig.to_string());
    never["validity_start"] = json!({"t_s": "NEVER"});
    never["extra"] = json!(true);
    assert_eq!(server.post_json("management/auditors", &never).await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_end_in_the_latest_state() {
    let (server, master) = server_with_master().await;
    let auditor = fresh_key().public_key();
    let path = format!("management/auditors/{auditor}/disable");
    let base = 1_700_000_000u64;
    // Enable first so that early disables do not meet "unknown auditor".
    assert_eq!(
        server
            .post_json("management/auditors", &enable_body(&master, &auditor, "https://a/", "A", base))
            .await
            .status,
        204
    );
    for round in 0..4u64 {
        let n = 40u64;
        let mut order: Vec<u64> = (1..=n).collect();
        // A deterministic shuffle, different each round.
        order.sort_by_key(|i| (i * 7919 + round * 104_729) % 97);
        let latest_is_enable = round % 2 == 0;
        let server = &server;
        let requests = order.into_iter().map(|i| {
            let t = base + round * 1000 + i;
            let enable = (i % 2 == 0) == latest_is_enable;
            let (p, body) = if enable {
                (
                    "management/auditors".to_string(),
                    enable_body(&master, &auditor, "https://a/", &format!("A{t}"), t),
                )
            } else {
                (path.clone(), disable_body(&master, &auditor, t))
            };
            async move { (t, server.post_json(&p, &body).await.status) }
        });
        let results = futures_util::future::join_all(requests).await;
        for (t, status) in &results {
            assert!(*status == 204 || *status == 409, "t={t}: {status}");
        }
        let (last, active): (i64, bool) = server
            .db()
            .query_row("SELECT last_change_s, is_active FROM auditors", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(last as u64, base + round * 1000 + 40);
        assert_eq!(active, latest_is_enable, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_cli_signs_and_uploads_against_the_development_key() {
    let server = common::spawn_app(&[]).await;
    let auditor = fresh_key().public_key().to_string();
    let db = server.db.to_str().unwrap().to_owned();
    let enable = |extra: &[&str]| {
        let args = ["--database", &db, "offline", "enable-auditor", "--auditor-pub", &auditor];
        let named = ["--url", "https://auditor.example/", "--name", "CLI Auditor"];
        run_cli(server.path(), &[&args[..], &named, extra].concat())
    };
    // Printing the body only.
    let out = enable(&["--at", "1700000000"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["validity_start"], json!({"t_s": 1700000000}));
    assert!(active_auditors(&server).await.is_empty());
    // Uploading.
    let out = enable(&["--upload", &server.url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let auditors = active_auditors(&server).await;
    assert_eq!(auditors.len(), 1);
    assert_eq!(auditors[0]["auditor_pub"], auditor);
    let out = run_cli(server.path(), &["--database", &db, "auditors", "list"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains(&auditor) && listing.contains("active"), "{listing}");
    // Disabling, and a replay of an older change reported as a failure.
    let out = run_cli(
        server.path(),
        &[
            "--database",
            &db,
            "offline",
            "disable-auditor",
            "--auditor-pub",
            &auditor,
            "--upload",
            &server.url,
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(active_auditors(&server).await.is_empty());
    let out = enable(&["--at", "1700000000", "--upload", &server.url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1801"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_list_shows_dates_to_people_and_seconds_in_json() {
    let server = common::spawn_app(&[]).await;
    let auditor = fresh_key().public_key().to_string();
    let db = server.db.to_str().unwrap().to_owned();
    let at = "2026-12-03T08:17:00Z";
    let secs = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp();
    let out = enable_auditor_cli(server.path(), &server.db, &auditor, "Dated", &server.url, &["--at", at]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run_cli(server.path(), &["--database", &db, "auditors", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table.lines().find(|l| l.starts_with(&auditor)).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(at), "{table}");
    assert!(!row.contains(&secs.to_string()), "raw seconds in a table for people: {table}");
    let out = run_cli(server.path(), &["--database", &db, "auditors", "list", "--json"]);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["last_change_s"], json!(secs));
}
