//! The operator console over plain HTTP: sessions, CSRF, security headers,
//! sandboxed raw bodies and ZIP entries, simulation, and paging that does not
//! grow with the table. The browser test is `tests/console_browser.rs`.

mod common;

use std::time::{Duration, Instant};

use common::bank::EXCHANGE_ACCOUNT;
use common::kyc::{CUSTOMER as PAYTO, body_hash, party_arg, zip_of};
use common::{TestApp, spawn_app};
use serde_json::json;
use taler_lite::crypto::EddsaPrivateKey;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9";

/// A browser-like client of the console: no redirects followed, one session cookie.
struct Console {
    base: String,
    client: reqwest::Client,
    cookie: String,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Console {
    fn new(app: &TestApp) -> Console {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Console { base: app.url.trim_end_matches('/').to_owned(), client, cookie: String::new() }
    }

    async fn login(app: &TestApp) -> Console {
        let mut c = Console::new(app);
        let answer = c.post_form("/console/login", &[("token", app.token.as_str())]).await;
        assert_eq!(answer.status, 303, "{}", answer.text);
        let set = answer.headers["set-cookie"].to_str().unwrap().to_owned();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(set.contains(attribute), "{set}");
        }
        assert!(!set.contains("Secure"), "an http base URL gets no Secure cookie: {set}");
        c.cookie = set.split(';').next().unwrap().to_owned();
        c
    }

    async fn read(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned();
        Page { status, headers, text }
    }

    async fn get(&self, path: &str) -> Page {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        Console::read(r).await
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        Console::read(r).await
    }

    async fn csrf(&self) -> String {
        let page = self.get("/console/").await;
        let at = page.text.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        page.text[at..].split('"').next().unwrap().to_owned()
    }
}

fn assert_console_headers(page: &Page, what: &str) {
    let h = &page.headers;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert!(!h.keys().any(|k| k.as_str().starts_with("access-control-")), "{what}: CORS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_pages_csrf_and_logout() {
    let app = spawn_app(&[]).await;
    let anonymous = Console::new(&app);
    let page = anonymous.get("/console/").await;
    assert_eq!((page.status, page.headers["location"].to_str().unwrap()), (303, "/console/login"));

    // A wrong token: the form again (answered within the budget of failed authentications,
    // which tests/robustness_auth_budget.rs measures).
    let wrong = anonymous.post_form("/console/login", &[("token", "secret-token:wrong")]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("not the operator token"));
    assert_console_headers(&wrong, "wrong login");

    let c = Console::login(&app).await;
    // The cookie is no key to the JSON operator API.
    let api =
        app.client.get(app.endpoint("private/extern-keys")).header("Cookie", &c.cookie).send().await.unwrap();
    assert_eq!(api.status(), 401);
    for path in [
        "/console/",
        "/console/auditors",
        "/console/extern",
        "/console/uploads",
        "/console/registrations",
        "/console/registrations?state=all",
        "/console/transfers?status=bounced",
    ] {
        let page = c.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
        assert_console_headers(&page, path);
        assert!(!page.text.contains("<script"), "{path}");
    }

    // A POST without the CSRF token, or with another one: 403, nothing added.
    let key = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    for form in [
        vec![("extern_pub", key.as_str()), ("name", "Forged")],
        vec![("extern_pub", key.as_str()), ("name", "Forged"), ("csrf", "x")],
    ] {
        let forged = c.post_form("/console/extern", &form).await;
        assert_eq!(forged.status, 403);
        assert_console_headers(&forged, "403");
    }
    assert!(!c.get("/console/extern").await.text.contains(&key));
    let csrf = c.csrf().await;
    let added =
        c.post_form("/console/extern", &[("extern_pub", &key), ("name", "Acme KYC"), ("csrf", &csrf)]).await;
    assert_eq!(added.status, 200);
    assert!(added.text.contains("Acme KYC added"), "{}", added.text);
    let disabled = c.post_form("/console/extern/disable", &[("extern_pub", &key), ("csrf", &csrf)]).await;
    assert!(disabled.text.contains("disabled."));
    // Through the operator API as well.
    let list = app.get_private("private/extern-keys").await.json();
    assert_eq!(list["extern_keys"][0]["active"], false, "{list}");

    // A simulation without the token changes nothing either.
    let before = c.get("/console/transfers").await.text;
    let forged = c.post_form("/console/transfers/simulate", &[("amount", "KUDOS:1"), ("subject", "x")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        c.get("/console/transfers").await.text.matches("status-bounced").count(),
        before.matches("status-bounced").count()
    );

    assert_eq!(c.post_form("/console/logout", &[]).await.status, 403, "logout needs the token too");
    let out = c.post_form("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(c.get("/console/").await.status, 303, "the session ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bodies_and_zip_entries_are_sandboxed_with_their_checked_type() {
    let party = EddsaPrivateKey::generate().unwrap();
    let arg = party_arg(&party);
    let app = spawn_app(&["--extern-key", &arg]).await;
    assert_eq!(app.upload(&party, PAYTO, "image/png", PNG).await.status, 204);
    let archive = zip_of(&[("id/front.jpg", JPEG), ("scan.png", PNG)]);
    assert_eq!(app.upload(&party, PAYTO, "application/zip", &archive).await.status, 204);
    // An entry whose bytes are HTML never gets in.
    let html = zip_of(&[("page.jpg", b"<!DOCTYPE html><html><script>alert(1)</script></html>")]);
    assert_eq!(app.upload(&party, PAYTO, "application/zip", &html).await.status, 400);

    let c = Console::login(&app).await;
    let list = c.get("/console/uploads?payto=payto://iban/DE89370400440532013000").await;
    assert_eq!(list.text.matches("/console/uploads/").count(), 2, "{}", list.text);

    let png = body_hash(PNG);
    let detail = c.get(&format!("/console/uploads/{png}")).await;
    assert!(detail.text.contains(&format!("<img src=\"/console/uploads/{png}/raw\"")), "{}", detail.text);
    let zip = body_hash(&archive);
    let detail = c.get(&format!("/console/uploads/{zip}")).await;
    assert!(detail.text.contains("id/front.jpg") && detail.text.contains("image/jpeg"), "{}", detail.text);

    let expect = [
        (format!("/console/uploads/{png}/raw"), "image/png", PNG.to_vec()),
        (format!("/console/uploads/{zip}/raw"), "application/zip", archive.clone()),
        (format!("/console/uploads/{zip}/entries/0"), "image/jpeg", JPEG.to_vec()),
        (format!("/console/uploads/{zip}/entries/1"), "image/png", PNG.to_vec()),
    ];
    for (path, content_type, bytes) in expect {
        let r = c.client.get(format!("{}{path}", c.base)).header("Cookie", &c.cookie).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-security-policy"], "sandbox; default-src 'none'", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["content-type"], content_type, "{path}");
        assert_eq!(r.bytes().await.unwrap().to_vec(), bytes, "{path}");
    }
    // Without a session, nothing of it.
    let r = Console::new(&app).get(&format!("/console/uploads/{png}/raw")).await;
    assert_eq!(r.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_page_draws_the_code_and_simulates_the_transfer() {
    let app = spawn_app(&[]).await;
    let (auth, answer) = app.register_reserve(EXCHANGE_ACCOUNT, "KUDOS:5").await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let c = Console::login(&app).await;
    let path = format!("/console/registrations/{}", auth.public_key());
    let page = c.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Swiss QR bill payment part") && page.text.contains("<svg"), "{}", page.text);
    assert!(page.text.contains("Specimen"), "KUDOS is drawn as a specimen");
    // The Swiss cross: a white border, a black square, two white bars, over the code.
    assert_eq!(page.text.matches("<rect x=").count(), 4, "{}", page.text);
    let listed = c.get("/console/registrations").await;
    assert!(listed.text.contains(&auth.public_key().to_string()));
    let csrf = c.csrf().await;
    let done = c.post_form(&format!("{path}/simulate"), &[("csrf", &csrf)]).await;
    assert!(done.text.contains("status-credited"), "{}", done.text);
    let transfers = c.get("/console/transfers?status=credited").await;
    assert!(transfers.text.contains(&auth.public_key().to_string()));
    // A one-shot reserve key is credited once: the second is bounced, and says why.
    let again = c.post_form(&format!("{path}/simulate"), &[("csrf", &csrf)]).await;
    assert!(again.text.contains("status-bounced"), "{}", again.text);
}

/// Fills `registrations` with `n` rows straight through SQLite.
fn fill_registrations(db: &std::path::Path, n: u64) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO registrations (authorization_pub, account_pub, type, recurrent, credit_amount,
                 credit_account, authorization_sig, short_subject, qr_reference, response, created_us,
                 last_change_us, expiration_s)
                 VALUES (?1, ?1, 'reserve', 0, 'KUDOS:1', 'payto://iban/CH4431999123000889012?receiver-name=Exchange',
                 ?2, NULL, NULL, '{\"subjects\":[],\"expiration\":{\"t_s\":\"never\"}}', 0, 0, 9000000000)",
            )
            .unwrap();
        for i in 0..n {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&i.to_be_bytes());
            key[8] = 1;
            stmt.execute(rusqlite::params![key.to_vec(), vec![0u8; 64]]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A server whose table holds `n` registrations, and a console logged in to it.
async fn console_over(n: u64) -> (TestApp, Console) {
    let app = spawn_app(&[]).await;
    fill_registrations(&app.db, n);
    let c = Console::login(&app).await;
    assert_eq!(c.get("/console/registrations").await.status, 200);
    (app, c)
}

/// The time the first page of all registrations takes, checking it is a full page.
async fn first_page_time(c: &Console, n: u64) -> Duration {
    let started = Instant::now();
    let page = c.get("/console/registrations?state=all").await;
    let took = started.elapsed();
    assert_eq!(page.status, 200);
    assert_eq!(page.text.matches("/console/registrations/").count(), 50.min(n as usize));
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_page_of_100000_registrations_is_as_fast_as_of_100() {
    // Both pages are full (50 rows): what differs is only the size of the table below them.
    let (_small_app, small_console) = console_over(100).await;
    let (_large_app, large_console) = console_over(100_000).await;
    // Interleaved and the minimum of each, so that a burst of load on the machine spoils single
    // requests rather than one size; the minimum is the time without the machine's noise.
    let (mut small, mut large) = (Duration::MAX, Duration::MAX);
    for _ in 0..15 {
        small = small.min(first_page_time(&small_console, 100).await);
        large = large.min(first_page_time(&large_console, 100_000).await);
    }
    let ratio = large.as_secs_f64() / small.as_secs_f64();
    eprintln!("first page: 100 rows {small:?}, 100000 rows {large:?}, ratio {ratio:.2}");
    assert!(ratio < 3.0, "100 rows {small:?}, 100000 rows {large:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_https_base_url_the_cookie_is_secure() {
    let app = spawn_app(&["--base-url", "https://exchange.example/"]).await;
    let c = Console::new(&app);
    let answer = c.post_form("/console/login", &[("token", app.token.as_str())]).await;
    assert_eq!(answer.status, 303);
    let set = answer.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
}

/// The console's forms and the JSON API apply the same rules: one table of inputs, driven
/// through both, accepted or refused alike, and stored alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_api_accept_and_refuse_the_same() {
    let app = spawn_app(&[]).await;
    let c = Console::login(&app).await;
    let csrf = c.csrf().await;

    // Third-party names.
    let names: Vec<(String, bool)> = vec![
        ("Acme KYC".into(), true),
        ("  padded  ".into(), true),
        ("a".repeat(300), true),
        ("é".repeat(1024), true),
        ("a".repeat(1025), false),
        (String::new(), false),
        ("   ".into(), false),
        ("\u{1b}[31mred".into(), false),
        ("tab\there".into(), false),
        ("line\nbreak".into(), false),
        ("next\u{85}line".into(), false),
    ];
    for (name, accepted) in &names {
        let shown: String = name.chars().take(20).collect();
        let api_key = EddsaPrivateKey::generate().unwrap().public_key().to_string();
        let api =
            app.post_private("private/extern-keys", &json!({"extern_pub": api_key, "name": name})).await;
        let console_key = EddsaPrivateKey::generate().unwrap().public_key().to_string();
        let form = c
            .post_form("/console/extern", &[("extern_pub", &console_key), ("name", name), ("csrf", &csrf)])
            .await;
        assert_eq!(api.status == 204, *accepted, "API, {shown:?}: {}", String::from_utf8_lossy(&api.body));
        assert_eq!(form.status == 200, *accepted, "console, {shown:?}: {}", form.text);
        if !accepted {
            assert_eq!(api.status, 400, "{shown:?}");
            assert_eq!(form.status, 400, "{shown:?}");
            assert_eq!(api.json()["parameter"], "name", "{shown:?}");
            assert!(form.text.contains("Not added: field"), "the console names the field: {}", form.text);
        }
    }
    let stored = app.get_private("private/extern-keys").await.json();
    let mut by_key = std::collections::HashMap::new();
    for k in stored["extern_keys"].as_array().unwrap() {
        by_key.entry(k["name"].as_str().unwrap().to_owned()).and_modify(|n| *n += 1).or_insert(1);
    }
    let accepted: Vec<_> = names.iter().filter(|(_, ok)| *ok).collect();
    assert_eq!(by_key.len(), accepted.len(), "{stored}");
    for (name, _) in accepted {
        assert_eq!(by_key.get(name.trim()), Some(&2), "stored alike by both: {name:?}");
    }

    // Amounts and subjects of a simulated transfer, as add-incoming-subject takes them.
    let currency = app.get("taler-wire-gateway/config").await.json()["currency"].as_str().unwrap().to_owned();
    let transfers: Vec<(String, String, bool)> = vec![
        (format!("{currency}:1"), "no key here".into(), true),
        (format!("{currency}:0.5"), "x".repeat(1024), true),
        (format!("{currency}:0"), "zero".into(), false),
        ("XYZ:1".into(), "other currency".into(), false),
        (format!("{currency}:1"), "x".repeat(1025), false),
    ];
    for (amount, subject, accepted) in &transfers {
        let api = app
            .post_private(
                "taler-wire-gateway/admin/add-incoming-subject",
                &json!({"amount": amount, "subject": subject, "debit_account": PAYTO}),
            )
            .await;
        let form = c
            .post_form(
                "/console/transfers/simulate",
                &[("amount", amount), ("subject", subject), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(api.status == 200, *accepted, "API, {amount}: {}", String::from_utf8_lossy(&api.body));
        assert_eq!(form.status, 200, "{amount}");
        let refused = form.text.contains("refused: ");
        assert_eq!(!refused, *accepted, "console, {amount} {}: {}", subject.len(), form.text);
        if !accepted {
            let parameter = api.json()["parameter"].as_str().unwrap().to_owned();
            assert!(form.text.contains("refused: field"), "{}", form.text);
            assert!(form.text.contains(&parameter), "{parameter}: {}", form.text);
        }
    }
}

/// The page's text as a reader copies it: HTML entities undone.
fn unescape_html(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// The Auditors page tells how to enable an auditor: that exact text, with the placeholders
/// filled in as a reader would, run by a shell against the binary, enables it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditors_page_gives_a_command_that_enables_an_auditor() {
    let app = spawn_app(&[]).await;
    let c = Console::login(&app).await;
    let page = c.get("/console/auditors").await;
    assert_eq!(page.status, 200);
    let start = page.text.find("<pre class=\"cmd\">").unwrap_or_else(|| panic!("{}", page.text));
    let shown = &page.text[start + "<pre class=\"cmd\">".len()..];
    let shown = unescape_html(&shown[..shown.find("</pre>").unwrap()]);
    assert!(shown.starts_with("taler-lite offline enable-auditor "), "{shown}");
    let auditor_pub = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let command = shown
        .replace("AUDITOR_PUB", &auditor_pub)
        .replace("AUDITOR_URL", "https://auditor.example.com/")
        .replace("AUDITOR NAME", "Example Auditor");
    // In the folder of the database, where the development master key is, as on the
    // machine that holds the key; `taler-lite` on PATH as the page writes it.
    let bin = std::path::Path::new(common::BIN);
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let dir = app.path().to_owned();
    let ran = tokio::task::spawn_blocking(move || {
        let mut shell = std::process::Command::new("sh");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TALER_LITE_") {
                shell.env_remove(name);
            }
        }
        shell.arg("-c").arg(&command).current_dir(dir).env("PATH", path).output().unwrap()
    })
    .await
    .unwrap();
    assert!(ran.status.success(), "`{shown}` failed: {}", String::from_utf8_lossy(&ran.stderr));
    let auditors = app.get("auditors").await.json();
    assert_eq!(auditors["auditors"][0]["auditor_pub"], auditor_pub, "{auditors}");
    assert_eq!(auditors["auditors"][0]["auditor_name"], "Example Auditor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transfers_page_shows_the_transfers_out() {
    let app = spawn_app(&[]).await;
    let c = Console::login(&app).await;
    let before = c.get("/console/transfers").await;
    assert_eq!(before.status, 200);
    assert!(before.text.contains("Outgoing transfers") && before.text.contains("No transfer out yet"));
    let merchant = "payto://x-taler-bank/bank.example/merchant?receiver-name=Merchant%20%3Cb%3E";
    let wtid = taler_lite::base32::encode(EddsaPrivateKey::generate().unwrap().public_key().as_bytes());
    let mut uid = [0u8; 64];
    getrandom::fill(&mut uid).unwrap();
    let sent = app
        .post_private(
            "taler-wire-gateway/transfer",
            &json!({
                "request_uid": taler_lite::base32::encode(&uid), "amount": "KUDOS:7",
                "exchange_base_url": "https://exchange.example/", "wtid": wtid, "credit_account": merchant,
            }),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", String::from_utf8_lossy(&sent.body));
    let row_id = sent.json()["row_id"].as_i64().unwrap();
    let page = c.get("/console/transfers").await;
    assert!(!page.text.contains("No transfer out yet"), "{}", page.text);
    let outgoing = &page.text[page.text.find("Outgoing transfers").unwrap()..];
    let row = &outgoing[outgoing.find(&format!(">{row_id}<")).expect("the transfer's row")..];
    for shown in ["KUDOS:7", &wtid, "https://exchange.example/", "API", merchant] {
        assert!(row.contains(shown), "{shown} missing from {row}");
    }
}
