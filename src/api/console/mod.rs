//! The operator console (README, "The operator console"): the database seen in a browser, under
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
//!
//! One file per page or page group, each with its handlers and their markup; the shared
//! pieces (the page frame, CSRF, paging) are here and in `templates`. The console checks no
//! input of its own: what it stores goes through the same domain operations as the JSON API.

mod auditors;
mod login;
mod overview;
mod registrations;
mod templates;
mod third_parties;
mod transfers;
mod uploads;

use std::collections::HashMap;

use maud::{Markup, html};
use serde::Deserialize;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::{Request, Route};
use templates::{html_response, page};

/// Rows per page of every list.
const PAGE_SIZE: i64 = 50;
/// Largest form a console POST may send.
const MAX_FORM: u64 = 64 * 1024;

/// This module's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::console_login(Method::GET, "/console/login", login::login_form).answers("the login form"),
        Route::console_login(Method::POST, "/console/login", login::login).answers(
            "the token for a session cookie: 303 to `/console/`; 401 with the form again for a wrong token",
        ),
        Route::console_login(Method::GET, "/console/static/console.css", login::stylesheet)
            .answers("the stylesheet"),
        Route::console_login(Method::GET, "/console", login::to_console).answers("303 to `/console/`"),
        Route::console(Method::POST, "/console/logout", login::logout)
            .answers("the session ended: 303 to the login; 403 without the form's CSRF token"),
        Route::console(Method::GET, "/console/", overview::overview).answers("HTML: the overview"),
        Route::console(Method::GET, "/console/auditors", auditors::auditors_page).answers("HTML: the auditors"),
        Route::console(Method::GET, "/console/extern", third_parties::extern_page)
            .answers("HTML: the third parties, with the add and disable forms"),
        Route::console(Method::POST, "/console/extern", third_parties::extern_add).answers(
            "HTML: the third parties, one added or re-activated (400 for a refused one); 403 without the form's CSRF token",
        ),
        Route::console(Method::POST, "/console/extern/disable", third_parties::extern_disable)
            .answers("HTML: the third parties, one disabled; 403 without the form's CSRF token"),
        Route::console(Method::GET, "/console/uploads", uploads::uploads_page)
            .query("payto=&page=")
            .answers("HTML: the uploads, of one customer or all"),
        Route::console(Method::GET, "/console/uploads/{h_body}", uploads::upload_page)
            .answers("HTML: one body, who referenced it, a preview"),
        Route::console(Method::GET, "/console/uploads/{h_body}/raw", uploads::upload_raw)
            .answers("the stored bytes, sandboxed"),
        Route::console(Method::GET, "/console/uploads/{h_body}/entries/{index}", uploads::upload_entry)
            .answers("one entry of a stored ZIP, sandboxed"),
        Route::console(Method::GET, "/console/registrations", registrations::registrations_page)
            .query("state=&page=")
            .answers("HTML: the registrations"),
        Route::console(Method::GET, "/console/registrations/{authorization_pub}", registrations::registration_page)
            .answers("HTML: one registration, its subjects, payment code and simulation form"),
        Route::console(
            Method::POST,
            "/console/registrations/{authorization_pub}/simulate",
            registrations::registration_simulate,
        )
        .answers(
            "HTML: the registration and the simulated transfer's outcome; 404 for an unknown one; 403 without the form's CSRF token",
        ),
        Route::console(Method::GET, "/console/transfers", transfers::transfers_page)
            .query("status=&page=")
            .answers("HTML: the incoming transfers"),
        Route::console(Method::POST, "/console/transfers/simulate", transfers::transfers_simulate).answers(
            "HTML: the transfers and the simulated transfer's outcome; 403 without the form's CSRF token",
        ),
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

/// The first characters of a long key, the whole on hover.
fn short(key: &str) -> Markup {
    let head: String = key.chars().take(16).collect();
    html! { span title=(key) { (head) "…" } }
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
