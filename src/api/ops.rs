//! Operating the server: `GET /healthz` for probes (Docker's `--health-cmd`,
//! systemd watchdogs, Kubernetes) and `GET /metrics` for Prometheus.

use std::future::Future;
use std::time::Duration;

use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::app::AppState;
use crate::error::{ApiError, Unresponsive, json_response};
use crate::http::{PathParams, Request, Route};
use crate::metrics::{self, DbSnapshot};
use crate::store::{StoreError, stats};

/// How long each part of the database has to answer a health probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// This module's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::public(Method::GET, "/healthz", healthz).answers(
            r#"200 `{"status":"ok"}`; 503 (53 the read pool, 50 the writer) naming the part that did not answer within a second"#,
        ),
        Route::operator(Method::GET, metrics::METRICS_ROUTE, get_metrics)
            .answers("the Prometheus text exposition (README, \"Metrics\")"),
    ]
}

/// Waits for one part of the database, at most [`PROBE_TIMEOUT`].
async fn probe(
    part: Unresponsive,
    answer: impl Future<Output = Result<(), StoreError>>,
) -> Result<(), ApiError> {
    match tokio::time::timeout(PROBE_TIMEOUT, answer).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ApiError::Unavailable { part, detail: e.describe() }),
        Err(_) => Err(ApiError::Unavailable { part, detail: format!("no answer within {PROBE_TIMEOUT:?}") }),
    }
}

/// `GET /healthz`: 200 `{"status":"ok"}` once a read on the pool and a round
/// trip through the writer thread (a no-op job, committed without fsync) have
/// both answered, each within a second; 503 naming the part that did not.
async fn healthz(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    // Side by side, so that a probe takes at most one timeout, not two.
    let (read, write) = tokio::join!(
        probe(Unresponsive::ReadPool, state.store.read(stats::ping)),
        probe(Unresponsive::Writer, stats::writer_round_trip(&state.store)),
    );
    read?;
    write?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" })))
}

/// `GET /metrics` (operator): the Prometheus text exposition of the request
/// metrics, the writer's and the file's.
async fn get_metrics(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    let now_s = state.clock.now_s();
    let db = state
        .store
        .read(move |db| {
            Ok(DbSnapshot {
                size_bytes: stats::size_bytes(db)?,
                registrations_live: stats::live_registrations(db, now_s)?,
            })
        })
        .await?;
    let text = state
        .metrics
        .encode(state.store.writer_stats(), &db, state.wakeups.waiting())
        .map_err(|e| ApiError::Internal(format!("cannot encode the metrics: {e}")))?;
    let mut response = Response::new(text.into());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routes_metrics_single_out_are_rows_of_the_table() {
        let table = crate::api::route_table();
        let has = |method: &Method, pattern: &str| {
            table.iter().any(|r| r.method() == method && r.pattern() == pattern)
        };
        let (method, pattern) = &metrics::KYC_BULK_UPLOAD;
        assert!(has(method, pattern), "{method} {pattern} is not a route");
        assert!(has(&Method::GET, metrics::METRICS_ROUTE));
    }
}
