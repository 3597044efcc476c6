//! The operator console (`console.md`): the database seen in a browser, under
//! `/console/` on the same listener. HTML rendered on the server (`templates`),
//! one stylesheet, no script.
//!
//! Access is the router's: [`Route::console`] rows need a session cookie (the
//! dispatcher redirects to the login form without one, and adds the security
//! headers and no CORS); the sessions themselves live in memory
//! ([`crate::session`]), so a restart logs everyone out. Every form that
//! changes state carries the session's CSRF token, checked here before anything
//! else. The master private key is never used: enabling an auditor stays an
//! offline step, which the auditors page spells out.

mod templates;

use std::collections::HashMap;
use std::time::Duration;

use maud::{Markup, html};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::amount::Amount;
use crate::app::AppState;
use crate::crypto::{EddsaPublicKey, HashCode};
use crate::domain::bank::accounts;
use crate::domain::bank::registrations::{RegistrationResponse, TransferSubject};
use crate::domain::bank::transfers::{self, AddIncomingSubject, SubjectOutcome};
use crate::domain::exchange::third_parties::{self, Added};
use crate::error::ApiError;
use crate::http::stream::{blocking_body, stream_body};
use crate::http::{PathParams, Request, Route, see_other};
use crate::kyc_content::{self, ZipEntryInfo};
use crate::payto::Payto;
use crate::qr_bill::{CreditorAddress, EpcQrCode, SwissQrBill};
use crate::session::{COOKIE, LIFETIME};
use crate::store::console::{self as queries, RegistrationState};
use crate::store::kyc::{self, ChunkReader};
use crate::store::{Page, StoreError, auditors};
use crate::subject::group_qr_reference;
use templates::{csrf_field, date, html_response, page, pager};

/// Rows per page of every list.
const PAGE_SIZE: i64 = 50;
/// Largest form a console POST may send.
const MAX_FORM: u64 = 64 * 1024;
/// The debit account of simulated transfers.
const SIMULATED_DEBTOR: &str = "payto://iban/CH9300762011623852957?receiver-name=Simulated%20customer";

/// This module's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::console_login(Method::GET, "/console/login", login_form),
        Route::console_login(Method::POST, "/console/login", login),
        Route::console_login(Method::GET, "/console/static/console.css", stylesheet),
        Route::console_login(Method::GET, "/console", to_console),
        Route::console(Method::POST, "/console/logout", logout),
        Route::console(Method::GET, "/console/", overview),
        Route::console(Method::GET, "/console/auditors", auditors_page),
        Route::console(Method::GET, "/console/extern", extern_page),
        Route::console(Method::POST, "/console/extern", extern_add),
        Route::console(Method::POST, "/console/extern/disable", extern_disable),
        Route::console(Method::GET, "/console/uploads", uploads_page),
        Route::console(Method::GET, "/console/uploads/{h_body}", upload_page),
        Route::console(Method::GET, "/console/uploads/{h_body}/raw", upload_raw),
        Route::console(Method::GET, "/console/uploads/{h_body}/entries/{index}", upload_entry),
        Route::console(Method::GET, "/console/registrations", registrations_page),
        Route::console(Method::GET, "/console/registrations/{authorization_pub}", registration_page),
        Route::console(
            Method::POST,
            "/console/registrations/{authorization_pub}/simulate",
            registration_simulate,
        ),
        Route::console(Method::GET, "/console/transfers", transfers_page),
        Route::console(Method::POST, "/console/transfers/simulate", transfers_simulate),
    ]
}

/// The request's CSRF token (the dispatcher has checked the session already).
fn csrf(state: &AppState, req: &Request) -> String {
    state.sessions.csrf_of(&req.headers).unwrap_or_default()
}

fn forbidden() -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        html! { p { "This form has expired or did not come from the console. " a href="/console/" { "Back" } } },
    )
}

fn not_found(state: &AppState, req: &Request, what: &str) -> Response {
    html_response(StatusCode::NOT_FOUND, page("Not found", "", &csrf(state, req), html! { p { (what) } }))
}

/// A POST's form, if its CSRF token is the session's.
async fn checked_form(
    state: &AppState,
    req: &mut Request,
) -> Result<Option<HashMap<String, String>>, ApiError> {
    let body = req.bytes(MAX_FORM).await?;
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let given = form.get("csrf").map(String::as_str).unwrap_or("");
    Ok(state.sessions.check_csrf(&req.headers, given).then_some(form))
}

/// `GET /console/login`: the login form.
async fn login_form(_: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(html_response(StatusCode::OK, templates::login(None)))
}

/// `POST /console/login`: the operator token for a session cookie.
async fn login(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let body = req.bytes(MAX_FORM).await?;
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !bool::from(token.trim().as_bytes().ct_eq(state.token.as_bytes())) {
        log::warn!("console: a login with a wrong token");
        // Held until the budget of failed authentications has room (as a wrong bearer token is).
        if let busy @ ApiError::Busy { .. } =
            crate::http::hold_failure(&state, req.peer, ApiError::Unauthorized).await
        {
            return Err(busy);
        }
        return Ok(html_response(
            StatusCode::UNAUTHORIZED,
            templates::login(Some("That is not the operator token.")),
        ));
    }
    let Some(id) = state.sessions.create() else {
        return Err(ApiError::Internal("no randomness for a session".into()));
    };
    let secure = if state.base_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}{secure}",
        LIFETIME.as_secs()
    );
    let mut response = see_other("/console/");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /console/logout`: ends the session.
async fn logout(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    if checked_form(&state, &mut req).await?.is_none() {
        return Ok(forbidden());
    }
    state.sessions.remove(&req.headers);
    let mut response = see_other("/console/login");
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `GET /console`: the console is under `/console/` (the cookie's path covers both).
async fn to_console(_: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(see_other("/console/"))
}

/// `GET /console/static/console.css`: the one stylesheet.
async fn stylesheet(_: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    let mut response = Response::new(include_str!("console.css").into());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    Ok(response)
}

fn card(n: impl std::fmt::Display, label: &str) -> Markup {
    html! { div.card { div.n { (n) } div.l { (label) } } }
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `GET /console/`: counts, the file, the server, the 20 most recent events.
async fn overview(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let now_s = state.clock.now_s();
    let (o, events) = state
        .store
        .read(move |db| Ok((queries::overview(db, now_s)?, queries::recent_events(db, 20)?)))
        .await?;
    let db_path = state.store.path().to_path_buf();
    let mut wal = db_path.clone().into_os_string();
    wal.push("-wal");
    let uptime = humantime::format_duration(Duration::from_secs(state.started.elapsed().as_secs()));
    let body = html! {
        div.cards {
            (card(o.auditors_active, "auditors active"))
            (card(o.auditors_disabled, "auditors disabled"))
            (card(o.extern_keys, "third parties"))
            (card(o.uploads, "uploads"))
            (card(bytesize::ByteSize(o.upload_bytes), "uploaded"))
            (card(o.bodies, "distinct bodies"))
            (card(o.registrations_live, "registrations live"))
            (card(o.registrations_expired, "registrations expired"))
            (card(o.credited, "transfers credited"))
            (card(o.bounced, "transfers bounced"))
        }
        h2 { "Server" }
        dl.kv {
            dt { "Version" } dd { (env!("CARGO_PKG_VERSION")) }
            dt { "Uptime" } dd { (uptime) }
            dt { "Base URL" } dd { code { (state.base_url) } }
            dt { "Master public key" } dd { code { (state.master_pub) } }
            dt { "Credit accounts" } dd { @for a in &state.settings.credit_accounts { code { (a.full()) } br; } }
            dt { "Database" } dd { code { (db_path.display()) } " — " (bytesize::ByteSize(file_size(&db_path))) }
            dt { "WAL" } dd { (bytesize::ByteSize(file_size(std::path::Path::new(&wal)))) }
        }
        h2 { "Recent events" }
        div.table-wrap { table {
            thead { tr { th { "When" } th { "What" } th { "Key" } th { "Detail" } } }
            tbody { @for e in &events { tr {
                td { (date(&e.at)) }
                td { (e.kind) }
                td { @match e.kind.as_str() {
                    "upload" => a.mono href={ "/console/uploads/" (e.key) } { (short(&e.key)) },
                    "registration" => a.mono href={ "/console/registrations/" (e.key) } { (short(&e.key)) },
                    _ => a href="/console/transfers" { "#" (e.key) },
                } }
                td { (e.detail) }
            } } }
        } }
    };
    Ok(html_response(StatusCode::OK, page("Overview", "/console/", &csrf(&state, &req), body)))
}

/// The first characters of a long key, the whole on hover.
fn short(key: &str) -> Markup {
    let head: String = key.chars().take(16).collect();
    html! { span title=(key) { (head) "…" } }
}

/// `GET /console/auditors`: every auditor, and how to enable one.
async fn auditors_page(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let rows = state.store.read(auditors::all).await?;
    let body = html! {
        div.table-wrap { table {
            thead { tr { th { "Name" } th { "URL" } th { "Public key" } th { "State" } th { "Last change" } th { "Master signature" } } }
            tbody { @for a in &rows { tr {
                td { (a.auditor_name) }
                td { code { (a.auditor_url) } }
                td { code { (a.auditor_pub) } }
                td { @if a.is_active { span.active { "active" } } @else { span.disabled { "disabled" } } }
                td { (date(&crate::timestamp::Timestamp::from_secs(u64::try_from(a.last_change_s).unwrap_or(0)))) }
                td { code { (a.master_sig) } }
            } } }
        } }
        @if rows.is_empty() { p { "No auditor yet." } }
        h2 { "Enabling an auditor" }
        p { "The console never holds the master private key: enabling is an offline signing step. On the machine with the key, run:" }
        pre.cmd { "taler-lite offline enable-auditor --auditor-pub AUDITOR_PUB --url AUDITOR_URL --name 'AUDITOR NAME' --upload " (state.base_url) }
        p { "With the auditor's public key (base32) for " code { "AUDITOR_PUB" } ", its base URL for " code { "AUDITOR_URL" } " and its name. "
            code { "offline disable-auditor --auditor-pub AUDITOR_PUB --upload " (state.base_url) } " disables one." }
    };
    Ok(html_response(StatusCode::OK, page("Auditors", "/console/auditors", &csrf(&state, &req), body)))
}

/// `GET /console/extern`: the third parties, with the add and disable forms.
async fn extern_page(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    extern_render(&state, csrf(&state, &req), StatusCode::OK, None).await
}

async fn extern_render(
    state: &AppState,
    csrf: String,
    status: StatusCode,
    result: Option<String>,
) -> Result<Response, ApiError> {
    let rows = third_parties::list(&state.store).await?;
    let body = html! {
        @if let Some(r) = result { p.result role="status" { (r) } }
        div.table-wrap { table {
            thead { tr { th { "Name" } th { "Public key" } th { "State" } th { "Added" } th {} } }
            tbody { @for k in &rows { tr {
                td { (k.name) }
                td { code { (k.extern_pub) } }
                td { @if k.active { span.active { "active" } } @else { span.disabled { "disabled" } } }
                td { (date(&k.created)) }
                td { @if k.active {
                    form.inline method="post" action="/console/extern/disable" {
                        (csrf_field(&csrf))
                        input type="hidden" name="extern_pub" value=(k.extern_pub.to_string());
                        button.secondary type="submit" aria-label={ "Disable " (k.name) } { "Disable" }
                    }
                } }
            } } }
        } }
        h2 { "Add a third party" }
        form.box method="post" action="/console/extern" {
            (csrf_field(&csrf))
            label { "Public key (EdDSA, base32)" input name="extern_pub" required size="56"; }
            label { "Name" input name="name" required; }
            button type="submit" { "Add" }
        }
    };
    Ok(html_response(status, page("Third parties", "/console/extern", &csrf, body)))
}

/// `POST /console/extern`: adds (or re-activates) a third party, under the API's rules.
async fn extern_add(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let Some(form) = checked_form(&state, &mut req).await? else { return Ok(forbidden()) };
    let name = form.get("name").map(String::as_str).unwrap_or("");
    let key = form.get("extern_pub").map(|s| s.trim()).unwrap_or("").parse::<EddsaPublicKey>();
    let added = match key {
        Ok(key) => third_parties::add(&state.store, key, name, state.clock.now_us()).await,
        Err(e) => Err(ApiError::field("extern_pub", e)),
    };
    let message = match added {
        Ok(Added::New) => format!("{} added.", name.trim()),
        Ok(Added::Reactivated) => format!("{} re-activated.", name.trim()),
        Err(e @ ApiError::Database { .. }) => return Err(e),
        Err(e) => {
            return extern_render(&state, csrf(&state, &req), StatusCode::BAD_REQUEST, Some(refusal(&e)))
                .await;
        }
    };
    extern_render(&state, csrf(&state, &req), StatusCode::OK, Some(message)).await
}

/// A refused form's message: the rule's own words, naming the field.
fn refusal(e: &ApiError) -> String {
    format!("Not added: {e}.")
}

/// `POST /console/extern/disable`: disables a third party.
async fn extern_disable(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let Some(form) = checked_form(&state, &mut req).await? else { return Ok(forbidden()) };
    let Ok(key) = form.get("extern_pub").map(|s| s.trim()).unwrap_or("").parse::<EddsaPublicKey>() else {
        return extern_render(
            &state,
            csrf(&state, &req),
            StatusCode::BAD_REQUEST,
            Some("Not a public key.".into()),
        )
        .await;
    };
    let message = match third_parties::disable(&state.store, key).await {
        Ok(()) => format!("{key} disabled."),
        Err(ApiError::ExternUnknown(_)) => format!("{key} is not known."),
        Err(e) => return Err(e),
    };
    extern_render(&state, csrf(&state, &req), StatusCode::OK, Some(message)).await
}

#[derive(Deserialize, Default)]
struct ListQuery {
    payto: Option<String>,
    state: Option<String>,
    status: Option<String>,
    /// The row id the page starts below (keyset paging).
    page: Option<i64>,
}

fn before(q: &ListQuery) -> i64 {
    q.page.filter(|p| *p > 0).unwrap_or(i64::MAX)
}

/// The link to the next page, if this one was full.
fn next_link(base: &str, extra: &[(&str, &str)], last: Option<i64>, len: usize) -> Option<String> {
    let last = last.filter(|_| len as i64 >= PAGE_SIZE)?;
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in extra.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.append_pair("page", &last.to_string());
    Some(format!("{base}?{}", q.finish()))
}

/// `GET /console/uploads?payto=&page=`: uploads, of one customer or all, newest first.
async fn uploads_page(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let q: ListQuery = req.query()?;
    let payto_text = q.payto.clone().unwrap_or_default();
    let (customer, problem) = match payto_text.trim() {
        "" => (None, None),
        text => match Payto::parse_account(text) {
            Ok(p) => (Some(p.normalized_hash()), None),
            Err(e) => (None, Some(format!("Not a payto URI: {e}"))),
        },
    };
    let page_of = Page { limit: PAGE_SIZE, descending: true, start: before(&q) };
    let rows = if problem.is_some() {
        Vec::new()
    } else {
        state.store.read(move |db| kyc::list(db, customer, &page_of)).await?
    };
    let next = next_link(
        "/console/uploads",
        &[("payto", payto_text.trim())],
        rows.last().map(|r| r.row_id),
        rows.len(),
    );
    let body = html! {
        form.box method="get" action="/console/uploads" {
            label { "Customer payto (matched normalized)" input name="payto" value=(payto_text) size="60"; }
            button type="submit" { "Filter" }
        }
        @if let Some(p) = problem { p.error { (p) } }
        div.table-wrap { table {
            thead { tr { th { "Time" } th { "Third party" } th { "Customer" } th { "Type" } th { "Size" } th { "Body hash" } } }
            tbody { @for u in &rows { tr {
                td { (date(&u.uploaded_at)) }
                td { span title=(u.extern_pub.to_string()) { (u.extern_name) } }
                td { code { (u.payto) } }
                td { (u.content_type) }
                td.num { (bytesize::ByteSize(u.size)) }
                td { a.mono href={ "/console/uploads/" (u.h_body) } { (short(&u.h_body.to_string())) } }
            } } }
        } }
        (pager(next))
    };
    Ok(html_response(StatusCode::OK, page("Uploads", "/console/uploads", &csrf(&state, &req), body)))
}

/// The type an uploaded body or entry is served as: a checked, displayable
/// type, or `application/octet-stream` (never HTML, never SVG: both run script).
fn served_type(checked: &str) -> &'static str {
    let lower = checked.to_ascii_lowercase();
    let essence = lower.split(';').next().unwrap_or("").trim();
    const SAFE: &[&str] = &[
        "application/pdf",
        "application/zip",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
        "image/avif",
        "image/heif",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/x-wav",
        "audio/flac",
        "audio/x-flac",
        "audio/aac",
        "audio/mp4",
        "audio/webm",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "video/x-matroska",
        "video/mpeg",
    ];
    SAFE.iter().find(|t| **t == essence).copied().unwrap_or("application/octet-stream")
}

/// The headers of every raw body and entry the console serves.
fn sandboxed(mut response: Response, content_type: &'static str, download: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if download {
        headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
    response
}

fn parse_h_body(params: &PathParams) -> Result<HashCode, ApiError> {
    params.get("h_body").parse().map_err(|e| ApiError::parameter("H_BODY", e))
}

/// The entries of a stored archive, read on a blocking thread.
async fn zip_entries(
    state: &AppState,
    body: kyc::StoredBody,
) -> Result<Result<Vec<ZipEntryInfo>, String>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let reader = ChunkReader::new(&store, body)?;
        Ok::<_, StoreError>(kyc_content::list_zip_entries(reader).map_err(|e| e.to_string()))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the ZIP listing failed: {e}")))?
    .map_err(ApiError::from)
}

/// `GET /console/uploads/$H_BODY`: who referenced a body, and a preview.
async fn upload_page(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    let h_body = parse_h_body(&params)?;
    let (blob, refs) = state
        .store
        .read(move |db| Ok((kyc::find_blob(db, &h_body)?, queries::uploads_of_body(db, &h_body, 200)?)))
        .await?;
    let Some(blob) = blob else { return Ok(not_found(&state, &req, "No body with this hash is stored.")) };
    let ct = served_type(&blob.content_type);
    let raw = format!("/console/uploads/{h_body}/raw");
    let entries = if ct == "application/zip" { Some(zip_entries(&state, blob.body).await?) } else { None };
    let body = html! {
        dl.kv {
            dt { "Body hash" } dd { code { (h_body) } }
            dt { "Size" } dd { (bytesize::ByteSize(blob.body.size)) " (" (blob.body.size) " bytes)" }
            dt { "Content type" } dd { (blob.content_type) }
        }
        p { a.button href={ (raw) "?download=1" } { "Download" } }
        h2 { "Referenced by" }
        div.table-wrap { table {
            thead { tr { th { "Third party" } th { "Customer" } th { "Declared type" } th { "Time" } } }
            tbody { @for r in &refs { tr {
                td { (r.extern_name) br; code { (r.extern_pub) } }
                td { code { (r.payto) } }
                td { (r.content_type) }
                td { (date(&r.uploaded)) }
            } } }
        } }
        h2 { "Preview" }
        div.preview { @match ct.split('/').next().unwrap_or("") {
            "image" => img src=(raw) alt="the uploaded image";,
            "audio" => audio controls src=(raw) {},
            "video" => video controls src=(raw) {},
            _ if ct == "application/pdf" => object data=(raw) type="application/pdf" { p { "No PDF viewer here: use Download." } },
            _ => @match &entries {
                Some(Ok(entries)) => (entries_table(&h_body, entries)),
                Some(Err(e)) => p.error { "The archive cannot be listed: " (e) },
                None => p { "No preview for this type." },
            },
        } }
    };
    Ok(html_response(StatusCode::OK, page("Upload", "/console/uploads", &csrf(&state, &req), body)))
}

fn entries_table(h_body: &HashCode, entries: &[ZipEntryInfo]) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { "Entry" } th { "Size" } th { "Compressed" } th { "Type by content" } th {} } }
            tbody { @for e in entries { tr {
                td { code { (e.name) } }
                td.num { (e.size) }
                td.num { (e.compressed_size) }
                td { (e.sniffed.unwrap_or("unknown")) }
                td { a href={ "/console/uploads/" (h_body) "/entries/" (e.index) } { "Preview" } }
            } } }
        } }
    }
}

#[derive(Deserialize, Default)]
struct RawQuery {
    download: Option<String>,
}

/// `GET /console/uploads/$H_BODY/raw`: the body itself, sandboxed, as its checked type.
async fn upload_raw(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    let h_body = parse_h_body(&params)?;
    let download = req.query::<RawQuery>()?.download.is_some();
    let Some(blob) = state.store.read(move |db| kyc::find_blob(db, &h_body)).await? else {
        return Err(ApiError::KycBulkUnknown(h_body.to_string()));
    };
    Ok(sandboxed(stream_body(&state.store, blob.body), served_type(&blob.content_type), download))
}

/// `GET /console/uploads/$H_BODY/entries/$INDEX`: one entry of a stored ZIP,
/// decompressed as it is sent (bounded memory), sandboxed, as the type its
/// content shows.
async fn upload_entry(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    let h_body = parse_h_body(&params)?;
    let index: usize = params.get("index").parse().map_err(|e| ApiError::parameter("INDEX", e))?;
    let Some(blob) = state.store.read(move |db| kyc::find_blob(db, &h_body)).await? else {
        return Err(ApiError::KycBulkUnknown(h_body.to_string()));
    };
    if served_type(&blob.content_type) != "application/zip" {
        return Err(ApiError::parameter("H_BODY", "not a ZIP archive"));
    }
    let entries = zip_entries(&state, blob.body).await?.map_err(ApiError::Internal)?;
    let Some(entry) = entries.into_iter().find(|e| e.index == index) else {
        return Err(ApiError::parameter("INDEX", "no such file entry"));
    };
    let ct = served_type(entry.sniffed.unwrap_or(""));
    let store = state.store.clone();
    let response = blocking_body(entry.size, move |out| {
        let reader = ChunkReader::new(&store, blob.body).map_err(|e| e.to_string())?;
        kyc_content::copy_zip_entry(reader, index, out).map(|_| ()).map_err(|e| e.to_string())
    });
    Ok(sandboxed(response, ct, false))
}

fn registration_state(q: &ListQuery) -> (RegistrationState, &'static str) {
    match q.state.as_deref() {
        Some("expired") => (RegistrationState::Expired, "expired"),
        Some("all") => (RegistrationState::All, "all"),
        _ => (RegistrationState::Live, "live"),
    }
}

/// `GET /console/registrations?state=live|expired|all&page=`: registrations, newest first.
async fn registrations_page(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let q: ListQuery = req.query()?;
    let (filter, name) = registration_state(&q);
    let (start, now_s) = (before(&q), state.clock.now_s());
    let rows =
        state.store.read(move |db| queries::registrations(db, filter, start, PAGE_SIZE, now_s)).await?;
    let next =
        next_link("/console/registrations", &[("state", name)], rows.last().map(|r| r.row_id), rows.len());
    let body = html! {
        form.box method="get" action="/console/registrations" {
            label { "State" select name="state" {
                @for s in ["live", "expired", "all"] {
                    @if s == name { option selected { (s) } } @else { option { (s) } }
                }
            } }
            button type="submit" { "Show" }
        }
        div.table-wrap { table {
            thead { tr { th { "Authorization key" } th { "Account key" } th { "Type" } th { "Recurrent" } th { "Amount" } th { "Subjects" } th { "Expiration" } } }
            tbody { @for r in &rows { tr {
                td { a.mono href={ "/console/registrations/" (r.authorization_pub) } { (short(&r.authorization_pub.to_string())) } }
                td { code { (short(&r.account_pub.to_string())) } }
                td { (r.transfer_type) }
                td { @if r.recurrent { "yes" } @else { "no" } }
                td { (r.credit_amount) }
                td {
                    @if let Some(s) = &r.short_subject { code { (s) } br; }
                    @if let Some(q) = &r.qr_reference { code { (group_qr_reference(q)) } }
                }
                td { (date(&crate::timestamp::Timestamp::from_secs(u64::try_from(r.expiration_s).unwrap_or(0)))) }
            } } }
        } }
        (pager(next))
    };
    Ok(html_response(
        StatusCode::OK,
        page("Registrations", "/console/registrations", &csrf(&state, &req), body),
    ))
}

/// The SIMPLE subject of a registration, as a customer types it.
fn simple_subject(subjects: &[TransferSubject]) -> Option<String> {
    subjects.iter().find_map(|s| match s {
        TransferSubject::Simple { subject, .. } => Some(subject.clone()),
        _ => None,
    })
}

/// `GET /console/registrations/$AUTHORIZATION_PUB`: subjects, payment code, simulation.
async fn registration_page(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    registration_render(state, params, req, None).await
}

async fn registration_render(
    state: AppState,
    params: PathParams,
    req: Request,
    result: Option<Markup>,
) -> Result<Response, ApiError> {
    let key: EddsaPublicKey =
        params.get("authorization_pub").parse().map_err(|e| ApiError::parameter("AUTHORIZATION_PUB", e))?;
    let Some(r) = state.store.read(move |db| queries::registration_by_key(db, &key)).await? else {
        return Ok(not_found(&state, &req, "No registration with this authorization key."));
    };
    let csrf = csrf(&state, &req);
    let subjects =
        serde_json::from_str::<RegistrationResponse>(&r.response).map(|r| r.subjects).unwrap_or_default();
    let live = r.expiration_s > state.clock.now_s();
    let amount: Option<Amount> = r.credit_amount.parse().ok();
    let account = credit_account(&state, &r.credit_account);
    let code = match (&account, &amount) {
        (Some(account), Some(amount)) => {
            let settings = &state.settings;
            let address = CreditorAddress::new(&settings.qr_creditor_postcode, &settings.qr_creditor_town);
            payment_code(account, &address, amount, &r.qr_reference, simple_subject(&subjects))
        }
        _ => html! { p { "The credit account or amount cannot be read." } },
    };
    let body = html! {
        @if let Some(result) = result { (result) }
        dl.kv {
            dt { "Authorization key" } dd { code { (r.authorization_pub) } }
            dt { "Account key" } dd { code { (r.account_pub) } }
            dt { "Type" } dd { (r.transfer_type) @if r.recurrent { ", recurrent" } }
            dt { "Amount" } dd { (r.credit_amount) }
            dt { "Credit account" } dd { code { (r.credit_account) } }
            dt { "Created" } dd { (date(&r.created)) }
            dt { "Expiration" } dd { (date(&crate::timestamp::Timestamp::from_secs(u64::try_from(r.expiration_s).unwrap_or(0)))) @if !live { " (expired)" } }
            dt { "Used" } dd { @if r.used { "yes" } @else { "no" } }
        }
        h2 { "Subjects" }
        div.table-wrap { table {
            thead { tr { th { "Format" } th { "Amount" } th { "Subject (select to copy)" } } }
            tbody { @for s in &subjects { tr { @match s {
                TransferSubject::Simple { credit_amount, subject } => { td { "SIMPLE" } td { (credit_amount) } td { input.mono readonly value=(subject) aria-label="SIMPLE subject"; } },
                TransferSubject::Uri { credit_amount, uri } => { td { "URI" } td { (credit_amount) } td { input.mono readonly value=(uri) aria-label="URI subject"; } },
                TransferSubject::SwissQrBill { credit_amount, qr_reference_number } => { td { "CH_QR_BILL" } td { (credit_amount) } td { input.mono readonly value=(qr_reference_number) aria-label="QR reference"; } },
            } } } }
        } }
        h2 { "Payment code" }
        (code)
        h2 { "Simulate the customer's transfer" }
        @if let Some(subject) = simple_subject(&subjects).or_else(|| r.short_subject.clone()) {
            form.box method="post" action={ "/console/registrations/" (r.authorization_pub) "/simulate" } {
                (csrf_field(&csrf))
                p { "add-incoming-subject of " (r.credit_amount) " with the subject " code { (subject) } }
                button #simulate type="submit" { "Simulate transfer" }
            }
        } @else { p { "This registration has no subject to type." } }
    };
    Ok(html_response(StatusCode::OK, page("Registration", "/console/registrations", &csrf, body)))
}

/// The configured credit account a registration names (stored normalized, so
/// without the `receiver-name` the payment codes need).
fn credit_account(state: &AppState, stored: &str) -> Option<Payto> {
    accounts::find(&state.settings, &Payto::parse_account(stored).ok()?)
}

/// The Swiss QR bill payment part for a QR-IBAN, the EPC code for another IBAN.
fn payment_code(
    account: &Payto,
    address: &CreditorAddress,
    amount: &Amount,
    qr_reference: &Option<String>,
    simple: Option<String>,
) -> Markup {
    if account.is_qr_iban() {
        let Some(reference) = qr_reference else {
            return html! { p { "No QR reference was derived for this registration." } };
        };
        let bill = match SwissQrBill::new(account, address, amount, reference) {
            Ok(bill) => bill,
            Err(e) => return html! { p.error { "No Swiss QR bill: " (e) } },
        };
        let svg = match bill.svg() {
            Ok(svg) => svg,
            Err(e) => return html! { p.error { "No Swiss QR code: " (e) } },
        };
        html! {
            @if bill.is_specimen() { p.notice { span.specimen { "Specimen" } " — " (amount.currency()) " is not CHF or EUR: the code is drawn in CHF without an amount, for testing only." } }
            section.payment-part aria-label="Swiss QR bill payment part" {
                div.qr #swiss-qr { (templates::trusted_svg(&svg)) }
                div {
                    h3 { "Account / Payable to" }
                    p { (bill.account_display()) } p { (bill.creditor_name()) }
                    @for line in bill.address_lines() { p { (line) } }
                    h3 { "Reference" } p.mono { (bill.reference_display()) }
                    h3 { "Currency" } p { (bill.currency().code()) }
                    h3 { "Amount" } p { (bill.amount_display().unwrap_or_default()) }
                }
            }
        }
    } else {
        let Some(text) = simple else { return html! { p { "No SIMPLE subject: no EPC code." } } };
        let epc = match EpcQrCode::new(account, amount, &text) {
            Ok(epc) => epc,
            Err(e) => return html! { p { "No payment code for this account: " (e) } },
        };
        let svg = match epc.svg() {
            Ok(svg) => svg,
            Err(e) => return html! { p.error { "No EPC code: " (e) } },
        };
        html! {
            @if epc.is_specimen() { p.notice { span.specimen { "Specimen" } " — " (amount.currency()) " is not EUR: the code is drawn without an amount, for testing only." } }
            section.payment-part aria-label="EPC QR code" {
                div.qr #epc-qr { (templates::trusted_svg(&svg)) }
                div {
                    h3 { "Beneficiary" } p { (epc.beneficiary_name()) }
                    h3 { "IBAN" } p { (epc.account_display()) }
                    @if let Some(bic) = epc.bic() { h3 { "BIC" } p { (bic) } }
                    h3 { "Amount" } p { (epc.amount().unwrap_or("none")) }
                    h3 { "Remittance" } p.mono { (text) }
                }
            }
        }
    }
}

fn outcome_markup(outcome: &Result<SubjectOutcome, ApiError>) -> Markup {
    html! { div.result role="status" #outcome { @match outcome {
        Ok(SubjectOutcome::Credited { row_id, transfer_type, account_pub, .. }) =>
            p { span.status-credited { "credited" } " — transfer #" (row_id) ", " (transfer_type) " to " code { (account_pub) } },
        Ok(SubjectOutcome::Bounced { row_id, reason, .. }) =>
            p { span.status-bounced { "bounced" } " — transfer #" (row_id) ": " (reason) },
        Err(e) => p.error { "refused: " (e.to_string()) },
    } } }
}

/// Through the wire-gateway simulation's own functions, as `add-incoming-subject` does.
async fn simulate(
    state: &AppState,
    amount: &str,
    subject: String,
    credit: Option<&str>,
) -> Result<SubjectOutcome, ApiError> {
    let amount: Amount = amount.trim().parse().map_err(|e| ApiError::field("amount", e))?;
    let debit_account = Payto::parse(SIMULATED_DEBTOR).map_err(|e| ApiError::Internal(e.to_string()))?;
    let credit_account = credit.and_then(|c| Payto::parse(c).ok());
    let body = AddIncomingSubject { amount, subject, debit_account, credit_account };
    transfers::add_incoming(&state.store, &state.settings, &state.wakeups, body, state.clock.now_us()).await
}

/// `POST /console/registrations/$AUTHORIZATION_PUB/simulate`: the customer's transfer, simulated.
async fn registration_simulate(
    state: AppState,
    params: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
    if checked_form(&state, &mut req).await?.is_none() {
        return Ok(forbidden());
    }
    let key: EddsaPublicKey =
        params.get("authorization_pub").parse().map_err(|e| ApiError::parameter("AUTHORIZATION_PUB", e))?;
    let Some(r) = state.store.read(move |db| queries::registration_by_key(db, &key)).await? else {
        return Ok(not_found(&state, &req, "No registration with this authorization key."));
    };
    let subjects =
        serde_json::from_str::<RegistrationResponse>(&r.response).map(|r| r.subjects).unwrap_or_default();
    let subject = simple_subject(&subjects).or(r.short_subject.clone()).unwrap_or_default();
    let outcome = simulate(&state, &r.credit_amount, subject, Some(&r.credit_account)).await;
    let result = outcome_markup(&outcome);
    registration_render(state, params, req, Some(result)).await
}

/// `GET /console/transfers?status=&page=`: incoming transfers, newest first.
async fn transfers_page(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    transfers_render(state, req, None).await
}

async fn transfers_render(
    state: AppState,
    req: Request,
    result: Option<Markup>,
) -> Result<Response, ApiError> {
    let q: ListQuery = req.query().unwrap_or_default();
    let status = match q.status.as_deref() {
        Some("credited") => Some("credited"),
        Some("bounced") => Some("bounced"),
        _ => None,
    };
    let start = before(&q);
    let rows = state.store.read(move |db| queries::transfers(db, status, start, PAGE_SIZE)).await?;
    let next = next_link(
        "/console/transfers",
        &[("status", status.unwrap_or(""))],
        rows.last().map(|r| r.row_id),
        rows.len(),
    );
    let csrf = csrf(&state, &req);
    let body = html! {
        @if let Some(result) = result { (result) }
        form.box method="get" action="/console/transfers" {
            label { "Status" select name="status" {
                option value="" { "all" }
                @for s in ["credited", "bounced"] {
                    @if Some(s) == status { option selected { (s) } } @else { option { (s) } }
                }
            } }
            button type="submit" { "Show" }
        }
        div.table-wrap { table {
            thead { tr { th { "#" } th { "Date" } th { "Status" } th { "Amount" } th { "Debit account" } th { "Subject as typed" } th { "Credited to / bounce reason" } } }
            tbody { @for t in &rows { tr {
                td.num { (t.row_id) }
                td { (date(&t.date)) }
                td { span class={ "status-" (t.status) } { (t.status) } }
                td { (t.amount) }
                td { code { (t.debit_account) } }
                td { code { (t.subject.clone().unwrap_or_default()) } }
                td { @if let Some(k) = &t.account_pub { (t.transfer_type.clone().unwrap_or_default()) " " code { (k) } } @else { (t.bounce_reason.clone().unwrap_or_default()) } }
            } } }
        } }
        (pager(next))
        h2 { "Simulate a transfer" }
        form.box method="post" action="/console/transfers/simulate" {
            (csrf_field(&csrf))
            label { "Amount" input name="amount" required value={ (state.settings.currency) ":1" }; }
            label { "Subject" input name="subject" required size="50"; }
            button type="submit" { "Simulate" }
        }
        p { (stats_line(&state)) }
    };
    Ok(html_response(StatusCode::OK, page("Incoming transfers", "/console/transfers", &csrf, body)))
}

fn stats_line(state: &AppState) -> Markup {
    html! { "Simulated transfers come from " code { (SIMULATED_DEBTOR) } " to " code { (state.settings.credit_accounts.first().map(|a| a.full()).unwrap_or("")) } "." }
}

/// `POST /console/transfers/simulate`: a transfer with any subject text.
async fn transfers_simulate(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let Some(form) = checked_form(&state, &mut req).await? else { return Ok(forbidden()) };
    let amount = form.get("amount").cloned().unwrap_or_default();
    let subject = form.get("subject").cloned().unwrap_or_default();
    let outcome = simulate(&state, &amount, subject, None).await;
    transfers_render(state.clone(), req, Some(outcome_markup(&outcome))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_that_runs_script_is_served_as_itself() {
        for t in [
            "text/html",
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "",
        ] {
            assert_eq!(served_type(t), "application/octet-stream", "{t}");
        }
        assert_eq!(served_type("IMAGE/PNG"), "image/png");
        assert_eq!(served_type("application/pdf"), "application/pdf");
    }
}
