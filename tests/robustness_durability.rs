//! A 2xx is forever, on one machine: one server per database file, a file deleted or
//! replaced under the server acknowledges nothing more, and `backup` never writes over
//! the live files. Against the real binary: the point is what processes and files do.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::kyc::signed_upload;
use common::robust::{PAYTO, bodies_are_whole, integrity_ok, runtime};
use common::{TestServer, run_cli};
use serde_json::json;
use sha2::{Digest, Sha512};
use taler_lite::crypto::{EddsaPrivateKey, EddsaPublicKey, HashCode};

/// A body of `len` bytes made on the fly from `seed`: a PDF magic, then pseudo-random
/// bytes, in 1 MiB pieces (hundreds of MiB never sit in memory).
fn pieces(seed: u64, len: u64) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut left = len;
    let mut first = true;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(1 << 20) as usize;
        let mut piece = Vec::with_capacity(n + 8);
        if first {
            piece.extend_from_slice(b"%PDF-1.7\n");
            first = false;
        }
        while piece.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            piece.extend_from_slice(&x.to_le_bytes());
        }
        piece.truncate(n);
        left -= n as u64;
        Some(piece)
    })
}

fn generated_hash(seed: u64, len: u64) -> HashCode {
    let mut hasher = Sha512::new();
    pieces(seed, len).for_each(|p| hasher.update(&p));
    HashCode::from_bytes(hasher.finalize().into())
}

fn generated_body(seed: u64, len: u64) -> reqwest::Body {
    let stream = futures_util::stream::iter(pieces(seed, len).map(Ok::<_, std::io::Error>));
    reqwest::Body::wrap_stream(stream)
}

/// An upload signed over `h` whose body comes separately, without the hash header: the
/// server stages it all before it can check the signature.
fn upload_without_hash(
    server: &TestServer,
    party: &EddsaPrivateKey,
    h: HashCode,
    len: u64,
) -> reqwest::RequestBuilder {
    signed_upload(&server.client, &server.url, party, PAYTO, "application/pdf", h)
        .header("Content-Length", len.to_string())
}

/// Runs a second `serve` on `db` (its own key and token file names, so that anything it
/// created would show) until it exits; stdin is closed, so one that started would stop.
fn second_server(dir: &Path, db: &Path) -> std::process::Output {
    let db = db.to_str().unwrap();
    run_cli(
        dir,
        &[
            "--database",
            db,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--exit-on-stdin-eof",
            "--master-key-file",
            "second.key",
            "--token-file",
            "second.token",
        ],
    )
}

/// Two servers racing on one file: the second is refused at once, naming the file and
/// the first one's pid, while the first commits 120 MiB uploads; every 204 has its
/// whole body.
#[test]
fn a_second_server_is_refused_while_the_first_commits_a_large_upload() {
    const ROUNDS: u64 = 4;
    const LEN: u64 = 120 << 20;
    let party = EddsaPrivateKey::generate().unwrap();
    let server = TestServer::start(&["--extern-key", &format!("{}=Acme", party.public_key())]);
    let rt = runtime();
    let mut refusals = 0;
    for round in 0..ROUNDS {
        let h = generated_hash(round, LEN);
        let request = upload_without_hash(&server, &party, h, LEN).body(generated_body(round, LEN));
        let answer = rt.spawn(request.send());
        let mut tries_this_round = 0;
        while !answer.is_finished() || tries_this_round == 0 {
            let out = second_server(server.path(), &server.db);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "a second server started:\n{stderr}");
            assert!(
                stderr.contains(&server.db.display().to_string())
                    && stderr.contains(&format!("pid {}", server.pid())),
                "{stderr}"
            );
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
            tries_this_round += 1;
        }
        refusals += tries_this_round;
        let status = rt.block_on(answer).unwrap().unwrap().status();
        assert_eq!(status, 204, "round {round}");
        bodies_are_whole(&server);
    }
    assert!(refusals >= ROUNDS);
    // Refused servers created nothing.
    assert!(!server.path().join("second.key").exists());
    assert!(!server.path().join("second.token").exists());
    integrity_ok(&server);
    let uploads = server.count("kyc_uploads");
    assert_eq!(uploads, ROUNDS as i64);
    // Once the first has gone, a server starts on the file again.
    let dir = server.kill9();
    let again = TestServer::start_in(dir, &[]);
    assert_eq!(again.count("kyc_uploads"), ROUNDS as i64);
    bodies_are_whole(&again);
}

/// The CLI's read-outs work beside a running server; its writing commands go through the
/// same lock: refused while the server holds it (naming its pid and the server's route for
/// the same change), nothing written, and working once the server has stopped.
#[test]
fn read_outs_work_beside_a_server_and_writing_commands_are_refused() {
    let server = TestServer::start(&[]);
    let db = server.db.to_str().unwrap().to_owned();
    let key = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    for write in [&["extern", "add", &key, "--name", "Acme"][..], &["extern", "disable", &key]] {
        let out = run_cli(server.path(), &[&["--database", &db][..], write].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{write:?}: {stderr}");
        assert!(stderr.contains(&format!("pid {}", server.pid())), "{write:?}: {stderr}");
        assert!(stderr.contains("POST /private/extern-keys"), "{write:?}: {stderr}");
    }
    assert_eq!(server.count("extern_keys"), 0);
    for read_out in [&["extern", "list"][..], &["registrations", "list"], &["auditors", "list"], &["check"]] {
        let out = run_cli(server.path(), &[&["--database", &db][..], read_out].concat());
        assert!(out.status.success(), "{read_out:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (_, dir) = server.terminate();
    let out = run_cli(dir.path(), &["--database", &db, "extern", "add", &key, "--name", "Acme"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = TestServer::start_in(dir, &[]);
    let listed = runtime().block_on(server.get_private("private/extern-keys")).json();
    assert_eq!(listed["extern_keys"][0]["extern_pub"], key.as_str());
}

/// What a writer saw: its third party's name, whether it sent the request after the
/// file was deleted, and the answer's status and code.
struct Sent {
    name: String,
    after: bool,
    status: u16,
    code: Option<u64>,
}

/// Four clients add third parties as fast as they can; `remove` deletes a file under the
/// server; each client goes on for 15 more requests. Returns what they saw.
fn write_through_a_deletion(server: &TestServer, remove: &Path) -> Vec<Sent> {
    let rt = runtime();
    let deleted = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, url, token) = (server.client.clone(), server.url.clone(), server.token.clone());
            let (deleted, acknowledged) = (deleted.clone(), acknowledged.clone());
            rt.spawn(async move {
                let mut seen = Vec::new();
                let mut after_count = 0;
                for i in 0.. {
                    let after = deleted.load(Ordering::SeqCst);
                    if after {
                        after_count += 1;
                        if after_count > 15 {
                            break;
                        }
                    }
                    let name = format!("w{w}-{i}");
                    let key =
                        EddsaPublicKey::from_bytes(Sha512::digest(name.as_bytes())[..32].try_into().unwrap());
                    let response = client
                        .post(format!("{url}private/extern-keys"))
                        .bearer_auth(&token)
                        .json(&json!({"extern_pub": key.to_string(), "name": name}))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    seen.push(Sent { name, after, status, code: body["code"].as_u64() });
                }
                seen
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < deadline, "the writers are stuck");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::remove_file(remove).unwrap();
    deleted.store(true, Ordering::SeqCst);
    let seen: Vec<Sent> = writers.into_iter().flat_map(|w| rt.block_on(w).unwrap()).collect();
    for s in seen.iter().filter(|s| s.after) {
        assert_eq!((s.status, s.code), (500, Some(52)), "{} was sent after the deletion", s.name);
    }
    assert!(seen.iter().filter(|s| s.after).count() >= 60);
    let health = rt.block_on(server.get("healthz"));
    assert_eq!(health.status, 503, "{}", String::from_utf8_lossy(&health.body));
    seen
}

fn names(db: &Path) -> HashSet<String> {
    let conn = common::open_db(db);
    let mut stmt = conn.prepare("SELECT name FROM extern_keys").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

fn acknowledged(seen: &[Sent]) -> HashSet<String> {
    seen.iter().filter(|s| (200..300).contains(&s.status)).map(|s| s.name.clone()).collect()
}

/// The database unlinked under the server: nothing is acknowledged afterwards, the log
/// says what happened, and after `kill -9` every write acknowledged before is in the copy
/// the server saved beside the path.
#[test]
fn nothing_is_acknowledged_after_the_database_is_deleted_and_nothing_before_is_lost() {
    let server = TestServer::start(&[]);
    let db = server.db.clone();
    let seen = write_through_a_deletion(&server, &db);
    let log = server.log();
    assert!(log.contains("was deleted") && log.contains("no write is acknowledged"), "{log}");
    let dir = server.kill9();
    let rescued: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("taler-lite.sqlite3.rescued-"))
        .collect();
    assert_eq!(rescued.len(), 1, "{rescued:?}\n{log}");
    let kept = names(&rescued[0]);
    let acknowledged = acknowledged(&seen);
    assert!(acknowledged.len() >= 100);
    let lost: Vec<_> = acknowledged.difference(&kept).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    let ok: String =
        common::open_db(&rescued[0]).query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}

/// The WAL unlinked under the server: nothing is acknowledged afterwards, and after
/// `kill -9` the restarted server has every write acknowledged before.
#[test]
fn nothing_is_acknowledged_after_the_wal_is_deleted_and_nothing_before_is_lost() {
    let server = TestServer::start(&[]);
    let mut wal = server.db.as_os_str().to_owned();
    wal.push("-wal");
    let seen = write_through_a_deletion(&server, Path::new(&wal));
    let log = server.log();
    assert!(log.contains("WAL") && log.contains("was deleted"), "{log}");
    let dir = server.kill9();
    let server = TestServer::start_in(dir, &[]);
    let kept = names(&server.db);
    let acknowledged = acknowledged(&seen);
    assert!(acknowledged.len() >= 100);
    let lost: Vec<_> = acknowledged.difference(&kept).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    integrity_ok(&server);
}

/// `backup` never writes over the live files, whatever name leads to them: the database,
/// its `-wal`, `-shm`, `-journal`, the key and token files, through symbolic and hard links.
#[test]
fn backup_refuses_the_live_files_as_its_destination() {
    let server = TestServer::start(&[]);
    let rt = runtime();
    let key = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let added =
        rt.block_on(server.post_private("private/extern-keys", &json!({"extern_pub": key, "name": "Acme"})));
    assert_eq!(added.status, 204);
    let dir = server.path().to_owned();
    std::os::unix::fs::symlink(&server.db, dir.join("link.sqlite3")).unwrap();
    std::fs::hard_link(&server.db, dir.join("hard.sqlite3")).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::os::unix::fs::symlink(dir.join("taler-lite-master.key"), dir.join("key-link")).unwrap();
    let db = server.db.to_str().unwrap();
    let destinations = [
        "taler-lite.sqlite3",
        "taler-lite.sqlite3-wal",
        "taler-lite.sqlite3-shm",
        "taler-lite.sqlite3-journal",
        "sub/../taler-lite.sqlite3-wal",
        "link.sqlite3",
        "hard.sqlite3",
        "taler-lite-master.key",
        "key-link",
        "taler-lite-operator.token",
    ];
    let before =
        |name: &str| std::fs::symlink_metadata(dir.join(name)).ok().map(|m| (m.len(), m.modified().unwrap()));
    for dest in destinations {
        let was = before(dest);
        let out = run_cli(&dir, &["--database", db, "backup", dest, "--force"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "backup to {dest} was made");
        assert!(stderr.contains("never writes over"), "{dest}: {stderr}");
        assert_eq!(before(dest), was, "{dest} was touched");
    }
    assert!(!dir.join("taler-lite.sqlite3-journal").exists());
    // A real destination still works, and the server never noticed.
    let out = run_cli(&dir, &["--database", db, "backup", "copy.sqlite3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let other = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let added =
        rt.block_on(server.post_private("private/extern-keys", &json!({"extern_pub": other, "name": "B"})));
    assert_eq!(added.status, 204);
    let dir = server.kill9();
    let server = TestServer::start_in(dir, &[]);
    assert_eq!(server.count("extern_keys"), 2);
}

/// `serve --ephemeral` as a harness starts it, with its ready line read.
fn ephemeral_server() -> (std::process::Child, serde_json::Value) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(common::BIN)
        .args(["serve", "--ephemeral", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, serde_json::from_str(&line).unwrap())
}

fn signal(child: &std::process::Child, name: &str) {
    let sent =
        std::process::Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
    assert!(sent.unwrap().success());
}

/// SIGUSR1 and SIGUSR2 are ignored; SIGHUP (a closed terminal) stops the server as cleanly
/// as SIGTERM: exit 0 and the ephemeral folder gone.
#[test]
fn sighup_stops_cleanly_and_sigusr_is_ignored() {
    let (mut child, ready) = ephemeral_server();
    let folder = Path::new(ready["database"].as_str().unwrap()).parent().unwrap().to_owned();
    assert!(folder.is_dir());
    let url = ready["url"].as_str().unwrap().to_owned();
    let rt = runtime();
    for name in ["USR1", "USR2"] {
        signal(&child, name);
        std::thread::sleep(Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "SIG{name} stopped the server");
        let status = rt.block_on(async { reqwest::get(format!("{url}config")).await.unwrap().status() });
        assert_eq!(status, 200);
    }
    signal(&child, "HUP");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!folder.exists(), "{} left behind", folder.display());
}

/// A FIFO named as an upload's file in a fixture file (or as the fixture file) is refused at
/// once, naming the entry; the failed start leaves no key, token or lock file.
#[test]
fn a_fifo_fixture_fails_start_up_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let party = EddsaPrivateKey::generate().unwrap().public_key();
    assert!(
        std::process::Command::new("mkfifo").arg(dir.path().join("scan.pdf")).status().unwrap().success()
    );
    assert!(
        std::process::Command::new("mkfifo").arg(dir.path().join("pipe.toml")).status().unwrap().success()
    );
    std::fs::write(
        dir.path().join("fixtures.toml"),
        format!(
            "[[extern]]\npub = \"{party}\"\nname = \"Acme\"\n\n[[upload]]\nextern_pub = \"{party}\"\npayto = \"{PAYTO}\"\nfile = \"scan.pdf\"\n"
        ),
    )
    .unwrap();
    for (fixtures, expected) in [("fixtures.toml", "[[upload]] #1"), ("pipe.toml", "pipe.toml")] {
        let mut child = std::process::Command::new(common::BIN)
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--database", "t.sqlite3", "--fixtures", fixtures])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("start-up with a FIFO ({fixtures}) hangs");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(expected) && stderr.contains("FIFO"), "{stderr}");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["fixtures.toml", "pipe.toml", "scan.pdf"], "{fixtures}");
    }
}
