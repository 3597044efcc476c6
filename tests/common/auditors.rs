//! What auditor tests build: the master key's signed bodies, and the offline side's
//! command that signs and uploads one.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use taler_lite::crypto::{
    EddsaPrivateKey, EddsaPublicKey, MasterAddAuditorPS, MasterDelAuditorPS, SignedStruct,
};
use taler_lite::timestamp::Timestamp;

use super::run_cli;

/// The body of POST /management/auditors: `master` signs `auditor`, `url` and the time `t`.
pub fn enable_body(
    master: &EddsaPrivateKey,
    auditor: &EddsaPublicKey,
    url: &str,
    name: &str,
    t: u64,
) -> Value {
    let sig = MasterAddAuditorPS::new(Timestamp::from_secs(t), *auditor, url).sign(master);
    json!({
        "auditor_url": url,
        "auditor_name": name,
        "auditor_pub": auditor.to_string(),
        "master_sig": sig.to_string(),
        "validity_start": {"t_s": t},
    })
}

/// The body of POST /management/auditors/{auditor}/disable at the time `t`.
pub fn disable_body(master: &EddsaPrivateKey, auditor: &EddsaPublicKey, t: u64) -> Value {
    let sig = MasterDelAuditorPS { end_date: Timestamp::from_secs(t), auditor_pub: *auditor }.sign(master);
    json!({"master_sig": sig.to_string(), "validity_end": {"t_s": t}})
}

/// `taler-lite --database DB offline enable-auditor ... --upload SERVER_URL` in `dir`: the
/// offline side signs with the key beside `db` and uploads auditor `auditor_pub` at
/// `https://auditor.example/`, named `name`; `extra` adds flags (`--at`).
pub fn enable_auditor_cli(
    dir: &Path,
    db: &Path,
    auditor_pub: &str,
    name: &str,
    server_url: &str,
    extra: &[&str],
) -> Output {
    let db = db.to_str().unwrap();
    let args = [
        "--database",
        db,
        "offline",
        "enable-auditor",
        "--auditor-pub",
        auditor_pub,
        "--url",
        "https://auditor.example/",
        "--name",
        name,
    ];
    run_cli(dir, &[&args[..], extra, &["--upload", server_url]].concat())
}
