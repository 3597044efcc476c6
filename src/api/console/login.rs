//! The console's login, logout and stylesheet: the operator token for a session cookie.

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::templates::{self, html_response};
use super::{checked_form, forbidden};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::{PathParams, Request, see_other};
use crate::session::{COOKIE, LIFETIME};
use subtle::ConstantTimeEq;

/// `GET /console/login`: the login form.
pub(super) async fn login_form(_: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(html_response(StatusCode::OK, templates::login(None)))
}

/// `POST /console/login`: the operator token for a session cookie.
pub(super) async fn login(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    let body = req.bytes(super::MAX_FORM).await?;
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !bool::from(token.trim().as_bytes().ct_eq(state.token.as_bytes())) {
        log::warn!("console: a login with a wrong token");
        // Held until the budget of wrong credentials has room (as a wrong bearer token is).
        if let busy @ ApiError::Busy { .. } =
            crate::http::hold_failure(&state, req.peer, ApiError::Unauthorized).await
        {
            return Err(busy);
        }
        return Ok(html_response(
            StatusCode::UNAUTHORIZED,
            templates::login(Some("That is not the operator token.")),
        ));
    }
    let Some(id) = state.sessions.create() else {
        return Err(ApiError::Internal("no randomness for a session".into()));
    };
    let secure = if state.base_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}{secure}",
        LIFETIME.as_secs()
    );
    let mut response = see_other("/console/");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /console/logout`: ends the session.
pub(super) async fn logout(state: AppState, _: PathParams, mut req: Request) -> Result<Response, ApiError> {
    if checked_form(&state, &mut req).await?.is_none() {
        return Ok(forbidden());
    }
    state.sessions.remove(&req.headers);
    let mut response = see_other("/console/login");
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `GET /console`: the console is under `/console/` (the cookie's path covers both).
pub(super) async fn to_console(_: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    Ok(see_other("/console/"))
}

/// `GET /console/static/console.css`: the one stylesheet.
pub(super) async fn stylesheet(_: AppState, _: PathParams, _: Request) -> Result<Response, ApiError> {
    let mut response = Response::new(include_str!("console.css").into());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    Ok(response)
}
