//! The transfers page: the incoming transfers, the simulation of one, which goes through the
//! Wire Gateway's own operation ([`crate::domain::bank::transfers::add_incoming`]), and the
//! latest transfers out (the exchange's `POST transfer` and `[[outgoing]]` fixtures).

use maud::{Markup, html};
use warp::http::StatusCode;
use warp::reply::Response;

use super::templates::{csrf_field, date, html_response, page, pager};
use super::{ListQuery, PAGE_SIZE, before, checked_form, csrf, forbidden, next_link};
use crate::amount::Amount;
use crate::app::AppState;
use crate::domain::bank::transfers::{self, AddIncomingSubject, SubjectOutcome};
use crate::error::ApiError;
use crate::http::{PathParams, Request};
use crate::payto::Payto;
use crate::store::console as queries;
use crate::store::gateway as gateway_queries;
use crate::timestamp::Timestamp;

/// The debit account of simulated transfers.
const SIMULATED_DEBTOR: &str = "payto://iban/CH9300762011623852957?receiver-name=Simulated%20customer";

pub(super) fn outcome_markup(outcome: &Result<SubjectOutcome, ApiError>) -> Markup {
    html! { div.result role="status" #outcome { @match outcome {
        Ok(SubjectOutcome::Credited { row_id, transfer_type, account_pub, .. }) =>
            p { span.status-credited { "credited" } " — transfer #" (row_id) ", " (transfer_type) " to " code { (account_pub) } },
        Ok(SubjectOutcome::Bounced { row_id, reason, .. }) =>
            p { span.status-bounced { "bounced" } " — transfer #" (row_id) ": " (reason) },
        Err(e) => p.error { "refused: " (e.to_string()) },
    } } }
}

/// Through the wire-gateway simulation's own functions, as `add-incoming-subject` does.
pub(super) async fn simulate(
    state: &AppState,
    amount: &str,
    subject: String,
    credit: Option<&str>,
) -> Result<SubjectOutcome, ApiError> {
    let amount: Amount = amount.trim().parse().map_err(|e| ApiError::field("amount", e))?;
    let debit_account = Payto::parse(SIMULATED_DEBTOR).map_err(|e| ApiError::Internal(e.to_string()))?;
    let credit_account = credit.and_then(|c| Payto::parse(c).ok());
    let body = AddIncomingSubject { amount, subject, debit_account, credit_account };
    transfers::add_incoming(&state.store, &state.settings, &state.wakeups, body, state.clock.now_us()).await
}

/// `GET /console/transfers?status=&page=`: incoming transfers, newest first.
pub(super) async fn transfers_page(
    state: AppState,
    _: PathParams,
    req: Request,
) -> Result<Response, ApiError> {
    transfers_render(state, req, None).await
}

async fn transfers_render(
    state: AppState,
    req: Request,
    result: Option<Markup>,
) -> Result<Response, ApiError> {
    let q: ListQuery = req.query().unwrap_or_default();
    let status = match q.status.as_deref() {
        Some("credited") => Some("credited"),
        Some("bounced") => Some("bounced"),
        _ => None,
    };
    let start = before(&q);
    let (rows, outgoing) = state
        .store
        .read(move |db| {
            Ok((
                queries::transfers(db, status, start, PAGE_SIZE)?,
                gateway_queries::latest_outgoing(db, i64::MAX, PAGE_SIZE)?,
            ))
        })
        .await?;
    let next = next_link(
        "/console/transfers",
        &[("status", status.unwrap_or(""))],
        rows.last().map(|r| r.row_id),
        rows.len(),
    );
    let csrf = csrf(&state, &req);
    let body = html! {
        @if let Some(result) = result { (result) }
        form.box method="get" action="/console/transfers" {
            label { "Status" select name="status" {
                option value="" { "all" }
                @for s in ["credited", "bounced"] {
                    @if Some(s) == status { option selected { (s) } } @else { option { (s) } }
                }
            } }
            button type="submit" { "Show" }
        }
        div.table-wrap { table {
            thead { tr { th { "#" } th { "Date" } th { "Status" } th { "Amount" } th { "Debit account" } th { "Subject as typed" } th { "Credited to / bounce reason" } } }
            tbody { @for t in &rows { tr {
                td.num { (t.row_id) }
                td { (date(&t.date())) }
                td { span class={ "status-" (t.status) } { (t.status) } }
                td { (t.amount) }
                td { code { (t.debit_account) } }
                td { code { (t.subject.clone().unwrap_or_default()) } }
                td { @if let Some(k) = &t.account_pub { (t.transfer_type.clone().unwrap_or_default()) " " code { (k) } } @else { (t.bounce_reason.clone().unwrap_or_default()) } }
            } } }
        } }
        (pager(next))
        h2 #outgoing { "Outgoing transfers" }
        @if outgoing.is_empty() {
            p { "No transfer out yet: the exchange pays through the Wire Gateway's " code { "POST transfer" } "." }
        } @else {
            p { "The latest " (outgoing.len()) ", newest first (every one settled at once)." }
            div.table-wrap { table {
                thead { tr { th { "#" } th { "Date" } th { "Amount" } th { "Debit account" } th { "Credit account" } th { "WTID" } th { "Exchange" } th { "From" } } }
                tbody { @for o in &outgoing { tr {
                    td.num { (o.row_id) }
                    td { (date(&Timestamp::from_unix_micros(o.transfer.date_us))) }
                    td { (o.transfer.amount) }
                    td { code { (o.transfer.debit_account) } }
                    td { code { (o.transfer.credit_account) } }
                    td { code { (o.transfer.wtid) } }
                    td { (o.transfer.exchange_base_url) }
                    td { @if o.transfer.fixture { "fixture" } @else { "API" } }
                } } }
            } }
        }
        h2 { "Simulate a transfer" }
        form.box method="post" action="/console/transfers/simulate" {
            (csrf_field(&csrf))
            label { "Amount" input name="amount" required value={ (state.settings.currency) ":1" }; }
            label { "Subject" input name="subject" required size="50"; }
            button type="submit" { "Simulate" }
        }
        p { (stats_line(&state)) }
    };
    Ok(html_response(StatusCode::OK, page("Transfers", "/console/transfers", &csrf, body)))
}

fn stats_line(state: &AppState) -> Markup {
    html! { "Simulated transfers come from " code { (SIMULATED_DEBTOR) } " to " code { (state.settings.credit_accounts.first().map(|a| a.full()).unwrap_or("")) } "." }
}

/// `POST /console/transfers/simulate`: a transfer with any subject text.
pub(super) async fn transfers_simulate(
    state: AppState,
    _: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
    let Some(form) = checked_form(&state, &mut req).await? else { return Ok(forbidden()) };
    let amount = form.get("amount").cloned().unwrap_or_default();
    let subject = form.get("subject").cloned().unwrap_or_default();
    let outcome = simulate(&state, &amount, subject, None).await;
    transfers_render(state.clone(), req, Some(outcome_markup(&outcome))).await
}
