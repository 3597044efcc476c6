//! The exchange's auditors: enabled and disabled by changes that the offline master key signs
//! together with a time (`validity_start` / `validity_end`).
//!
//! The server keeps, per auditor, the time of the last accepted change and refuses anything
//! strictly older, so that a replayed old enable cannot undo a newer disable; rows are never
//! deleted for the same reason. The checks run in the C exchange's order: fields, signature,
//! then the replay check and the change in one transaction.

use serde::{Deserialize, Serialize};

use crate::crypto::{EddsaPublicKey, EddsaSignature, MasterAddAuditorPS, MasterDelAuditorPS, SignedStruct};
use crate::domain::text::{MAX_NAME_CHARS, MAX_URL_CHARS, check_free_text};
use crate::error::ApiError;
use crate::store::auditors::{self, AuditorChange, Disabled, MoreRecentPresent, NEVER_S};
use crate::store::{Durability, Store, WriteTx};
use crate::timestamp::Timestamp;

/// An enable, signed by the master key (the body of `POST /management/auditors`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditorSetupMessage {
    pub auditor_url: String,
    pub auditor_name: String,
    pub auditor_pub: EddsaPublicKey,
    pub master_sig: EddsaSignature,
    pub validity_start: Timestamp,
}

/// A disable, signed by the master key (the body of `POST /management/auditors/$AUDITOR_PUB/disable`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditorTeardownMessage {
    pub master_sig: EddsaSignature,
    pub validity_end: Timestamp,
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
/// the signature.
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

/// The change of a checked enable, inside a write transaction: refused (409) when a more
/// recent change of this auditor is stored.
pub fn record_enable(tx: &WriteTx<'_>, msg: &AuditorSetupMessage) -> Result<(), ApiError> {
    let change = AuditorChange {
        auditor_pub: &msg.auditor_pub,
        at_s: stored_secs(msg.validity_start),
        master_sig: &msg.master_sig,
    };
    auditors::enable(tx, &change, &msg.auditor_url, &msg.auditor_name)?.map_err(more_recent)
}

/// Enables an auditor: checked, then recorded durably.
pub async fn enable(
    store: &Store,
    master_pub: &EddsaPublicKey,
    msg: AuditorSetupMessage,
) -> Result<(), ApiError> {
    check_setup(master_pub, &msg)?;
    store.write(Durability::Durable, move |tx| record_enable(tx, &msg)).await
}

/// Disables an auditor: the signature checked, then recorded durably.
pub async fn disable(
    store: &Store,
    master_pub: &EddsaPublicKey,
    auditor_pub: EddsaPublicKey,
    msg: AuditorTeardownMessage,
) -> Result<(), ApiError> {
    let signed = MasterDelAuditorPS { end_date: msg.validity_end, auditor_pub };
    if !signed.verify(master_pub, &msg.master_sig) {
        return Err(ApiError::AuditorDelSignatureInvalid);
    }
    store
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
        .await
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
