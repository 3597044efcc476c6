//! Prepared transfers and the wire-gateway simulation over real HTTP.

mod common;

use std::collections::HashSet;

use common::bank::{EXCHANGE_ACCOUNT as ACCOUNT, registration_of, unregistration};
use common::{Http, vectors};
use serde_json::{Value, json};
use taler_lite::crypto::{EddsaPrivateKey, EddsaPublicKey};

/// Short SIMPLE subjects of one character: 36 possible, so collisions are easy to make.
const ONE_CHARACTER_SUBJECTS: [&str; 6] =
    ["--simple-subject", "short", "--short-subject-length", "1", "--subject-formats", "SIMPLE"];

fn key(seed: &str) -> EddsaPrivateKey {
    seed.parse().unwrap()
}

fn fresh() -> EddsaPrivateKey {
    EddsaPrivateKey::generate().unwrap()
}

fn registration(
    auth: &EddsaPrivateKey,
    account_pub: &EddsaPublicKey,
    kind: &str,
    recurrent: bool,
    amount: &str,
) -> Value {
    registration_of(auth, account_pub, ACCOUNT, kind, recurrent, amount)
}

fn one_shot(auth: &EddsaPrivateKey) -> Value {
    registration(auth, &auth.public_key(), "reserve", false, "KUDOS:10")
}

fn rfc3339(offset_s: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_s);
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn subject_of(answer: &Value, kind: &str) -> Option<Value> {
    answer["subjects"].as_array().unwrap().iter().find(|s| s["type"] == kind).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_lists_the_formats() {
    let server = common::spawn_app(&["--subject-formats", "CH_QR_BILL,SIMPLE"]).await;
    let config = server.get("taler-prepared-transfer/config").await.json();
    assert_eq!(config["name"], "taler-prepared-transfer");
    assert_eq!(config["currency"], "KUDOS");
    assert_eq!(config["supported_formats"], json!(["SIMPLE", "CH_QR_BILL"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_give_exactly_their_subjects() {
    let v = vectors("prepared-transfer.json");
    let full = common::spawn_app(&[]).await;
    let short = common::spawn_app(&["--simple-subject", "short", "--qr-reference-prefix", "123456"]).await;
    for r in v["registrations"].as_array().unwrap() {
        let auth = key(r["authorization_seed"].as_str().unwrap());
        assert_eq!(auth.public_key().to_string(), r["authorization_pub"]);
        let account: EddsaPublicKey = r["account_pub"].as_str().unwrap().parse().unwrap();
        let mut body = registration(&auth, &account, "reserve", false, "KUDOS:10");
        assert_eq!(body["authorization_sig"], r["authorization_sig"], "Ed25519 is deterministic");

        let answer = full.register(&body).await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        let a = answer.json();
        let kinds: Vec<&str> =
            a["subjects"].as_array().unwrap().iter().map(|s| s["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["SIMPLE", "URI", "CH_QR_BILL"]);
        assert_eq!(subject_of(&a, "SIMPLE").unwrap()["subject"], r["simple_full_reserve"]);
        assert_eq!(subject_of(&a, "SIMPLE").unwrap()["credit_amount"], "KUDOS:10");
        assert_eq!(subject_of(&a, "CH_QR_BILL").unwrap()["qr_reference_number"], r["qr_reference"]);
        let uri = subject_of(&a, "URI").unwrap()["uri"].as_str().unwrap().to_owned();
        assert_eq!(
            uri,
            format!("{ACCOUNT}&amount=KUDOS%3A10&message={}", r["simple_full_reserve"].as_str().unwrap())
        );

        let answer = short.register(&body).await;
        assert_eq!(answer.status, 200);
        let a = answer.json();
        assert_eq!(subject_of(&a, "SIMPLE").unwrap()["subject"], r["simple_short_12"]);
        assert_eq!(
            subject_of(&a, "CH_QR_BILL").unwrap()["qr_reference_number"],
            r["qr_reference_prefix_123456"]
        );

        // The kyc type, on a server with full subjects (a replacement of the reserve one).
        body = registration(&auth, &account, "kyc", false, "KUDOS:10");
        let answer = full.register(&body).await;
        assert_eq!(answer.status, 200);
        assert_eq!(subject_of(&answer.json(), "SIMPLE").unwrap()["subject"], r["simple_full_kyc"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unregistration_vector_is_accepted() {
    let v = vectors("prepared-transfer.json");
    let u = &v["unregistration"];
    let signed_at = time::OffsetDateTime::parse(
        u["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    // Shift the server's clock to one minute before the vector's timestamp.
    let shift = signed_at - 60 - time::OffsetDateTime::now_utc().unix_timestamp();
    let server = common::spawn_app(&["--timetravel", &shift.to_string()]).await;
    let auth = key(u["authorization_seed"].as_str().unwrap());
    assert_eq!(server.register(&one_shot(&auth)).await.status, 200);
    let body = json!({
        "timestamp": u["timestamp"],
        "authorization_pub": u["authorization_pub"],
        "authorization_sig": u["authorization_sig"],
    });
    let answer = server.post_json("taler-prepared-transfer/unregistration", &body).await;
    assert_eq!(answer.status, 204, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(server.count("registrations"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_statuses() {
    let server = common::spawn_app(&["--simple-subject", "short"]).await;
    let auth = fresh();
    let good = one_shot(&auth);

    server.post_raw("taler-prepared-transfer/registration", "not json").await.expect_error(400, 22);
    for field in [
        "credit_account",
        "type",
        "recurrent",
        "credit_amount",
        "alg",
        "account_pub",
        "authorization_pub",
        "authorization_sig",
    ] {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        let answer = server.register(&body).await;
        answer.expect_error(400, 22);
        assert_eq!(answer.json()["parameter"], field);
    }
    for (field, value) in [
        ("type", json!("wire")),
        ("alg", json!("RSA")),
        ("recurrent", json!("yes")),
        ("account_pub", json!("XYZ")),
        ("authorization_pub", json!(1)),
        ("credit_amount", json!("KUDOS:1.123456789")),
        ("credit_amount", json!("EUR:10")),
        ("credit_amount", json!("KUDOS:0")),
        ("credit_account", json!("payto://iban/CH4431999123000889013?receiver-name=Exchange")),
        ("credit_account", json!("https://bank.example/")),
    ] {
        let mut body = good.clone();
        body[field] = value.clone();
        let answer = server.register(&body).await;
        answer.expect_error(400, 26);
        assert_eq!(answer.json()["parameter"], field, "{field} = {value}");
    }
    // A signature over something else.
    let mut body = good.clone();
    body["authorization_sig"] = json!(auth.sign(b"other").to_string());
    server.register(&body).await.expect_error(409, 5160);
    // Not our account, even though valid (compared normalized).
    let mut body = good.clone();
    body["credit_account"] = json!("payto://iban/DE89370400440532013000?receiver-name=Exchange");
    server.register(&body).await.expect_error(409, 5124);
    assert_eq!(server.count("registrations"), 0);
    // Normalized comparison: a BIC and another receiver name are the same account.
    let mut body = good.clone();
    body["credit_account"] = json!("PAYTO://IBAN/POFICHBEXXX/CH4431999123000889012?receiver-name=Someone");
    let first = server.register(&body).await;
    assert_eq!(first.status, 200);

    // Idempotent: byte-identical answers.
    let again = server.register(&body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);

    // Replacement with different fields: new data, renewed expiration.
    let mut changed = good.clone();
    changed["credit_amount"] = json!("KUDOS:20");
    server.advance(std::time::Duration::from_secs(2));
    let replaced = server.register(&changed).await;
    assert_eq!(replaced.status, 200);
    let (a, b) = (first.json(), replaced.json());
    assert_eq!(subject_of(&b, "SIMPLE").unwrap()["credit_amount"], "KUDOS:20");
    assert_eq!(subject_of(&a, "SIMPLE").unwrap()["subject"], subject_of(&b, "SIMPLE").unwrap()["subject"]);
    assert!(b["expiration"]["t_s"].as_u64() > a["expiration"]["t_s"].as_u64());
    assert_eq!(server.count("registrations"), 1);

    // A reserve key registered by another authorization key.
    let other = fresh();
    server
        .register(&registration(&other, &auth.public_key(), "reserve", false, "KUDOS:1"))
        .await
        .expect_error(409, 5114);
    // A kyc registration may share it.
    assert_eq!(
        server.register(&registration(&other, &auth.public_key(), "kyc", false, "KUDOS:1")).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistration_statuses() {
    let server = common::spawn_app(&[]).await;
    let auth = fresh();
    let path = "taler-prepared-transfer/unregistration";
    server.post_json(path, &unregistration(&auth, &rfc3339(0))).await.expect_error(404, 5162);
    assert_eq!(server.register(&one_shot(&auth)).await.status, 200);

    server.post_json(path, &json!({"timestamp": "yesterday", "authorization_pub": auth.public_key().to_string(), "authorization_sig": auth.sign(b"yesterday").to_string()})).await.expect_error(400, 26);
    let mut bad = unregistration(&auth, &rfc3339(0));
    bad["authorization_sig"] = json!(auth.sign(b"2020-01-01T00:00:00Z").to_string());
    server.post_json(path, &bad).await.expect_error(409, 5160);
    server.post_json(path, &unregistration(&auth, &rfc3339(-600))).await.expect_error(409, 5161);
    server.post_json(path, &unregistration(&auth, &rfc3339(600))).await.expect_error(409, 5161);
    // Not later than the registration's last change: a replay cannot delete a newer registration.
    server.post_json(path, &unregistration(&auth, &rfc3339(-60))).await.expect_error(409, 5161);
    assert_eq!(server.count("registrations"), 1);
    // Timestamps with offsets are RFC 3339 too.
    let now = time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap())
        + time::Duration::seconds(2);
    let ts = now.format(&time::format_description::well_known::Rfc3339).unwrap();
    let answer = server.post_json(path, &unregistration(&auth, &ts)).await;
    assert_eq!(answer.status, 204, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(server.count("registrations"), 0);
    server.post_json(path, &unregistration(&auth, &rfc3339(3))).await.expect_error(404, 5162);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_colliding_registrations_never_share_a_subject() {
    // One character: 36 possible short subjects, so collisions are certain.
    let server = common::spawn_app(&ONE_CHARACTER_SUBJECTS).await;
    let bodies: Vec<Value> = (0..120).map(|_| one_shot(&fresh())).collect();
    let answers = futures_util::future::join_all(bodies.iter().map(|b| server.register(b))).await;
    let mut winners = HashSet::new();
    let mut losers = 0;
    for a in &answers {
        match a.status {
            200 => {
                let s = subject_of(&a.json(), "SIMPLE").unwrap()["subject"].as_str().unwrap().to_owned();
                assert!(winners.insert(s.clone()), "subject {s} handed out twice");
            }
            409 => {
                assert_eq!(a.code(), 5159);
                losers += 1;
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&a.body)),
        }
    }
    assert!(losers > 0 && winners.len() <= 36);
    assert_eq!(winners.len() + losers, 120);
    assert_eq!(server.count("registrations") as usize, winners.len());
}

async fn credit_by_subject(server: &Http, subject: &str) -> Value {
    let answer = server
        .post_private(
            "taler-wire-gateway/admin/add-incoming-subject",
            &json!({"amount": "KUDOS:10", "subject": subject, "debit_account": "payto://iban/DE89370400440532013000?receiver-name=Customer"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    answer.json()
}

async fn history(server: &Http) -> Vec<Value> {
    let answer = server.get_private("taler-wire-gateway/history/incoming?limit=100").await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    answer.json()["incoming_transactions"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_end_to_end() {
    let server = common::spawn_app(&["--simple-subject", "short"]).await;
    let auth = fresh();
    let account = fresh().public_key();
    let answer = server.register(&registration(&auth, &account, "reserve", false, "KUDOS:10")).await;
    let a = answer.json();
    let short = subject_of(&a, "SIMPLE").unwrap()["subject"].as_str().unwrap().to_owned();
    let qr = subject_of(&a, "CH_QR_BILL").unwrap()["qr_reference_number"].as_str().unwrap().to_owned();

    // What a customer types: lower case, dashes, words around it.
    let typed = format!("thanks for {}-{}", short[..6].to_lowercase(), &short[6..]);
    let credited = credit_by_subject(&server, &typed).await;
    assert_eq!(credited["status"], "credited", "{credited}");
    assert_eq!(credited["account_pub"], account.to_string());
    assert_eq!(credited["type"], "RESERVE");
    let h = history(&server).await;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["reserve_pub"], account.to_string());
    assert_eq!(h[0]["authorization_pub"], auth.public_key().to_string());
    assert_eq!(h[0]["amount"], "KUDOS:10");

    // Used up: the same subject, or its QR reference, bounces.
    let again = credit_by_subject(&server, &short).await;
    assert_eq!(again["status"], "bounced", "{again}");
    let grouped = taler_lite::subject::group_qr_reference(&qr);
    assert_eq!(credit_by_subject(&server, &grouped).await["status"], "bounced");
    // A mapped transfer too.
    let mapped = server
        .post_private(
            "taler-wire-gateway/admin/add-mapped",
            &json!({"amount": "KUDOS:1", "authorization_pub": auth.public_key().to_string(), "debit_account": "payto://iban/DE89370400440532013000?receiver-name=C"}),
        )
        .await;
    mapped.expect_error(409, 5163);
    // Registering the credited reserve key again is refused.
    server
        .register(&registration(&fresh(), &account, "reserve", false, "KUDOS:10"))
        .await
        .expect_error(409, 5114);
    assert_eq!(history(&server).await.len(), 1);
    // Unknown subjects bounce, plain unregistered keys credit as reserves (as banks do today).
    assert_eq!(credit_by_subject(&server, "rent for november").await["status"], "bounced");
    let plain = fresh().public_key();
    let c = credit_by_subject(&server, &format!("KYC:{plain}")).await;
    assert_eq!((c["status"].as_str(), c["type"].as_str()), (Some("credited"), Some("KYCAUTH")));
    assert_eq!(history(&server).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurrent_registrations_follow_the_current_account() {
    let server = common::spawn_app(&[]).await;
    let auth = fresh();
    for round in 0..3 {
        let account = fresh().public_key();
        let a = server.register(&registration(&auth, &account, "reserve", true, "KUDOS:5")).await;
        assert_eq!(a.status, 200);
        let qr =
            subject_of(&a.json(), "CH_QR_BILL").unwrap()["qr_reference_number"].as_str().unwrap().to_owned();
        let c = credit_by_subject(&server, &format!("Ref {qr}")).await;
        assert_eq!(c["status"], "credited", "round {round}: {c}");
        assert_eq!(c["account_pub"], account.to_string());
        let m = server
            .post_private(
                "taler-wire-gateway/admin/add-mapped",
                &json!({"amount": "KUDOS:1", "authorization_pub": auth.public_key().to_string(), "debit_account": "payto://iban/DE89370400440532013000?receiver-name=C"}),
            )
            .await;
        // The reserve key was credited just now: single use.
        m.expect_error(409, 5114);
    }
    assert_eq!(history(&server).await.len(), 3);
    let unknown = server
        .post_private(
            "taler-wire-gateway/admin/add-mapped",
            &json!({"amount": "KUDOS:1", "authorization_pub": fresh().public_key().to_string(), "debit_account": "payto://iban/DE89370400440532013000?receiver-name=C"}),
        )
        .await;
    unknown.expect_error(409, 5162);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_frees_subjects_and_bounces_late_transfers() {
    let server =
        common::spawn_app(&[&ONE_CHARACTER_SUBJECTS[..], &["--registration-lifetime", "2s"]].concat()).await;
    let first = fresh();
    let a = server.register(&one_shot(&first)).await.json();
    let subject = subject_of(&a, "SIMPLE").unwrap()["subject"].as_str().unwrap().to_owned();
    // Another key deriving the same one-character subject.
    let second = loop {
        let k = fresh();
        if taler_lite::subject::short_subject(k.public_key().as_bytes(), 1) == subject {
            break k;
        }
    };
    server.register(&one_shot(&second)).await.expect_error(409, 5159);
    server.advance(std::time::Duration::from_secs(3));
    let late = credit_by_subject(&server, &subject).await;
    assert_eq!(late["status"], "bounced", "{late}");
    let b = server.register(&one_shot(&second)).await;
    assert_eq!(b.status, 200, "the expired registration's subject was not freed");
    assert_eq!(subject_of(&b.json(), "SIMPLE").unwrap()["subject"], subject);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_routes_need_the_token() {
    let server = common::spawn_app(&[]).await;
    for path in ["taler-wire-gateway/history/incoming", "private/registrations"] {
        server.get(path).await.expect_error(401, 40);
        let wrong =
            server.send(server.client.get(server.endpoint(path)).bearer_auth("secret-token:wrong")).await;
        wrong.expect_error(401, 40);
        // An empty history is 204 (the Wire Gateway's rule), the empty list 200.
        assert!([200, 204].contains(&server.get_private(path).await.status));
    }
    let body = json!({"amount": "KUDOS:1", "subject": "x", "debit_account": "payto://iban/DE89370400440532013000?receiver-name=C"});
    server.post_json("taler-wire-gateway/admin/add-incoming-subject", &body).await.expect_error(401, 40);
    assert_eq!(server.count("incoming_transfers"), 0);
    assert_eq!(server.register(&one_shot(&fresh())).await.status, 200);
    let list = server.get_private("private/registrations").await.json();
    assert_eq!(list["registrations"].as_array().unwrap().len(), 1);
    assert_eq!(list["registrations"][0]["live"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_registers_lists_and_unregisters_at_once() {
    let server = common::spawn_app(&[]).await;
    let dir = server.path().to_owned();
    let db = server.db.to_str().unwrap().to_owned();
    let out = common::run_cli(
        &dir,
        &[
            "client",
            "register",
            "--url",
            &server.url,
            "--amount",
            "KUDOS:7",
            "--authorization-key",
            "wallet.key",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let qr_line = printed.lines().find(|l| l.starts_with("CH_QR_BILL:")).unwrap();
    // As on a Swiss QR bill: groups of five from the right.
    assert!(qr_line.contains(" ("), "{qr_line}");
    let out = common::run_cli(&dir, &["--database", &db, "registrations", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("live"));
    // Within the same second as the registration: the signed timestamp is precise.
    let out = common::run_cli(
        &dir,
        &["client", "unregister", "--url", &server.url, "--authorization-key", "wallet.key"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.count("registrations"), 0);

    let out = common::run_cli(&dir, &["keygen", "party.key"]);
    assert!(out.status.success());
    let public = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let private: EddsaPrivateKey =
        std::fs::read_to_string(dir.join("party.key")).unwrap().trim().parse().unwrap();
    assert_eq!(private.public_key().to_string(), public);
    assert!(
        !common::run_cli(&dir, &["keygen", "party.key"]).status.success(),
        "an existing key is overwritten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_not_even_the_methods_are_told() {
    let server = common::spawn_app(&[]).await;
    for path in [
        "private/registrations",
        "private/kyc-bulk",
        "private/extern-keys",
        "taler-wire-gateway/history/incoming",
    ] {
        let answer = server.send(server.client.delete(server.endpoint(path))).await;
        answer.expect_error(401, 40);
        assert!(answer.headers.get("allow").is_none(), "{path}");
        let answer =
            server.send(server.client.delete(server.endpoint(path)).bearer_auth(&server.token)).await;
        answer.expect_error(405, 20);
    }
}
