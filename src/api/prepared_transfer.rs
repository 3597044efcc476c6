//! The bank's prepared transfers: `/taler-prepared-transfer/config`,
//! `registration`, `unregistration`, and the operator's list.
//!
//! The rules (checks, derived subjects, expiration, the reserve-key rule) are
//! [`crate::domain::bank::registrations`]'s; the handlers read JSON and answer it.

use serde::Serialize;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::app::AppState;
use crate::domain::bank::registrations::{self, RegistrationRequest, Unregistration};
use crate::error::{ApiError, json_response};
use crate::http::{PageQuery, PathParams, Request, Route, Signer, no_content};
use crate::store::registrations::RegistrationEntry;

/// Protocol version of the prepared-transfer API (`current:revision:age`).
pub const PREPARED_TRANSFER_VERSION: &str = "1:0:0";

#[derive(Serialize)]
struct PreparedTransferConfig<'a> {
    name: &'static str,
    version: &'static str,
    currency: &'a str,
    implementation: &'static str,
    supported_formats: Vec<&'static str>,
}

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::public(Method::GET, "/taler-prepared-transfer/config", get_config)
            .answers("the currency and `supported_formats`"),
        Route::signed(Method::POST, "/taler-prepared-transfer/registration", Signer::Authorization, register)
            .answers("200 the subjects; 400, 409 (5160, 5124, 5114, 5159)"),
        Route::signed(
            Method::POST,
            "/taler-prepared-transfer/unregistration",
            Signer::Authorization,
            unregister,
        )
        .answers("204; 400, 404 (5162), 409 (5160, 5161)"),
        Route::operator(Method::GET, "/private/registrations", list_registrations)
            .query("limit=&offset=")
            .answers("registrations, live and expired"),
    ]
}

/// `GET /taler-prepared-transfer/config`: currency and subject formats.
async fn get_config(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &PreparedTransferConfig {
            name: "taler-prepared-transfer",
            version: PREPARED_TRANSFER_VERSION,
            currency: &state.settings.currency,
            implementation: crate::domain::IMPLEMENTATION,
            supported_formats: state.settings.subject_formats.iter().map(|f| f.name()).collect(),
        },
    ))
}

/// `POST /taler-prepared-transfer/registration`: registers a key and answers
/// the subjects that will credit it.
async fn register(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let reg: RegistrationRequest = req.json(state.settings.max_json).await?;
    let body = registrations::register(&state.store, &state.settings, &reg, state.clock.now_us()).await?;
    let mut response = Response::new(body.into());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// `POST /taler-prepared-transfer/unregistration`: deletes a registration,
/// signed over a fresh timestamp.
async fn unregister(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let body: Unregistration = req.json(state.settings.max_json).await?;
    registrations::unregister(&state.store, body, state.clock.now_us()).await?;
    Ok(no_content())
}

#[derive(Serialize)]
struct RegistrationList {
    registrations: Vec<RegistrationEntry>,
}

/// `GET /private/registrations?limit=&offset=`: registrations, live and expired.
async fn list_registrations(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let page = req.query::<PageQuery>()?.resolve(20)?;
    let now_s = state.clock.now_s();
    let registrations = state.store.read(move |db| registrations::list(db, &page, now_s)).await?;
    Ok(json_response(StatusCode::OK, &RegistrationList { registrations }))
}
