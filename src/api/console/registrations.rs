//! The registrations pages: the list, and one registration with its subjects, its payment
//! code (Swiss QR bill or EPC) and the simulation of the customer's transfer.

use maud::{Markup, html};
use warp::http::StatusCode;
use warp::reply::Response;

use super::templates::{self, csrf_field, date, html_response, page, pager};
use super::transfers::{outcome_markup, simulate};
use super::{ListQuery, PAGE_SIZE, before, checked_form, csrf, forbidden, next_link, not_found, short};
use crate::amount::Amount;
use crate::app::AppState;
use crate::crypto::EddsaPublicKey;
use crate::domain::bank::accounts;
use crate::domain::bank::registrations::{RegistrationResponse, TransferSubject};
use crate::error::ApiError;
use crate::http::{PathParams, Request};
use crate::payto::Payto;
use crate::qr_bill::{CreditorAddress, EpcQrCode, SwissQrBill};
use crate::store::console::{self as queries, RegistrationState};
use crate::store::registrations as stored;
use crate::subject::group_qr_reference;

fn registration_state(q: &ListQuery) -> (RegistrationState, &'static str) {
    match q.state.as_deref() {
        Some("expired") => (RegistrationState::Expired, "expired"),
        Some("all") => (RegistrationState::All, "all"),
        _ => (RegistrationState::Live, "live"),
    }
}

/// `GET /console/registrations?state=live|expired|all&page=`: registrations, newest first.
pub(super) async fn registrations_page(
    state: AppState,
    _: PathParams,
    req: Request,
) -> Result<Response, ApiError> {
    let q: ListQuery = req.query()?;
    let (filter, name) = registration_state(&q);
    let (start, now_s) = (before(&q), state.clock.now_s());
    let rows =
        state.store.read(move |db| queries::registrations(db, filter, start, PAGE_SIZE, now_s)).await?;
    let next = next_link(
        "/console/registrations",
        &[("state", name)],
        rows.last().map(|r| r.registration_id),
        rows.len(),
    );
    let body = html! {
        form.box method="get" action="/console/registrations" {
            label { "State" select name="state" {
                @for s in ["live", "expired", "all"] {
                    @if s == name { option selected { (s) } } @else { option { (s) } }
                }
            } }
            button type="submit" { "Show" }
        }
        div.table-wrap { table {
            thead { tr { th { "Authorization key" } th { "Account key" } th { "Type" } th { "Recurrent" } th { "Amount" } th { "Subjects" } th { "Expiration" } } }
            tbody { @for r in &rows { tr {
                td { a.mono href={ "/console/registrations/" (r.authorization_pub) } { (short(&r.authorization_pub.to_string())) } }
                td { code { (short(&r.account_pub.to_string())) } }
                td { (r.transfer_type) }
                td { @if r.recurrent { "yes" } @else { "no" } }
                td { (r.credit_amount) }
                td {
                    @if let Some(s) = &r.short_subject { code { (s) } br; }
                    @if let Some(q) = &r.qr_reference { code { (group_qr_reference(q)) } }
                }
                td { (date(&r.expiration())) }
            } } }
        } }
        (pager(next))
    };
    Ok(html_response(
        StatusCode::OK,
        page("Registrations", "/console/registrations", &csrf(&state, &req), body),
    ))
}

/// The SIMPLE subject of a registration, as a customer types it.
fn simple_subject(subjects: &[TransferSubject]) -> Option<String> {
    subjects.iter().find_map(|s| match s {
        TransferSubject::Simple { subject, .. } => Some(subject.clone()),
        _ => None,
    })
}

/// `GET /console/registrations/$AUTHORIZATION_PUB`: subjects, payment code, simulation.
pub(super) async fn registration_page(
    state: AppState,
    params: PathParams,
    req: Request,
) -> Result<Response, ApiError> {
    registration_render(state, params, req, None).await
}

async fn registration_render(
    state: AppState,
    params: PathParams,
    req: Request,
    result: Option<Markup>,
) -> Result<Response, ApiError> {
    let key: EddsaPublicKey =
        params.get("authorization_pub").parse().map_err(|e| ApiError::parameter("AUTHORIZATION_PUB", e))?;
    let Some(r) = state.store.read(move |db| stored::by_authorization_pub(db, &key)).await? else {
        return Ok(not_found(&state, &req, "No registration with this authorization key."));
    };
    let csrf = csrf(&state, &req);
    let subjects =
        serde_json::from_str::<RegistrationResponse>(&r.response).map(|r| r.subjects).unwrap_or_default();
    let live = r.is_live(state.clock.now_s());
    let amount: Option<Amount> = r.credit_amount.parse().ok();
    let account = credit_account(&state, &r.credit_account);
    let code = match (&account, &amount) {
        (Some(account), Some(amount)) => {
            let settings = &state.settings;
            let address = CreditorAddress::new(&settings.qr_creditor_postcode, &settings.qr_creditor_town);
            payment_code(account, &address, amount, &r.qr_reference, simple_subject(&subjects))
        }
        _ => html! { p { "The credit account or amount cannot be read." } },
    };
    let body = html! {
        @if let Some(result) = result { (result) }
        dl.kv {
            dt { "Authorization key" } dd { code { (r.authorization_pub) } }
            dt { "Account key" } dd { code { (r.account_pub) } }
            dt { "Type" } dd { (r.transfer_type) @if r.recurrent { ", recurrent" } }
            dt { "Amount" } dd { (r.credit_amount) }
            dt { "Credit account" } dd { code { (r.credit_account) } }
            dt { "Created" } dd { (date(&r.created())) }
            dt { "Expiration" } dd { (date(&r.expiration())) @if !live { " (expired)" } }
            dt { "Used" } dd { @if r.used() { "yes" } @else { "no" } }
        }
        h2 { "Subjects" }
        div.table-wrap { table {
            thead { tr { th { "Format" } th { "Amount" } th { "Subject (select to copy)" } } }
            tbody { @for s in &subjects { tr { @match s {
                TransferSubject::Simple { credit_amount, subject } => { td { "SIMPLE" } td { (credit_amount) } td { input.mono readonly value=(subject) aria-label="SIMPLE subject"; } },
                TransferSubject::Uri { credit_amount, uri } => { td { "URI" } td { (credit_amount) } td { input.mono readonly value=(uri) aria-label="URI subject"; } },
                TransferSubject::SwissQrBill { credit_amount, qr_reference_number } => { td { "CH_QR_BILL" } td { (credit_amount) } td { input.mono readonly value=(qr_reference_number) aria-label="QR reference"; } },
            } } } }
        } }
        h2 { "Payment code" }
        (code)
        h2 { "Simulate the customer's transfer" }
        @if let Some(subject) = simple_subject(&subjects).or_else(|| r.short_subject.clone()) {
            form.box method="post" action={ "/console/registrations/" (r.authorization_pub) "/simulate" } {
                (csrf_field(&csrf))
                p { "add-incoming-subject of " (r.credit_amount) " with the subject " code { (subject) } }
                button #simulate type="submit" { "Simulate transfer" }
            }
        } @else { p { "This registration has no subject to type." } }
    };
    Ok(html_response(StatusCode::OK, page("Registration", "/console/registrations", &csrf, body)))
}

/// The configured credit account a registration names (stored normalized, so
/// without the `receiver-name` the payment codes need).
fn credit_account(state: &AppState, stored: &str) -> Option<Payto> {
    accounts::find(&state.settings, &Payto::parse_account(stored).ok()?)
}

/// The Swiss QR bill payment part for a QR-IBAN, the EPC code for another IBAN.
fn payment_code(
    account: &Payto,
    address: &CreditorAddress,
    amount: &Amount,
    qr_reference: &Option<String>,
    simple: Option<String>,
) -> Markup {
    if account.is_qr_iban() {
        let Some(reference) = qr_reference else {
            return html! { p { "No QR reference was derived for this registration." } };
        };
        let bill = match SwissQrBill::new(account, address, amount, reference) {
            Ok(bill) => bill,
            Err(e) => return html! { p.error { "No Swiss QR bill: " (e) } },
        };
        let svg = match bill.svg() {
            Ok(svg) => svg,
            Err(e) => return html! { p.error { "No Swiss QR code: " (e) } },
        };
        html! {
            @if bill.is_specimen() { p.notice { span.specimen { "Specimen" } " — " (amount.currency()) " is not CHF or EUR: the code is drawn in CHF without an amount, for testing only." } }
            section.payment-part aria-label="Swiss QR bill payment part" {
                div.qr #swiss-qr { (templates::trusted_svg(&svg)) }
                div {
                    h3 { "Account / Payable to" }
                    p { (bill.account_display()) } p { (bill.creditor_name()) }
                    @for line in bill.address_lines() { p { (line) } }
                    h3 { "Reference" } p.mono { (bill.reference_display()) }
                    h3 { "Currency" } p { (bill.currency().code()) }
                    h3 { "Amount" } p { (bill.amount_display().unwrap_or_default()) }
                }
            }
        }
    } else {
        let Some(text) = simple else { return html! { p { "No SIMPLE subject: no EPC code." } } };
        let epc = match EpcQrCode::new(account, amount, &text) {
            Ok(epc) => epc,
            Err(e) => return html! { p { "No payment code for this account: " (e) } },
        };
        let svg = match epc.svg() {
            Ok(svg) => svg,
            Err(e) => return html! { p.error { "No EPC code: " (e) } },
        };
        html! {
            @if epc.is_specimen() { p.notice { span.specimen { "Specimen" } " — " (amount.currency()) " is not EUR: the code is drawn without an amount, for testing only." } }
            section.payment-part aria-label="EPC QR code" {
                div.qr #epc-qr { (templates::trusted_svg(&svg)) }
                div {
                    h3 { "Beneficiary" } p { (epc.beneficiary_name()) }
                    h3 { "IBAN" } p { (epc.account_display()) }
                    @if let Some(bic) = epc.bic() { h3 { "BIC" } p { (bic) } }
                    h3 { "Amount" } p { (epc.amount().unwrap_or("none")) }
                    h3 { "Remittance" } p.mono { (text) }
                }
            }
        }
    }
}

/// `POST /console/registrations/$AUTHORIZATION_PUB/simulate`: the customer's transfer, simulated.
pub(super) async fn registration_simulate(
    state: AppState,
    params: PathParams,
    mut req: Request,
) -> Result<Response, ApiError> {
    if checked_form(&state, &mut req).await?.is_none() {
        return Ok(forbidden());
    }
    let key: EddsaPublicKey =
        params.get("authorization_pub").parse().map_err(|e| ApiError::parameter("AUTHORIZATION_PUB", e))?;
    let Some(r) = state.store.read(move |db| stored::by_authorization_pub(db, &key)).await? else {
        return Ok(not_found(&state, &req, "No registration with this authorization key."));
    };
    let subjects =
        serde_json::from_str::<RegistrationResponse>(&r.response).map(|r| r.subjects).unwrap_or_default();
    let subject = simple_subject(&subjects).or(r.short_subject.clone()).unwrap_or_default();
    let outcome = simulate(&state, &r.credit_amount, subject, Some(&r.credit_account)).await;
    let result = outcome_markup(&outcome);
    registration_render(state, params, req, Some(result)).await
}
