//! The uploads pages: the list, one body with who sent it and a preview, the raw body and
//! each ZIP entry, served sandboxed as a type that runs no script.

use maud::{Markup, html};
use serde::Deserialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::templates::{date, html_response, page, pager};
use super::{ListQuery, PAGE_SIZE, before, csrf, next_link, not_found, short};
use crate::app::AppState;
use crate::crypto::HashCode;
use crate::error::ApiError;
use crate::http::stream::{blocking_body, stream_body};
use crate::http::{PathParams, Request};
use crate::kyc_content::{self, ZipEntryInfo};
use crate::payto::Payto;
use crate::store::console as queries;
use crate::store::kyc::{self, ChunkReader};
use crate::store::{Page, StoreError};

/// `GET /console/uploads?payto=&page=`: uploads, of one customer or all, newest first.
pub(super) async fn uploads_page(state: AppState, _: PathParams, req: Request) -> Result<Response, ApiError> {
    let q: ListQuery = req.query()?;
    let payto_text = q.payto.clone().unwrap_or_default();
    let (customer, problem) = match payto_text.trim() {
        "" => (None, None),
        text => match Payto::parse_account(text) {
            Ok(p) => (Some(p.normalized_hash()), None),
            Err(e) => (None, Some(format!("Not a payto URI: {e}"))),
        },
    };
    let page_of = Page { limit: PAGE_SIZE, descending: true, start: before(&q) };
    let rows = if problem.is_some() {
        Vec::new()
    } else {
        state.store.read(move |db| kyc::list(db, customer, &page_of)).await?
    };
    let next = next_link(
        "/console/uploads",
        &[("payto", payto_text.trim())],
        rows.last().map(|r| r.row_id),
        rows.len(),
    );
    let body = html! {
        form.box method="get" action="/console/uploads" {
            label { "Customer payto (matched normalized)" input name="payto" value=(payto_text) size="60"; }
            button type="submit" { "Filter" }
        }
        @if let Some(p) = problem { p.error { (p) } }
        div.table-wrap { table {
            thead { tr { th { "Time" } th { "Third party" } th { "Customer" } th { "Type" } th { "Size" } th { "Body hash" } } }
            tbody { @for u in &rows { tr {
                td { (date(&u.uploaded_at)) }
                td { span title=(u.extern_pub.to_string()) { (u.extern_name) } }
                td { code { (u.payto) } }
                td { (u.content_type) }
                td.num { (bytesize::ByteSize(u.size)) }
                td { a.mono href={ "/console/uploads/" (u.h_body) } { (short(&u.h_body.to_string())) } }
            } } }
        } }
        (pager(next))
    };
    Ok(html_response(StatusCode::OK, page("Uploads", "/console/uploads", &csrf(&state, &req), body)))
}

/// The type an uploaded body or entry is served as: a checked, displayable
/// type, or `application/octet-stream` (never HTML, never SVG: both run script).
fn served_type(checked: &str) -> &'static str {
    let lower = checked.to_ascii_lowercase();
    let essence = lower.split(';').next().unwrap_or("").trim();
    const SAFE: &[&str] = &[
        "application/pdf",
        "application/zip",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
        "image/avif",
        "image/heif",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/x-wav",
        "audio/flac",
        "audio/x-flac",
        "audio/aac",
        "audio/mp4",
        "audio/webm",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "video/x-matroska",
        "video/mpeg",
    ];
    SAFE.iter().find(|t| **t == essence).copied().unwrap_or("application/octet-stream")
}

/// The headers of every raw body and entry the console serves.
fn sandboxed(mut response: Response, content_type: &'static str, download: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if download {
        headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
    response
}

fn parse_h_body(params: &PathParams) -> Result<HashCode, ApiError> {
    params.get("h_body").parse().map_err(|e| ApiError::parameter("H_BODY", e))
}

/// The entries of a stored archive, read on a blocking thread.
async fn zip_entries(
    state: &AppState,
    body: kyc::StoredBody,
) -> Result<Result<Vec<ZipEntryInfo>, String>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let reader = ChunkReader::new(&store, body)?;
        Ok::<_, StoreError>(kyc_content::list_zip_entries(reader).map_err(|e| e.to_string()))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the ZIP listing failed: {e}")))?
    .map_err(ApiError::from)
}

/// `GET /console/uploads/$H_BODY`: who referenced a body, and a preview.
pub(super) async fn upload_page(
    state: AppState,
    params: PathParams,
    req: Request,
) -> Result<Response, ApiError> {
    let h_body = parse_h_body(&params)?;
    let (blob, refs) = state
        .store
        .read(move |db| Ok((kyc::find_blob(db, &h_body)?, queries::uploads_of_body(db, &h_body, 200)?)))
        .await?;
    let Some(blob) = blob else { return Ok(not_found(&state, &req, "No body with this hash is stored.")) };
    let ct = served_type(&blob.content_type);
    let raw = format!("/console/uploads/{h_body}/raw");
    let entries = if ct == "application/zip" { Some(zip_entries(&state, blob.body).await?) } else { None };
    let body = html! {
        dl.kv {
            dt { "Body hash" } dd { code { (h_body) } }
            dt { "Size" } dd { (bytesize::ByteSize(blob.body.size)) " (" (blob.body.size) " bytes)" }
            dt { "Content type" } dd { (blob.content_type) }
        }
        p { a.button href={ (raw) "?download=1" } { "Download" } }
        h2 { "Referenced by" }
        div.table-wrap { table {
            thead { tr { th { "Third party" } th { "Customer" } th { "Declared type" } th { "Time" } } }
            tbody { @for r in &refs { tr {
                td { (r.extern_name) br; code { (r.extern_pub) } }
                td { code { (r.payto) } }
                td { (r.content_type) }
                td { (date(&r.uploaded)) }
            } } }
        } }
        h2 { "Preview" }
        div.preview { @match ct.split('/').next().unwrap_or("") {
            "image" => img src=(raw) alt="the uploaded image";,
            "audio" => audio controls src=(raw) {},
            "video" => video controls src=(raw) {},
            _ if ct == "application/pdf" => object data=(raw) type="application/pdf" { p { "No PDF viewer here: use Download." } },
            _ => @match &entries {
                Some(Ok(entries)) => (entries_table(&h_body, entries)),
                Some(Err(e)) => p.error { "The archive cannot be listed: " (e) },
                None => p { "No preview for this type." },
            },
        } }
    };
    Ok(html_response(StatusCode::OK, page("Upload", "/console/uploads", &csrf(&state, &req), body)))
}

fn entries_table(h_body: &HashCode, entries: &[ZipEntryInfo]) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { "Entry" } th { "Size" } th { "Compressed" } th { "Type by content" } th {} } }
            tbody { @for e in entries { tr {
                td { code { (e.name) } }
                td.num { (e.size) }
                td.num { (e.compressed_size) }
                td { (e.sniffed.unwrap_or("unknown")) }
                td { a href={ "/console/uploads/" (h_body) "/entries/" (e.index) } { "Preview" } }
            } } }
        } }
    }
}

#[derive(Deserialize, Default)]
struct RawQuery {
    download: Option<String>,
}

/// `GET /console/uploads/$H_BODY/raw`: the body itself, sandboxed, as its checked type.
pub(super) async fn upload_raw(
    state: AppState,
    params: PathParams,
    req: Request,
) -> Result<Response, ApiError> {
    let h_body = parse_h_body(&params)?;
    let download = req.query::<RawQuery>()?.download.is_some();
    let Some(blob) = state.store.read(move |db| kyc::find_blob(db, &h_body)).await? else {
        return Err(ApiError::KycBulkUnknown(h_body.to_string()));
    };
    Ok(sandboxed(stream_body(&state.store, blob.body), served_type(&blob.content_type), download))
}

/// `GET /console/uploads/$H_BODY/entries/$INDEX`: one entry of a stored ZIP,
/// decompressed as it is sent (bounded memory), sandboxed, as the type its
/// content shows.
pub(super) async fn upload_entry(
    state: AppState,
    params: PathParams,
    _: Request,
) -> Result<Response, ApiError> {
    let h_body = parse_h_body(&params)?;
    let index: usize = params.get("index").parse().map_err(|e| ApiError::parameter("INDEX", e))?;
    let Some(blob) = state.store.read(move |db| kyc::find_blob(db, &h_body)).await? else {
        return Err(ApiError::KycBulkUnknown(h_body.to_string()));
    };
    if served_type(&blob.content_type) != "application/zip" {
        return Err(ApiError::parameter("H_BODY", "not a ZIP archive"));
    }
    let entries = zip_entries(&state, blob.body).await?.map_err(ApiError::Internal)?;
    let Some(entry) = entries.into_iter().find(|e| e.index == index) else {
        return Err(ApiError::parameter("INDEX", "no such file entry"));
    };
    let ct = served_type(entry.sniffed.unwrap_or(""));
    let store = state.store.clone();
    let response = blocking_body(entry.size, move |out| {
        let reader = ChunkReader::new(&store, blob.body).map_err(|e| e.to_string())?;
        kyc_content::copy_zip_entry(reader, index, out).map(|_| ()).map_err(|e| e.to_string())
    });
    Ok(sandboxed(response, ct, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_that_runs_script_is_served_as_itself() {
        for t in [
            "text/html",
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "",
        ] {
            assert_eq!(served_type(t), "application/octet-stream", "{t}");
        }
        assert_eq!(served_type("IMAGE/PNG"), "image/png");
        assert_eq!(served_type("application/pdf"), "application/pdf");
    }
}
