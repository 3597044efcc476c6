//! Bad input, for the real binary over real HTTP (issue 6): proptest throws
//! random and mutated JSON bodies, upload headers and bodies, path segments,
//! query strings, headers and methods at every endpoint. Never a 5xx, never
//! a panic, every error is `ErrorDetail` JSON, and a refused request stores
//! nothing.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::TestServer;
use common::robust::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use taler_lite::crypto::{EddsaPrivateKey, SignedStruct};
use taler_lite::timestamp::Timestamp;

/// What the property tests share: one server, one runtime, known keys.
struct Fuzz {
    rt: tokio::runtime::Runtime,
    server: TestServer,
    client: reqwest::Client,
    master: EddsaPrivateKey,
    party: EddsaPrivateKey,
    /// A registered authorization key (for add-mapped and unregistration).
    registered: EddsaPrivateKey,
    accepted: Mutex<usize>,
}

impl Fuzz {
    fn start() -> Fuzz {
        let rt = runtime();
        let master = EddsaPrivateKey::generate().unwrap();
        let party = EddsaPrivateKey::generate().unwrap();
        let server = TestServer::start(&[
            "--master-public-key",
            &master.public_key().to_string(),
            "--extern-key",
            &format!("{}=Fuzz Party", party.public_key()),
        ]);
        let registered = EddsaPrivateKey::generate().unwrap();
        rt.block_on(async {
            let r =
                server.post_json("taler-prepared-transfer/registration", &registration(&registered)).await;
            assert_eq!(r.status, 200);
            let r = server.send(upload_request(&server.client, &server.url, &party, pdf_body(1, 3000))).await;
            assert_eq!(r.status, 204);
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Fuzz { rt, server, client, master, party, registered, accepted: Mutex::new(0) }
    }

    /// Sends one request and checks the properties every answer must have.
    fn check(&self, request: reqwest::RequestBuilder, what: &str) -> Result<(), TestCaseError> {
        // A HEAD answer has no body by definition: only its status is checked.
        let head = what.starts_with("HEAD ");
        let before = fingerprint(&self.server.db());
        let (status, headers, body) = self.rt.block_on(async {
            let r =
                request.send().await.map_err(|e| TestCaseError::fail(format!("{what}: no answer: {e}")))?;
            let (status, headers) = (r.status().as_u16(), r.headers().clone());
            let body =
                r.bytes().await.map_err(|e| TestCaseError::fail(format!("{what}: answer cut: {e}")))?;
            Ok::<_, TestCaseError>((status, headers, body))
        })?;
        let text = String::from_utf8_lossy(&body);
        prop_assert!(status < 500, "{}: {} {}", what, status, text);
        if status >= 400
            && !head
            && let Err(e) = is_error_detail(&headers, &body)
        {
            return Err(TestCaseError::fail(format!("{what}: {status} is no ErrorDetail ({e}): {text}")));
        }
        if status >= 400 {
            prop_assert!(
                fingerprint(&self.server.db()) == before,
                "{}: refused with {} but the database changed: {}",
                what,
                status,
                text
            );
        } else {
            *self.accepted.lock().unwrap() += 1;
        }
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url, path)
    }

    /// The valid body of each JSON endpoint, to be mutated.
    fn valid_json(&self, endpoint: usize) -> (String, Value) {
        let fresh = EddsaPrivateKey::generate().unwrap();
        let auditor = fresh.public_key();
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
        match endpoint % JSON_ENDPOINTS {
            0 => ("management/auditors".into(), auditor_enable(&self.master, &auditor)),
            1 => {
                let sig = taler_lite::crypto::MasterDelAuditorPS {
                    end_date: Timestamp::from_secs(1_700_000_001),
                    auditor_pub: auditor,
                }
                .sign(&self.master);
                (
                    format!("management/auditors/{auditor}/disable"),
                    json!({"master_sig": sig.to_string(), "validity_end": {"t_s": 1_700_000_001}}),
                )
            }
            2 => ("taler-prepared-transfer/registration".into(), registration(&fresh)),
            3 => (
                "taler-prepared-transfer/unregistration".into(),
                json!({
                    "timestamp": now,
                    "authorization_pub": fresh.public_key().to_string(),
                    "authorization_sig": fresh.sign(now.as_bytes()).to_string(),
                }),
            ),
            4 => ("private/extern-keys".into(), json!({"extern_pub": auditor.to_string(), "name": "Fuzzed"})),
            5 => (format!("private/extern-keys/{auditor}/disable"), json!({})),
            6 => (
                "taler-wire-gateway/admin/add-mapped".into(),
                json!({
                    "amount": "KUDOS:1",
                    "authorization_pub": self.registered.public_key().to_string(),
                    "debit_account": PAYTO,
                }),
            ),
            _ => (
                "taler-wire-gateway/admin/add-incoming-subject".into(),
                json!({"amount": "KUDOS:1", "subject": format!("{}", fresh.public_key()), "debit_account": PAYTO}),
            ),
        }
    }
}

const JSON_ENDPOINTS: usize = 8;

/// Arbitrary JSON values, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        "\\PC{0,60}".prop_map(Value::from),
        "[0-9A-Z]{50,54}".prop_map(Value::from),
        "(KUDOS|EUR|kudos|X)?:?[0-9]{0,20}(\\.[0-9]{0,10})?".prop_map(Value::from),
        "payto://[a-z]{0,6}/[A-Z0-9]{0,30}(\\?[a-z-]{0,12}=[^&]{0,10})?".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// How a valid body is spoiled.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Remove(usize),
    Replace(usize, Value),
    Nest(usize),
    AddField(String, Value),
    FlipByte(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Random(Vec<u8>),
    Whole(Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::None),
        3 => any::<usize>().prop_map(Mutation::Remove),
        6 => (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<usize>().prop_map(Mutation::Nest),
        1 => ("[a-z_]{1,12}", any_json()).prop_map(|(k, v)| Mutation::AddField(k, v)),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Mutation::Random),
        1 => any_json().prop_map(Mutation::Whole),
    ]
}

fn apply(mutation: &Mutation, valid: &Value) -> Vec<u8> {
    let mut v = valid.clone();
    let keys: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let pick = |i: usize| keys.get(i % keys.len().max(1)).cloned();
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    match mutation {
        Mutation::None => bytes(&v),
        Mutation::Remove(i) => {
            if let Some(k) = pick(*i) {
                v.as_object_mut().unwrap().remove(&k);
            }
            bytes(&v)
        }
        Mutation::Replace(i, new) => {
            if let Some(k) = pick(*i) {
                v[k] = new.clone();
            }
            bytes(&v)
        }
        Mutation::Nest(i) => {
            if let Some(k) = pick(*i) {
                let old = v[&k].take();
                v[k] = json!([old]);
            }
            bytes(&v)
        }
        Mutation::AddField(k, new) => {
            v[k.as_str()] = new.clone();
            bytes(&v)
        }
        Mutation::FlipByte(i, b) => {
            let mut out = bytes(&v);
            let at = i % out.len();
            out[at] ^= b.max(&1);
            out
        }
        Mutation::Truncate(i) => {
            let mut out = bytes(&v);
            out.truncate(i % out.len());
            out
        }
        Mutation::Insert(i, extra) => {
            let mut out = bytes(&v);
            let at = i % (out.len() + 1);
            out.splice(at..at, extra.iter().copied());
            out
        }
        Mutation::Random(raw) => raw.clone(),
        Mutation::Whole(other) => bytes(other),
    }
}

/// Who the request claims to be.
fn authorization(fuzz: &Fuzz, choice: u8) -> Option<String> {
    match choice % 4 {
        0 => None,
        1 => Some("Bearer secret-token:WRONG".into()),
        _ => Some(format!("Bearer {}", fuzz.server.token)),
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        // The cases run against a live server: a regression file would replay
        // against another server with other keys, so none is kept.
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    })
}

#[test]
fn random_and_mutated_requests_never_get_a_5xx_or_store_anything_when_refused() {
    let fuzz = Fuzz::start();
    let started = Instant::now();

    // 1. JSON endpoints: a valid body mutated, any content type, any token.
    let strategy = (
        0..JSON_ENDPOINTS,
        mutation(),
        any::<u8>(),
        prop_oneof![
            Just("application/json"),
            Just("text/plain"),
            Just("application/json; charset=latin1"),
            Just(""),
        ],
    );
    runner(256)
        .run(&strategy, |(endpoint, m, auth, content_type)| {
            let (path, valid) = fuzz.valid_json(endpoint);
            let body = apply(&m, &valid);
            let mut r = fuzz.client.post(fuzz.url(&path)).body(body);
            if !content_type.is_empty() {
                r = r.header("Content-Type", content_type);
            }
            if let Some(a) = authorization(&fuzz, auth) {
                r = r.header("Authorization", a);
            }
            fuzz.check(r, &format!("POST /{path} {m:?}"))
        })
        .unwrap();

    // 2. Uploads: each header valid, missing or replaced; the body whole,
    // cut, altered or random.
    #[derive(Debug, Clone)]
    enum Part {
        Valid,
        Missing,
        Text(String),
    }
    let part = || {
        prop_oneof![
            6 => Just(Part::Valid),
            1 => Just(Part::Missing),
            2 => "[ -~]{0,120}".prop_map(Part::Text),
            1 => "[0-9A-Z]{100,106}".prop_map(Part::Text),
        ]
    };
    let strategy = (
        (part(), part(), part(), part(), part()),
        prop_oneof![Just(0usize), Just(1), Just(2), Just(3)],
        mutation(),
        any::<u64>(),
    );
    runner(192)
        .run(&strategy, |((path_key, ct, payto, sig, h), body_kind, m, seed)| {
            let body = pdf_body(seed, 100 + (seed % 5000) as usize);
            let h_valid = hash(&body);
            let body = match body_kind {
                0 => body,
                1 => body[..body.len() / 2].to_vec(),
                2 => apply(&m, &json!({"a": String::from_utf8_lossy(&body[..40])})),
                _ => {
                    let mut b = body;
                    let at = (seed as usize) % b.len();
                    b[at] ^= 0x55;
                    b
                }
            };
            let key = match &path_key {
                Part::Valid => fuzz.party.public_key().to_string(),
                Part::Missing => String::new(),
                Part::Text(t) => percent_encode(t),
            };
            let mut r = fuzz.client.post(fuzz.url(&format!("kyc-bulk/{key}"))).body(body);
            let headers = [
                ("Content-Type", &ct, "application/pdf".to_owned()),
                ("Taler-Customer-Payto", &payto, PAYTO.to_owned()),
                ("Taler-Extern-Signature", &sig, upload_signature(&fuzz.party, h_valid, PAYTO)),
                ("If-None-Match", &h, h_valid.to_string()),
            ];
            for (name, p, valid) in headers {
                match p {
                    Part::Valid => r = r.header(name, valid),
                    Part::Missing => {}
                    Part::Text(t) => r = r.header(name, t.as_str()),
                }
            }
            fuzz.check(r, &format!("upload {path_key:?} {ct:?} {payto:?} {sig:?} {h:?} body {body_kind}"))
        })
        .unwrap();

    // 3. Paths, query strings and methods on every route.
    let routes = [
        "config",
        "auditors",
        "management/auditors",
        "management/auditors/{}/disable",
        "kyc-bulk/{}",
        "private/extern-keys",
        "private/extern-keys/{}/disable",
        "private/kyc-bulk",
        "private/kyc-bulk/{}",
        "private/registrations",
        "taler-prepared-transfer/config",
        "taler-prepared-transfer/registration",
        "taler-prepared-transfer/unregistration",
        "taler-wire-gateway/config",
        "taler-wire-gateway/admin/add-mapped",
        "taler-wire-gateway/admin/add-incoming-subject",
        "taler-wire-gateway/history/incoming",
        "{}",
        "private/{}",
        "taler-wire-gateway/{}/{}",
    ];
    let segment = prop_oneof![
        "\\PC{0,60}".prop_map(|s| percent_encode(&s)),
        "[0-9A-Za-z]{0,110}",
        Just("..".to_owned()),
        Just("%00".to_owned()),
        Just("%zz".to_owned()),
        Just("%C3%28".to_owned()),
    ];
    let query_value = prop_oneof![
        "-?[0-9]{1,25}".boxed(),
        Just("-9223372036854775808".to_owned()).boxed(),
        Just("9223372036854775808".to_owned()).boxed(),
        "\\PC{0,40}".prop_map(|s| percent_encode(&s)).boxed(),
        "payto://iban/[A-Z0-9]{0,24}(\\?receiver-name=[a-z]{0,8})?".prop_map(|s| percent_encode(&s)).boxed(),
        Just("%zz".to_owned()).boxed(),
    ];
    let query = proptest::collection::vec(
        (
            prop_oneof![
                Just("limit"),
                Just("offset"),
                Just("payto"),
                Just("delta"),
                Just("start"),
                Just("x")
            ],
            query_value,
        ),
        0..4,
    );
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("DELETE"),
        Just("HEAD"),
        Just("PATCH"),
        Just("OPTIONS")
    ];
    let strategy = (
        0..routes.len(),
        proptest::collection::vec(segment, 2),
        query,
        method,
        any::<u8>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("Accept".to_owned()),
                    Just("Content-Type".to_owned()),
                    Just("If-None-Match".to_owned()),
                    Just("Expect".to_owned()),
                    Just("Taler-Customer-Payto".to_owned()),
                    Just("X-Forwarded-For".to_owned()),
                    "[a-z][a-z0-9-]{0,20}"
                ],
                "[ -~]{0,80}",
            ),
            0..4,
        ),
    );
    runner(256)
        .run(&strategy, |(route, segments, query, method, auth, body, headers)| {
            let mut path = routes[route].to_owned();
            for s in &segments {
                path = path.replacen("{}", s, 1);
            }
            let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let url = if query.is_empty() {
                fuzz.url(&path)
            } else {
                format!("{}?{}", fuzz.url(&path), query.join("&"))
            };
            let mut r = fuzz.client.request(method.parse().unwrap(), &url);
            for (name, value) in &headers {
                // Expect: 100-continue and friends are reqwest's to send; anything else goes.
                if !name.eq_ignore_ascii_case("expect") || value.is_empty() {
                    r = r.header(name.as_str(), value.as_str());
                }
            }
            if let Some(a) = authorization(&fuzz, auth) {
                r = r.header("Authorization", a);
            }
            if let Some(b) = body {
                r = r.body(b);
            }
            fuzz.check(r, &format!("{method} {url} {headers:?}"))
        })
        .unwrap();

    let server = &fuzz.server;
    wait_until_no_staged(server, Duration::from_secs(20));
    integrity_ok(server);
    bodies_are_whole(server);
    assert!(!server.log().contains("panicked"), "{}", server.log());
    fuzz.rt.block_on(async { assert_eq!(server.get("config").await.status, 200) });
    eprintln!(
        "bad input: 704 cases, {} accepted (2xx), {:.1}s",
        fuzz.accepted.lock().unwrap(),
        started.elapsed().as_secs_f64()
    );
}
