//! Exchange auditor management: `POST /management/auditors`, its `/disable`,
//! and `GET /auditors`.
//!
//! The exchange's offline master key signs every change together with a time
//! (`validity_start` / `validity_end`); the server keeps, per auditor, the time
//! of the last accepted change and refuses anything strictly older (409), so a
//! replayed old enable cannot undo a newer disable. Rows are never deleted for
//! the same reason. The checks run in the order of the C exchange: body,
//! fields, signature, then the replay check and the change in one transaction.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::crypto::{EddsaPublicKey, EddsaSignature, MasterAddAuditorPS, MasterDelAuditorPS, SignedStruct};
use crate::error::{ApiError, json_response};
use crate::http::{Request, no_content, route, route_with};
use crate::server::AppState;
use crate::store::StoreError;
use crate::timestamp::Timestamp;

/// Body of `POST /management/auditors`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditorSetupMessage {
    pub auditor_url: String,
    pub auditor_name: String,
    pub auditor_pub: EddsaPublicKey,
    pub master_sig: EddsaSignature,
    pub validity_start: Timestamp,
}

/// Body of `POST /management/auditors/$AUDITOR_PUB/disable`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditorTeardownMessage {
    pub master_sig: EddsaSignature,
    pub validity_end: Timestamp,
}

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

pub fn routes(state: &AppState) -> BoxedFilter<(Response,)> {
    enable_route(state).or(disable_route(state)).unify().or(list_route(state)).unify().boxed()
}

/// `POST /management/auditors`
fn enable_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("management" / "auditors"), state, enable_auditor)
}

/// `POST /management/auditors/$AUDITOR_PUB/disable`
fn disable_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route_with(warp::path!("management" / "auditors" / String / "disable"), state, disable_auditor)
}

/// `GET /auditors`
fn list_route(state: &AppState) -> BoxedFilter<(Response,)> {
    route(warp::path!("auditors"), state, list_auditors)
}

/// A Timestamp as stored: seconds, with "never" as the largest value.
fn stored_secs(t: Timestamp) -> i64 {
    t.secs().map(|s| i64::try_from(s).unwrap_or(i64::MAX)).unwrap_or(i64::MAX)
}

fn describe_secs(s: i64) -> String {
    if s == i64::MAX { "never".into() } else { s.to_string() }
}

/// An auditor's base URL must be an http(s) URL (as `TALER_is_web_url`).
fn check_auditor_url(url: &str) -> Result<(), ApiError> {
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty()
                && !host.starts_with('/')
                && !url.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(())
        }
        _ => Err(ApiError::field("auditor_url", format!("'{url}' is not an http:// or https:// URL"))),
    }
}

async fn enable_auditor(state: AppState, mut req: Request) -> Result<Response, ApiError> {
    req.allow(&Method::POST, "POST")?;
    let msg: AuditorSetupMessage = req.json(state.settings.max_json).await?;
    check_auditor_url(&msg.auditor_url)?;
    let signed = MasterAddAuditorPS::new(msg.validity_start, msg.auditor_pub, &msg.auditor_url);
    if !signed.verify(&state.master_pub, &msg.master_sig) {
        return Err(ApiError::AuditorAddSignatureInvalid);
    }
    state.store.write(move |conn| store_enable(conn, &msg)).await?;
    Ok(no_content())
}

fn last_change(conn: &Connection, auditor_pub: &EddsaPublicKey) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT last_change_s FROM auditors WHERE auditor_pub = ?1")?
        .query_row([auditor_pub], |r| r.get(0))
        .optional()?)
}

fn store_enable(conn: &Connection, msg: &AuditorSetupMessage) -> Result<(), ApiError> {
    let start = stored_secs(msg.validity_start);
    if let Some(stored) = last_change(conn, &msg.auditor_pub)?
        && stored > start
    {
        return Err(ApiError::AuditorMoreRecentPresent { stored_s: describe_secs(stored) });
    }
    conn.prepare_cached(
        "INSERT INTO auditors (auditor_pub, auditor_url, auditor_name, is_active, last_change_s, master_sig)
         VALUES (?1, ?2, ?3, 1, ?4, ?5)
         ON CONFLICT (auditor_pub) DO UPDATE SET auditor_url = excluded.auditor_url,
           auditor_name = excluded.auditor_name, is_active = 1,
           last_change_s = excluded.last_change_s, master_sig = excluded.master_sig",
    )?
    .execute(params![
        msg.auditor_pub.as_bytes(),
        msg.auditor_url,
        msg.auditor_name,
        start,
        msg.master_sig.as_bytes()
    ])?;
    Ok(())
}

async fn disable_auditor(
    state: AppState,
    auditor_pub: String,
    mut req: Request,
) -> Result<Response, ApiError> {
    req.allow(&Method::POST, "POST")?;
    let auditor_pub: EddsaPublicKey = auditor_pub
        .parse()
        .map_err(|e| ApiError::ParameterMalformed { name: "AUDITOR_PUB".into(), detail: format!("{e}") })?;
    let msg: AuditorTeardownMessage = req.json(state.settings.max_json).await?;
    let signed = MasterDelAuditorPS { end_date: msg.validity_end, auditor_pub };
    if !signed.verify(&state.master_pub, &msg.master_sig) {
        return Err(ApiError::AuditorDelSignatureInvalid);
    }
    state
        .store
        .write(move |conn| {
            let end = stored_secs(msg.validity_end);
            match last_change(conn, &auditor_pub)? {
                None => Err(ApiError::AuditorNotFound(auditor_pub.to_string())),
                Some(stored) if stored > end => {
                    Err(ApiError::AuditorMoreRecentPresent { stored_s: describe_secs(stored) })
                }
                Some(_) => {
                    conn.execute(
                        "UPDATE auditors SET is_active = 0, last_change_s = ?2, master_sig = ?3
                         WHERE auditor_pub = ?1",
                        params![auditor_pub.as_bytes(), end, msg.master_sig.as_bytes()],
                    )?;
                    Ok(())
                }
            }
        })
        .await?;
    Ok(no_content())
}

async fn list_auditors(state: AppState, req: Request) -> Result<Response, ApiError> {
    req.allow(&Method::GET, "GET")?;
    let auditors = state
        .store
        .read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT auditor_name, auditor_pub, auditor_url FROM auditors WHERE is_active = 1 ORDER BY auditor_pub",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ExchangeAuditorEntry {
                    auditor_name: r.get(0)?,
                    auditor_pub: r.get(1)?,
                    auditor_url: r.get(2)?,
                    denomination_keys: Vec::new(),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .map_err(ApiError::fetch)?;
    Ok(json_response(StatusCode::OK, &AuditorsResponse { auditors }))
}

/// An auditor as the `auditors list` command shows it.
#[derive(Debug)]
pub struct AuditorRow {
    pub auditor_pub: EddsaPublicKey,
    pub auditor_url: String,
    pub auditor_name: String,
    pub is_active: bool,
    pub last_change_s: i64,
}

/// Every auditor, active or not, for the CLI.
pub fn all_auditors(conn: &Connection) -> Result<Vec<AuditorRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT auditor_pub, auditor_url, auditor_name, is_active, last_change_s FROM auditors ORDER BY auditor_pub",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AuditorRow {
            auditor_pub: r.get(0)?,
            auditor_url: r.get(1)?,
            auditor_name: r.get(2)?,
            is_active: r.get(3)?,
            last_change_s: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditor_urls() {
        for ok in ["https://auditor.example.com/", "http://localhost:8083/", "HTTPS://A.example/"] {
            assert!(check_auditor_url(ok).is_ok(), "{ok}");
        }
        for bad in ["ftp://a/", "auditor.example.com", "https://", "https:///x", "https://a b/", ""] {
            assert!(check_auditor_url(bad).is_err(), "{bad}");
        }
    }
}
