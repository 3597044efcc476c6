//! Operator access, for the real binary over real HTTP (issue 6): every
//! operator route (`/private/`, wire-gateway admin and history) refuses a
//! missing or wrong token (also one in the query string or a cookie) with
//! 401 / code 40 and changes nothing, and the same request with the token
//! succeeds.

mod common;

use common::TestServer;
use common::robust::*;
use serde_json::{Value, json};
use taler_lite::crypto::EddsaPrivateKey;
use taler_lite::http::Access;

#[test]
fn operator_routes_refuse_missing_and_wrong_tokens_and_change_nothing() {
    let rt = runtime();
    let party = EddsaPrivateKey::generate().unwrap();
    let server = TestServer::start(&["--extern-key", &format!("{}=Access Party", party.public_key())]);
    let client = &server.client;
    let url = &server.url;
    let token = server.token.clone();
    let registered = EddsaPrivateKey::generate().unwrap();
    // A second one for add-mapped: add-incoming-subject uses up the first.
    let mapped = EddsaPrivateKey::generate().unwrap();
    let body = pdf_body(9, 5000);
    let h_body = hash(&body);
    rt.block_on(async {
        for key in [&registered, &mapped] {
            assert_eq!(
                server.post_json("taler-prepared-transfer/registration", &registration(key)).await.status,
                200
            );
        }
        assert_eq!(server.send(upload_request(client, url, &party, body)).await.status, 204);
    });
    let new_party = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let party_pub = party.public_key().to_string();
    // Every operator route, with a request that the right token makes succeed.
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "private/extern-keys".into(), None),
        ("POST", "private/extern-keys".into(), Some(json!({"extern_pub": new_party, "name": "New"}))),
        ("GET", "private/kyc-bulk".into(), None),
        ("GET", format!("private/kyc-bulk/{h_body}"), None),
        ("GET", "private/registrations".into(), None),
        ("GET", "taler-wire-gateway/history/incoming".into(), None),
        ("GET", "metrics".into(), None),
        (
            "POST",
            "taler-wire-gateway/admin/add-incoming-subject".into(),
            Some(
                json!({"amount": "KUDOS:1", "subject": registered.public_key().to_string(), "debit_account": PAYTO}),
            ),
        ),
        (
            "POST",
            "taler-wire-gateway/admin/add-mapped".into(),
            Some(
                json!({"amount": "KUDOS:1", "authorization_pub": mapped.public_key().to_string(), "debit_account": PAYTO}),
            ),
        ),
        ("POST", format!("private/extern-keys/{party_pub}/disable"), Some(json!({}))),
    ];
    // The list must name every operator route of the table that routing reads, matched as
    // routing matches them: a route added to the table without a case here fails this test.
    for route in taler_lite::api::route_table().iter().filter(|r| r.access() == Access::Operator) {
        assert!(
            routes
                .iter()
                .any(|(m, path, _)| *m == route.method().as_str()
                    && route.matches(&format!("/{path}")).is_some()),
            "{} {} is an operator route that this test does not try",
            route.method(),
            route.pattern()
        );
    }
    let (head, last) = token.split_at(token.len() - 1);
    let wrong: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Bearer {head}")),
        Some(format!("Bearer {token}x")),
        Some(format!("Bearer {head}{}", if last == "A" { "B" } else { "A" })),
        Some(format!("Bearer {}", token.to_lowercase())),
        Some(token.clone()),
        Some(format!("Basic {token}")),
        Some(format!("Token {token}")),
        Some(format!("Bearer secret-token:{}", "A".repeat(52))),
        Some(format!("Bearer {token} {token}")),
    ];
    rt.block_on(async {
        for (method, path, body) in &routes {
            let before = fingerprint(&server.db());
            for auth in &wrong {
                // The token in the query string or a cookie is no token either.
                let mut r = client
                    .request(method.parse().unwrap(), format!("{url}{path}?token={}", percent_encode(&token)))
                    .header("Cookie", format!("token={token}"));
                if let Some(a) = auth {
                    r = r.header("Authorization", a.as_str());
                }
                if let Some(b) = body {
                    r = r.json(b);
                }
                let answer = server.send(r).await;
                assert_eq!(
                    (answer.status, answer.code()),
                    (401, 40),
                    "{method} /{path} with {auth:?}: {}",
                    String::from_utf8_lossy(&answer.body)
                );
            }
            assert_eq!(
                fingerprint(&server.db()),
                before,
                "{method} /{path}: a refused request changed the database"
            );
            // The same request with the token is accepted: the 401s were about the token only.
            let mut r = client.request(method.parse().unwrap(), format!("{url}{path}")).bearer_auth(&token);
            if let Some(b) = body {
                r = r.json(b);
            }
            let answer = server.send(r).await;
            assert!(
                answer.status / 100 == 2,
                "{method} /{path} with the token: {} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
    });
}
