//! Exchange auditor management: `POST /management/auditors`, its `/disable`,
//! and `GET /auditors`.
//!
//! The exchange's offline master key signs every change together with a time
//! (`validity_start` / `validity_end`); the server keeps, per auditor, the time
//! of the last accepted change and refuses anything strictly older (409), so a
//! replayed old enable cannot undo a newer disable. Rows are never deleted for
//! the same reason. The checks run in the order of the C exchange: body,
//! fields, signature, then the replay check and the change in one transaction.

use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::app::AppState;
use crate::crypto::{EddsaPublicKey, EddsaSignature, MasterAddAuditorPS, MasterDelAuditorPS, SignedStruct};
use crate::error::{ApiError, json_response};
use crate::http::{MAX_NAME_CHARS, MAX_URL_CHARS, PathParams, Request, Route, check_free_text, no_content};
use crate::store::Durability;
use crate::store::auditors::{self, AuditorChange, Disabled, MoreRecentPresent, NEVER_S};
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

/// This API's rows of the route table.
pub fn routes() -> Vec<Route> {
    vec![
        Route::public(Method::POST, "/management/auditors", enable_auditor),
        Route::public(Method::POST, "/management/auditors/{auditor_pub}/disable", disable_auditor),
        Route::public(Method::GET, "/auditors", list_auditors),
    ]
}

fn more_recent(MoreRecentPresent(stored_s): MoreRecentPresent) -> ApiError {
    ApiError::AuditorMoreRecentPresent {
        stored_s: if stored_s == NEVER_S { "never".into() } else { stored_s.to_string() },
    }
}

/// An auditor's base URL must be an http(s) URL (as `TALER_is_web_url`).
fn check_auditor_url(url: &str) -> Result<(), ApiError> {
    check_free_text("auditor_url", url, MAX_URL_CHARS)?;
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

/// The checks of an enable before its transaction, in the C exchange's order: fields, then
/// the signature. The `[[auditor]]` fixtures run them on what they sign.
pub fn check_setup(master_pub: &EddsaPublicKey, msg: &AuditorSetupMessage) -> Result<(), ApiError> {
    check_auditor_url(&msg.auditor_url)?;
    check_free_text("auditor_name", &msg.auditor_name, MAX_NAME_CHARS)?;
    let signed = MasterAddAuditorPS::new(msg.validity_start, msg.auditor_pub, &msg.auditor_url);
    if !signed.verify(master_pub, &msg.master_sig) {
        return Err(ApiError::AuditorAddSignatureInvalid);
    }
    Ok(())
}

/// A Timestamp as stored: seconds, with "never" as the largest value.
pub fn stored_secs(t: Timestamp) -> i64 {
    t.secs().map(|s| i64::try_from(s).unwrap_or(NEVER_S)).unwrap_or(NEVER_S)
}

/// `POST /management/auditors`: enables an auditor, signed by the master key.
async fn enable_auditor(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let msg: AuditorSetupMessage = req.json(state.settings.max_json).await?;
    check_setup(&state.master_pub, &msg)?;
    state
        .store
        .write(Durability::Durable, move |tx| -> Result<(), ApiError> {
            let change = AuditorChange {
                auditor_pub: &msg.auditor_pub,
                at_s: stored_secs(msg.validity_start),
                master_sig: &msg.master_sig,
            };
            auditors::enable(tx, &change, &msg.auditor_url, &msg.auditor_name)?.map_err(more_recent)
        })
        .await?;
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
    let signed = MasterDelAuditorPS { end_date: msg.validity_end, auditor_pub };
    if !signed.verify(&state.master_pub, &msg.master_sig) {
        return Err(ApiError::AuditorDelSignatureInvalid);
    }
    state
        .store
        .write(Durability::Durable, move |tx| {
            let change = AuditorChange {
                auditor_pub: &auditor_pub,
                at_s: stored_secs(msg.validity_end),
                master_sig: &msg.master_sig,
            };
            match auditors::disable(tx, &change)? {
                Disabled::Done => Ok(()),
                Disabled::Unknown => Err(ApiError::AuditorNotFound(auditor_pub.to_string())),
                Disabled::MoreRecentPresent(m) => Err(more_recent(m)),
            }
        })
        .await?;
    Ok(no_content())
}

/// `GET /auditors`: the enabled auditors, as in an exchange's `/keys`.
async fn list_auditors(state: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    let auditors = state.store.read(auditors::active).await?;
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
