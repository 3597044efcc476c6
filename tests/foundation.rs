//! The server skeleton over real HTTP: /config, ErrorDetail for every framework
//! rejection, zero-config start, schema versions, shutdown.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use common::{TestServer, open_db, run_cli};
use serde_json::json;

#[tokio::test]
async fn config_names_the_exchange_and_its_master_key() {
    let server = TestServer::start(&[]);
    let answer = server.get("config").await;
    assert_eq!(answer.status, 200);
    let config = answer.json();
    assert_eq!(config["name"], "taler-exchange");
    assert_eq!(config["currency"], "KUDOS");
    assert_eq!(config["implementation"], "urn:net:taler:specs:taler-lite");
    let version = config["version"].as_str().unwrap();
    assert_eq!(version.split(':').filter(|p| p.parse::<u32>().is_ok()).count(), 3, "{version}");
    let key = std::fs::read_to_string(server.path().join("taler-lite-master.key")).unwrap();
    let private: taler_lite::crypto::EddsaPrivateKey = key.trim().parse().unwrap();
    assert_eq!(config["master_public_key"], private.public_key().to_string());
}

#[tokio::test]
async fn framework_rejections_are_error_details() {
    let server = TestServer::start(&["--max-json", "1KiB"]);
    server.get("no/such/endpoint").await.expect_error(404, 21);
    server.get("configuration").await.expect_error(404, 21);

    let answer = server.post_json("config", &json!({})).await;
    answer.expect_error(405, 20);
    assert_eq!(answer.headers.get("allow").unwrap(), "GET, HEAD, OPTIONS");

    server.post_raw("management/auditors", "{not json").await.expect_error(400, 22);
    server.post_raw("management/auditors", "[]").await.expect_error(400, 22);
    let big = format!("{{\"auditor_name\": \"{}\"}}", "x".repeat(4096));
    server.post_raw("management/auditors", big.clone()).await.expect_error(413, 32);
    // Without Content-Length (chunked), the limit holds while reading.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let answer = server
        .send(
            server
                .client
                .post(server.endpoint("management/auditors"))
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    answer.expect_error(413, 32);

    let long = format!("config?{}", "a".repeat(10_000));
    server.get(&long).await.expect_error(414, 31);
}

#[tokio::test]
async fn zero_config_start_creates_and_then_reuses_database_key_and_token() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let first = TestServer::start_in(dir.clone(), &[]);
    let log = first.log();
    let master = first.get("config").await.json()["master_public_key"].as_str().unwrap().to_owned();
    assert!(log.contains(&master), "master key not printed:\n{log}");
    // stderr is a pipe here: the new token's file is named, the token itself is not in the log.
    assert!(!log.contains(&first.token), "a new token in a log that is not a terminal:\n{log}");
    assert!(log.contains("operator token:    new, in "), "{log}");
    for file in ["taler-lite.sqlite3", "taler-lite-master.key", "taler-lite-operator.token"] {
        let meta = std::fs::metadata(dir.path().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        if file != "taler-lite.sqlite3" {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        }
    }
    let token = first.token.clone();
    let (status, dir) = first.terminate();
    assert!(status.success());

    let second = TestServer::start_in(dir, &[]);
    assert_eq!(second.get("config").await.json()["master_public_key"], master);
    assert_eq!(second.token, token);
    assert!(!second.log().contains(&token), "an existing token is printed again");
}

#[tokio::test]
async fn configured_master_public_key_makes_no_private_key() {
    let key = "5FDBYHGCBT2NQEWBEB1JDAP92EX8E44M70CMQFRG743TC5JAWWQG";
    let server = TestServer::start(&["--master-public-key", key]);
    assert_eq!(server.get("config").await.json()["master_public_key"], key);
    assert!(!server.path().join("taler-lite-master.key").exists());
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_message() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (status, dir) = TestServer::start_in(dir, &[]).terminate();
    assert!(status.success());
    let db = dir.path().join("taler-lite.sqlite3");
    rusqlite::Connection::open(&db).unwrap().execute_batch("PRAGMA user_version = 999").unwrap();
    let log = TestServer::try_start_in(dir, &[]).err().expect("a newer schema must be refused");
    assert!(log.contains("newer"), "{log}");
}

#[tokio::test]
async fn bad_settings_stop_start_up_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    for (args, name) in [
        (vec!["--currency", "kudos"], "currency"),
        (vec!["--credit-account", "payto://iban/XX00"], "credit_accounts"),
        (vec!["--max-upload", "a lot"], "max_upload"),
        (vec!["--listen", "nowhere"], "listen"),
    ] {
        let out = run_cli(dir.path(), &[&["serve"][..], &args].concat());
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // TOML is read, and unknown keys are named.
    std::fs::write(dir.path().join("c.toml"), "curency = \"EUR\"\n").unwrap();
    let out = run_cli(dir.path(), &["--config", "c.toml", "serve"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("curency"));
}

/// Every setting is checked, and the listener bound, before a file is made:
/// a wrong path or a busy address names its setting and leaves nothing.
#[tokio::test]
async fn start_up_failures_name_the_setting_and_create_nothing() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--listen".into(), "unix:/missing/dir/sock".into()], "listen"),
        (vec!["--listen".into(), busy_addr], "listen"),
        (vec!["--database".into(), "/missing/dir/db.sqlite3".into()], "database"),
        (vec!["--master-key-file".into(), "/missing/dir/master.key".into()], "master_key_file"),
        (vec!["--token-file".into(), "/missing/dir/token".into()], "token_file"),
        (vec!["--master-key-file".into(), ".".into()], "master_key_file"),
    ];
    for (args, name) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut argv = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
        argv.extend(args.iter().cloned());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = run_cli(dir.path(), &argv);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    drop(busy);
}

#[tokio::test]
async fn sigterm_closes_the_database_cleanly() {
    let server = TestServer::start(&[]);
    assert_eq!(server.get("config").await.status, 200);
    let (status, dir) = server.terminate();
    assert!(status.success());
    let db = dir.path().join("taler-lite.sqlite3");
    let ok: String = open_db(&db).query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let wal = std::fs::metadata(dir.path().join("taler-lite.sqlite3-wal")).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal, 0, "the WAL was not checkpointed at shutdown");
}

#[tokio::test]
async fn serves_on_a_unix_socket() {
    use std::io::{Read, Write};
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let socket = dir.path().join("s.sock");
    let arg = format!("unix:{}", socket.display());
    // The last --listen wins over the harness's TCP one.
    let _server = TestServer::start_in(dir.clone(), &["--listen", &arg]);
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream.write_all(b"GET /config HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"taler-exchange\""), "{answer}");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    use std::io::{Read, Write};
    use taler_lite::crypto::{EddsaPrivateKey, ExternKycDataBulkBindingPS, SignedStruct, sha512};
    let party = EddsaPrivateKey::generate().unwrap();
    let server = TestServer::start(&["--extern-key", &format!("{}=P", party.public_key())]);
    let body = b"%PDF-1.4\n% in flight\n%%EOF\n".to_vec();
    let payto = "payto://iban/DE89370400440532013000?receiver-name=E";
    let h = sha512(&body);
    let p: taler_lite::payto::Payto = payto.parse().unwrap();
    let sig = ExternKycDataBulkBindingPS { h_body: h, h_payto: p.full_hash() }.sign(&party);
    let addr = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /kyc-bulk/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\nTaler-Customer-Payto: {payto}\r\nTaler-Extern-Signature: {sig}\r\n\r\n",
        party.public_key(),
        body.len()
    )
    .unwrap();
    s.write_all(&body[..5]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SIGTERM while the body is half sent: the request still completes.
    let _ = std::process::Command::new("kill").arg("-TERM").arg(server.pid().to_string()).status();
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.write_all(&body[5..]).unwrap();
    let mut answer = vec![0u8; 1024];
    let n = s.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    drop(s);
    let (status, dir) = server.terminate();
    assert!(status.success());
    let uploads: i64 = open_db(&dir.path().join("taler-lite.sqlite3"))
        .query_row("SELECT count(*) FROM kyc_uploads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(uploads, 1);
}

/// One convention for every failure of the command line (the README, "Commands"): one line
/// on stderr starting `taler-lite: `; exit 2 when the command line cannot be read (clap's
/// verdict, with the usage of the command at hand), 1 when the command failed; help exits 0.
#[test]
fn every_command_line_error_is_one_prefixed_line_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let usage: [&[&str]; 6] = [
        &["offline", "enable-auditor", "AUDITOR_PUB", "https://a.example/", "A name"],
        &["no-such-command"],
        &["serve", "--no-such-flag"],
        &["kyc-bulk", "export", "HASH"],
        &["serve", "--ephemeral=perhaps"],
        &[],
    ];
    for args in usage {
        let out = run_cli(dir.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("taler-lite: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = run_cli(dir.path(), &["offline", "enable-auditor", "X"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("usage: taler-lite offline enable-auditor") && err.contains("--auditor-pub"),
        "{err}"
    );
    let failures: [&[&str]; 3] = [
        &["auditors", "list"],
        &["kyc-bulk", "export", "YD11...", "-o", "copy.pdf"],
        &["offline", "enable-auditor", "--auditor-pub", "X", "--url", "https://a.example/", "--name", "A"],
    ];
    for args in failures {
        let out = run_cli(dir.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("taler-lite: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let out = run_cli(dir.path(), &["--log-format", "json", "no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    let line: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(line["level"], "error", "{line}");
    for args in [&["--help"][..], &["offline", "enable-auditor", "--help"], &["--version"]] {
        let out = run_cli(dir.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty() && out.stderr.is_empty(), "{args:?}");
    }
}
