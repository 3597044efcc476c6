//! taler-lite as a CI fixture (README, "Use it in CI"), with the real binary:
//! the ready line, ephemeral servers, stopping when the harness goes away, fixture files
//! (every section, idempotent, contradictions), `POST /private/reset`, and JSON logs.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::bank::{EXCHANGE_ACCOUNT, registration_of};
use common::kyc::zip_of;
use common::{BIN, Ready, TestServer, clean_command, open_db, run_cli, spawn_until_ready};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use taler_lite::crypto::{EddsaPrivateKey, EddsaPublicKey, EddsaSignature, MasterAddAuditorPS, SignedStruct};
use taler_lite::http::Access;
use taler_lite::timestamp::Timestamp;

const PDF: &[u8] = b"%PDF-1.4\n% a fixture\n%%EOF\n";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";
const CUSTOMER: &str = "payto://iban/DE89370400440532013000?receiver-name=Erika%20Mustermann";
const DEBTOR: &str = "payto://iban/DE89370400440532013000?receiver-name=Erika";

/// The binary, with none of the developer's `TALER_LITE_*` settings, its temporary
/// folders in `tmp` (so that a test sees what an ephemeral server leaves there).
fn command(tmp: &Path) -> Command {
    let mut command = clean_command();
    command.env("TMPDIR", tmp).env("RUST_LOG", "info");
    command
}

/// A server as a CI harness starts it: it reads one line from stdout and knows the server.
struct Harnessed {
    child: Child,
    ready: Value,
    log: Arc<Mutex<String>>,
    stderr_done: Option<std::thread::JoinHandle<()>>,
    /// Whatever the server writes to stdout after the ready line (it must write nothing).
    rest: mpsc::Receiver<String>,
    client: reqwest::Client,
}

impl Harnessed {
    /// Spawns `command` and reads the ready line.
    fn spawn(command: Command) -> Harnessed {
        let Ready { child, line, ready, log, stderr_done, rest } =
            spawn_until_ready(command).unwrap_or_else(|e| panic!("no ready line; stderr:\n{}", e.log));
        assert!(line.ends_with('\n'), "{line:?}");
        Harnessed { child, ready, log, stderr_done: Some(stderr_done), rest, client: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.ready["url"].as_str().unwrap())
    }

    fn token(&self) -> String {
        self.ready["operator_token"].as_str().expect("operator_token").to_owned()
    }

    /// The ephemeral folder: where the database is.
    fn folder(&self) -> PathBuf {
        Path::new(self.ready["database"].as_str().unwrap()).parent().unwrap().to_owned()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn terminate(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the exit (at most 30 s); returns whether it succeeded, the whole stderr and
    /// whatever came on stdout after the ready line.
    fn wait(mut self) -> (bool, String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running; stderr:\n{}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(done) = self.stderr_done.take() {
            done.join().unwrap();
        }
        let rest = self.rest.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let log = self.log.lock().unwrap().clone();
        (status.success(), log, rest)
    }
}

impl Drop for Harnessed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

#[tokio::test]
async fn the_ready_line_is_all_there_is_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.sqlite3");
    let mut cmd = command(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database"]).arg(&db).stdin(Stdio::null());
    let server = Harnessed::spawn(cmd);
    let ready = &server.ready;
    assert_eq!(ready["ready"], true);
    let url = ready["url"].as_str().unwrap();
    let port: u16 =
        url.strip_prefix("http://127.0.0.1:").unwrap().strip_suffix('/').unwrap().parse().unwrap();
    assert_ne!(port, 0);
    assert_eq!(ready["pid"], server.child.id());
    assert_eq!(ready["database"], db.display().to_string());
    let token_file = dir.path().join("taler-lite-operator.token");
    assert_eq!(ready["token_file"], token_file.display().to_string());
    assert!(ready.get("operator_token").is_none(), "a token that is in a file is not repeated: {ready}");
    let (status, config) = server.get("config", None).await;
    assert_eq!(status, 200);
    assert_eq!(config["master_public_key"], ready["master_public_key"]);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(server.get("private/registrations", Some(token.trim())).await.0, 200);
    server.terminate();
    let (ok, log, rest) = server.wait();
    assert!(ok, "{log}");
    assert_eq!(rest, "", "serve wrote more than the ready line to stdout");
    assert!(log.contains("listening on"), "the summary stays on stderr:\n{log}");
    // stderr is a pipe here, as in CI, whose logs are kept: the token file's path, never the token.
    assert!(!log.contains(token.trim()), "the token is in a log:\n{log}");
    let named = format!("operator token:    new, in {}", token_file.display());
    assert!(log.contains(&named), "{log}");
}

/// The harness of the README waits for the server process (`wait` on the coprocess): by
/// then the ephemeral folder must be gone, not a few milliseconds later.
#[test]
fn the_ephemeral_folder_is_gone_when_the_process_has_exited() {
    for _ in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = command(tmp.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--ephemeral", "--exit-on-stdin-eof"])
            .stdin(Stdio::piped());
        let mut server = Harnessed::spawn(cmd);
        let folder = server.folder();
        assert!(folder.is_dir());
        drop(server.child.stdin.take());
        let status = server.child.wait().unwrap();
        // At once, before reading a log line: the process has exited, so the folder is gone.
        let left = entries(tmp.path());
        assert!(status.success());
        assert!(left.is_empty(), "left in TMPDIR when the process had exited: {left:?}");
        let (_, log, _) = server.wait();
        let removed = log.find(&format!("removed {}", folder.display())).unwrap_or_else(|| panic!("{log}"));
        assert!(log.find("database closed").unwrap() < removed, "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_ephemeral_servers_at_once_get_their_own_ports_and_leave_nothing_after_a_signal() {
    let tmp = tempfile::tempdir().unwrap();
    let spawned: Vec<std::thread::JoinHandle<Harnessed>> = (0..20)
        .map(|_| {
            let mut cmd = command(tmp.path());
            cmd.args(["serve", "--listen", "127.0.0.1:0", "--ephemeral"]).stdin(Stdio::null());
            std::thread::spawn(move || Harnessed::spawn(cmd))
        })
        .collect();
    let servers: Vec<Harnessed> = spawned.into_iter().map(|s| s.join().unwrap()).collect();
    let mut urls: Vec<&str> = servers.iter().map(|s| s.ready["url"].as_str().unwrap()).collect();
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), 20, "two servers on one port");
    let mut folders = Vec::new();
    for server in &servers {
        let folder = server.folder();
        assert_eq!(folder.parent(), Some(tmp.path()), "{folder:?} is not in TMPDIR");
        assert_eq!(server.get("config", None).await.0, 200);
        let token = server.token();
        assert_eq!(server.get("private/registrations", Some(&token)).await.0, 200);
        assert_eq!(server.get("private/registrations", None).await.0, 401);
        let stored = std::fs::read_to_string(folder.join("taler-lite-operator.token")).unwrap();
        assert_eq!(stored.trim(), token);
        assert!(folder.join("taler-lite-master.key").exists());
        folders.push(folder);
    }
    // Half of them as a terminal's Ctrl-C would stop them.
    for (i, server) in servers.iter().enumerate() {
        let signal = if i % 2 == 0 { "-TERM" } else { "-INT" };
        assert!(
            Command::new("kill").arg(signal).arg(server.child.id().to_string()).status().unwrap().success()
        );
    }
    for server in servers {
        let (ok, log, rest) = server.wait();
        assert!(ok, "{log}");
        assert_eq!(rest, "");
    }
    for folder in &folders {
        assert!(!folder.exists(), "{folder:?} left behind");
    }
    assert!(entries(tmp.path()).is_empty(), "left in TMPDIR: {:?}", entries(tmp.path()));
}

#[tokio::test]
async fn closing_stdin_stops_the_server_and_removes_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = command(tmp.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--ephemeral", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped());
    let mut server = Harnessed::spawn(cmd);
    let folder = server.folder();
    assert!(folder.is_dir());
    assert_eq!(server.get("config", None).await.0, 200);
    // Input is read and ignored; only its end counts.
    let mut stdin = server.child.stdin.take().unwrap();
    stdin.write_all(b"anything\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.child.try_wait().unwrap().is_none(), "stopped before the end of input");
    drop(stdin);
    let (ok, log, _) = server.wait();
    assert!(ok, "{log}");
    assert!(log.contains("standard input closed"), "{log}");
    assert!(!folder.exists(), "{folder:?} left behind");
    assert!(entries(tmp.path()).is_empty());
}

/// Whether `pid` is gone (or a zombie nobody has reaped yet: it has exited).
fn exited(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn a_harness_killed_with_sigkill_takes_its_server_along() {
    let tmp = tempfile::tempdir().unwrap();
    // The harness: a shell holding the only write end of the server's stdin (a FIFO).
    let script = r#"mkfifo "$1/in" || exit 1
"$2" serve --listen 127.0.0.1:0 --ephemeral --exit-on-stdin-eof < "$1/in" &
exec 3> "$1/in"
wait"#;
    let fifo_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).arg("sh").arg(fifo_dir.path()).arg(BIN);
    cmd.env("TMPDIR", tmp.path()).env("RUST_LOG", "info").stdin(Stdio::null());
    let mut harness = Harnessed::spawn(cmd);
    let server_pid = harness.ready["pid"].as_u64().unwrap();
    assert_ne!(server_pid, u64::from(harness.child.id()));
    assert_eq!(harness.get("config", None).await.0, 200);
    let folder = harness.folder();
    harness.child.kill().unwrap(); // SIGKILL: the shell cannot pass anything on.
    harness.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exited(server_pid) {
        assert!(Instant::now() < deadline, "the server outlived its harness");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, log, _) = harness.wait();
    assert!(log.contains("standard input closed"), "{log}");
    assert!(log.contains("database closed"), "{log}");
    assert!(!folder.exists(), "{folder:?} left behind");
}

#[test]
fn ephemeral_conflicts_with_a_database() {
    let dir = tempfile::tempdir().unwrap();
    for (args, env) in [
        (&["serve", "--ephemeral", "--database", "x.sqlite3"][..], &[][..]),
        (&["--database", "x.sqlite3", "serve", "--ephemeral=true"][..], &[][..]),
        (&["serve", "--ephemeral"][..], &[("TALER_LITE_DATABASE", "x.sqlite3")][..]),
        (&["serve"][..], &[("TALER_LITE_EPHEMERAL", "yes"), ("TALER_LITE_DATABASE", "x.sqlite3")][..]),
    ] {
        let mut cmd = command(dir.path());
        cmd.current_dir(dir.path()).args(args).envs(env.iter().copied()).stdin(Stdio::null());
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("ephemeral: conflicts with database x.sqlite3"), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

/// Every row of every table (the schema's, whatever it holds), ordered, as text.
fn table_contents(db: &Path) -> Vec<String> {
    contents_where(db, &[])
}

/// [`table_contents`] with the columns named left out (times, and what is derived from them).
fn contents_where(db: &Path, left_out: &[&str]) -> Vec<String> {
    let conn = open_db(db);
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY rowid")).unwrap();
        let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let mut line = format!("{table}:");
            for (i, name) in names.iter().enumerate() {
                if !left_out.contains(&name.as_str()) {
                    use rusqlite::types::ValueRef;
                    let value = match row.get_ref(i).unwrap() {
                        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                        ValueRef::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
                        other => format!("{other:?}"),
                    };
                    line.push_str(&format!(" {name}={value}"));
                }
            }
            out.push(line);
        }
    }
    out
}

fn h(body: &[u8]) -> String {
    let digest: [u8; 64] = Sha512::digest(body).into();
    taler_lite::crypto::HashCode::from_bytes(digest).to_string()
}

/// The keys of a fixture file, and what a test compares against.
struct Keys {
    party: EddsaPublicKey,
    auditor_a: EddsaPublicKey,
    auditor_b: EddsaPublicKey,
    /// A one-shot reserve registration, credited by the first `[[incoming]]`.
    wallet: EddsaPrivateKey,
    /// A recurrent KYC registration for another account key.
    kyc: EddsaPrivateKey,
    kyc_account: EddsaPublicKey,
}

impl Keys {
    fn new() -> Keys {
        let fresh = || EddsaPrivateKey::generate().unwrap();
        Keys {
            party: fresh().public_key(),
            auditor_a: fresh().public_key(),
            auditor_b: fresh().public_key(),
            wallet: fresh(),
            kyc: fresh(),
            kyc_account: fresh().public_key(),
        }
    }

    /// A fixture file with every section; `auditor_b_start` gives the second auditor a
    /// `validity_start` (else it is enabled "now").
    fn file(&self, auditor_b_start: bool) -> String {
        let b_start = if auditor_b_start { "validity_start = \"2025-06-01T12:00:00Z\"\n" } else { "" };
        format!(
            r#"# Every section of a fixture file.
[[extern]]
pub = "{party}"
name = "Acme KYC"

[[auditor]]
auditor_pub = "{auditor_a}"
url = "https://auditor-a.example.com/"
name = "Auditor A"
validity_start = 2025-01-01T00:00:00Z

[[auditor]]
auditor_pub = "{auditor_b}"
url = "https://auditor-b.example.com/"
name = "Auditor B"
{b_start}
[[upload]]
extern_pub = "{party}"
payto = "{CUSTOMER}"
file = "docs/passport.pdf"

[[upload]]
extern_pub = "{party}"
payto = "{CUSTOMER}"
file = "docs/scans.zip"
content_type = "application/zip"

[[registration]]
authorization_key = "{wallet}"
type = "reserve"
recurrent = false
credit_amount = "KUDOS:10"

[[registration]]
authorization_key = "{kyc}"
account_pub = "{kyc_account}"
type = "kyc"
recurrent = true
credit_amount = "KUDOS:0.01"
credit_account = "payto://iban/CH4431999123000889012?receiver-name=Exchange"

[[incoming]]
amount = "KUDOS:10"
subject = "Wallet top-up {wallet_pub}"
debit_account = "{DEBTOR}"

[[incoming]]
amount = "KUDOS:3"
subject = "no key in here"
debit_account = "{DEBTOR}"

[[incoming]]
amount = "KUDOS:3"
subject = "no key in here"
debit_account = "{DEBTOR}"
"#,
            party = self.party,
            auditor_a = self.auditor_a,
            auditor_b = self.auditor_b,
            wallet = self.wallet.to_base32(),
            wallet_pub = self.wallet.public_key(),
            kyc = self.kyc.to_base32(),
            kyc_account = self.kyc_account,
        )
    }

    fn registration_body(&self, which: &EddsaPrivateKey) -> Value {
        let (account_pub, kind, recurrent, amount) = if which.public_key() == self.wallet.public_key() {
            (which.public_key(), "reserve", false, "KUDOS:10")
        } else {
            (self.kyc_account, "kyc", true, "KUDOS:0.01")
        };
        registration_of(which, &account_pub, EXCHANGE_ACCOUNT, kind, recurrent, amount)
    }
}

/// Writes `text` as `dir/fixtures.toml` beside its documents; returns the file's path.
fn write_fixtures(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("docs/passport.pdf"), PDF).unwrap();
    std::fs::write(dir.join("docs/scans.zip"), zip_of(&[("scan.pdf", PDF), ("photo.png", PNG)])).unwrap();
    let path = dir.join("fixtures.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The subjects of a RegistrationResponse, as JSON.
fn subjects(response: &Value) -> Value {
    response["subjects"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixture_file_with_every_section_is_served_and_applying_it_again_changes_nothing() {
    let keys = Keys::new();
    let files = tempfile::tempdir().unwrap();
    let fixtures = write_fixtures(files.path(), &keys.file(false));
    let fixtures_arg = fixtures.display().to_string();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = TestServer::start_in(dir.clone(), &["--fixtures", &fixtures_arg]);
    // Logged before the summary, and written before it (the log thread is flushed first).
    let log = server.log();
    let applied = log.find("fixtures: 10 applied, 0 stored already").unwrap_or_else(|| panic!("{log}"));
    assert!(applied < log.find("listening on").unwrap(), "{log}");

    // [[extern]]
    let parties = server.get_private("private/extern-keys").await.json();
    assert_eq!(parties["extern_keys"][0]["extern_pub"], keys.party.to_string(), "{parties}");
    assert_eq!(parties["extern_keys"][0]["name"], "Acme KYC");
    assert_eq!(parties["extern_keys"][0]["active"], true);

    // [[auditor]]: listed, and the stored master_sig verifies with the master public key.
    let master_pub: EddsaPublicKey =
        server.get("config").await.json()["master_public_key"].as_str().unwrap().parse().unwrap();
    let auditors = server.get("auditors").await.json();
    let listed: Vec<&str> = auditors["auditors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["auditor_name"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{auditors}");
    assert!(listed.contains(&"Auditor A") && listed.contains(&"Auditor B"), "{auditors}");
    for (auditor, url) in [
        (keys.auditor_a, "https://auditor-a.example.com/"),
        (keys.auditor_b, "https://auditor-b.example.com/"),
    ] {
        let (sig, at_s): (EddsaSignature, i64) = server
            .db()
            .query_row(
                "SELECT master_sig, last_change_s FROM auditors WHERE auditor_pub = ?1",
                [auditor.as_bytes().as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let signed = MasterAddAuditorPS::new(Timestamp::from_secs(at_s as u64), auditor, url);
        assert!(signed.verify(&master_pub, &sig), "master_sig of {url}");
    }
    let a_start: i64 = server
        .db()
        .query_row(
            "SELECT last_change_s FROM auditors WHERE auditor_pub = ?1",
            [keys.auditor_a.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(a_start, 1_735_689_600, "validity_start as a TOML date-time");

    // [[upload]]: listed, and the bodies read back hash right.
    let uploads = server.get_private("private/kyc-bulk").await.json();
    let uploads = uploads["uploads"].as_array().unwrap().clone();
    assert_eq!(uploads.len(), 2, "{uploads:?}");
    let zip = std::fs::read(files.path().join("docs/scans.zip")).unwrap();
    for (upload, body, content_type) in
        [(&uploads[0], PDF, "application/pdf"), (&uploads[1], &zip[..], "application/zip")]
    {
        assert_eq!(upload["h_body"], h(body));
        assert_eq!(upload["content_type"], content_type);
        assert_eq!(upload["payto"], CUSTOMER);
        assert_eq!(upload["extern_pub"], keys.party.to_string());
        assert_eq!(upload["size"], body.len());
        let read_back = server.get_private(&format!("private/kyc-bulk/{}", h(body))).await;
        assert_eq!(read_back.status, 200);
        assert_eq!(h(&read_back.body), h(body));
        assert_eq!(read_back.headers["content-type"], content_type);
    }

    // [[registration]]: subjects as the same registrations made over HTTP get them.
    let fresh = TestServer::start(&[]);
    for key in [&keys.wallet, &keys.kyc] {
        let body = keys.registration_body(key);
        let over_http = fresh.post_json("taler-prepared-transfer/registration", &body).await;
        assert_eq!(over_http.status, 200);
        let stored: String = server
            .db()
            .query_row(
                "SELECT response FROM registrations WHERE authorization_pub = ?1",
                [key.public_key().as_bytes().as_slice()],
                |r| r.get(0),
            )
            .unwrap();
        let stored: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(subjects(&stored), subjects(&over_http.json()), "{stored}");
    }
    // The uncredited one, asked again over HTTP, is answered with what the fixture stored.
    let replay =
        server.post_json("taler-prepared-transfer/registration", &keys.registration_body(&keys.kyc)).await;
    assert_eq!(replay.status, 200);
    let over_http =
        fresh.post_json("taler-prepared-transfer/registration", &keys.registration_body(&keys.kyc)).await;
    assert_eq!(subjects(&replay.json()), subjects(&over_http.json()));
    let listed = server.get_private("private/registrations").await.json();
    let listed = listed["registrations"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["authorization_pub"], keys.wallet.public_key().to_string());
    assert_eq!(listed[0]["used"], true, "credited by the first [[incoming]]");
    assert_eq!(listed[1]["account_pub"], keys.kyc_account.to_string());
    assert_eq!(listed[1]["recurrent"], true);

    // [[incoming]]: the first credited, the two others bounced (two identical entries, two transfers).
    let history = server.get_private("taler-wire-gateway/history/incoming").await.json();
    let credited = history["incoming_transactions"].as_array().unwrap();
    assert_eq!(credited.len(), 1, "{history}");
    assert_eq!(credited[0]["reserve_pub"], keys.wallet.public_key().to_string());
    assert_eq!(credited[0]["amount"], "KUDOS:10");
    assert_eq!(credited[0]["debit_account"], DEBTOR);
    assert_eq!(server.count("incoming_transfers"), 3);
    assert_eq!(server.count("fixture_transfers"), 3);

    drop(fresh);
    let (status, dir) = server.terminate();
    assert!(status.success());
    let db = dir.path().join("taler-lite.sqlite3");
    let before = table_contents(&db);
    assert!(before.len() > 10, "{before:?}");

    // The same file again: nothing changes, not even the auditor enabled "now".
    let again = TestServer::start_in(dir.clone(), &["--fixtures", &fixtures_arg]);
    assert!(again.log().contains("fixtures: 0 applied, 10 stored already"), "{}", again.log());
    let (status, dir) = again.terminate();
    assert!(status.success());
    assert_eq!(table_contents(&db), before);

    // One more [[incoming]] like the last two: only it is applied.
    let more = format!(
        "{}\n[[incoming]]\namount = \"KUDOS:3\"\nsubject = \"no key in here\"\ndebit_account = \"{DEBTOR}\"\n",
        keys.file(false)
    );
    std::fs::write(&fixtures, more).unwrap();
    let third = TestServer::start_in(dir, &["--fixtures", &fixtures_arg]);
    assert!(third.log().contains("fixtures: 1 applied, 10 stored already"), "{}", third.log());
    assert_eq!(third.count("incoming_transfers"), 4);
}

/// `serve ARGS` on the database in `dir`, expected to fail: its stderr (logs off).
fn refused_start(dir: &Path, args: &[&str]) -> String {
    let out = command(dir)
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .args(["serve", "--listen", "127.0.0.1:0", "--database", "taler-lite.sqlite3"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    assert!(out.stdout.is_empty(), "a ready line from a server that did not start");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    err
}

#[tokio::test]
async fn contradicting_fixtures_and_refused_files_stop_start_up_with_one_line() {
    let keys = Keys::new();
    let files = tempfile::tempdir().unwrap();
    let good = keys.file(true);
    let fixtures = write_fixtures(files.path(), &good);
    let arg = fixtures.display().to_string();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (status, dir) = TestServer::start_in(dir, &["--fixtures", &arg]).terminate();
    assert!(status.success());
    let db = dir.path().join("taler-lite.sqlite3");
    let stored = table_contents(&db);

    let contradictions = [
        (
            good.replace("credit_amount = \"KUDOS:0.01\"", "credit_amount = \"KUDOS:0.02\""),
            "[[registration]] #2: ",
        ),
        (good.replace("name = \"Acme KYC\"", "name = \"Other KYC\""), "[[extern]] #1: "),
        (good.replace("2025-06-01T12:00:00Z", "2025-07-01T12:00:00Z"), "[[auditor]] #2: "),
        (good.replace("name = \"Auditor A\"", "name = \"Auditor Z\""), "[[auditor]] #1: "),
    ];
    for (text, entry) in contradictions {
        std::fs::write(&fixtures, &text).unwrap();
        let err = refused_start(dir.path(), &["--fixtures", &arg]);
        assert!(err.starts_with(&format!("taler-lite: fixtures: {entry}")), "{entry}: {err}");
        assert_eq!(table_contents(&db), stored, "{entry} changed the database");
    }
    // A registration whose reserve key another one holds: the API's 409, as a line.
    let taken = format!(
        "{good}\n[[registration]]\nauthorization_key = \"{}\"\naccount_pub = \"{}\"\ntype = \"reserve\"\ncredit_amount = \"KUDOS:1\"\n",
        EddsaPrivateKey::generate().unwrap().to_base32(),
        keys.wallet.public_key()
    );
    std::fs::write(&fixtures, taken).unwrap();
    let err = refused_start(dir.path(), &["--fixtures", &arg]);
    assert!(err.starts_with("taler-lite: fixtures: [[registration]] #3: "), "{err}");
    assert_eq!(table_contents(&db), stored);

    // Files the API would refuse stop a fresh start before a database exists.
    let fresh = tempfile::tempdir().unwrap();
    let party = keys.party;
    let upload = |file: &str, extra: &str| {
        format!(
            "[[extern]]\npub = \"{party}\"\nname = \"Acme\"\n\n[[upload]]\nextern_pub = \"{party}\"\npayto = \"{CUSTOMER}\"\nfile = \"{file}\"\n{extra}"
        )
    };
    std::fs::write(files.path().join("docs/fake.pdf"), PNG).unwrap();
    std::fs::write(files.path().join("docs/notes.txt"), b"just text").unwrap();
    std::fs::write(files.path().join("docs/empty.pdf"), b"").unwrap();
    std::fs::write(
        files.path().join("docs/nested.zip"),
        zip_of(&[("inner.zip", &zip_of(&[("a.pdf", PDF)]))]),
    )
    .unwrap();
    for (text, expected) in [
        (upload("docs/fake.pdf", ""), "declared application/pdf, but the body looks like image/png"),
        (upload("docs/notes.txt", ""), "content_type: Content-Type 'text/plain' is not accepted"),
        (upload("docs/empty.pdf", ""), "is empty"),
        (upload("docs/nested.zip", ""), "entry 'inner.zip'"),
        (
            upload("docs/passport.pdf", "content_type = \"image/png\"\n"),
            "declared image/*, but the body looks like application/pdf",
        ),
        (upload("docs/missing.pdf", ""), "No such file"),
    ] {
        std::fs::write(&fixtures, &text).unwrap();
        let err = refused_start(fresh.path(), &["--fixtures", &arg]);
        assert!(err.starts_with("taler-lite: fixtures: [[upload]] #1: "), "{expected}: {err}");
        assert!(err.contains(expected), "{expected}: {err}");
        assert!(!fresh.path().join("taler-lite.sqlite3").exists(), "{expected}: a database was made");
    }
    // An upload by someone who is not a third party: refused in the transaction.
    let stranger = EddsaPrivateKey::generate().unwrap().public_key();
    std::fs::write(
        &fixtures,
        format!(
            "[[upload]]\nextern_pub = \"{stranger}\"\npayto = \"{CUSTOMER}\"\nfile = \"docs/passport.pdf\"\n"
        ),
    )
    .unwrap();
    let err = refused_start(fresh.path(), &["--fixtures", &arg]);
    assert!(err.starts_with("taler-lite: fixtures: [[upload]] #1: extern_pub "), "{err}");
    assert!(err.contains("is not an active third party"), "{err}");
    assert_eq!(table_contents(&fresh.path().join("taler-lite.sqlite3")), Vec::<String>::new());

    // An auditor needs the master private key: a configured public key alone cannot sign.
    let public_only = tempfile::tempdir().unwrap();
    std::fs::write(&fixtures, &good).unwrap();
    let master = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let err = refused_start(public_only.path(), &["--fixtures", &arg, "--master-public-key", &master]);
    assert!(
        err.starts_with(
            "taler-lite: fixtures: [[auditor]] #1: signing an auditor needs the master private key"
        ),
        "{err}"
    );

    // And a file that is not a fixture file names the line.
    std::fs::write(&fixtures, "[[registration]]\nauthorization_key = 5\n").unwrap();
    let err = refused_start(public_only.path(), &["--fixtures", &arg]);
    assert!(err.contains("fixtures: [[registration]] #1: authorization_key: "), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

/// The state of a database with the times left out (a reset applies the fixtures at another now).
fn state_without_times(db: &Path) -> Vec<String> {
    contents_where(
        db,
        &["created_us", "uploaded_us", "date_us", "last_change_us", "expiration_s", "used_us", "response"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_restores_exactly_the_fixture_state() {
    let keys = Keys::new();
    let files = tempfile::tempdir().unwrap();
    let fixtures = write_fixtures(files.path(), &keys.file(true));
    let tmp = tempfile::tempdir().unwrap();
    let configured = EddsaPrivateKey::generate().unwrap().public_key();
    let mut cmd = command(tmp.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--ephemeral", "--fixtures"])
        .arg(&fixtures)
        .arg("--extern-key")
        .arg(format!("{configured}=Configured"))
        .stdin(Stdio::null());
    let server = Harnessed::spawn(cmd);
    let token = server.token();
    let db = PathBuf::from(server.ready["database"].as_str().unwrap());
    let fixture_state = state_without_times(&db);
    assert!(fixture_state.iter().any(|r| r.contains("Configured")), "{fixture_state:?}");

    // Change everything there is to change.
    let other = EddsaPrivateKey::generate().unwrap();
    assert_eq!(
        server
            .post(
                "private/extern-keys",
                Some(&token),
                &json!({"extern_pub": other.public_key().to_string(), "name": "Later"})
            )
            .await
            .0,
        204
    );
    assert_eq!(
        server.post(&format!("private/extern-keys/{}/disable", keys.party), Some(&token), &json!({})).await.0,
        204
    );
    let wallet = EddsaPrivateKey::generate().unwrap();
    let mut body = keys.registration_body(&keys.wallet);
    body["authorization_pub"] = json!(wallet.public_key().to_string());
    body["account_pub"] = json!(wallet.public_key().to_string());
    body["authorization_sig"] = json!(wallet.sign(wallet.public_key().as_bytes()).to_string());
    assert_eq!(server.post("taler-prepared-transfer/registration", None, &body).await.0, 200);
    let transfer =
        json!({"amount": "KUDOS:10", "subject": wallet.public_key().to_string(), "debit_account": DEBTOR});
    assert_eq!(
        server.post("taler-wire-gateway/admin/add-incoming-subject", Some(&token), &transfer).await.0,
        200
    );
    let master: EddsaPrivateKey = std::fs::read_to_string(server.folder().join("taler-lite-master.key"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let end = Timestamp::from_secs(1_900_000_000);
    let disable = json!({
        "master_sig": taler_lite::crypto::MasterDelAuditorPS { end_date: end, auditor_pub: keys.auditor_a }.sign(&master).to_string(),
        "validity_end": {"t_s": 1_900_000_000u64},
    });
    assert_eq!(
        server.post(&format!("management/auditors/{}/disable", keys.auditor_a), None, &disable).await.0,
        204
    );
    assert_ne!(state_without_times(&db), fixture_state);

    // Without the token: nothing happens.
    assert_eq!(server.post("private/reset", None, &json!({})).await.0, 401);
    assert_eq!(server.post("private/reset", Some("wrong-token-123"), &json!({})).await.0, 401);
    let (status, _) = server.post("private/reset", Some(&token), &json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(state_without_times(&db), fixture_state);
    // And again, from the fixture state itself.
    assert_eq!(server.post("private/reset", Some(&token), &json!({})).await.0, 204);
    assert_eq!(state_without_times(&db), fixture_state);
    // The reset state serves: the uncredited registration is as stored.
    assert_eq!(
        server.post("taler-prepared-transfer/registration", None, &keys.registration_body(&keys.kyc)).await.0,
        200
    );

    // A fixture file broken since start-up: the reset fails and changes nothing.
    std::fs::write(&fixtures, keys.file(true).replace("Acme KYC", "")).unwrap();
    let before = table_contents(&db);
    let (status, error) = server.post("private/reset", Some(&token), &json!({})).await;
    assert_eq!(status, 500, "{error}");
    assert!(error["detail"].as_str().unwrap().starts_with("fixtures: [[extern]] #1: "), "{error}");
    assert_eq!(table_contents(&db), before);
    server.terminate();
    let (ok, log, _) = server.wait();
    assert!(ok, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_exists_only_with_dev_or_ephemeral() {
    let plain = TestServer::start(&[]);
    plain.post_private("private/reset", &json!({})).await.expect_error(404, 21);
    plain.post_json("private/reset", &json!({})).await.expect_error(404, 21);
    drop(plain);

    let party = EddsaPrivateKey::generate().unwrap().public_key();
    let dev = TestServer::start(&["--dev", "--extern-key", &format!("{party}=Configured")]);
    let added = EddsaPrivateKey::generate().unwrap().public_key();
    let answer = dev
        .post_private("private/extern-keys", &json!({"extern_pub": added.to_string(), "name": "Added"}))
        .await;
    assert_eq!(answer.status, 204);
    assert_eq!(dev.count("extern_keys"), 2);
    // The development routes take the token as every operator route does, and send no CORS.
    let dev_only: Vec<_> = taler_lite::api::routes(true)
        .into_iter()
        .filter(|r| !taler_lite::api::route_table().iter().any(|s| s.pattern() == r.pattern()))
        .collect();
    assert!(dev_only.iter().any(|r| r.pattern() == "/private/reset"), "no /private/reset among them");
    for route in &dev_only {
        assert_eq!(route.access(), Access::Operator);
        for auth in [None, Some("Bearer wrong")] {
            let mut request = dev.client.request(route.method().clone(), dev.endpoint(route.pattern()));
            request = request.header("Origin", "https://wallet.example");
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            let answer = dev.send(request).await;
            answer.expect_error(401, 40);
            assert!(!answer.headers.keys().any(|k| k.as_str().starts_with("access-control-")));
        }
    }
    let answer = dev.post_private("private/reset", &json!({})).await;
    assert_eq!(answer.status, 204, "{}", String::from_utf8_lossy(&answer.body));
    let names: Vec<String> = dev
        .db()
        .prepare("SELECT name FROM extern_keys")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(names, ["Configured"], "the configured third parties come back, the added one goes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_and_never_hold_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = command(tmp.path());
    cmd.args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--ephemeral"])
        .stdin(Stdio::null());
    let server = Harnessed::spawn(cmd);
    let token = server.token();
    assert_eq!(server.get("config", None).await.0, 200);
    assert_eq!(server.get("private/registrations", Some(&token)).await.0, 200);
    assert_eq!(server.get("private/registrations", Some("secret-token:guess")).await.0, 401);
    assert_eq!(server.get("nowhere", None).await.0, 404);
    let (status, _) =
        server.post("taler-prepared-transfer/registration", None, &json!({"credit_account": 1})).await;
    assert_eq!(status, 400);
    let party = EddsaPrivateKey::generate().unwrap().public_key();
    let (status, _) = server
        .post("private/extern-keys", Some(&token), &json!({"extern_pub": party.to_string(), "name": "Acme"}))
        .await;
    assert_eq!(status, 204);
    server.terminate();
    let (ok, log, _) = server.wait();
    assert!(ok, "{log}");
    let mut requests = 0;
    for line in log.lines() {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["ts", "level", "target", "msg"] {
            assert!(record[field].is_string(), "no {field}: {line}");
        }
        assert!(!line.contains(&token), "the token is logged: {line}");
        assert!(!line.contains("secret-token:"), "a token is logged: {line}");
        if record["target"] == "taler_lite::http::router" {
            requests += 1;
            assert!(record["method"].is_string() && record["route"].is_string(), "{line}");
            for field in ["status", "duration_ms", "bytes_in", "bytes_out"] {
                assert!(record[field].is_number(), "no {field}: {line}");
            }
        }
    }
    assert_eq!(requests, 6, "{log}");
    assert!(log.contains(r#""route":"/private/extern-keys","status":204"#), "{log}");
    assert!(log.contains(r#""method":"GET","route":"-","status":404"#), "{log}");
    let post = log.lines().find(|l| l.contains(r#""route":"/private/extern-keys""#)).unwrap();
    let post: Value = serde_json::from_str(post).unwrap();
    assert!(post["bytes_in"].as_u64().unwrap() > 50, "{post}");
    let config = log.lines().find(|l| l.contains(r#""route":"/config""#)).unwrap();
    let config: Value = serde_json::from_str(config).unwrap();
    assert!(config["bytes_out"].as_u64().unwrap() > 100, "{config}");
}

#[test]
fn a_bad_fixture_setting_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(dir.path(), &["serve", "--fixtures", "nowhere.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fixtures: nowhere.toml: "), "{err}");
    assert!(!dir.path().join("taler-lite.sqlite3").exists());
    // With JSON logs the failure is a JSON line too, whatever the log filter.
    let out = command(dir.path())
        .current_dir(dir.path())
        .env("RUST_LOG", "off")
        .args(["--log-format", "json", "serve", "--fixtures", "nowhere.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let line: Value = serde_json::from_str(err.trim()).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().starts_with("fixtures: nowhere.toml: "), "{line}");
}
