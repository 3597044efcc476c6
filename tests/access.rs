//! Access, CORS and methods of every route, taken from the route table itself:
//! a route added to the table is covered here without editing this file.

mod common;

use common::{Http, spawn_app};
use reqwest::Method;
use taler_lite::http::{Access, Route};

/// The route's path with every `{segment}` filled with a well-formed value
/// (a 52-character key or a 103-character hash).
fn example_path(route: &Route) -> String {
    route
        .pattern()
        .split('/')
        .map(|segment| match segment {
            "{h_body}" => "0".repeat(103),
            s if s.starts_with('{') => "0".repeat(52),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every route, the development ones included: the servers here run with `--dev`, so
/// that the routes only such a server has are held to the same rules.
fn every_route() -> Vec<Route> {
    taler_lite::api::routes(true)
}

fn has_cors(headers: &reqwest::header::HeaderMap) -> bool {
    headers.keys().any(|k| k.as_str().starts_with("access-control-"))
}

async fn request(server: &Http, method: Method, path: &str, auth: Option<&str>) -> common::Answer {
    let mut builder =
        server.client.request(method, server.endpoint(path)).header("Origin", "https://wallet.example");
    if let Some(auth) = auth {
        builder = builder.header("Authorization", auth);
    }
    server.send(builder).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_routes_need_the_token_and_send_no_cors() {
    let server = spawn_app(&["--dev"]).await;
    let token = server.token.clone();
    let table = every_route();
    let mut operator_routes = 0;
    for route in table.iter().filter(|r| r.access() == Access::Operator) {
        operator_routes += 1;
        let path = example_path(route);
        let wrong_scheme = format!("Basic {token}");
        for auth in [None, Some("Bearer wrong"), Some(wrong_scheme.as_str()), Some("Bearer")] {
            for method in [route.method().clone(), Method::OPTIONS, Method::DELETE] {
                let answer = request(&server, method.clone(), &path, auth).await;
                answer.expect_error(401, 40);
                assert!(!has_cors(&answer.headers), "{method} {path}: CORS on an operator route");
                assert!(
                    answer.headers.get("allow").is_none(),
                    "{method} {path} tells its methods without a token"
                );
            }
        }
        // The scheme is case-insensitive (RFC 9110).
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let answer =
                request(&server, route.method().clone(), &path, Some(&format!("{scheme} {token}"))).await;
            assert_ne!(answer.status, 401, "{scheme} refused on {path}");
            assert!(!has_cors(&answer.headers), "{path}: CORS on an operator route");
        }
        // With the token, a pre-flight is just a method the route lacks.
        let answer = request(&server, Method::OPTIONS, &path, Some(&format!("Bearer {token}"))).await;
        answer.expect_error(405, 20);
        assert!(!has_cors(&answer.headers));
        let allow = answer.headers["allow"].to_str().unwrap().to_owned();
        assert!(allow.contains(route.method().as_str()), "{path}: Allow {allow}");
    }
    assert!(operator_routes >= 8, "the table has {operator_routes} operator routes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_answer_the_cors_preflight_and_carry_cors() {
    let server = spawn_app(&["--dev"]).await;
    for route in every_route().iter().filter(|r| r.access() == Access::Public) {
        let path = example_path(route);
        let preflight = server
            .send(
                server
                    .client
                    .request(Method::OPTIONS, server.endpoint(&path))
                    .header("Origin", "https://wallet.example")
                    .header("Access-Control-Request-Method", route.method().as_str())
                    .header("Access-Control-Request-Headers", "content-type, taler-extern-signature"),
            )
            .await;
        assert_eq!(preflight.status, 204, "pre-flight of {path}");
        let h = &preflight.headers;
        assert_eq!(h["access-control-allow-origin"], "*", "{path}");
        assert_eq!(h["access-control-allow-headers"], "*", "{path}");
        let methods = h["access-control-allow-methods"].to_str().unwrap();
        assert!(methods.contains(route.method().as_str()), "{path}: {methods}");
        // The request itself, answered whatever its status, carries CORS too.
        let answer = request(&server, route.method().clone(), &path, None).await;
        assert_eq!(answer.headers["access-control-allow-origin"], "*", "{} {path}", route.method());
        // A method the route lacks: 405 naming the methods, still readable cross-origin.
        let answer = request(&server, Method::PUT, &path, None).await;
        answer.expect_error(405, 20);
        assert_eq!(answer.headers["access-control-allow-origin"], "*");
        assert!(answer.headers["allow"].to_str().unwrap().contains(route.method().as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_every_get_route_with_the_get_status_and_headers() {
    let server = spawn_app(&["--dev"]).await;
    let auth = format!("Bearer {}", server.token);
    for route in every_route().iter().filter(|r| r.method() == Method::GET) {
        let path = example_path(route);
        let get = request(&server, Method::GET, &path, Some(&auth)).await;
        let head = request(&server, Method::HEAD, &path, Some(&auth)).await;
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} sent a body");
        for name in ["content-type", "content-length", "etag", "access-control-allow-origin"] {
            assert_eq!(head.headers.get(name), get.headers.get(name), "HEAD {path}: {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_error_details() {
    let server = spawn_app(&["--dev"]).await;
    for path in ["nothing", "private/nothing", "config/", "kyc-bulk", "kyc-bulk/a/b"] {
        server.get(path).await.expect_error(404, 21);
    }
}

/// Request targets warp cannot route (no path) are 400 ErrorDetail, not a
/// silent close (warp panicked on them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_targets_without_a_path_are_400_error_details() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = spawn_app(&["--dev"]).await;
    let addr = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    for line in
        ["GET foo HTTP/1.1", "CONNECT example.com:443 HTTP/1.1", "OPTIONS * HTTP/1.1", "GET * HTTP/1.1"]
    {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(format!("{line}\r\nHost: example.com\r\n\r\n").as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{line}: {answer}");
        assert!(answer.contains("\"code\":26") && answer.contains("request-target"), "{line}: {answer}");
    }
    // The server still serves.
    assert_eq!(server.get("config").await.status, 200);
}

/// RFC 9112: an HTTP/1.1 request names exactly one Host; HTTP/1.0 needs none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_1_requests_without_one_host_are_400_error_details() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = spawn_app(&[]).await;
    let addr = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let ask = |head: String| {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            s.write_all(head.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let missing = ask("GET /config HTTP/1.1\r\nConnection: close\r\n\r\n".into()).await;
    assert!(missing.starts_with("HTTP/1.1 400"), "{missing}");
    assert!(missing.contains("\"code\":25") && missing.contains("\"parameter\":\"Host\""), "{missing}");
    let twice = ask("GET /config HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n".into()).await;
    assert!(twice.starts_with("HTTP/1.1 400"), "{twice}");
    assert!(twice.contains("\"code\":26") && twice.contains("\"parameter\":\"Host\""), "{twice}");
    let one = ask("GET /config HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n".into()).await;
    assert!(one.starts_with("HTTP/1.1 200"), "{one}");
    let old = ask("GET /config HTTP/1.0\r\n\r\n".into()).await;
    assert!(old.starts_with("HTTP/1.1 200") || old.starts_with("HTTP/1.0 200"), "{old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_routes_without_a_session_go_to_the_login_and_never_send_cors() {
    let server = spawn_app(&["--dev"]).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let bearer = format!("Bearer {}", server.token);
    let table = every_route();
    let mut console_routes = 0;
    for route in table.iter().filter(|r| r.access() == Access::Console) {
        console_routes += 1;
        let path = example_path(route);
        // The bearer token is no key to the console.
        for auth in [None, Some(bearer.as_str())] {
            let mut builder = client
                .request(route.method().clone(), server.endpoint(&path))
                .header("Origin", "https://wallet.example");
            if let Some(auth) = auth {
                builder = builder.header("Authorization", auth);
            }
            let answer = builder.send().await.unwrap();
            assert_eq!(answer.status(), 303, "{} {path}", route.method());
            assert_eq!(answer.headers()["location"], "/console/login", "{path}");
            assert!(!has_cors(answer.headers()), "{path}: CORS on a console route");
            assert_eq!(answer.headers()["cache-control"], "no-store", "{path}");
        }
    }
    assert!(console_routes >= 10, "the table has {console_routes} console routes");
    for route in table.iter().filter(|r| r.access() == Access::ConsoleLogin) {
        let answer = request(&server, route.method().clone(), &example_path(route), None).await;
        assert!(!has_cors(&answer.headers), "{}: CORS on the console's login", route.pattern());
        assert!(answer.headers.contains_key("content-security-policy"), "{}", route.pattern());
    }
}

/// `taler-lite routes [--dev]`, run in an empty folder with no setting: the printed table,
/// as (method, pattern) -> (who, answers). Nothing is made in the folder (no database, no
/// key: the listing needs neither).
fn listed_routes(args: &[&str]) -> std::collections::HashMap<(Method, String), (String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run_cli(dir.path(), args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{args:?} made a file");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("| method and path | who | answers |"));
    assert_eq!(lines.next(), Some("|---|---|---|"));
    let mut listed = std::collections::HashMap::new();
    for line in lines {
        let cells: Vec<&str> =
            line.strip_prefix("| ").and_then(|l| l.strip_suffix(" |")).unwrap().split(" | ").collect();
        let [path, who, answers] = cells[..] else { panic!("{line}: three cells") };
        let span = path.split('`').nth(1).unwrap_or_else(|| panic!("{line}: no `METHOD path`"));
        let (method, path) = span.split_once(' ').unwrap_or_else(|| panic!("{line}: no method"));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for pattern in taler_lite::api::listed_patterns(path) {
            let before =
                listed.insert((method.clone(), pattern.clone()), (who.to_owned(), answers.to_owned()));
            assert!(before.is_none(), "{method} {pattern} listed twice");
        }
    }
    listed
}

/// The documentation of the endpoints is the route table's (the README points at
/// `taler-lite routes`): every route of the table is listed exactly once, with who may call
/// it as its access says ("development only" exactly for the routes of `--dev`) and the
/// answers its row documents, and nothing else is listed.
#[test]
fn the_routes_command_lists_every_route_once_with_who_may_call_it() {
    let development: Vec<(Method, &str)> =
        taler_lite::api::development_routes().iter().map(|r| (r.method().clone(), r.pattern())).collect();
    for (args, dev) in [(&["routes", "--dev"][..], true), (&["routes"][..], false)] {
        let mut listed = listed_routes(args);
        for route in taler_lite::api::routes(dev) {
            let key = (route.method().clone(), route.pattern().to_owned());
            let (who, answers) =
                listed.remove(&key).unwrap_or_else(|| panic!("{args:?} does not list {} {}", key.0, key.1));
            let (base, development_only) = match who.strip_suffix(", development only") {
                Some(base) => (base, true),
                None => (who.as_str(), false),
            };
            let expected = match (route.access(), route.doc().signer) {
                (Access::Public, Some(signer)) => signer.describe(),
                (Access::Public, None) => "anyone",
                (Access::Operator, _) => "token",
                (Access::WireGateway, _) => "Wire Gateway auth",
                (Access::Console, _) => "console session",
                (Access::ConsoleLogin, _) => "no session",
            };
            assert_eq!(base, expected, "{} {}: who", key.0, key.1);
            assert_eq!(
                development_only,
                development.contains(&(key.0.clone(), route.pattern())),
                "{} {}: \"development only\" exactly for the routes of --dev",
                key.0,
                key.1
            );
            assert_eq!(answers, route.doc().answers.replace('|', "\\|"), "{} {}", key.0, key.1);
        }
        let unserved: Vec<_> = listed.keys().map(|(m, p)| format!("{m} {p}")).collect();
        assert!(unserved.is_empty(), "{args:?} lists what no route serves: {unserved:?}");
    }
}
