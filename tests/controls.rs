//! The fixture controls of a development server over real HTTP: the clock, faults, the
//! journal of requests and snapshots (README, "Use it in CI").

mod common;

use common::bank::{EXCHANGE_ACCOUNT as ACCOUNT, reserve_registration, unregistration};
use common::{Http, spawn_app};
use serde_json::{Value, json};
use taler_lite::crypto::EddsaPrivateKey;

const CUSTOMER: &str = "payto://iban/DE89370400440532013000?receiver-name=Customer";

fn one_shot(auth: &EddsaPrivateKey) -> Value {
    reserve_registration(auth, ACCOUNT, "KUDOS:10")
}

async fn clock(server: &Http, body: Value) -> common::Answer {
    server.post_private("private/clock", &body).await
}

async fn server_now_s(server: &Http) -> i64 {
    let answer = server.get_private("private/clock").await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    answer.json()["now"]["t_s"].as_i64().unwrap()
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A console session (the login form with the token), for reading pages.
async fn console_page(server: &Http, path: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client
        .post(server.endpoint("console/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("token", server.token.as_str())]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = client.get(server.endpoint(path)).header("Cookie", cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_advanced_past_its_expiration_is_gone_everywhere() {
    let server = spawn_app(&["--dev", "--subject-formats", "SIMPLE", "--simple-subject", "short"]).await;
    let auth = EddsaPrivateKey::generate().unwrap();
    let answer = server.register(&one_shot(&auth)).await;
    assert_eq!(answer.status, 200);
    let subject = answer.json()["subjects"][0]["subject"].as_str().unwrap().to_owned();
    let key = auth.public_key().to_string();
    let listed = server.get_private("private/registrations").await.json();
    assert_eq!(listed["registrations"][0]["live"], true);
    assert!(console_page(&server, "console/registrations").await.contains(&key));

    // The default lifetime is 30 days.
    let moved = clock(&server, json!({"advance": "30d 1m"})).await;
    assert_eq!(moved.status, 200, "{}", String::from_utf8_lossy(&moved.body));
    assert!(moved.json()["offset_s"].as_i64().unwrap() >= 30 * 86_400 + 59);

    let listed = server.get_private("private/registrations").await.json();
    assert_eq!(listed["registrations"][0]["live"], false, "{listed}");
    assert!(!console_page(&server, "console/registrations").await.contains(&key));
    assert!(console_page(&server, "console/registrations?state=expired").await.contains(&key));
    let credit = server
        .post_private(
            "taler-wire-gateway/admin/add-incoming-subject",
            &json!({"amount": "KUDOS:10", "subject": subject, "debit_account": CUSTOMER}),
        )
        .await;
    assert_eq!(credit.status, 200, "{}", String::from_utf8_lossy(&credit.body));
    assert_eq!(credit.json()["status"], "bounced", "{}", credit.json());
    // Unregistration, signed at the server's (moved) time: nothing live to remove.
    let timestamp = rfc3339(server_now_s(&server).await);
    let unregister = unregistration(&auth, &timestamp);
    server.post_json("taler-prepared-transfer/unregistration", &unregister).await.expect_error(404, 5162);
    // And the key may register anew, as after a real month.
    assert_eq!(server.register(&one_shot(&auth)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_never_goes_back_and_names_what_was_wrong() {
    let server = spawn_app(&["--dev"]).await;
    let start = server_now_s(&server).await;
    let earlier = clock(&server, json!({"set": rfc3339(start - 3600)})).await;
    earlier.expect_error(409, 9901);
    assert_eq!(earlier.json()["parameter"], "set");

    let frozen = clock(&server, json!({"freeze": true})).await.json();
    assert_eq!(frozen["frozen"], true);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(server_now_s(&server).await, frozen["now"]["t_s"].as_i64().unwrap(), "a frozen clock moved");
    let set = clock(&server, json!({"set": "2100-01-01T00:00:00Z"})).await.json();
    assert_eq!(set["now"]["t_s"], 4_102_444_800i64);
    assert_eq!(set["frozen"], true);
    let advanced = clock(&server, json!({"advance": "1h"})).await.json();
    assert_eq!(advanced["now"]["t_s"], 4_102_444_800i64 + 3600);
    // The wall clock is 75 years behind now.
    let real = clock(&server, json!({"real": true})).await;
    real.expect_error(409, 9901);
    assert_eq!(real.json()["parameter"], "real");
    let thawed = clock(&server, json!({"freeze": false})).await.json();
    assert_eq!(thawed["frozen"], false);
    assert!(thawed["now"]["t_s"].as_i64().unwrap() >= 4_102_444_800 + 3600);

    for (body, status, parameter) in [
        (json!({}), 400, "advance, set, freeze or real"),
        (json!({"advance": "1h", "set": "2100-01-01T00:00:00Z"}), 400, "set"),
        (json!({"advance": "soon"}), 400, "advance"),
        (json!({"advance": "-1h"}), 400, "advance"),
        (json!({"set": "tomorrow"}), 400, "set"),
        (json!({"freeze": "yes"}), 400, "freeze"),
        (json!({"real": false}), 400, "real"),
    ] {
        let answer = clock(&server, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.json()["parameter"], parameter, "{body}");
    }
    let unknown = clock(&server, json!({"rewind": "1h"})).await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_clock_at_start_dates_everything() {
    let server = spawn_app(&["--dev", "--frozen-clock", "2030-01-01T00:00:00Z"]).await;
    let at = 1_893_456_000i64;
    assert_eq!(server_now_s(&server).await, at);
    let answer = server.register(&one_shot(&EddsaPrivateKey::generate().unwrap())).await;
    assert_eq!(answer.json()["expiration"]["t_s"], at + 30 * 86_400);
    let state = server.get_private("private/clock").await.json();
    assert_eq!(state["frozen"], true);
    // Offsets at start, in the newer and the older spelling.
    for flags in [&["--clock-offset", "3d"][..], &["--timetravel", "259200"][..]] {
        let shifted = spawn_app(&[&["--dev"], flags].concat()).await;
        let offset = shifted.get_private("private/clock").await.json()["offset_s"].as_i64().unwrap();
        assert!((259_199..=259_200).contains(&offset), "{flags:?}: {offset}");
    }
}

/// The development routes of a server without `--dev` or `--ephemeral` do not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_control_exists_without_dev_or_ephemeral() {
    let server = spawn_app(&[]).await;
    let dev_only: Vec<_> = taler_lite::api::routes(true)
        .into_iter()
        .filter(|r| !taler_lite::api::route_table().iter().any(|p| p.pattern() == r.pattern()))
        .collect();
    assert!(dev_only.len() >= 5, "{} development routes", dev_only.len());
    for route in dev_only {
        let path = route.pattern().replace("{name}", "before");
        let request = server
            .client
            .request(route.method().clone(), server.endpoint(&path))
            .bearer_auth(&server.token)
            .json(&json!({}));
        server.send(request).await.expect_error(404, 21);
    }
}

async fn add_fault(server: &Http, body: Value) -> common::Answer {
    server.post_private("private/faults", &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_count_down_in_order_and_store_nothing() {
    let server = spawn_app(&["--dev"]).await;
    let route = "/taler-prepared-transfer/registration";
    let made = add_fault(&server, json!({"method": "POST", "route": route, "times": 2, "status": 503})).await;
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    let first = made.json()["id"].as_u64().unwrap();
    let second =
        add_fault(&server, json!({"method": "post", "route": route, "status": 502})).await.json()["id"]
            .as_u64()
            .unwrap();
    assert!(second > first);
    let listed = server.get_private("private/faults").await.json();
    assert_eq!(listed["faults"][0]["times"], 2);
    assert_eq!(listed["faults"][1]["status"], 502);
    let auth = EddsaPrivateKey::generate().unwrap();
    let before = common::robust::fingerprint(&server.db());
    for status in [503, 503, 502] {
        let answer = server.register(&one_shot(&auth)).await;
        answer.expect_error(status, 9902);
        assert!(answer.headers.get("access-control-allow-origin").is_some(), "a public route keeps its CORS");
        assert_eq!(common::robust::fingerprint(&server.db()), before, "a faulted request changed the state");
    }
    // An operator route too: the fault comes before its handler.
    let party = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    add_fault(&server, json!({"method": "POST", "route": "/private/extern-keys", "status": 500})).await;
    let refused =
        server.post_private("private/extern-keys", &json!({"extern_pub": party, "name": "P"})).await;
    refused.expect_error(500, 9902);
    assert_eq!(common::robust::fingerprint(&server.db()), before, "a faulted request changed the state");
    assert_eq!(server.get_private("private/faults").await.json()["faults"], json!([]));
    assert_eq!(server.register(&one_shot(&auth)).await.status, 200);
    // Other routes were never touched; a reset closes the connection without an answer.
    add_fault(&server, json!({"method": "GET", "route": "/taler-prepared-transfer/config", "reset": true}))
        .await;
    let lost = server.client.get(server.endpoint("taler-prepared-transfer/config")).send().await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(server.get("taler-prepared-transfer/config").await.status, 200);
    // Cleared at once.
    add_fault(&server, json!({"method": "GET", "route": "/taler-prepared-transfer/config", "times": 5}))
        .await;
    assert_eq!(
        server
            .send(server.client.delete(server.endpoint("private/faults")).bearer_auth(&server.token))
            .await
            .status,
        204
    );
    assert_eq!(server.get("taler-prepared-transfer/config").await.status, 200);

    for (body, parameter) in [
        (json!({"route": route}), "method"),
        (json!({"method": "GET", "route": route}), "method"),
        (json!({"method": "POST"}), "route"),
        (json!({"method": "POST", "route": "/nowhere"}), "route"),
        (json!({"method": "GET", "route": "/private/faults"}), "route"),
        (json!({"method": "POST", "route": route, "status": 404}), "status"),
        (json!({"method": "POST", "route": route, "times": 0}), "times"),
        (json!({"method": "POST", "route": route, "delay_ms": 999_999_999}), "delay_ms"),
        (json!({"method": "POST", "route": route, "colour": 1}), "colour"),
    ] {
        let answer = add_fault(&server, body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {}", String::from_utf8_lossy(&answer.body));
        assert!(
            answer.json()["parameter"].as_str().unwrap_or_default().contains(parameter),
            "{body}: {}",
            answer.json()
        );
    }
}

async fn requests(server: &Http, query: &str) -> Vec<Value> {
    let answer = server.get_private(&format!("private/requests?{query}")).await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    answer.json()["requests"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_keeps_bodies_and_redacts_secrets() {
    let server = spawn_app(&["--dev"]).await;
    let auth = EddsaPrivateKey::generate().unwrap();
    let body = one_shot(&auth);
    assert_eq!(server.register(&body).await.status, 200);
    let secret_cookie = "taler_lite_console=SECRETCOOKIEVALUE";
    let listing = server
        .client
        .get(server.endpoint("private/registrations?limit=5"))
        .bearer_auth(&server.token)
        .header("Cookie", secret_cookie)
        .header("X-Test", "kept");
    assert_eq!(server.send(listing).await.status, 200);
    server.get("healthz").await;
    server.get_private("metrics").await;
    let raw = server.get_private("private/requests").await;
    let text = String::from_utf8_lossy(&raw.body).into_owned();
    assert!(!text.contains(&server.token), "the token is in the journal");
    assert!(!text.contains("SECRETCOOKIEVALUE"), "the cookie is in the journal");
    let entries = raw.json()["requests"].as_array().unwrap().clone();
    // Newest first; neither the probes nor the journal itself.
    assert_eq!(entries.len(), 2, "{text}");
    let (listed, registered) = (&entries[0], &entries[1]);
    assert!(listed["id"].as_u64() > registered["id"].as_u64());
    assert_eq!(listed["route"], "/private/registrations");
    assert_eq!(listed["path"], "/private/registrations");
    assert_eq!(listed["query"], "limit=5");
    assert_eq!(listed["status"], 200);
    assert_eq!(listed["headers"]["authorization"], "<redacted>");
    assert_eq!(listed["headers"]["cookie"], "<redacted>");
    assert_eq!(listed["headers"]["x-test"], "kept");
    assert!(listed.get("body").is_none() && listed.get("body_sha512").is_none());
    assert_eq!(registered["method"], "POST");
    assert_eq!(registered["body"], body);
    assert!(registered["bytes_in"].as_u64().unwrap() > 100);
    assert!(registered["bytes_out"].as_u64().unwrap() > 100);
    assert!(registered["duration_ms"].is_number());
    assert!(registered["time"]["t_s"].is_number());
    // Filters.
    assert_eq!(requests(&server, "route=/taler-prepared-transfer/registration").await.len(), 1);
    assert_eq!(requests(&server, "status=404").await.len(), 0);
    let since = registered["id"].as_u64().unwrap();
    assert_eq!(requests(&server, &format!("since_id={since}")).await.len(), 1);
    assert_eq!(requests(&server, "limit=1").await.len(), 1);
    // A body that is not JSON: its hash and type.
    let pdf = b"%PDF-1.7 not really".to_vec();
    let upload = server
        .client
        .post(server.endpoint("taler-prepared-transfer/registration"))
        .header("Content-Type", "application/pdf")
        .body(pdf.clone());
    server.send(upload).await;
    let newest = &requests(&server, "limit=1").await[0];
    let digest: [u8; 64] = <sha2::Sha512 as sha2::Digest>::digest(&pdf).into();
    assert_eq!(newest["body_sha512"], taler_lite::crypto::HashCode::from_bytes(digest).to_string());
    assert_eq!(newest["content_type"], "application/pdf");
    // Bad queries name their parameter; DELETE empties it.
    for (query, parameter) in
        [("limit=0", "limit"), ("since_id=x", "since_id"), ("timeout_ms=99999999", "timeout_ms")]
    {
        let answer = server.get_private(&format!("private/requests?{query}")).await;
        assert_eq!(answer.status, 400, "{query}");
        assert_eq!(answer.json()["parameter"], parameter, "{query}");
    }
    let cleared = server
        .send(server.client.delete(server.endpoint("private/requests")).bearer_auth(&server.token))
        .await;
    assert_eq!(cleared.status, 204);
    assert_eq!(requests(&server, "").await.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_the_journal_is_woken_by_the_request() {
    let server = spawn_app(&["--dev"]).await;
    server.get("taler-prepared-transfer/config").await;
    let last = requests(&server, "limit=1").await[0]["id"].as_u64().unwrap();
    // Nothing new: the poll ends empty at its timeout.
    assert!(requests(&server, &format!("since_id={last}&timeout_ms=100")).await.is_empty());
    let waiting = {
        let (url, token, client) = (server.url.clone(), server.token.clone(), server.client.clone());
        tokio::spawn(async move {
            let query = format!(
                "private/requests?since_id={last}&timeout_ms=60000&route=/taler-prepared-transfer/registration"
            );
            let answer = client.get(format!("{url}{query}")).bearer_auth(token).send().await.unwrap();
            answer.json::<Value>().await.unwrap()
        })
    };
    // Requests that do not match leave it waiting.
    server.get("taler-prepared-transfer/config").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "the poll answered a request it did not ask for");
    let auth = EddsaPrivateKey::generate().unwrap();
    assert_eq!(server.register(&one_shot(&auth)).await.status, 200);
    let got = waiting.await.unwrap();
    let entries = got["requests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{got}");
    assert_eq!(entries[0]["body"]["authorization_pub"], auth.public_key().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_stays_bounded_over_ten_thousand_requests() {
    let server = spawn_app(&["--dev"]).await;
    let journal = server.state.journal.as_ref().unwrap();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (url, client) = (server.url.clone(), server.client.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..1250 {
                let request = if (worker * 1250 + i) % 3 == 0 {
                    // A third carry a JSON body near the 64 KiB that is kept: the bytes bound the ring.
                    let big = json!({ "pad": "x".repeat(60 << 10) });
                    client.post(format!("{url}taler-prepared-transfer/registration")).json(&big)
                } else {
                    client.get(format!("{url}taler-prepared-transfer/config?i={i}"))
                };
                request.send().await.unwrap().bytes().await.unwrap();
            }
        }));
    }
    let mut most = (0, 0);
    for task in tasks {
        task.await.unwrap();
        let (held, bytes) = journal.held();
        most = (most.0.max(held), most.1.max(bytes));
    }
    let (held, bytes) = journal.held();
    assert!(held < 1000 && most.0 <= 1000, "{held} entries held (most {})", most.0);
    assert!(bytes <= 16 << 20 && most.1 <= 16 << 20, "{bytes} bytes held (most {})", most.1);
    let entries = requests(&server, "limit=10000").await;
    assert_eq!(entries.len(), held);
    // The newest survive: the last id is the ten thousandth request.
    assert_eq!(entries[0]["id"], 10_000);
    assert!(entries.iter().any(|e| e["body"]["pad"].is_string()), "no 60 KiB body kept");
}

async fn snapshot(server: &Http, method: reqwest::Method, path: &str) -> common::Answer {
    server.send(server.client.request(method, server.endpoint(path)).bearer_auth(&server.token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_brings_back_exactly_the_snapshot() {
    let server = spawn_app(&["--dev", "--max-snapshots", "2"]).await;
    for _ in 0..3 {
        assert_eq!(server.register(&one_shot(&EddsaPrivateKey::generate().unwrap())).await.status, 200);
    }
    let before = common::robust::fingerprint(&server.db());
    let taken = snapshot(&server, reqwest::Method::PUT, "private/snapshots/three").await;
    assert_eq!(taken.status, 201, "{}", String::from_utf8_lossy(&taken.body));
    assert_eq!(taken.json()["name"], "three");
    assert!(taken.json()["bytes"].as_u64().unwrap() > 0);
    assert!(taken.json()["taken"]["t_s"].is_number());
    // Changes of every kind, then back.
    for _ in 0..2 {
        server.register(&one_shot(&EddsaPrivateKey::generate().unwrap())).await;
    }
    let party = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let added = server.post_private("private/extern-keys", &json!({"extern_pub": party, "name": "P"})).await;
    assert!(added.status < 300, "{}", String::from_utf8_lossy(&added.body));
    assert_ne!(common::robust::fingerprint(&server.db()), before);
    assert_eq!(snapshot(&server, reqwest::Method::POST, "private/snapshots/three/restore").await.status, 204);
    assert_eq!(common::robust::fingerprint(&server.db()), before, "the state is not the snapshot's");
    assert_eq!(
        server.get_private("private/registrations").await.json()["registrations"].as_array().unwrap().len(),
        3
    );

    // Listing, bounds, names, unknown ones.
    assert_eq!(snapshot(&server, reqwest::Method::PUT, "private/snapshots/two.b-c_d").await.status, 201);
    assert_eq!(
        snapshot(&server, reqwest::Method::PUT, "private/snapshots/three").await.status,
        201,
        "replacing"
    );
    let full = snapshot(&server, reqwest::Method::PUT, "private/snapshots/four").await;
    full.expect_error(409, 9904);
    assert_eq!(full.json()["parameter"], "name");
    let list = snapshot(&server, reqwest::Method::GET, "private/snapshots").await.json();
    let names: Vec<&str> =
        list["snapshots"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["three", "two.b-c_d"]);
    let long = "x".repeat(65);
    for bad in ["a%20b", long.as_str(), "a*b"] {
        let answer = snapshot(&server, reqwest::Method::PUT, &format!("private/snapshots/{bad}")).await;
        answer.expect_error(400, 26);
        assert_eq!(answer.json()["parameter"], "name");
    }
    assert_eq!(snapshot(&server, reqwest::Method::DELETE, "private/snapshots/three").await.status, 204);
    snapshot(&server, reqwest::Method::DELETE, "private/snapshots/three").await.expect_error(404, 9903);
    let unknown = snapshot(&server, reqwest::Method::POST, "private/snapshots/three/restore").await;
    unknown.expect_error(404, 9903);
    assert_eq!(unknown.json()["parameter"], "name");
}

/// Registrations never stop while a snapshot is restored: none fails, each is either
/// before the restore (and gone) or after it (and kept), and the rest is the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_under_concurrent_registrations_fails_none() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    let server = spawn_app(&["--dev"]).await;
    let base: Vec<String> = {
        let mut keys = Vec::new();
        for _ in 0..5 {
            let auth = EddsaPrivateKey::generate().unwrap();
            assert_eq!(server.register(&one_shot(&auth)).await.status, 200);
            keys.push(auth.public_key().to_string());
        }
        keys
    };
    assert_eq!(snapshot(&server, reqwest::Method::PUT, "private/snapshots/base").await.status, 201);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (url, client, stop) = (server.url.clone(), server.client.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let auth = EddsaPrivateKey::generate().unwrap();
                let sent = Instant::now();
                let answer = client
                    .post(format!("{url}taler-prepared-transfer/registration"))
                    .json(&one_shot(&auth))
                    .send()
                    .await
                    .unwrap();
                let status = answer.status().as_u16();
                answer.bytes().await.unwrap();
                done.push((auth.public_key().to_string(), sent, Instant::now(), status));
            }
            done
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let restore_sent = Instant::now();
    let restored = snapshot(&server, reqwest::Method::POST, "private/snapshots/base/restore").await;
    let restore_done = Instant::now();
    assert_eq!(restored.status, 204, "{}", String::from_utf8_lossy(&restored.body));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let stored: std::collections::HashSet<String> = server
        .db()
        .prepare("SELECT authorization_pub FROM registrations")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|k| taler_lite::crypto::EddsaPublicKey::from_bytes(k.unwrap().try_into().unwrap()).to_string())
        .collect();
    let (mut before, mut after) = (0, 0);
    for (key, sent, answered, status) in &all {
        assert_eq!(*status, 200, "a registration failed during the restore");
        if *answered < restore_sent {
            assert!(!stored.contains(key), "a registration from before the restore survived it");
            before += 1;
        } else if *sent > restore_done {
            assert!(stored.contains(key), "a registration after the restore is missing");
            after += 1;
        }
    }
    assert!(before > 0 && after > 0, "{before} registrations before the restore, {after} after");
    for key in &base {
        assert!(stored.contains(key), "the snapshot's registration {key} is missing");
    }
    let concurrent: std::collections::HashSet<&String> = all.iter().map(|(k, ..)| k).collect();
    assert!(stored.iter().all(|k| base.contains(k) || concurrent.contains(k)));
}

/// `client kyc-bulk` and `client register` against two injected 503s and a lost
/// connection: both succeed, and the journal shows the three answered tries.
#[test]
fn the_clients_retry_through_injected_faults() {
    let rt = common::robust::runtime();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let party = EddsaPrivateKey::generate().unwrap();
    std::fs::write(dir.path().join("party.key"), party.to_base32()).unwrap();
    std::fs::write(dir.path().join("doc.pdf"), common::robust::pdf_body(7, 300_000)).unwrap();
    let party_arg = format!("{}=Party", party.public_key());
    let server = common::TestServer::start_in(dir.clone(), &["--dev", "--extern-key", &party_arg]);
    let url = server.url.clone();
    let cases: [(&str, &[&str], u64); 2] = [
        (
            "/kyc-bulk/{extern_pub}",
            &["client", "kyc-bulk", "--extern-key", "party.key", "--payto", common::robust::PAYTO, "doc.pdf"],
            204,
        ),
        ("/taler-prepared-transfer/registration", &["client", "register", "--amount", "KUDOS:10"], 200),
    ];
    for (route, command, success) in cases {
        rt.block_on(async {
            for fault in [json!({"times": 2, "status": 503}), json!({"reset": true})] {
                let mut body = json!({"method": "POST", "route": route});
                body.as_object_mut().unwrap().extend(fault.as_object().unwrap().clone());
                assert_eq!(add_fault(&server, body).await.status, 201);
            }
        });
        let out = common::run_cli(dir.path(), &[command, &["--url", &url]].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{command:?}: {stderr}");
        assert!(stderr.contains("retry 3 of 5"), "{command:?}: {stderr}");
        let tries = rt.block_on(requests(&server, &format!("route={route}")));
        let statuses: Vec<u64> = tries.iter().map(|e| e["status"].as_u64().unwrap()).collect();
        assert_eq!(statuses, [success, 503, 503], "{route}");
    }
    assert_eq!(server.count("kyc_uploads"), 1);
    assert_eq!(server.count("registrations"), 1);
}

/// An upload streaming in while a snapshot is restored fails cleanly: an ErrorDetail for its
/// client, nothing half-stored, and the same upload again succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_streaming_in_at_a_restore_fails_cleanly() {
    use common::robust::{hash, pdf_body, upload_headers, upload_request};
    use futures_util::StreamExt;
    let party = EddsaPrivateKey::generate().unwrap();
    let server = spawn_app(&["--dev", "--extern-key", &format!("{}=Party", party.public_key())]).await;
    assert_eq!(snapshot(&server, reqwest::Method::PUT, "private/snapshots/empty").await.status, 201);
    let body = pdf_body(3, 3 << 20);
    let (first, rest) = body.split_at(2 << 20);
    let (first, rest) = (bytes::Bytes::copy_from_slice(first), bytes::Bytes::copy_from_slice(rest));
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures_util::stream::once(async move {
            let _ = released.await;
            Ok(rest)
        }),
    );
    let request = upload_headers(&server.client, &server.url, &party, hash(&body))
        .header("Content-Length", body.len().to_string())
        .body(reqwest::Body::wrap_stream(stream));
    let uploading = tokio::spawn(request.send());
    // Its first megabytes are staged before the restore.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.count("kyc_chunks") == 0 {
        assert!(std::time::Instant::now() < deadline, "nothing was staged");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(snapshot(&server, reqwest::Method::POST, "private/snapshots/empty/restore").await.status, 204);
    release.send(()).unwrap();
    let answer = uploading.await.unwrap().unwrap();
    let status = answer.status().as_u16();
    let detail: Value = answer.json().await.unwrap();
    assert_eq!((status, detail["code"].as_u64()), (503, Some(9905)), "{detail}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        (server.count("kyc_contents"), server.count("kyc_chunks"), server.count("kyc_uploads")),
        (0, 0, 0)
    );
    let again = server.send(upload_request(&server.client, &server.url, &party, body)).await;
    assert_eq!(again.status, 204, "{}", String::from_utf8_lossy(&again.body));
}

/// The same expiry by `advance`, end to end against the real binary.
#[test]
fn the_real_binary_expires_a_registration_by_advance() {
    let rt = common::robust::runtime();
    let server =
        common::TestServer::start(&["--dev", "--simple-subject", "short", "--subject-formats", "SIMPLE"]);
    rt.block_on(async {
        let auth = EddsaPrivateKey::generate().unwrap();
        let answer = server.register(&one_shot(&auth)).await;
        assert_eq!(answer.status, 200);
        let subject = answer.json()["subjects"][0]["subject"].as_str().unwrap().to_owned();
        assert_eq!(clock(&server, json!({"advance": "31d"})).await.status, 200);
        let listed = server.get_private("private/registrations").await.json();
        assert_eq!(listed["registrations"][0]["live"], false, "{listed}");
        let credit = server
            .post_private(
                "taler-wire-gateway/admin/add-incoming-subject",
                &json!({"amount": "KUDOS:10", "subject": subject, "debit_account": CUSTOMER}),
            )
            .await;
        assert_eq!(credit.json()["status"], "bounced", "{}", credit.json());
        let timestamp = rfc3339(server_now_s(&server).await);
        let unregister = unregistration(&auth, &timestamp);
        server.post_json("taler-prepared-transfer/unregistration", &unregister).await.expect_error(404, 5162);
    });
}
