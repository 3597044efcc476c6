//! The APIs: one module each, holding its routes and handlers, and here the
//! one route table that the server routes by and the access tests iterate.
//!
//! To add a route: write the handler in its API's module (a `///` line naming
//! method and path), add a row to that module's `routes()`, built with
//! [`Route::public`] or [`Route::operator`] (which checks the token before the
//! handler runs), or for the console's pages [`Route::console`] (a session
//! cookie, checked by the dispatcher) and [`Route::console_login`], and put
//! its SQL in the matching module of `crate::store`.
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

use crate::config::Settings;
use crate::http::{Route, Router};

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::http::Access;

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
}
