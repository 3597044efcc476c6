//! The auditors page: every auditor, and how to enable one (offline: the console never holds the master key).

use maud::html;
use warp::http::StatusCode;
use warp::reply::Response;

use super::csrf;
use super::templates::{date, html_response, page};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::{PathParams, Request};
use crate::store::auditors;

/// `GET /console/auditors`: every auditor, and how to enable one.
pub(super) async fn auditors_page(
    state: AppState,
    _: PathParams,
    req: Request,
) -> Result<Response, ApiError> {
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
