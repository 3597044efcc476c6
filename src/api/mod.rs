//! The APIs: one module each, holding its routes and handlers, and here the
//! one route table that the server routes by, the access tests iterate and
//! `taler-lite routes` prints ([`markdown`]): the one documentation of the endpoints.
//!
//! To add a route: write the handler in its API's module (a `///` line naming
//! method and path), add a row to that module's `routes()`, built with
//! [`Route::public`], [`Route::signed`] (public, its caller proven by a signature that
//! the operation checks) or [`Route::operator`] (which checks the token before the
//! handler runs), or for the console's pages [`Route::console`] (a session
//! cookie, checked by the dispatcher) and [`Route::console_login`], then its
//! documentation: optionally [`query`](crate::http::Draft::query) and
//! [`body`](crate::http::Draft::body), and [`answers`](crate::http::Draft::answers), the
//! step that makes the row (a row cannot be built without it).
//! Its rule goes in `crate::domain`, its SQL in the matching module of `crate::store`.
//! A development route (only with `--dev` or `--ephemeral`) goes in
//! [`fixtures::routes`] or [`controls::routes`] instead.

pub mod auditors;
pub mod console;
pub mod controls;
pub mod exchange;
pub mod fixtures;
pub mod kyc_bulk;
pub mod ops;
pub mod prepared_transfer;
pub mod wire_gateway;

use warp::http::Method;

use crate::config::Settings;
use crate::http::{Access, Route, Router};

/// Every route of a server started without `--dev` or `--ephemeral`.
pub fn route_table() -> Vec<Route> {
    routes(false)
}

/// Every route of a server, with the development routes or without: a server without
/// them has no such path at all (404), not a path that refuses.
pub fn routes(dev: bool) -> Vec<Route> {
    let mut routes = exchange::routes();
    routes.extend(auditors::routes());
    routes.extend(kyc_bulk::routes());
    routes.extend(prepared_transfer::routes());
    routes.extend(wire_gateway::routes());
    routes.extend(ops::routes());
    routes.extend(console::routes());
    if dev {
        routes.extend(development_routes());
    }
    routes
}

/// The routes only a server with `--dev` or `--ephemeral` has.
pub fn development_routes() -> Vec<Route> {
    let mut routes = fixtures::routes();
    routes.extend(controls::routes());
    routes
}

/// The router of a server with these settings.
pub fn router(settings: &Settings) -> Router {
    Router::new(routes(settings.dev))
}

/// Where the Wire Gateway serves each configured account by name: a route under it whose
/// twin without it has the same method and documentation is listed once with its twin.
const ACCOUNT_PREFIX: &str = "/accounts/{account}";

/// The header of [`markdown`]'s table.
pub const ROUTES_HEADER: &str = "| method and path | who | answers |";

/// The endpoints as a Markdown table, one row per method and path, from the route table and
/// what each row documents (`taler-lite routes`, `taler-lite routes --dev`): the method and
/// path (a `{name}` segment written `$NAME`, the query it reads, the body it takes), who may
/// call it, what it answers. A Wire Gateway path served with and without the account prefix
/// is one row, `[/accounts/$ACCOUNT]/taler-wire-gateway/...`.
pub fn markdown(dev: bool) -> String {
    let routes = routes(dev);
    let development: Vec<(Method, &str)> =
        development_routes().iter().map(|r| (r.method().clone(), r.pattern())).collect();
    let twin_of = |route: &Route, pattern: &str| {
        routes
            .iter()
            .any(|r| r.pattern() == pattern && r.method() == route.method() && r.doc() == route.doc())
    };
    let mut out = format!("{ROUTES_HEADER}\n|---|---|---|\n");
    for route in &routes {
        if route.pattern().strip_prefix(ACCOUNT_PREFIX).is_some_and(|rest| twin_of(route, rest)) {
            continue;
        }
        let prefixed = twin_of(route, &format!("{ACCOUNT_PREFIX}{}", route.pattern()));
        let doc = route.doc();
        let mut path = format!("`{} ", route.method());
        if prefixed {
            path.push_str(&format!("[{}]", dollar_names(ACCOUNT_PREFIX)));
        }
        path.push_str(&dollar_names(route.pattern()));
        if let Some(query) = doc.query {
            path.push_str(&format!("?{query}"));
        }
        path.push('`');
        if let Some(body) = doc.body {
            path.push_str(&format!(" {body}"));
        }
        let mut who = match (route.access(), doc.signer) {
            (Access::Public, Some(signer)) => signer.describe(),
            (Access::Public, None) => "anyone",
            (Access::Operator, _) => "token",
            (Access::WireGateway, _) => "Wire Gateway auth",
            (Access::Console, _) => "console session",
            (Access::ConsoleLogin, _) => "no session",
        }
        .to_owned();
        if development.contains(&(route.method().clone(), route.pattern())) {
            who.push_str(", development only");
        }
        let cell = |text: &str| text.replace('|', "\\|");
        out.push_str(&format!("| {} | {} | {} |\n", cell(&path), cell(&who), cell(doc.answers)));
    }
    out
}

/// A pattern as the documentation writes it: `{row_id}` is `$ROW_ID`.
fn dollar_names(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => format!("${}", name.to_uppercase()),
            None => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn one_access_per_path_and_one_handler_per_method() {
        let mut access: HashMap<&str, Access> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for route in routes(true) {
            let first = *access.entry(route.pattern()).or_insert(route.access());
            assert_eq!(first, route.access(), "{} mixes public and operator methods", route.pattern());
            assert!(
                seen.insert((route.pattern(), route.method().clone())),
                "{} {} twice",
                route.method(),
                route.pattern()
            );
            assert!(route.pattern().starts_with('/'), "{}", route.pattern());
        }
    }

    #[test]
    fn operator_paths_are_operator_routes() {
        for route in routes(true) {
            let p = route.pattern();
            let operator_namespace = p.starts_with("/private/") || p == crate::metrics::METRICS_ROUTE;
            assert_eq!(operator_namespace, route.access() == Access::Operator, "{p}");
            // Everything of the Wire Gateway but its config takes the exchange's credentials.
            let gateway = p.contains("/taler-wire-gateway/") && !p.ends_with("/config");
            assert_eq!(gateway, route.access() == Access::WireGateway, "{p}");
        }
    }

    /// Every row documents what it answers (the type of the table's rows requires the step;
    /// this holds the text to something), each text one line that prints as a table cell.
    #[test]
    fn every_route_documents_its_answers_in_one_line() {
        for route in routes(true) {
            let doc = route.doc();
            for text in [Some(doc.answers), doc.query, doc.body].into_iter().flatten() {
                assert!(!text.trim().is_empty(), "{} {}: an empty text", route.method(), route.pattern());
                assert!(!text.contains('\n'), "{} {}: {text:?} spans lines", route.method(), route.pattern());
            }
            assert!(
                !doc.query.is_some_and(|q| q.starts_with('?')),
                "{}: the query without its `?`",
                route.pattern()
            );
            assert!(doc.signer.is_none() || route.access() == Access::Public, "{}", route.pattern());
        }
    }

    /// A path as the README writes it, in the route table's form: `$NAME` segments become
    /// `{name}`, a leading `[prefix]` gives the path with and without it, a query is dropped.
    fn readme_paths(path: &str) -> Vec<String> {
        let path = path.split('?').next().unwrap_or(path);
        let variants = match path.strip_prefix('[').and_then(|p| p.split_once(']')) {
            Some((prefix, rest)) => vec![format!("{prefix}{rest}"), rest.to_owned()],
            None => vec![path.to_owned()],
        };
        variants
            .iter()
            .map(|p| {
                p.split('/')
                    .map(|s| match s.strip_prefix('$') {
                        Some(name) => format!("{{{}}}", name.to_lowercase()),
                        None => s.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect()
    }

    /// The README's word for who may call a route of this access: the start of its "who" cell.
    fn readme_who(access: Access, who: &str) -> bool {
        match access {
            Access::Public => who == "anyone" || who.ends_with(" signature"),
            Access::Operator => who.starts_with("token"),
            Access::WireGateway => who.starts_with("Wire Gateway auth"),
            Access::Console => who.starts_with("console session"),
            Access::ConsoleLogin => who.starts_with("no session"),
        }
    }

    /// The README's endpoints table against the route table: every method and path of
    /// `routes(true)` is in a row whose "who" cell names its access (and "development only"
    /// exactly for the development routes), and every method and path a row names is served.
    /// A row's first cell lists `METHOD /path` spans; a span that is only a path takes the
    /// method before it; other spans (bodies) are skipped.
    #[test]
    fn readme_endpoints_table_matches() {
        let rows = crate::readme_tables::rows("Endpoints", "| method and path |");
        assert!(!rows.is_empty(), "README: no endpoints table");
        let development: Vec<(Method, &str)> =
            development_routes().iter().map(|r| (r.method().clone(), r.pattern())).collect();
        // (method, pattern) -> the row that names it.
        let mut documented: HashMap<(Method, String), &str> = HashMap::new();
        for row in &rows {
            let [paths, who, _] = row[..] else { panic!("README row {row:?}: three cells") };
            let mut method: Option<Method> = None;
            for span in paths.split('`').skip(1).step_by(2) {
                let (m, path) = match span.split_once(' ') {
                    Some((m, p)) if !m.is_empty() && m.chars().all(|c| c.is_ascii_uppercase()) => {
                        (Some(Method::from_bytes(m.as_bytes()).expect("a method")), p)
                    }
                    _ => (None, span),
                };
                if !(path.starts_with('/') || path.starts_with('[')) {
                    continue;
                }
                method = m.or(method);
                let method =
                    method.clone().unwrap_or_else(|| panic!("README row {row:?}: {span} has no method"));
                for path in readme_paths(path) {
                    let before = documented.insert((method.clone(), path.clone()), who);
                    assert!(before.is_none(), "README names {method} {path} twice");
                }
            }
        }
        for route in routes(true) {
            let key = (route.method().clone(), route.pattern().to_owned());
            let Some(who) = documented.remove(&key) else {
                panic!(
                    "README's endpoints table has no row for {} {} ({:?}; `{{name}}` is written `$NAME`)",
                    route.method(),
                    route.pattern(),
                    route.access()
                );
            };
            assert!(
                readme_who(route.access(), who),
                "README: {} {} is {:?}, not {who:?}",
                key.0,
                key.1,
                route.access()
            );
            let dev = development.contains(&(key.0.clone(), route.pattern()));
            assert_eq!(
                dev,
                who.contains("development only"),
                "README: {} {}: \"development only\" exactly for the routes of --dev",
                key.0,
                key.1
            );
        }
        let unserved: Vec<_> = documented.keys().map(|(m, p)| format!("{m} {p}")).collect();
        assert!(unserved.is_empty(), "README's endpoints table names what no route serves: {unserved:?}");
    }
}
