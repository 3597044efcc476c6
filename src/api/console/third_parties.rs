//! The third parties page: the list, and the add and disable forms, which apply the API's
//! rules ([`crate::domain::exchange::third_parties`]).

use maud::html;
use warp::http::StatusCode;
use warp::reply::Response;

use super::templates::{csrf_field, date, html_response, page};
use super::{checked_form, csrf, forbidden};
use crate::app::AppState;
use crate::crypto::EddsaPublicKey;
use crate::domain::exchange::third_parties::{self, Added};
use crate::error::ApiError;
use crate::http::{PathParams, Request};

/// `GET /console/extern`: the third parties, with the add and disable forms.
pub(super) async fn extern_page(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
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
pub(super) async fn extern_add(
    state: AppState,
    _: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
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
pub(super) async fn extern_disable(
    state: AppState,
    _: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
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
