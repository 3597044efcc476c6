//! The Taler Wire Gateway over real HTTP, written from the README's "The Wire Gateway" and from
//! the requests the exchange's own tools make: `taler-exchange-wirewatch`'s long polls
//! (`?delta=1024&start=N&long_poll_ms=60000`), `taler-exchange-transfer`'s retries of one stored
//! body, and bodies compressed as zlib's `compress` makes them (`Content-Encoding: deflate`).

mod common;

use std::io::Write;
use std::time::Duration;

use common::bank::registration_of;
use common::{Answer, Http, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use taler_lite::crypto::EddsaPrivateKey;
use taler_lite::http::Access;

const EXCHANGE: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";
const CUSTOMER: &str = "payto://iban/DE89370400440532013000?receiver-name=Customer";
const MERCHANT: &str = "payto://x-taler-bank/bank.example/merchant?receiver-name=Merchant";
const SECOND: &str = "payto://x-taler-bank/bank.example/second?receiver-name=Second%20Exchange";

fn base32(bytes: &[u8]) -> String {
    taler_lite::base32::encode(bytes)
}

fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

/// A `POST transfer` body as `taler-exchange-transfer` stores it: fresh `request_uid` and `wtid`.
fn transfer_body(amount: &str) -> Value {
    json!({
        "request_uid": base32(&random(64)),
        "amount": amount,
        "exchange_base_url": "https://exchange.example/",
        "wtid": base32(&random(32)),
        "credit_account": MERCHANT,
    })
}

fn reserve_pub() -> String {
    EddsaPrivateKey::generate().unwrap().public_key().to_string()
}

/// zlib's `compress`: a zlib stream (RFC 1950), as `TALER_curl_easy_post` sends bodies.
fn zlib_compress(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn post_gateway(server: &Http, path: &str, body: &Value) -> Answer {
    server.post_private(&format!("taler-wire-gateway/{path}"), body).await
}

async fn get_gateway(server: &Http, path: &str) -> Answer {
    server.get_private(&format!("taler-wire-gateway/{path}")).await
}

async fn add_incoming(server: &Http, amount: &str) -> (i64, String) {
    let reserve = reserve_pub();
    let answer = post_gateway(
        server,
        "admin/add-incoming",
        &json!({"amount": amount, "reserve_pub": reserve, "debit_account": CUSTOMER}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    (answer.json()["row_id"].as_i64().unwrap(), reserve)
}

fn row_ids(history: &Value, list: &str) -> Vec<i64> {
    history[list].as_array().unwrap().iter().map(|t| t["row_id"].as_i64().unwrap()).collect()
}

#[track_caller]
fn expect_no_content(answer: &Answer) {
    assert_eq!(answer.status, 204, "{}", String::from_utf8_lossy(&answer.body));
    assert!(answer.body.is_empty(), "a 204 with a body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_version_5_and_account_check_is_not_implemented() {
    let server = spawn_app(&[]).await;
    let config = server.get("taler-wire-gateway/config").await.json();
    assert_eq!(
        config,
        json!({"name": "taler-wire-gateway", "version": "5:0:5", "currency": "KUDOS",
               "implementation": "urn:net:taler:specs:taler-lite", "support_account_check": false})
    );
    let check = get_gateway(&server, &format!("account/check?account={CUSTOMER}")).await;
    assert_eq!(check.status, 501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_retried_sixteen_times_keeps_its_row_and_timestamp() {
    let server = spawn_app(&[]).await;
    let body = transfer_body("KUDOS:4.5");
    // taler-exchange-transfer stores the body once and re-sends the same bytes, compressed.
    let stored = zlib_compress(serde_json::to_vec(&body).unwrap().as_slice());
    let mut first: Option<Value> = None;
    for attempt in 0..16 {
        let answer = server
            .send(
                server
                    .client
                    .post(server.endpoint("taler-wire-gateway/transfer"))
                    .bearer_auth(&server.token)
                    .header("Content-Type", "application/json")
                    .header("Content-Encoding", "deflate")
                    .body(stored.clone()),
            )
            .await;
        assert_eq!(answer.status, 200, "attempt {attempt}: {}", String::from_utf8_lossy(&answer.body));
        let got = answer.json();
        match &first {
            None => first = Some(got),
            Some(first) => assert_eq!(&got, first, "attempt {attempt} answered otherwise"),
        }
        // Retries come later (the exchange backs off): the answer keeps the original time.
        server.advance(Duration::from_secs(7));
    }
    assert_eq!(server.count("outgoing_transfers"), 1);
    let first = first.unwrap();
    let row_id = first["row_id"].as_i64().unwrap();

    // The same request_uid with any detail changed: 5112; nothing stored.
    for (field, value) in [
        ("amount", json!("KUDOS:4.6")),
        ("credit_account", json!(CUSTOMER)),
        ("exchange_base_url", json!("https://other.example/")),
        ("wtid", json!(base32(&random(32)))),
        ("metadata", json!("order-7")),
    ] {
        let mut changed = body.clone();
        changed[field] = value;
        let detail = post_gateway(&server, "transfer", &changed).await.expect_error(409, 5112);
        assert!(detail.contains("request_uid"), "{field}: {detail}");
    }
    // Another request_uid with a used wtid: 5154.
    let mut reused = transfer_body("KUDOS:1");
    reused["wtid"] = body["wtid"].clone();
    post_gateway(&server, "transfer", &reused).await.expect_error(409, 5154);
    // Another currency: 30; an account without receiver-name: 24 naming the field.
    post_gateway(&server, "transfer", &transfer_body("EUR:1")).await.expect_error(400, 30);
    let mut nameless = transfer_body("KUDOS:1");
    nameless["credit_account"] = json!("payto://x-taler-bank/bank.example/merchant");
    let answer = post_gateway(&server, "transfer", &nameless).await;
    answer.expect_error(400, 24);
    assert_eq!(answer.json()["parameter"], "credit_account");
    let mut short_uid = transfer_body("KUDOS:1");
    short_uid["request_uid"] = json!(base32(&random(32)));
    post_gateway(&server, "transfer", &short_uid).await.expect_error(400, 26);
    let mut bad_url = transfer_body("KUDOS:1");
    bad_url["exchange_base_url"] = json!("https://exchange.example");
    post_gateway(&server, "transfer", &bad_url).await.expect_error(400, 26);
    assert_eq!(server.count("outgoing_transfers"), 1);

    // The transfer as the exchange and the auditor read it back.
    let one = get_gateway(&server, &format!("transfers/{row_id}")).await.json();
    assert_eq!(one["status"], "success");
    assert_eq!(one["amount"], "KUDOS:4.5");
    assert_eq!(one["wtid"], body["wtid"]);
    assert_eq!(one["credit_account"], MERCHANT);
    assert_eq!(one["exchange_base_url"], "https://exchange.example/");
    assert_eq!(one["timestamp"], first["timestamp"]);
    let list = get_gateway(&server, "transfers").await.json();
    assert_eq!(list["debit_account"], EXCHANGE);
    assert_eq!(list["transfers"][0]["row_id"], row_id);
    assert_eq!(list["transfers"][0]["status"], "success");
    expect_no_content(&get_gateway(&server, "transfers?status=pending").await);
    get_gateway(&server, "transfers?status=lost").await.expect_error(400, 26);
    get_gateway(&server, "transfers/999").await.expect_error(404, 5106);
    let outgoing = get_gateway(&server, "history/outgoing?limit=5").await.json();
    assert_eq!(outgoing["debit_account"], EXCHANGE);
    let entry = &outgoing["outgoing_transactions"][0];
    assert_eq!(entry["row_id"], row_id);
    assert_eq!(entry["date"], first["timestamp"]);
    assert_eq!(entry["wtid"], body["wtid"]);
    assert_eq!(entry["credit_account"], MERCHANT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_ids_are_one_sequence_equal_to_the_histories() {
    let server = spawn_app(&[]).await;
    let (a, reserve) = add_incoming(&server, "KUDOS:10").await;
    let t =
        post_gateway(&server, "transfer", &transfer_body("KUDOS:3")).await.json()["row_id"].as_i64().unwrap();
    let kyc_pub = reserve_pub();
    let k = post_gateway(
        &server,
        "admin/add-kycauth",
        &json!({"amount": "KUDOS:0.01", "account_pub": kyc_pub, "debit_account": CUSTOMER}),
    )
    .await
    .json()["row_id"]
        .as_i64()
        .unwrap();
    let subject = post_gateway(
        &server,
        "admin/add-incoming-subject",
        &json!({"amount": "KUDOS:2", "subject": reserve_pub(), "debit_account": CUSTOMER}),
    )
    .await
    .json();
    let s = subject["row_id"].as_i64().unwrap();
    assert!(a < t && t < k && k < s, "{a} {t} {k} {s}: not one increasing sequence");

    let incoming = get_gateway(&server, "history/incoming?limit=10").await.json();
    assert_eq!(incoming["credit_account"], EXCHANGE);
    assert_eq!(row_ids(&incoming, "incoming_transactions"), vec![a, k, s]);
    let first = &incoming["incoming_transactions"][0];
    assert_eq!(first["type"], "RESERVE");
    assert_eq!(first["reserve_pub"], reserve);
    assert_eq!(first["debit_account"], CUSTOMER);
    assert_eq!(incoming["incoming_transactions"][1]["type"], "KYCAUTH");
    assert_eq!(incoming["incoming_transactions"][1]["account_pub"], kyc_pub);
    let outgoing = get_gateway(&server, "history/outgoing?limit=10").await.json();
    assert_eq!(row_ids(&outgoing, "outgoing_transactions"), vec![t]);
    // An incoming row is no transfer of the account's.
    get_gateway(&server, &format!("transfers/{a}")).await.expect_error(404, 5106);

    // A reserve key is credited once: 5114, and nothing stored.
    post_gateway(
        &server,
        "admin/add-incoming",
        &json!({"amount": "KUDOS:1", "reserve_pub": reserve, "debit_account": CUSTOMER}),
    )
    .await
    .expect_error(409, 5114);
    // Every account a request carries is a full payto URI.
    let answer = post_gateway(
        &server,
        "admin/add-incoming",
        &json!({"amount": "KUDOS:1", "reserve_pub": reserve_pub(), "debit_account": "payto://iban/DE89370400440532013000"}),
    )
    .await;
    answer.expect_error(400, 24);
    assert_eq!(answer.json()["parameter"], "debit_account");
    assert_eq!(server.count("incoming_transfers"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_page_as_wirewatch_reads_them() {
    let server = spawn_app(&[]).await;
    // Empty: 204 without a body, never 200 with an empty list.
    expect_no_content(&get_gateway(&server, "history/incoming").await);
    expect_no_content(&get_gateway(&server, "history/outgoing?delta=1024&start=0").await);
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(add_incoming(&server, &format!("KUDOS:{i}")).await.0);
    }
    // wirewatch: `delta=1024&start=N`, exclusive.
    let page = get_gateway(&server, &format!("history/incoming?delta=1024&start={}", ids[1])).await.json();
    assert_eq!(row_ids(&page, "incoming_transactions"), ids[2..].to_vec());
    let page = get_gateway(&server, "history/incoming?delta=2").await.json();
    assert_eq!(row_ids(&page, "incoming_transactions"), ids[..2].to_vec());
    // Negative: newest first, strictly before the offset.
    let page = get_gateway(&server, "history/incoming?limit=-2").await.json();
    assert_eq!(row_ids(&page, "incoming_transactions"), vec![ids[4], ids[3]]);
    let page = get_gateway(&server, &format!("history/incoming?limit=-10&offset={}", ids[2])).await.json();
    assert_eq!(row_ids(&page, "incoming_transactions"), vec![ids[1], ids[0]]);
    // Default: the 20 newest.
    let page = get_gateway(&server, "history/incoming").await.json();
    assert_eq!(row_ids(&page, "incoming_transactions").len(), 5);
    // Past the end, with a long poll of 0: 204 at once.
    expect_no_content(
        &get_gateway(&server, &format!("history/incoming?delta=1024&start={}&long_poll_ms=0", ids[4])).await,
    );
    // Larger than 1024 is capped, not refused.
    assert_eq!(get_gateway(&server, "history/incoming?limit=100000").await.status, 200);
    // Both spellings, agreeing or not; 0.
    assert_eq!(get_gateway(&server, "history/incoming?limit=3&delta=3").await.status, 200);
    let detail = get_gateway(&server, "history/incoming?limit=3&delta=4").await.expect_error(400, 26);
    assert!(detail.contains("delta"), "{detail}");
    get_gateway(&server, "history/incoming?offset=1&start=2").await.expect_error(400, 26);
    get_gateway(&server, "history/incoming?timeout_ms=1&long_poll_ms=2").await.expect_error(400, 26);
    get_gateway(&server, "history/incoming?limit=0").await.expect_error(400, 26);
    get_gateway(&server, "history/incoming?limit=x").await.expect_error(400, 26);
}

/// Starts a long poll as wirewatch makes it and returns its answer when it comes.
fn spawn_poll(server: &Http, path: &str) -> tokio::task::JoinHandle<Answer> {
    let request = server.client.get(server.endpoint(path)).bearer_auth(&server.token);
    tokio::spawn(async move {
        let response = request.send().await.expect("poll");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body").to_vec();
        Answer { status, headers, body }
    })
}

/// The server's `taler_lite_long_polls_waiting` gauge.
async fn polls_waiting(server: &Http) -> u64 {
    let text = String::from_utf8(server.get_private("metrics").await.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("taler_lite_long_polls_waiting "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits until the server counts `n` waiting polls (a bound on how long is only a guard against
/// hanging forever, not a timing assertion).
async fn until_waiting(server: &Http, n: u64) {
    for _ in 0..2000 {
        if polls_waiting(server).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the server never counted {n} waiting polls (it counts {})", polls_waiting(server).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_poll_is_answered_by_the_commit_for_its_account_and_direction() {
    let server =
        spawn_app(&["--credit-account", EXCHANGE, "--credit-account", &format!("second={SECOND}")]).await;
    let (last, _) = add_incoming(&server, "KUDOS:1").await;
    let wirewatch = format!("taler-wire-gateway/history/incoming?delta=1024&start={last}&long_poll_ms=60000");
    let incoming = spawn_poll(&server, &wirewatch);
    let outgoing = spawn_poll(&server, "taler-wire-gateway/history/outgoing?delta=1024&long_poll_ms=60000");
    let other =
        spawn_poll(&server, "accounts/second/taler-wire-gateway/history/incoming?limit=5&timeout_ms=60000");
    until_waiting(&server, 3).await;
    assert!(!incoming.is_finished() && !outgoing.is_finished() && !other.is_finished());
    // A transfer out wakes the outgoing poll only.
    let t =
        post_gateway(&server, "transfer", &transfer_body("KUDOS:1")).await.json()["row_id"].as_i64().unwrap();
    let answer = outgoing.await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(row_ids(&answer.json(), "outgoing_transactions"), vec![t]);
    // The other two still wait (each answer below is checked to hold its own direction's and
    // account's row only, which an answer to the wrong commit could not).
    until_waiting(&server, 2).await;
    assert!(!incoming.is_finished(), "an outgoing transfer answered an incoming poll");
    // A credit of the first account answers its poll with that row, not the other account's.
    let (row, reserve) = add_incoming(&server, "KUDOS:2").await;
    let answer = incoming.await.unwrap();
    assert_eq!(answer.status, 200);
    let history = answer.json();
    assert_eq!(row_ids(&history, "incoming_transactions"), vec![row]);
    assert_eq!(history["incoming_transactions"][0]["reserve_pub"], reserve);
    until_waiting(&server, 1).await;
    assert!(!other.is_finished(), "the first account's credit answered the second's poll");
    // The second account, by name.
    let second = server
        .post_private(
            "accounts/second/taler-wire-gateway/admin/add-incoming",
            &json!({"amount": "KUDOS:3", "reserve_pub": reserve_pub(), "debit_account": CUSTOMER}),
        )
        .await;
    assert_eq!(second.status, 200, "{}", String::from_utf8_lossy(&second.body));
    let answer = other.await.unwrap();
    assert_eq!(answer.status, 200);
    let history = answer.json();
    assert_eq!(history["credit_account"], SECOND);
    assert_eq!(row_ids(&history, "incoming_transactions"), vec![second.json()["row_id"].as_i64().unwrap()]);
    // A short wait that nothing answers: 204 when it runs out.
    let (newest, _) = add_incoming(&server, "KUDOS:4").await;
    expect_no_content(
        &get_gateway(&server, &format!("history/incoming?limit=5&offset={newest}&timeout_ms=50")).await,
    );
    // Unknown account names: 404, 5106.
    server.get_private("accounts/nobody/taler-wire-gateway/history/incoming").await.expect_error(404, 5106);
    server.get("accounts/nobody/taler-wire-gateway/config").await.expect_error(404, 5106);
    assert_eq!(server.get("accounts/exchange/taler-wire-gateway/config").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_credit_reaches_a_poll_that_was_already_waiting() {
    let server = spawn_app(&[]).await;
    let auth = EddsaPrivateKey::generate().unwrap();
    let account_pub = EddsaPrivateKey::generate().unwrap().public_key();
    let registration = registration_of(&auth, &account_pub, EXCHANGE, "reserve", false, "KUDOS:10");
    let registered = server.post_json("taler-prepared-transfer/registration", &registration).await.json();
    let qr = registered["subjects"].as_array().unwrap().iter().find(|s| s["type"] == "CH_QR_BILL").unwrap()
        ["qr_reference_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll = spawn_poll(&server, "taler-wire-gateway/history/incoming?delta=1024&long_poll_ms=60000");
    until_waiting(&server, 1).await;
    assert!(!poll.is_finished());
    // The customer pays with the QR bill's reference.
    let credited = post_gateway(
        &server,
        "admin/add-incoming-subject",
        &json!({"amount": "KUDOS:10", "subject": qr, "debit_account": CUSTOMER}),
    )
    .await
    .json();
    assert_eq!(credited["status"], "credited");
    let answer = poll.await.unwrap();
    assert_eq!(answer.status, 200);
    let entry = &answer.json()["incoming_transactions"][0];
    assert_eq!(entry["row_id"], credited["row_id"]);
    assert_eq!(entry["reserve_pub"], account_pub.to_string());
    assert_eq!(entry["authorization_pub"], auth.public_key().to_string());
}

/// One account rule everywhere: a registration, a transfer's credit account and the Wire
/// Gateway's account (which history a credit lands in, which waiting poll it wakes) all take a
/// payto URI spelled otherwise (case of the scheme, method and host, another receiver name) as
/// the configured account it normalizes to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_spelled_otherwise_is_the_same_account_everywhere() {
    let server =
        spawn_app(&["--credit-account", EXCHANGE, "--credit-account", &format!("second={SECOND}")]).await;
    let spelled = "PAYTO://X-Taler-Bank/BANK.Example/second?receiver-name=Someone%20Else";
    let auth = EddsaPrivateKey::generate().unwrap();
    let account_pub = EddsaPrivateKey::generate().unwrap().public_key();
    let registration = registration_of(&auth, &account_pub, spelled, "reserve", false, "KUDOS:7");
    let registered = server.post_json("taler-prepared-transfer/registration", &registration).await;
    assert_eq!(registered.status, 200, "{}", String::from_utf8_lossy(&registered.body));
    let subject = registered.json()["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "SIMPLE")
        .unwrap()["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let second =
        spawn_poll(&server, "accounts/second/taler-wire-gateway/history/incoming?limit=5&timeout_ms=60000");
    let first = spawn_poll(&server, "taler-wire-gateway/history/incoming?limit=5&timeout_ms=60000");
    until_waiting(&server, 2).await;
    // Paid to the account as spelled otherwise: credited, into the second account.
    let credited = post_gateway(
        &server,
        "admin/add-incoming-subject",
        &json!({"amount": "KUDOS:7", "subject": subject, "debit_account": CUSTOMER, "credit_account": spelled}),
    )
    .await
    .json();
    assert_eq!(credited["status"], "credited", "{credited}");
    let answer = second.await.unwrap();
    assert_eq!(answer.status, 200);
    let history = answer.json();
    assert_eq!(history["credit_account"], SECOND);
    assert_eq!(row_ids(&history, "incoming_transactions"), vec![credited["row_id"].as_i64().unwrap()]);
    assert_eq!(history["incoming_transactions"][0]["reserve_pub"], account_pub.to_string());
    // Not the first account's.
    until_waiting(&server, 1).await;
    assert!(!first.is_finished(), "a credit of the second account answered the first's poll");
    first.abort();
    let firsts = get_gateway(&server, "history/incoming?limit=5").await;
    assert_eq!(firsts.status, 204, "{}", String::from_utf8_lossy(&firsts.body));
    // An account that normalizes to none of the configured ones is refused in both places.
    let unknown = "payto://x-taler-bank/bank.example/third?receiver-name=Third";
    let mut other = registration.clone();
    other["credit_account"] = json!(unknown);
    server.post_json("taler-prepared-transfer/registration", &other).await.expect_error(409, 5124);
    post_gateway(
        &server,
        "admin/add-incoming-subject",
        &json!({"amount": "KUDOS:7", "subject": "x", "debit_account": CUSTOMER, "credit_account": unknown}),
    )
    .await
    .expect_error(409, 5124);
}

#[tokio::test]
async fn add_incoming_subject_wants_full_payto_uris() {
    let server = spawn_app(&[]).await;
    let good = json!({"amount": "KUDOS:1", "subject": "anything", "debit_account": CUSTOMER});
    for (field, nameless) in [
        ("debit_account", "payto://iban/DE89370400440532013000"),
        ("credit_account", "payto://iban/CH4431999123000889012"),
    ] {
        let mut body = good.clone();
        body[field] = json!(nameless);
        let answer = post_gateway(&server, "admin/add-incoming-subject", &body).await;
        let detail = answer.expect_error(400, 24);
        assert_eq!(answer.json()["parameter"], field, "{detail}");
        assert!(detail.contains("receiver-name"), "{detail}");
    }
    assert_eq!(server.count("incoming_transfers"), 0);
    // With the names, the same transfer is taken (and bounced: its subject names nothing).
    let mut named = good.clone();
    named["credit_account"] = json!(EXCHANGE);
    assert_eq!(post_gateway(&server, "admin/add-incoming-subject", &named).await.json()["status"], "bounced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_whose_clients_went_away_stop_waiting() {
    use tokio::io::AsyncWriteExt;
    const POLLS: usize = 200;
    let server = spawn_app(&[]).await;
    // The server runs on this test's runtime: its tasks (one per connection) are counted here.
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    until_waiting(&server, 0).await;
    let before = tasks();
    let mut sockets = Vec::new();
    for i in 0..POLLS {
        // Both spellings and both directions, as wirewatch and a v2 client ask.
        let query = match i % 4 {
            0 => "history/incoming?delta=1024&long_poll_ms=60000",
            1 => "history/incoming?limit=5&timeout_ms=60000",
            2 => "history/outgoing?delta=1024&long_poll_ms=60000",
            _ => "history/outgoing?limit=5&timeout_ms=60000",
        };
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let request = format!(
            "GET /taler-wire-gateway/{query} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            server.addr(),
            server.token
        );
        s.write_all(request.as_bytes()).await.unwrap();
        sockets.push(s);
    }
    until_waiting(&server, POLLS as u64).await;
    assert!(tasks() >= before + POLLS, "{} tasks with {POLLS} polls waiting, {before} before", tasks());
    // Every client goes away long before its poll's 60 s: the server stops waiting for them
    // (the count is of parked requests, so 0 means each request's future was dropped), and
    // their connections' tasks end.
    drop(sockets);
    until_waiting(&server, 0).await;
    // (A few tasks may come and go meanwhile, the test's own HTTP client's among them: a task
    // left per abandoned poll would be hundreds.)
    let few = before + POLLS / 10;
    for _ in 0..2000 {
        if tasks() <= few {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(tasks() <= few, "{} tasks left after {POLLS} clients went away, {before} before", tasks());
    // Nothing was answered to anyone, and a new poll still waits and is still woken.
    let poll = spawn_poll(&server, "taler-wire-gateway/history/incoming?delta=1024&long_poll_ms=60000");
    until_waiting(&server, 1).await;
    let (row, _) = add_incoming(&server, "KUDOS:1").await;
    let answer = poll.await.unwrap();
    assert_eq!(row_ids(&answer.json(), "incoming_transactions"), vec![row]);
    until_waiting(&server, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_waiting_polls_at_once() {
    let server = spawn_app(&[]).await;
    let polls: Vec<_> = (0..5)
        .map(|i| {
            let direction = if i % 2 == 0 { "incoming" } else { "outgoing" };
            spawn_poll(
                &server,
                &format!("taler-wire-gateway/history/{direction}?delta=1024&long_poll_ms=300000"),
            )
        })
        .collect();
    until_waiting(&server, 5).await;
    assert!(polls.iter().all(|p| !p.is_finished()));
    // Stopping waits for in-flight requests: it returns only once every poll has answered.
    server.stop().await;
    for poll in polls {
        expect_no_content(&poll.await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_are_inflated() {
    let server = spawn_app(&[]).await;
    let post = |encoding: &'static str, body: Vec<u8>| {
        server
            .client
            .post(server.endpoint("taler-wire-gateway/admin/add-incoming"))
            .bearer_auth(&server.token)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", encoding)
            .body(body)
    };
    let json_body = || {
        serde_json::to_vec(
            &json!({"amount": "KUDOS:1", "reserve_pub": reserve_pub(), "debit_account": CUSTOMER}),
        )
        .unwrap()
    };
    for (encoding, compress) in [
        ("deflate", zlib_compress as fn(&[u8]) -> Vec<u8>),
        ("DEFLATE", raw_deflate),
        ("gzip", gzip),
        ("x-gzip", gzip),
        ("identity", |b: &[u8]| b.to_vec()),
    ] {
        let answer = server.send(post(encoding, compress(&json_body()))).await;
        assert_eq!(answer.status, 200, "{encoding}: {}", String::from_utf8_lossy(&answer.body));
    }
    let answer = server.send(post("br", json_body())).await;
    answer.expect_error(415, 26);
    assert_eq!(answer.json()["parameter"], "Content-Encoding");
    let mut corrupt = zlib_compress(&json_body());
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    corrupt.truncate(corrupt.len() - 1);
    let answer = server.send(post("deflate", corrupt)).await;
    assert!(answer.status == 400, "{}", String::from_utf8_lossy(&answer.body));
    server.send(post("deflate", Vec::new())).await.expect_error(400, 28);
    assert_eq!(server.count("incoming_transfers"), 5);
}

/// 256 MiB of spaces, deflated to about 256 KiB: far below the 1 MiB body limit, far above it
/// inflated.
fn deflate_bomb() -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![b' '; 1 << 20];
    for _ in 0..256 {
        e.write_all(&block).unwrap();
    }
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deflate_bomb_is_413_on_every_json_route() {
    let server = spawn_app(&["--dev"]).await;
    let bomb = deflate_bomb();
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let mut tried = 0;
    for route in taler_lite::api::routes(true) {
        // Bodies that are not JSON: the bulk KYC upload (any file, hashed as sent) and the
        // console's forms.
        // POST routes that take no body at all: their answer never depends on one.
        let bodyless = [
            "/private/extern-keys/{extern_pub}/disable",
            "/private/reset",
            "/private/snapshots/{name}/restore",
        ];
        let json_route = route.method() == Method::POST
            && !route.pattern().starts_with("/kyc-bulk/")
            && !bodyless.contains(&route.pattern())
            && matches!(route.access(), Access::Public | Access::Operator | Access::WireGateway);
        if !json_route {
            continue;
        }
        let path: String = route
            .pattern()
            .split('/')
            .map(|s| match s {
                "{account}" => "exchange".to_owned(),
                s if s.starts_with('{') => "0".repeat(52),
                s => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let answer = server
            .send(
                server
                    .client
                    .post(server.endpoint(&path))
                    .bearer_auth(&server.token)
                    .header("Content-Type", "application/json")
                    .header("Content-Encoding", "deflate")
                    .body(bomb.clone()),
            )
            .await;
        answer.expect_error(413, 32);
        tried += 1;
    }
    assert!(tried >= 10, "{tried} JSON routes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_bearer_as_the_exchange_sends_them() {
    let server = spawn_app(&["--wire-gateway-user", "wirewatch"]).await;
    let path = "taler-wire-gateway/history/incoming";
    let with = |auth: String| server.client.get(server.endpoint(path)).header("Authorization", auth);
    let token = server.token.clone();
    let basic =
        |user: &str, password: &str| format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
    // The generated token carries libeufin's `secret-token:` prefix; either form is accepted.
    let core = token.strip_prefix("secret-token:").unwrap_or(&token).to_owned();
    for good in [
        format!("Bearer {token}"),
        format!("bearer {core}"),
        format!("Bearer secret-token:{core}"),
        basic("wirewatch", &token),
        basic("wirewatch", &core),
    ] {
        expect_no_content(&server.send(with(good.clone())).await);
    }
    for bad in [
        basic("exchange", &token),
        basic("wirewatch", "wrong"),
        format!("Basic {token}"),
        "Bearer wrong".to_owned(),
        "Digest x".to_owned(),
    ] {
        let answer = server.send(with(bad.clone())).await;
        answer.expect_error(401, 40);
        let challenge = answer.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("Basic") && challenge.contains("Bearer"), "{challenge}");
    }
    // Every gateway route but config takes them; none answers without.
    for route in taler_lite::api::route_table().iter().filter(|r| r.access() == Access::WireGateway) {
        let path = route.pattern().replace("{account}", "exchange").replace("{row_id}", "1");
        let answer = server.send(server.client.request(route.method().clone(), server.endpoint(&path))).await;
        answer.expect_error(401, 40);
        assert!(answer.headers.contains_key("www-authenticate"));
        let answer = server
            .send(
                server
                    .client
                    .request(route.method().clone(), server.endpoint(&path))
                    .header("Authorization", basic("wirewatch", &token)),
            )
            .await;
        assert_ne!(answer.status, 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gateway_auth_only_in_development() {
    use clap::Parser;
    let cli =
        taler_lite::cli::Cli::try_parse_from(["taler-lite", "serve", "--wire-gateway-auth", "none"]).unwrap();
    let taler_lite::cli::Command::Serve(args) = cli.command else { unreachable!() };
    let refused = taler_lite::config::Settings::resolve(&cli.global, &args, &Default::default()).unwrap_err();
    assert!(refused.to_string().contains("wire_gateway_auth"), "{refused}");
    let server = spawn_app(&["--dev", "--wire-gateway-auth", "none"]).await;
    expect_no_content(&server.get("taler-wire-gateway/history/incoming").await);
    let answer = server
        .post_json(
            "taler-wire-gateway/admin/add-incoming",
            &json!({"amount": "KUDOS:1", "reserve_pub": reserve_pub(), "debit_account": CUSTOMER}),
        )
        .await;
    assert_eq!(answer.status, 200);
    // The operator's own routes still take the token.
    server.get("private/registrations").await.expect_error(401, 40);
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn operator(server: &Http, method: Method, path: &str) -> Answer {
    server.send(server.client.request(method, server.endpoint(path)).bearer_auth(&server.token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restored_wakes_the_polls_waiting() {
    let server = spawn_app(&["--dev"]).await;
    assert_eq!(operator(&server, Method::PUT, "private/snapshots/empty").await.status, 201);
    let (row, reserve) = add_incoming(&server, "KUDOS:1").await;
    assert_eq!(operator(&server, Method::PUT, "private/snapshots/one").await.status, 201);
    assert_eq!(operator(&server, Method::POST, "private/snapshots/empty/restore").await.status, 204);
    // Nothing in the history now: a poll from the oldest row waits.
    let poll = spawn_poll(&server, "taler-wire-gateway/history/incoming?limit=5&timeout_ms=60000");
    until_waiting(&server, 1).await;
    // The restored snapshot has the credit: the waiting poll reads it.
    assert_eq!(operator(&server, Method::POST, "private/snapshots/one/restore").await.status, 204);
    let answer = poll.await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(row_ids(&answer.json(), "incoming_transactions"), vec![row]);
    assert_eq!(answer.json()["incoming_transactions"][0]["reserve_pub"], reserve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_wakes_the_polls_waiting_with_the_fixtures_credits() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let fixtures = dir.path().join("fixtures.toml");
    std::fs::write(&fixtures, "").unwrap();
    let server =
        common::spawn_app_in(dir.clone(), &["--dev", "--fixtures", fixtures.to_str().unwrap()]).await;
    let poll = spawn_poll(&server, "taler-wire-gateway/history/incoming?delta=1024&long_poll_ms=60000");
    until_waiting(&server, 1).await;
    // The fixture file edited, then the reset that applies it again: a credit of a plain key.
    let reserve = reserve_pub();
    std::fs::write(
        &fixtures,
        format!(
            "[[incoming]]\namount = \"KUDOS:5\"\nsubject = \"{reserve}\"\ndebit_account = \"{CUSTOMER}\"\n"
        ),
    )
    .unwrap();
    assert_eq!(operator(&server, Method::POST, "private/reset").await.status, 204);
    let answer = poll.await.unwrap();
    assert_eq!(answer.status, 200);
    let entry = &answer.json()["incoming_transactions"][0];
    assert_eq!(entry["reserve_pub"], reserve);
    assert_eq!(entry["amount"], "KUDOS:5");
}

/// `taler-lite client history` of the real binary against `server`, its stdout read line by line.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follower {
    fn start(server: &common::TestServer, args: &[&str]) -> Follower {
        use std::io::BufRead;
        let token_file = server.path().join("taler-lite-operator.token");
        let mut child = std::process::Command::new(common::BIN)
            .args(["client", "history", "--url", &server.url, "--token-file", token_file.to_str().unwrap()])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Follower { child, lines }
    }

    /// The next line printed (a minute is only a guard against hanging).
    fn line(&self) -> String {
        self.lines.recv_timeout(Duration::from_secs(60)).expect("a line from client history")
    }

    /// Waits for the process's exit (a minute is only a guard against hanging).
    fn exit(mut self) -> std::process::ExitStatus {
        for _ in 0..6000 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!("client history did not exit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_history_follows_rows_as_they_commit() {
    let server = common::TestServer::start(&[]);
    let (first, first_reserve) = add_incoming(&server, "KUDOS:1").await;
    let (second, _) = add_incoming(&server, "KUDOS:2").await;

    // Without --follow: the rows after --start, then exit 0.
    let all = Follower::start(&server, &["--json"]);
    let rows: Vec<Value> =
        [all.line(), all.line()].iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r["row_id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![first, second]);
    assert_eq!(rows[0]["reserve_pub"], first_reserve);
    assert!(all.exit().success());
    let after = Follower::start(&server, &["--start", &first.to_string()]);
    let line = after.line();
    assert!(line.starts_with(&format!("{second} ")) && line.contains("KUDOS:2 RESERVE"), "{line}");
    assert!(after.exit().success());

    // --follow with the parameters the exchange's C client sends: the rows there are, then each
    // new one as it commits; SIGINT ends it with status 0.
    let incoming =
        Follower::start(&server, &["--follow", "--deprecated-params", "--start", &first.to_string()]);
    assert!(incoming.line().starts_with(&format!("{second} ")));
    until_waiting(&server, 1).await;
    let (third, third_reserve) = add_incoming(&server, "KUDOS:3").await;
    let line = incoming.line();
    assert!(line.starts_with(&format!("{third} ")), "{line}");
    assert!(line.contains(&third_reserve) && line.contains(CUSTOMER), "{line}");
    until_waiting(&server, 1).await;
    let pid = incoming.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    assert!(incoming.exit().success(), "SIGINT is a clean stop");

    // --outgoing with the new parameters; the end of standard input ends it with status 0.
    let mut outgoing = Follower::start(&server, &["--follow", "--outgoing", "--exit-on-stdin-eof"]);
    until_waiting(&server, 1).await;
    let body = transfer_body("KUDOS:4");
    let row = post_gateway(&server, "transfer", &body).await.json()["row_id"].as_i64().unwrap();
    let line = outgoing.line();
    assert!(line.starts_with(&format!("{row} ")), "{line}");
    assert!(
        line.contains(&format!("KUDOS:4 to {MERCHANT} wtid {}", body["wtid"].as_str().unwrap())),
        "{line}"
    );
    drop(outgoing.child.stdin.take());
    assert!(outgoing.exit().success(), "the end of standard input is a clean stop");

    // A wrong token: a one-line error naming the answer, status 1.
    std::fs::write(server.path().join("wrong.token"), "secret-token:wrong").unwrap();
    let wrong = common::run_cli(
        server.path(),
        &["client", "history", "--url", &server.url, "--token-file", "wrong.token"],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("401"), "{wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_fixtures_are_transfers_applied_once() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let fixtures = dir.path().join("fixtures.toml");
    let (wtid, second_wtid, request_uid) = (base32(&random(32)), base32(&random(32)), base32(&random(64)));
    let file = |amount: &str| {
        format!(
            "[[outgoing]]\namount = \"{amount}\"\nexchange_base_url = \"https://exchange.example/\"\nwtid = \"{wtid}\"\ncredit_account = \"{MERCHANT}\"\n\n\
             [[outgoing]]\naccount = \"second\"\nrequest_uid = \"{request_uid}\"\namount = \"KUDOS:2\"\nexchange_base_url = \"https://exchange.example/\"\nwtid = \"{second_wtid}\"\ncredit_account = \"{CUSTOMER}\"\nmetadata = \"fixture:1\"\n"
        )
    };
    std::fs::write(&fixtures, file("KUDOS:1")).unwrap();
    let args = [
        "--fixtures",
        fixtures.to_str().unwrap(),
        "--credit-account",
        EXCHANGE,
        "--credit-account",
        &format!("second={SECOND}"),
    ];
    let server = common::TestServer::start_in(dir.clone(), &args);
    let first = get_gateway(&server, "history/outgoing").await.json();
    assert_eq!(first["debit_account"], EXCHANGE);
    let entry = &first["outgoing_transactions"][0];
    assert_eq!((entry["amount"].as_str(), entry["wtid"].as_str()), (Some("KUDOS:1"), Some(wtid.as_str())));
    assert_eq!(entry["credit_account"], MERCHANT);
    let second = server.get_private("accounts/second/taler-wire-gateway/history/outgoing").await.json();
    let row = second["outgoing_transactions"][0]["row_id"].as_i64().unwrap();
    assert_eq!(second["outgoing_transactions"][0]["wtid"], second_wtid);
    // The exchange retrying the fixture's transfer gets its row.
    let retry = json!({
        "request_uid": request_uid, "amount": "KUDOS:2", "exchange_base_url": "https://exchange.example/",
        "wtid": second_wtid, "credit_account": CUSTOMER, "metadata": "fixture:1",
    });
    let answer = server.post_private("accounts/second/taler-wire-gateway/transfer", &retry).await.json();
    assert_eq!(answer["row_id"], row);
    // The same file again: nothing new.
    let (_, dir) = server.terminate();
    let server = common::TestServer::start_in(dir.clone(), &args);
    assert!(server.log().contains("fixtures: 0 applied, 2 stored already"), "{}", server.log());
    assert_eq!(server.count("outgoing_transfers"), 2);
    // A file that contradicts what is stored (another amount for the same transfer) stops start-up.
    let (_, dir) = server.terminate();
    std::fs::write(&fixtures, file("KUDOS:3")).unwrap();
    let log = common::TestServer::try_start_in(dir, &args).err().expect("a contradicting fixture is refused");
    assert!(log.contains("[[outgoing]] #1"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_page_both_ways_keep_their_metadata_and_stay_with_their_account() {
    let server =
        spawn_app(&["--credit-account", EXCHANGE, "--credit-account", &format!("second={SECOND}")]).await;
    let mut with_metadata = transfer_body("KUDOS:1");
    with_metadata["metadata"] = json!("order-7:a.B");
    let mut ids = Vec::new();
    for body in [with_metadata.clone(), transfer_body("KUDOS:2"), transfer_body("KUDOS:3")] {
        let answer = post_gateway(&server, "transfer", &body).await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        ids.push(answer.json()["row_id"].as_i64().unwrap());
    }
    let listed = |query: &str| {
        let path = format!("transfers{query}");
        let server = &server;
        async move { row_ids(&get_gateway(server, &path).await.json(), "transfers") }
    };
    // Default -20: the newest first; a positive limit from the oldest; offsets exclusive.
    assert_eq!(listed("").await, vec![ids[2], ids[1], ids[0]]);
    assert_eq!(listed("?limit=2").await, vec![ids[0], ids[1]]);
    assert_eq!(listed(&format!("?limit=2&offset={}", ids[0])).await, vec![ids[1], ids[2]]);
    assert_eq!(listed(&format!("?limit=-1&offset={}", ids[2])).await, vec![ids[1]]);
    assert_eq!(listed("?status=success&limit=5").await, ids);
    expect_no_content(&get_gateway(&server, &format!("transfers?offset={}&limit=5", ids[2])).await);
    get_gateway(&server, "transfers?limit=0").await.expect_error(400, 26);

    // The metadata comes back as sent; a transfer without has none.
    let one = get_gateway(&server, &format!("transfers/{}", ids[0])).await.json();
    assert_eq!(one["metadata"], "order-7:a.B");
    assert!(get_gateway(&server, &format!("transfers/{}", ids[1])).await.json().get("metadata").is_none());
    // Metadata outside `[a-zA-Z0-9-.:]{1,40}`, or a wtid of the wrong size: 400, nothing stored.
    for (field, value) in [
        ("metadata", json!("order 7")),
        ("metadata", json!("")),
        ("metadata", json!("a".repeat(41))),
        ("metadata", json!("ordre-é")),
        ("wtid", json!(base32(&random(31)))),
        ("wtid", json!("!".repeat(52))),
        ("request_uid", json!("!".repeat(103))),
    ] {
        let mut body = transfer_body("KUDOS:1");
        body[field] = value;
        let answer = post_gateway(&server, "transfer", &body).await;
        answer.expect_error(400, 26);
        assert_eq!(answer.json()["parameter"], field);
    }
    assert_eq!(server.count("outgoing_transfers"), 3);

    // The second account sees none of the first's transfers, by list or by id, and the other
    // way round.
    let second = |path: &str| format!("accounts/second/taler-wire-gateway/{path}");
    expect_no_content(&server.get_private(&second("transfers")).await);
    server.get_private(&second(&format!("transfers/{}", ids[0]))).await.expect_error(404, 5106);
    let theirs = server.post_private(&second("transfer"), &transfer_body("KUDOS:4")).await;
    assert_eq!(theirs.status, 200, "{}", String::from_utf8_lossy(&theirs.body));
    let theirs = theirs.json()["row_id"].as_i64().unwrap();
    let listed_second = server.get_private(&second("transfers")).await.json();
    assert_eq!(listed_second["debit_account"], SECOND);
    assert_eq!(row_ids(&listed_second, "transfers"), vec![theirs]);
    get_gateway(&server, &format!("transfers/{theirs}")).await.expect_error(404, 5106);
    assert_eq!(listed("?limit=10").await, ids);

    // A request for older rows (negative limit) never waits, whatever its timeout: with
    // nothing older it is 204 at once (the bound only keeps a waiting server from hanging the
    // test; a wait would last the whole 5 minutes).
    let path = format!("history/outgoing?limit=-5&offset={}&timeout_ms=300000", ids[0]);
    let older = tokio::time::timeout(Duration::from_secs(120), get_gateway(&server, &path))
        .await
        .expect("a request for older rows waited for a commit");
    expect_no_content(&older);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_incoming_refuses_a_registered_reserve_key_and_add_kycauth_repeats() {
    let server = spawn_app(&[]).await;
    // A live reserve registration holds `account_pub`: crediting it as a plain reserve is 5114.
    let auth = EddsaPrivateKey::generate().unwrap();
    let held = EddsaPrivateKey::generate().unwrap().public_key();
    let registered =
        server.register(&registration_of(&auth, &held, EXCHANGE, "reserve", false, "KUDOS:10")).await;
    assert_eq!(registered.status, 200, "{}", String::from_utf8_lossy(&registered.body));
    post_gateway(
        &server,
        "admin/add-incoming",
        &json!({"amount": "KUDOS:1", "reserve_pub": held.to_string(), "debit_account": CUSTOMER}),
    )
    .await
    .expect_error(409, 5114);
    assert_eq!(server.count("incoming_transfers"), 0);
    // A reserve key of the wrong size: 400, code 26, naming it.
    let answer = post_gateway(
        &server,
        "admin/add-incoming",
        &json!({"amount": "KUDOS:1", "reserve_pub": base32(&random(31)), "debit_account": CUSTOMER}),
    )
    .await;
    answer.expect_error(400, 26);
    assert_eq!(answer.json()["parameter"], "reserve_pub");
    // KYC authentication transfers have no uniqueness rule: the same key twice, two rows.
    let account_pub = reserve_pub();
    let mut rows = Vec::new();
    for _ in 0..2 {
        let answer = post_gateway(
            &server,
            "admin/add-kycauth",
            &json!({"amount": "KUDOS:0.01", "account_pub": account_pub, "debit_account": CUSTOMER}),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        rows.push(answer.json()["row_id"].as_i64().unwrap());
    }
    let history = get_gateway(&server, "history/incoming?limit=5").await.json();
    assert_eq!(row_ids(&history, "incoming_transactions"), rows);
    for entry in history["incoming_transactions"].as_array().unwrap() {
        assert_eq!(
            (entry["type"].as_str(), entry["account_pub"].as_str()),
            (Some("KYCAUTH"), Some(&*account_pub))
        );
        // Only credits through a registration carry an authorization_pub.
        assert!(entry.get("authorization_pub").is_none(), "{entry}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_larger_than_1024_are_capped_not_refused() {
    // 1030 identical KYC authentication credits from the fixture file (no uniqueness rule: each
    // entry is a transfer of its own), and as many transfers out.
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let fixtures = dir.path().join("fixtures.toml");
    let account_pub = reserve_pub();
    let mut text = String::new();
    for _ in 0..1030 {
        text.push_str(&format!(
            "[[incoming]]\namount = \"KUDOS:1\"\nsubject = \"KYC:{account_pub}\"\ndebit_account = \"{CUSTOMER}\"\n\n\
             [[outgoing]]\namount = \"KUDOS:1\"\nexchange_base_url = \"https://exchange.example/\"\n\
             credit_account = \"{MERCHANT}\"\nrequest_uid = \"{}\"\nwtid = \"{}\"\n\n",
            base32(&random(64)),
            base32(&random(32)),
        ));
    }
    std::fs::write(&fixtures, text).unwrap();
    let server = common::spawn_app_in(dir.clone(), &["--fixtures", fixtures.to_str().unwrap()]).await;
    assert_eq!((server.count("incoming_transfers"), server.count("outgoing_transfers")), (1030, 1030));
    for (path, list) in [
        ("history/incoming?limit=100000", "incoming_transactions"),
        ("history/incoming?delta=-5000", "incoming_transactions"),
        ("history/outgoing?limit=1025", "outgoing_transactions"),
        ("transfers?limit=-2000", "transfers"),
    ] {
        let page = get_gateway(&server, path).await.json();
        assert_eq!(page[list].as_array().unwrap().len(), 1024, "{path}");
    }
    // What the cap left out is the next page.
    let page = get_gateway(&server, "history/incoming?limit=2000").await.json();
    let ids = row_ids(&page, "incoming_transactions");
    let rest =
        get_gateway(&server, &format!("history/incoming?limit=2000&offset={}", ids[1023])).await.json();
    assert_eq!(row_ids(&rest, "incoming_transactions").len(), 6);
}
