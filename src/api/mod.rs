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
        let mut who = who(route).to_owned();
        if development.contains(&(route.method().clone(), route.pattern())) {
            who.push_str(", development only");
        }
        let cell = |text: &str| text.replace('|', "\\|");
        out.push_str(&format!("| {} | {} | {} |\n", cell(&path), cell(&who), cell(doc.answers)));
    }
    out
}

/// The route-table patterns a path of [`markdown`]'s table (or the README's table of the
/// APIs) stands for, the inverse of how [`markdown`] writes them: `$NAME` segments become
/// `{name}`, a leading `[prefix]` gives the path with and without it, the query is dropped.
pub fn listed_patterns(path: &str) -> Vec<String> {
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

/// Who may call a route, in the words of the README's "Endpoints" (which explains them).
fn who(route: &Route) -> &'static str {
    match (route.access(), route.doc().signer) {
        (Access::Public, Some(signer)) => signer.describe(),
        (Access::Public, None) => "anyone",
        (Access::Operator, _) => "token",
        (Access::WireGateway, _) => "Wire Gateway auth",
        (Access::Console, _) => "console session",
        (Access::ConsoleLogin, _) => "no session",
    }
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

    /// The README's table of the APIs against the route table: every route of `routes(true)`
    /// is under exactly one row (a path span ending in `…` covers every pattern that starts
    /// with it, any other span exactly its pattern), whose "who" cell has a term for it (the
    /// route's word as `taler-lite routes` prints it, ", development only" exactly for the
    /// development routes; a term's parenthesis only says which paths it is for), and every
    /// row and every term covers at least one route.
    #[test]
    fn every_route_is_under_one_api_of_the_readme() {
        let rows = crate::readme_tables::rows("Endpoints", "| paths |");
        assert!(!rows.is_empty(), "README: no table of the APIs under Endpoints");
        let development: Vec<(Method, &str)> =
            development_routes().iter().map(|r| (r.method().clone(), r.pattern())).collect();
        /// A row: the patterns it covers (and whether those under them too), its who terms
        /// (and whether each is development only).
        struct Api {
            prefixes: Vec<(String, bool)>,
            terms: Vec<(&'static str, bool)>,
        }
        let mut table = Vec::new();
        for row in &rows {
            let [paths, who, what] = row[..] else { panic!("README row {row:?}: three cells") };
            assert!(!what.is_empty(), "README row {paths}: what for?");
            let mut prefixes = Vec::new();
            for span in paths.split('`').skip(1).step_by(2) {
                let (path, under) = match span.strip_suffix('…') {
                    Some(path) => (path, true),
                    None => (span, false),
                };
                prefixes.extend(listed_patterns(path).into_iter().map(|p| (p, under)));
            }
            assert!(!prefixes.is_empty(), "README row {row:?}: no path");
            let terms = who
                .split("; ")
                .map(|term| {
                    let term = term.split(" (").next().unwrap_or(term);
                    match term.strip_suffix(", development only") {
                        Some(base) => (base, true),
                        None => (term, false),
                    }
                })
                .collect();
            table.push(Api { prefixes, terms });
        }
        let mut used: Vec<Vec<bool>> = table.iter().map(|api| vec![false; api.terms.len()]).collect();
        for route in routes(true) {
            let (method, pattern) = (route.method().clone(), route.pattern());
            let under: Vec<usize> = (0..table.len())
                .filter(|&i| {
                    table[i]
                        .prefixes
                        .iter()
                        .any(|(p, under)| if *under { pattern.starts_with(p.as_str()) } else { pattern == p })
                })
                .collect();
            let [i] = under[..] else {
                panic!(
                    "{method} {pattern} is under {} rows of the README's table of the APIs, not one",
                    under.len()
                )
            };
            let dev = development.contains(&(method.clone(), pattern));
            let Some(t) = table[i].terms.iter().position(|&(base, d)| base == who(&route) && d == dev) else {
                panic!(
                    "README row {:?}: no who term for {method} {pattern} ({:?}{})",
                    rows[i][0],
                    who(&route),
                    if dev { ", development only" } else { "" }
                )
            };
            used[i][t] = true;
        }
        for (i, used) in used.iter().enumerate() {
            for (t, used) in used.iter().enumerate() {
                assert!(
                    used,
                    "README row {:?}: its who term {:?} covers no route",
                    rows[i][0], table[i].terms[t]
                );
            }
        }
    }
}
