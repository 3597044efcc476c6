//! Exchange auditor management: `POST /management/auditors`, its `/disable`,
//! and `GET /auditors`.
//!
//! The rules (signatures by the master key, the replay check) are
//! [`crate::domain::exchange::auditors`]'s; the handlers read JSON and answer it.

use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::app::AppState;
use crate::crypto::EddsaPublicKey;
use crate::domain::exchange::auditors::{self, AuditorSetupMessage, AuditorTeardownMessage};
use crate::error::{ApiError, json_response};
use crate::http::{PathParams, Request, Route, Signer, no_content};
use crate::store::auditors as store_auditors;

/// One entry of `GET /auditors`, shaped as the `auditors` of an exchange's `/keys`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExchangeAuditorEntry {
    pub auditor_name: String,
    pub auditor_pub: EddsaPublicKey,
    pub auditor_url: String,
    pub denomination_keys: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AuditorsResponse {
    pub auditors: Vec<ExchangeAuditorEntry>,
}

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::signed(Method::POST, "/management/auditors", Signer::Master, enable_auditor)
            .answers("204; 400 (22/26), 403 (1802), 409 (1801)"),
        Route::signed(
            Method::POST,
            "/management/auditors/{auditor_pub}/disable",
            Signer::Master,
            disable_auditor,
        )
        .answers("204; 400, 403 (1803), 404 (1800), 409 (1801)"),
        Route::public(Method::GET, "/auditors", list_auditors)
            .answers("the active auditors, as `/keys` lists them"),
    ]
}

/// `POST /management/auditors`: enables an auditor, signed by the master key.
async fn enable_auditor(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let msg: AuditorSetupMessage = req.json(state.settings.max_json).await?;
    auditors::enable(&state.store, &state.master_pub, msg).await?;
    Ok(no_content())
}

/// `POST /management/auditors/$AUDITOR_PUB/disable`: disables an auditor,
/// signed by the master key.
async fn disable_auditor(
    state: AppState,
    params: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
    let auditor_pub: EddsaPublicKey =
        params.get("auditor_pub").parse().map_err(|e| ApiError::parameter("AUDITOR_PUB", e))?;
    let msg: AuditorTeardownMessage = req.json(state.settings.max_json).await?;
    auditors::disable(&state.store, &state.master_pub, auditor_pub, msg).await?;
    Ok(no_content())
}

/// `GET /auditors`: the enabled auditors, as in an exchange's `/keys`.
async fn list_auditors(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    let auditors = state.store.read(store_auditors::active).await?;
    let auditors = auditors
        .into_iter()
        .map(|a| ExchangeAuditorEntry {
            auditor_name: a.auditor_name,
            auditor_pub: a.auditor_pub,
            auditor_url: a.auditor_url,
            denomination_keys: Vec::new(),
        })
        .collect();
    Ok(json_response(StatusCode::OK, &AuditorsResponse { auditors }))
}
