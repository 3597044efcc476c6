//! The exchange's `/config`: what a Taler client reads first.

use serde::Serialize;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::app::AppState;
use crate::error::{ApiError, json_response};
use crate::http::{PathParams, Request, Route};

/// The exchange protocol level (`current:revision:age`) whose texts taler-lite
/// follows for the endpoints it has. **Decision**: taler-lite implements a
/// subset of the exchange (no /keys, no coins), so age is 0.
pub const EXCHANGE_PROTOCOL_VERSION: &str = "30:0:0";

/// Names this implementation to clients (`implementation` of `/config`).
use crate::domain::IMPLEMENTATION;

#[derive(Serialize)]
struct ExchangeConfig<'a> {
    name: &'static str,
    version: &'static str,
    currency: &'a str,
    implementation: &'static str,
    master_public_key: String,
}

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::public(Method::GET, "/config", get_config)
            .answers("the exchange's config: its currency and master public key"),
    ]
}

/// `GET /config`: what the exchange is, its currency and master key.
async fn get_config(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &ExchangeConfig {
            name: "taler-exchange",
            version: EXCHANGE_PROTOCOL_VERSION,
            currency: &state.settings.currency,
            implementation: IMPLEMENTATION,
            master_public_key: state.master_pub.to_string(),
        },
    ))
}
