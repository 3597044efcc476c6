//! The console's HTML, checked at compile time by `maud` (which escapes every
//! value it is given): the layout every page shares and small helpers.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::timestamp::Timestamp;

/// The navigation: path and label.
const NAV: &[(&str, &str)] = &[
    ("/console/", "Overview"),
    ("/console/auditors", "Auditors"),
    ("/console/extern", "Third parties"),
    ("/console/uploads", "Uploads"),
    ("/console/registrations", "Registrations"),
    ("/console/transfers", "Transfers"),
];

/// A whole page with the navigation; `csrf` for the logout form.
pub fn page(title: &str, active: &str, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · taler-lite console" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                header {
                    span.brand { "taler-lite" }
                    nav aria-label="Console" {
                        @for (path, label) in NAV {
                            @if *path == active {
                                a href=(path) aria-current="page" { (label) }
                            } @else {
                                a href=(path) { (label) }
                            }
                        }
                    }
                    form.inline method="post" action="/console/logout" {
                        input type="hidden" name="csrf" value=(csrf);
                        button.secondary type="submit" { "Log out" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The login form, with an error after a wrong token.
pub fn login(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Log in · taler-lite console" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                main.login {
                    h1 { "taler-lite console" }
                    @if let Some(e) = error { p.error role="alert" { (e) } }
                    form method="post" action="/console/login" {
                        label for="token" { "Operator token (printed at start-up, or in the token file)" }
                        input #token type="password" name="token" autocomplete="current-password" required autofocus;
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// A UTC date, with the raw value on hover.
pub fn date(t: &Timestamp) -> Markup {
    match t.secs() {
        None => html! { time title="never" { "never" } },
        Some(s) => {
            let text = i64::try_from(s)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .map(|d| {
                    format!(
                        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                        d.year(),
                        u8::from(d.month()),
                        d.day(),
                        d.hour(),
                        d.minute(),
                        d.second()
                    )
                })
                .unwrap_or_else(|| s.to_string());
            html! { time title={ "t_s = " (s) } { (text) } }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A "next page" link, when the page was full.
pub fn pager(next: Option<String>) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if let Some(next) = next { a href=(next) { "Older →" } }
        }
    }
}

/// An SVG drawn by `crate::qr_bill` (our own markup, no user text unescaped in it).
pub fn trusted_svg(svg: &str) -> Markup {
    PreEscaped(svg.to_owned())
}

/// A rendered page as an answer.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = Response::new(markup.into_string().into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}
