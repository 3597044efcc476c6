//! The fixture controls a test suite drives a development server with (`--dev` or
//! `--ephemeral` only; README, "Use it in CI"): the server's clock, state snapshots, the
//! journal of requests and faults on demand. Every route is an operator route; a server
//! without those flags has none of them (404).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::app::AppState;
use crate::clock::{Backwards, ClockState};
use crate::config::PositiveDuration;
use crate::error::{ApiError, json_response};
use crate::faults::FaultRule;
use crate::http::{JOURNAL_ROUTE, PathParams, Request, Route, no_content};
use crate::journal::{Entry, Filter, Journal};
use crate::store::snapshots::{self, SnapshotInfo};
use crate::timestamp::{Timestamp, format_rfc3339, parse_rfc3339_us};

/// This module's rows of the route table (development routes).
pub fn routes() -> Vec<Route> {
    vec![
        Route::operator(Method::GET, "/private/clock", get_clock).answers("`{now, offset_s, frozen}`"),
        Route::operator(Method::POST, "/private/clock", move_clock)
            .body(r#"`{"advance"}`, `{"set"}`, `{"freeze"}` or `{"real": true}`"#)
            .answers("`{now, offset_s, frozen}`; 409 (9901) for a move back in time"),
        Route::operator(Method::POST, "/private/faults", add_fault)
            .body("`{method, route, times, status, delay_ms, reset}`")
            .answers("201 `{id}`, then the matching requests fail (code 9902)"),
        Route::operator(Method::GET, "/private/faults", list_faults).answers("the rules left"),
        Route::operator(Method::DELETE, "/private/faults", clear_faults).answers("204: every rule removed"),
        Route::operator(Method::GET, JOURNAL_ROUTE, list_requests)
            .query("limit=&route=&status=&since_id=&timeout_ms=")
            .answers("the journal, newest first; 404 (21) with `--journal-size 0`"),
        Route::operator(Method::DELETE, JOURNAL_ROUTE, clear_requests)
            .answers("204: the journal emptied; 404 (21) with `--journal-size 0`"),
        Route::operator(Method::GET, "/private/snapshots", list_snapshots).answers("the snapshots"),
        Route::operator(Method::PUT, "/private/snapshots/{name}", take_snapshot)
            .answers("201 `{name, bytes, taken}`; 409 (9904)"),
        Route::operator(Method::DELETE, "/private/snapshots/{name}", delete_snapshot)
            .answers("204; 404 (9903)"),
        Route::operator(Method::POST, "/private/snapshots/{name}/restore", restore_snapshot)
            .answers("204; 404 (9903); a request writing meanwhile fails with 503 (9905)"),
    ]
}

/// A snapshot's name: 1-64 of `A-Za-z0-9._-`.
fn snapshot_name(params: &PathParams) -> Result<String, ApiError> {
    let name = params.get("name");
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(ApiError::parameter(
            "name",
            format!("'{name}' is not 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'"),
        ));
    }
    Ok(name.to_owned())
}

/// Bytes the database may grow to (`--max-db-pages`), which the snapshots share.
fn size_cap(state: &AppState) -> Option<u64> {
    state.settings.max_db_pages.map(|pages| pages.saturating_mul(16 << 10))
}

/// `PUT /private/snapshots/{name}`: the committed state saved under `name` (replacing one
/// of that name); 201 `{"name", "bytes", "taken"}`; 409 beyond `--max-snapshots` or the
/// database's size cap.
async fn take_snapshot(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    let name = snapshot_name(&params)?;
    let mut shelf = state.snapshots.lock().await;
    let max = state.settings.max_snapshots;
    if shelf.get(&name).is_none() && shelf.len() >= max {
        return Err(ApiError::SnapshotLimit(format!(
            "{} snapshots are kept already (--max-snapshots {max}): delete one or reuse a name",
            shelf.len()
        )));
    }
    let path = shelf.path_of(&name)?;
    let (store, taken) = (state.store.clone(), state.clock.now());
    let bytes = tokio::task::spawn_blocking(move || snapshots::take(&store, &path))
        .await
        .map_err(|e| ApiError::Internal(format!("snapshot task failed: {e}")))??;
    if let Some(cap) = size_cap(&state)
        && shelf.bytes_besides(&name) + bytes > cap
    {
        let _ = std::fs::remove_file(shelf.path_of(&name)?);
        shelf.remove(&name)?;
        return Err(ApiError::SnapshotLimit(format!(
            "the snapshots would hold more than the database's cap of {cap} bytes"
        )));
    }
    let info = SnapshotInfo { name, bytes, taken };
    shelf.insert(info.clone());
    log::info!("snapshot {}: {bytes} bytes", info.name);
    Ok(json_response(StatusCode::CREATED, &info))
}

/// `GET /private/snapshots`: `{"snapshots": [{"name", "bytes", "taken"}]}`, by name.
async fn list_snapshots(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    let snapshots = state.snapshots.lock().await.list();
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "snapshots": snapshots })))
}

/// `DELETE /private/snapshots/{name}`: 204, or 404 for an unknown name.
async fn delete_snapshot(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    let name = snapshot_name(&params)?;
    if !state.snapshots.lock().await.remove(&name)? {
        return Err(ApiError::SnapshotUnknown(name));
    }
    Ok(no_content())
}

/// `POST /private/snapshots/{name}/restore`: the database becomes exactly that snapshot,
/// in one step of the single writer (every other request sees all of before or all of
/// after; an upload streaming in fails with 503); 204, or 404 for an unknown name.
async fn restore_snapshot(state: AppState, params: PathParams, _: Request) -> Result<Response, ApiError> {
    let name = snapshot_name(&params)?;
    let mut shelf = state.snapshots.lock().await;
    if shelf.get(&name).is_none() {
        return Err(ApiError::SnapshotUnknown(name));
    }
    let path = shelf.path_of(&name)?;
    snapshots::restore(&state.store, &path).await?;
    // The histories may hold other rows now: waiting long polls read them again.
    crate::domain::bank::gateway::wake_all(&state.settings, &state.wakeups);
    log::info!("restored snapshot {name}");
    Ok(no_content())
}

/// The body of `POST /private/faults`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFault {
    method: String,
    route: String,
    times: Option<u32>,
    status: Option<u16>,
    delay_ms: Option<u64>,
    reset: Option<bool>,
}

/// Longest delay a fault may add.
const MAX_FAULT_DELAY_MS: u64 = 300_000;

/// `POST /private/faults` `{"method", "route", "times", "status", "delay_ms", "reset"}`: the
/// next `times` (default 1) requests of that method and route pattern are answered with
/// `status` (500, 502, 503 or 504; default 503) after `delay_ms`, or, with `"reset": true`,
/// lose their connection; 201 `{"id"}`.
async fn add_fault(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let body: NewFault = req.json(state.settings.max_json).await?;
    let method = Method::from_bytes(body.method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| ApiError::field("method", format!("'{}' is not an HTTP method", body.method)))?;
    let table = super::routes(state.settings.dev);
    let development: Vec<&str> = super::development_routes().iter().map(Route::pattern).collect();
    let Some(row) = table.iter().find(|r| r.pattern() == body.route) else {
        return Err(ApiError::field(
            "route",
            format!(
                "'{}' is not a route pattern of this server, such as /kyc-bulk/{{extern_pub}}",
                body.route
            ),
        ));
    };
    if development.contains(&row.pattern()) {
        return Err(ApiError::field(
            "route",
            format!("{} is a development route: it cannot be faulted", row.pattern()),
        ));
    }
    let route = row.pattern();
    if !table.iter().any(|r| r.pattern() == route && *r.method() == method) {
        let methods: Vec<&str> =
            table.iter().filter(|r| r.pattern() == route).map(|r| r.method().as_str()).collect();
        return Err(ApiError::field(
            "method",
            format!("{route} answers {}, not {method}", methods.join(", ")),
        ));
    }
    let times = body.times.unwrap_or(1);
    if times == 0 {
        return Err(ApiError::field("times", "must be at least 1"));
    }
    let status = match body.status.unwrap_or(503) {
        code @ (500 | 502 | 503 | 504) => {
            StatusCode::from_u16(code).map_err(|e| ApiError::field("status", e))?
        }
        other => return Err(ApiError::field("status", format!("{other} is not one of 500, 502, 503, 504"))),
    };
    let delay_ms = body.delay_ms.unwrap_or(0);
    if delay_ms > MAX_FAULT_DELAY_MS {
        return Err(ApiError::field("delay_ms", format!("must be at most {MAX_FAULT_DELAY_MS}")));
    }
    let reset = body.reset.unwrap_or(false);
    let id = state.faults.add(FaultRule { id: 0, method, route, times, status, delay_ms, reset });
    log::info!("fault {id} made for {} {route}, {times} time(s)", body.method);
    Ok(json_response(StatusCode::CREATED, &serde_json::json!({ "id": id })))
}

/// `GET /private/faults`: `{"faults": [...]}`, the rules left in the order they apply.
async fn list_faults(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "faults": state.faults.list() })))
}

/// `DELETE /private/faults`: every rule removed; 204.
async fn clear_faults(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    state.faults.clear();
    Ok(no_content())
}

/// The query of `GET /private/requests`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    limit: Option<usize>,
    route: Option<String>,
    status: Option<u16>,
    since_id: Option<u64>,
    timeout_ms: Option<u64>,
}

/// Default and largest `limit` of `GET /private/requests`.
const DEFAULT_REQUESTS: usize = 100;
const MAX_REQUESTS: usize = 10_000;

/// Longest long poll on the journal.
const MAX_JOURNAL_WAIT_MS: u64 = 600_000;

fn journal(state: &AppState) -> Result<&Journal, ApiError> {
    state.journal.as_ref().ok_or_else(|| ApiError::EndpointUnknown {
        path: format!("{JOURNAL_ROUTE} (the journal is off: --journal-size 0)"),
    })
}

/// `GET /private/requests?limit=&route=&status=&since_id=&timeout_ms=`: the journal's
/// entries, newest first, `{"requests": [...]}`; with `timeout_ms`, waits that long for a
/// first entry that the filters (`since_id`: newer than that entry) admit.
async fn list_requests(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let q: RequestsQuery = req.query()?;
    let journal = journal(&state)?;
    let limit = q.limit.unwrap_or(DEFAULT_REQUESTS);
    if !(1..=MAX_REQUESTS).contains(&limit) {
        return Err(ApiError::parameter("limit", format!("must be from 1 to {MAX_REQUESTS}")));
    }
    let timeout_ms = q.timeout_ms.unwrap_or(0);
    if timeout_ms > MAX_JOURNAL_WAIT_MS {
        return Err(ApiError::parameter("timeout_ms", format!("must be at most {MAX_JOURNAL_WAIT_MS}")));
    }
    let filter = Filter { route: q.route, status: q.status, since_id: q.since_id, limit };
    let found = if timeout_ms == 0 {
        journal.select(&filter)
    } else {
        journal.wait_for(&filter, Duration::from_millis(timeout_ms)).await
    };
    let requests: Vec<&Entry> = found.iter().map(AsRef::as_ref).collect();
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "requests": requests })))
}

/// `DELETE /private/requests`: the journal emptied (ids keep counting); 204.
async fn clear_requests(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    journal(&state)?.clear();
    Ok(no_content())
}

/// The clock as `GET /private/clock` shows it.
#[derive(Serialize)]
struct ClockAnswer {
    now: Timestamp,
    offset_s: i64,
    frozen: bool,
}

impl From<ClockState> for ClockAnswer {
    fn from(s: ClockState) -> Self {
        ClockAnswer {
            now: Timestamp::from_unix_micros(s.now_us),
            offset_s: s.offset_us.div_euclid(1_000_000),
            frozen: s.frozen,
        }
    }
}

/// `GET /private/clock`: `{"now", "offset_s", "frozen"}`.
async fn get_clock(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &ClockAnswer::from(state.clock.state())))
}

/// The body of `POST /private/clock`: exactly one of its fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockMove {
    advance: Option<String>,
    set: Option<String>,
    freeze: Option<bool>,
    real: Option<bool>,
}

/// `POST /private/clock` with one of `{"advance": "3d 2h"}`, `{"set": RFC 3339}`,
/// `{"freeze": bool}`, `{"real": true}`: the new clock state; 409 naming `set` or `real`
/// when the move would take the server's time back.
async fn move_clock(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let body: ClockMove = req.json(state.settings.max_json).await?;
    let given: Vec<&str> = [
        ("advance", body.advance.is_some()),
        ("set", body.set.is_some()),
        ("freeze", body.freeze.is_some()),
        ("real", body.real.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    match given.as_slice() {
        [] => return Err(ApiError::FieldMissing { field: "advance, set, freeze or real".into() }),
        [_] => {}
        [first, second, ..] => {
            return Err(ApiError::field(
                *second,
                format!("give exactly one of advance, set, freeze, real (not {first} and {second})"),
            ));
        }
    }
    let clock = &state.clock;
    let backwards = |field: &'static str, b: Backwards| ApiError::ClockBackwards {
        field,
        detail: format!(
            "{field} would move the server's time back from {} to {}: it never goes backwards",
            format_rfc3339(b.now_us),
            format_rfc3339(b.to_us)
        ),
    };
    if let Some(text) = &body.advance {
        let by: PositiveDuration = text.parse().map_err(|e| ApiError::field("advance", e))?;
        clock.advance(Duration::from(by));
    } else if let Some(text) = &body.set {
        let at_us = parse_rfc3339_us(text).map_err(|e| ApiError::field("set", e))?;
        clock.set(at_us).map_err(|b| backwards("set", b))?;
    } else if let Some(frozen) = body.freeze {
        clock.freeze(frozen);
    } else if let Some(real) = body.real {
        if !real {
            return Err(ApiError::field("real", "only true: back to the wall clock"));
        }
        clock.real().map_err(|b| backwards("real", b))?;
    }
    let now = clock.state();
    log::info!("clock: now {}{}", format_rfc3339(now.now_us), if now.frozen { ", frozen" } else { "" });
    Ok(json_response(StatusCode::OK, &ClockAnswer::from(now)))
}
