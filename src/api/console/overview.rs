//! The overview page: counts, the file, the server, the most recent events.

use maud::{Markup, html};
use warp::http::StatusCode;
use warp::reply::Response;

use super::templates::{date, html_response, page};
use super::{csrf, short};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::{PathParams, Request};
use crate::store::console as queries;
use std::time::Duration;

fn card(n: impl std::fmt::Display, label: &str) -> Markup {
    html! { div.card { div.n { (n) } div.l { (label) } } }
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `GET /console/`: counts, the file, the server, the 20 most recent events.
pub(super) async fn overview(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let now_s = state.clock.now_s();
    let (o, events) = state
        .store
        .read(move |db| Ok((queries::overview(db, now_s)?, queries::recent_events(db, 20)?)))
        .await?;
    let db_path = state.store.path().to_path_buf();
    let mut wal = db_path.clone().into_os_string();
    wal.push("-wal");
    let uptime = humantime::format_duration(Duration::from_secs(state.started.elapsed().as_secs()));
    let body = html! {
        div.cards {
            (card(o.auditors_active, "auditors active"))
            (card(o.auditors_disabled, "auditors disabled"))
            (card(o.extern_keys, "third parties"))
            (card(o.uploads, "uploads"))
            (card(bytesize::ByteSize(o.upload_bytes), "uploaded"))
            (card(o.bodies, "distinct bodies"))
            (card(o.registrations_live, "registrations live"))
            (card(o.registrations_expired, "registrations expired"))
            (card(o.credited, "transfers credited"))
            (card(o.bounced, "transfers bounced"))
        }
        h2 { "Server" }
        dl.kv {
            dt { "Version" } dd { (env!("CARGO_PKG_VERSION")) }
            dt { "Uptime" } dd { (uptime) }
            dt { "Base URL" } dd { code { (state.base_url) } }
            dt { "Master public key" } dd { code { (state.master_pub) } }
            dt { "Credit accounts" } dd { @for a in &state.settings.credit_accounts { code { (a.full()) } br; } }
            dt { "Database" } dd { code { (db_path.display()) } " — " (bytesize::ByteSize(file_size(&db_path))) }
            dt { "WAL" } dd { (bytesize::ByteSize(file_size(std::path::Path::new(&wal)))) }
        }
        h2 { "Recent events" }
        div.table-wrap { table {
            thead { tr { th { "When" } th { "What" } th { "Key" } th { "Detail" } } }
            tbody { @for e in &events { tr {
                td { (date(&e.at)) }
                td { (e.kind) }
                td { @match e.kind.as_str() {
                    "upload" => a.mono href={ "/console/uploads/" (e.key) } { (short(&e.key)) },
                    "registration" => a.mono href={ "/console/registrations/" (e.key) } { (short(&e.key)) },
                    _ => a href="/console/transfers" { "#" (e.key) },
                } }
                td { (e.detail) }
            } } }
        } }
    };
    Ok(html_response(StatusCode::OK, page("Overview", "/console/", &csrf(&state, &req), body)))
}
