//! A small simulation of the exchange's bank account under
//! `/taler-wire-gateway/`: feed incoming transfers in (by mapped registration,
//! or by the free-text subject a customer typed) and read the credited ones
//! back as the wire gateway's incoming history, so that prepared transfers can
//! be tried end to end without a bank.
//!
//! The rules (crediting, bouncing, the reserve-key rule) are
//! [`crate::domain::bank::transfers`]'s; the handlers read JSON and answer it.

use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::amount::Amount;
use crate::app::AppState;
use crate::crypto::EddsaPublicKey;
use crate::domain::bank::accounts;
use crate::domain::bank::transfers::{self, AddIncomingSubject};
use crate::error::{ApiError, json_response};
use crate::http::{PageQuery, PathParams, Request, Route};
use crate::payto::Payto;
use crate::store::transfers::IncomingTransaction;
use crate::timestamp::Timestamp;

/// Wire gateway protocol version (`current:revision:age`).
pub const WIRE_GATEWAY_VERSION: &str = "5:0:0";

#[derive(Deserialize)]
struct AddMapped {
    amount: Amount,
    authorization_pub: EddsaPublicKey,
    debit_account: Payto,
}

#[derive(Serialize)]
struct AddedTransfer {
    row_id: i64,
    timestamp: Timestamp,
}

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::public(Method::GET, "/taler-wire-gateway/config", get_config),
        Route::operator(Method::POST, "/taler-wire-gateway/admin/add-mapped", add_mapped),
        Route::operator(Method::POST, "/taler-wire-gateway/admin/add-incoming-subject", add_incoming_subject),
        Route::operator(Method::GET, "/taler-wire-gateway/history/incoming", history_incoming),
    ]
}

#[derive(Serialize)]
struct WireGatewayConfig<'a> {
    name: &'static str,
    version: &'static str,
    currency: &'a str,
    implementation: &'static str,
}

/// `GET /taler-wire-gateway/config`
async fn get_config(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &WireGatewayConfig {
            name: "taler-wire-gateway",
            version: WIRE_GATEWAY_VERSION,
            currency: &state.settings.currency,
            implementation: crate::domain::IMPLEMENTATION,
        },
    ))
}

/// `POST /taler-wire-gateway/admin/add-mapped`: a transfer to a registration,
/// named by its authorization key (upstream wire gateway v5).
async fn add_mapped(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let body: AddMapped = req.json(state.settings.max_json).await?;
    let date_us = state.clock.now_us();
    let row_id = transfers::add_mapped(
        &state.store,
        &state.settings,
        &body.amount,
        body.authorization_pub,
        &body.debit_account,
        date_us,
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &AddedTransfer { row_id, timestamp: Timestamp::from_unix_micros(date_us) },
    ))
}

/// `POST /taler-wire-gateway/admin/add-incoming-subject`: a transfer with the
/// subject as a customer typed it; credited or bounced.
async fn add_incoming_subject(
    state: AppState,
    _: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
    let body: AddIncomingSubject = req.json(state.settings.max_json).await?;
    let outcome = transfers::add_incoming(&state.store, &state.settings, body, state.clock.now_us()).await?;
    Ok(json_response(StatusCode::OK, &outcome))
}

#[derive(Serialize)]
struct IncomingHistory {
    credit_account: String,
    incoming_transactions: Vec<IncomingTransaction>,
}

/// `GET /taler-wire-gateway/history/incoming?limit=&offset=`: credited transfers.
async fn history_incoming(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    // Upstream's default: the 20 newest.
    let page = req.query::<PageQuery>()?.resolve(-20)?;
    let incoming_transactions = state.store.read(move |db| transfers::history(db, &page)).await?;
    Ok(json_response(
        StatusCode::OK,
        &IncomingHistory {
            credit_account: accounts::default_credit_account(&state.settings),
            incoming_transactions,
        },
    ))
}
