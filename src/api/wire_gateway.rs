//! The Taler Wire Gateway over HTTP, under `/taler-wire-gateway/` (the first account) and
//! `/accounts/{account}/taler-wire-gateway/` (each configured account): the exchange's
//! transfers out (`transfer`, `transfers`), both histories with long polling, the testing
//! routes that feed transfers in (`admin/add-incoming`, `add-kycauth`, `add-mapped`,
//! `add-incoming-subject`), so that prepared transfers can be tried end to end without a bank.
//!
//! The rules (amounts, accounts, crediting, bouncing, the reserve-key rule, long polls) are the
//! domain's ([`crate::domain::bank`]); the handlers read JSON and answer it. The decisions are
//! in `docs/wire-gateway.md`.

use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::amount::Amount;
use crate::app::AppState;
use crate::crypto::EddsaPublicKey;
use crate::domain::bank::gateway::{self, GatewayAccount};
use crate::domain::bank::transfers::{self, AddIncomingSubject};
use crate::domain::bank::{TransferType, admin, outgoing};
use crate::error::{ApiError, json_response};
use crate::http::{PathParams, Request, Route, no_content};
use crate::store::transfers::IncomingTransaction;
use crate::timestamp::Timestamp;

/// Wire gateway protocol version (`current:revision:age`).
pub const WIRE_GATEWAY_VERSION: &str = "5:0:5";

#[derive(Deserialize)]
struct AddMapped {
    amount: Amount,
    authorization_pub: EddsaPublicKey,
    debit_account: String,
}

/// `add-incoming-subject`'s body as it arrives: the accounts are checked as full payto URIs
/// (400, code 24, naming the field) before they become [`AddIncomingSubject`]'s.
#[derive(Deserialize)]
struct AddIncomingSubjectRequest {
    amount: Amount,
    subject: String,
    debit_account: String,
    credit_account: Option<String>,
}

#[derive(Serialize)]
struct AddedTransfer {
    row_id: i64,
    timestamp: Timestamp,
}

/// The gateway's paths, under `/taler-wire-gateway/` (the first account) and under
/// `/accounts/{account}/taler-wire-gateway/` (each configured account by name).
/// The route's documentation steps follow the constructor and apply to both.
macro_rules! both {
    ($make:ident($method:expr, $path:literal, $handler:expr) $($doc:tt)*) => {
        [
            Route::$make($method, concat!("/taler-wire-gateway/", $path), $handler) $($doc)*,
            Route::$make($method, concat!("/accounts/{account}/taler-wire-gateway/", $path), $handler) $($doc)*,
        ]
    };
}

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    [
        both!(public(Method::GET, "config", get_config)
            .answers("the wire gateway's config (`support_account_check: false`)")),
        both!(wire_gateway(Method::GET, "account/check", account_check)
            .answers("501 (21): this bank cannot check accounts, as its config says")),
        both!(wire_gateway(Method::POST, "transfer", transfer)
            .body("`{request_uid, amount, exchange_base_url, wtid, credit_account}`")
            .answers(
                "200 `{row_id, timestamp}`, the same again for a replay; 400 (22/24/26, 30 another currency), \
                 409 (5112 `request_uid` reused with other details, 5154 `wtid` reused)"
            )),
        both!(wire_gateway(Method::GET, "transfers", transfers)
            .query("limit=&offset=&status=")
            .answers("200 `{debit_account, transfers}`; 204 when there are none")),
        both!(wire_gateway(Method::GET, "transfers/{row_id}", transfer_status).answers(
            "200 the transfer's status; 400 (26) for a malformed row id, 404 (5106) for an unknown one or \
             another account's"
        )),
        both!(wire_gateway(Method::GET, "history/incoming", history_incoming)
            .query("limit=&offset=&timeout_ms=")
            .answers("credited transfers; 204 when none (after waiting up to `timeout_ms` for one)")),
        both!(wire_gateway(Method::GET, "history/outgoing", history_outgoing)
            .query("limit=&offset=&timeout_ms=")
            .answers("transfers out; 204 when none (after waiting up to `timeout_ms` for one)")),
        both!(wire_gateway(Method::POST, "admin/add-incoming", add_incoming)
            .body("`{amount, reserve_pub, debit_account}`")
            .answers("200 `{row_id, timestamp}`; 409 (5114) for a reserve key already credited or registered")),
        both!(wire_gateway(Method::POST, "admin/add-kycauth", add_kycauth)
            .body("`{amount, account_pub, debit_account}`")
            .answers("200 `{row_id, timestamp}`")),
        both!(wire_gateway(Method::POST, "admin/add-mapped", add_mapped)
            .body("`{amount, authorization_pub, debit_account}`")
            .answers("200 `{row_id, timestamp}`; 409 (5162, 5163, 5114)")),
        both!(wire_gateway(Method::POST, "admin/add-incoming-subject", add_incoming_subject)
            .body("`{amount, subject, debit_account, credit_account?}`")
            .answers("200 credited or bounced")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The account a request's path names: `{account}`, or the first for the short paths.
fn path_account(state: &AppState, params: &PathParams) -> Result<GatewayAccount, ApiError> {
    let name = params.get("account");
    gateway::account(&state.settings, (!name.is_empty()).then_some(name))
}

#[derive(Serialize)]
struct WireGatewayConfig<'a> {
    name: &'static str,
    version: &'static str,
    currency: &'a str,
    implementation: &'static str,
    support_account_check: bool,
}

/// `GET /taler-wire-gateway/config` (and `/accounts/{account}/taler-wire-gateway/config`)
async fn get_config(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    path_account(&state, &params)?;
    Ok(json_response(
        StatusCode::OK,
        &WireGatewayConfig {
            name: "taler-wire-gateway",
            version: WIRE_GATEWAY_VERSION,
            currency: &state.settings.currency,
            implementation: crate::domain::IMPLEMENTATION,
            support_account_check: false,
        },
    ))
}

/// `GET /taler-wire-gateway/account/check`: 501, as the protocol allows a bank that cannot
/// check accounts (its config says `support_account_check: false`).
async fn account_check(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    path_account(&state, &params)?;
    Err(ApiError::NotImplemented("account/check"))
}

/// `POST /taler-wire-gateway/transfer`: the exchange pays out; idempotent on `request_uid`.
async fn transfer(state: AppState, params: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let body: outgoing::TransferRequest = req.json(state.settings.max_json).await?;
    let answer = outgoing::transfer(
        &state.store,
        &state.settings,
        &state.wakeups,
        &account,
        body,
        state.clock.now_us(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &answer))
}

/// `POST /taler-wire-gateway/admin/add-incoming`: a reserve credit (the exchange's test
/// harness funds reserves this way); 409, code 5114, for a reserve key already used.
async fn add_incoming(state: AppState, params: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let body: admin::AddIncoming = req.json(state.settings.max_json).await?;
    let added = admin::credit(
        &state.store,
        &state.settings,
        &state.wakeups,
        &account,
        TransferType::Reserve,
        &body.amount,
        body.reserve_pub,
        &body.debit_account,
        state.clock.now_us(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &added))
}

/// `POST /taler-wire-gateway/admin/add-kycauth`: a KYC authentication transfer.
async fn add_kycauth(state: AppState, params: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let body: admin::AddKycauth = req.json(state.settings.max_json).await?;
    let added = admin::credit(
        &state.store,
        &state.settings,
        &state.wakeups,
        &account,
        TransferType::Kyc,
        &body.amount,
        body.account_pub,
        &body.debit_account,
        state.clock.now_us(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &added))
}

#[derive(Serialize)]
struct TransferList {
    debit_account: String,
    transfers: Vec<outgoing::TransferListStatus>,
}

/// `GET /taler-wire-gateway/transfers?limit=&offset=&status=`: the account's transfers, 204
/// when there are none.
async fn transfers(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let transfers = outgoing::list(&state.store, &account, req.query()?).await?;
    if transfers.is_empty() {
        return Ok(no_content());
    }
    Ok(json_response(StatusCode::OK, &TransferList { debit_account: account.uri().to_owned(), transfers }))
}

/// `GET /taler-wire-gateway/transfers/{row_id}`: one transfer of the account; 404, code 5106,
/// for an unknown one or another account's.
async fn transfer_status(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let status = outgoing::get(&state.store, &account, params.get("row_id")).await?;
    Ok(json_response(StatusCode::OK, &status))
}

/// `POST /taler-wire-gateway/admin/add-mapped`: a transfer to a registration,
/// named by its authorization key (upstream wire gateway v5).
async fn add_mapped(state: AppState, params: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let body: AddMapped = req.json(state.settings.max_json).await?;
    let date_us = state.clock.now_us();
    let row_id = transfers::add_mapped(
        &state.store,
        &state.settings,
        &state.wakeups,
        &account,
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
    params: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let request: AddIncomingSubjectRequest = req.json(state.settings.max_json).await?;
    let body = AddIncomingSubject {
        amount: request.amount,
        subject: request.subject,
        debit_account: gateway::full_payto("debit_account", &request.debit_account)?,
        credit_account: request
            .credit_account
            .map(|text| gateway::full_payto("credit_account", &text))
            .transpose()?,
    };
    let outcome = transfers::add_gateway_incoming(
        &state.store,
        &state.settings,
        &state.wakeups,
        &account,
        body,
        state.clock.now_us(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &outcome))
}

#[derive(Serialize)]
struct IncomingHistory {
    credit_account: String,
    incoming_transactions: Vec<IncomingTransaction>,
}

/// `GET /taler-wire-gateway/history/incoming?limit=&offset=&timeout_ms=` (also `delta`,
/// `start`, `long_poll_ms`): credited transfers; 204 when none, after waiting for one when
/// asked to.
async fn history_incoming(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let request = req.query::<gateway::HistoryQuery>()?.resolve()?;
    let incoming_transactions =
        gateway::incoming_history(&state.store, &state.wakeups, &account, request).await?;
    if incoming_transactions.is_empty() {
        return Ok(no_content());
    }
    Ok(json_response(
        StatusCode::OK,
        &IncomingHistory { credit_account: account.uri().to_owned(), incoming_transactions },
    ))
}

#[derive(Serialize)]
struct OutgoingHistory {
    debit_account: String,
    outgoing_transactions: Vec<gateway::OutgoingTransaction>,
}

/// `GET /taler-wire-gateway/history/outgoing?limit=&offset=&timeout_ms=` (also the deprecated
/// names): transfers out; 204 when none, after waiting for one when asked to.
async fn history_outgoing(state: AppState, params: PathParams, req: Request) -> Result<Response, ApiError> {
    let account = path_account(&state, &params)?;
    let request = req.query::<gateway::HistoryQuery>()?.resolve()?;
    let outgoing_transactions =
        gateway::outgoing_history(&state.store, &state.wakeups, &account, request).await?;
    if outgoing_transactions.is_empty() {
        return Ok(no_content());
    }
    Ok(json_response(
        StatusCode::OK,
        &OutgoingHistory { debit_account: account.uri().to_owned(), outgoing_transactions },
    ))
}
