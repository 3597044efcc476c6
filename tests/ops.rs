//! Operating it: `backup` under load, `check` against damaged copies, the
//! read-only commands and `--json`, `/healthz`, `/metrics`, the systemd unit.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::auditors::enable_auditor_cli;
use common::bank::EXCHANGE_ACCOUNT as ACCOUNT;
use common::kyc::{CUSTOMER as PAYTO, party_arg, signed_upload};
use common::{Http, TestServer, run_cli};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use taler_lite::crypto::{EddsaPrivateKey, HashCode};

fn hash(parts: &[Bytes]) -> HashCode {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let digest: [u8; 64] = h.finalize().into();
    HashCode::from_bytes(digest)
}

/// `%PDF-` and `mib` MiB of filler (distinct per `seed`), in 1 MiB parts.
fn pdf(mib: usize, seed: u64) -> Vec<Bytes> {
    let mut x = 0x2545_f491_4f6c_dd1d ^ seed;
    let mut parts = vec![Bytes::from_static(b"%PDF-1.7\n")];
    for _ in 0..mib {
        let block: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        parts.push(Bytes::from(block));
    }
    parts
}

/// POSTs `parts` to `/kyc-bulk` as one streamed body, pausing `pause` between parts (what
/// `Http::upload` of tests/common cannot: a body that arrives slowly).
async fn upload_in_parts(server: &Http, party: &EddsaPrivateKey, parts: Vec<Bytes>, pause: Duration) -> u16 {
    let h = hash(&parts);
    let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let body = futures_util::stream::unfold(parts.into_iter(), move |mut parts| async move {
        let part = parts.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(part), parts))
    });
    let response = signed_upload(&server.client, &server.url, party, PAYTO, "application/pdf", h)
        .header("Content-Length", size)
        .header("If-None-Match", h.to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// `taler-lite --database DB ARGS` in `dir`.
fn cli(dir: &Path, db: &Path, args: &[&str]) -> std::process::Output {
    let db = db.to_str().unwrap();
    run_cli(dir, &[&["--database", db][..], args].concat())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_holds_every_acknowledged_write_and_serves() {
    let party = EddsaPrivateKey::generate().unwrap();
    let server = TestServer::start(&["--extern-key", &party_arg(&party)]);
    let stored = pdf(3, 1);
    let stored_hash = hash(&stored);
    let stored_size: u64 = stored.iter().map(|p| p.len() as u64).sum();
    assert_eq!(upload_in_parts(&server, &party, stored, Duration::ZERO).await, 204);

    // Load: registrations one after the other, each remembered once answered.
    let server = Arc::new(server);
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (server, acknowledged, stop) = (server.clone(), acknowledged.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (auth, answer) = server.register_reserve(ACCOUNT, "KUDOS:1").await;
                assert_eq!(answer.status, 200, "{}", text(&answer.body));
                acknowledged.lock().unwrap().push(auth.public_key().to_string());
            }
        })
    };
    // And an upload streaming in slowly, so that the backup meets it staged.
    let streaming = {
        let (server, party) = (server.clone(), party.clone());
        tokio::spawn(
            async move { upload_in_parts(&server, &party, pdf(24, 2), Duration::from_millis(40)).await },
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let staged: i64 = server
            .db()
            .query_row(
                "SELECT count(*) FROM kyc_chunks k JOIN kyc_contents c USING (content_id) WHERE c.h_body IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if staged >= 3 && acknowledged.lock().unwrap().len() >= 20 {
            break;
        }
        assert!(Instant::now() < deadline, "no staged chunks or registrations in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let dir = server.path().to_owned();
    let db = server.db.clone();
    let dest = dir.join("backups").join("copy.sqlite3");
    std::fs::create_dir(dir.join("backups")).unwrap();
    let started = Instant::now();
    let out = {
        let (dir, db, dest) = (dir.clone(), db.clone(), dest.clone());
        tokio::task::spawn_blocking(move || cli(&dir, &db, &["backup", dest.to_str().unwrap()]))
            .await
            .unwrap()
    };
    let took = started.elapsed();
    let during = acknowledged.lock().unwrap().len() - before.len();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    eprintln!("{report}");
    eprintln!(
        "backup took {took:?}; {} registrations acknowledged before it, {during} while it ran",
        before.len()
    );
    for line in ["size:", "duration:", "registrations", "kyc_chunks", "left out: 1 upload"] {
        assert!(report.contains(line), "no '{line}' in:\n{report}");
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(streaming.await.unwrap(), 204);

    // A second backup to the same place needs --force.
    let again = cli(&dir, &db, &["backup", dest.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("--force"), "{}", text(&again.stderr));

    // The copy: sound, complete up to the backup, without the staged upload.
    assert!(!dir.join("backups/copy.sqlite3.tmp").exists());
    let conn = rusqlite::Connection::open(&dest).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let mut stmt = conn.prepare("SELECT authorization_pub FROM registrations").unwrap();
    let in_copy: HashSet<String> = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|k| taler_lite::crypto::EddsaPublicKey::from_bytes(k.unwrap().try_into().unwrap()).to_string())
        .collect();
    let missing: Vec<&String> = before.iter().filter(|k| !in_copy.contains(*k)).collect();
    assert!(missing.is_empty(), "{} acknowledged registrations missing from the copy", missing.len());
    let staged: i64 =
        conn.query_row("SELECT count(*) FROM kyc_contents WHERE h_body IS NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(staged, 0);
    drop(stmt);
    drop(conn);
    let checked = cli(&dir, &dest, &["check"]);
    assert!(checked.status.success(), "{}{}", text(&checked.stdout), text(&checked.stderr));
    assert!(text(&checked.stderr).contains("check: sound"), "{}", text(&checked.stderr));

    // And it serves: a new server on the copy has the body and the registrations.
    let restored_dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::copy(&dest, restored_dir.path().join("taler-lite.sqlite3")).unwrap();
    let restored = TestServer::start_in(restored_dir, &[]);
    assert_eq!(restored.get("healthz").await.status, 200);
    let body = restored.get_private(&format!("private/kyc-bulk/{stored_hash}")).await;
    assert_eq!(body.status, 200);
    assert_eq!(body.body.len() as u64, stored_size);
    assert!(restored.count("registrations") as usize >= before.len());
}

/// A server with one body of several chunks, registrations with short
/// subjects, a third party and an auditor; returns it and a sound backup.
async fn populated(dir_for_copies: &Path) -> (TestServer, PathBuf) {
    let party = EddsaPrivateKey::generate().unwrap();
    let server = TestServer::start(&["--extern-key", &party_arg(&party), "--simple-subject", "short"]);
    assert_eq!(upload_in_parts(&server, &party, pdf(3, 3), Duration::ZERO).await, 204);
    for _ in 0..3 {
        assert_eq!(server.register_reserve(ACCOUNT, "KUDOS:1").await.1.status, 200);
    }
    let auditor = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    let enabled =
        enable_auditor_cli(server.path(), &server.db, &auditor, "Example Auditor", &server.url, &[]);
    assert!(enabled.status.success(), "{}", text(&enabled.stderr));
    let sound = dir_for_copies.join("sound.sqlite3");
    let out = cli(server.path(), &server.db, &["backup", sound.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (server, sound)
}

/// A copy of `sound` changed by `damage`.
fn damaged(sound: &Path, name: &str, damage: impl FnOnce(&rusqlite::Connection)) -> PathBuf {
    let path = sound.with_file_name(format!("{name}.sqlite3"));
    std::fs::copy(sound, &path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    damage(&conn);
    conn.close().unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_each_kind_of_damage() {
    let copies = tempfile::tempdir().unwrap();
    let (server, sound) = populated(copies.path()).await;
    let dir = copies.path();

    let out = cli(dir, &sound, &["check"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "a sound file has no findings");
    eprintln!("sound: {}", text(&out.stderr).trim());

    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "a chunk removed",
            damaged(&sound, "chunk-removed", |c| {
                c.execute("DELETE FROM kyc_chunks WHERE seq = 1", []).unwrap();
            }),
            "incomplete, chunk(s) 1 missing of 4",
        ),
        (
            "a byte flipped",
            damaged(&sound, "byte-flipped", |c| {
                let mut data: Vec<u8> =
                    c.query_row("SELECT data FROM kyc_chunks WHERE seq = 2", [], |r| r.get(0)).unwrap();
                data[1000] ^= 0x01;
                c.execute("UPDATE kyc_chunks SET data = ?1 WHERE seq = 2", [data]).unwrap();
            }),
            "its chunks hash to",
        ),
        (
            "a staged upload left over",
            damaged(&sound, "staged", |c| {
                c.execute(
                    "INSERT INTO kyc_contents (h_body, size, created_us) VALUES (NULL, 0, 1000000)",
                    [],
                )
                .unwrap();
                let id = c.last_insert_rowid();
                c.execute(
                    "INSERT INTO kyc_chunks (content_id, seq, data) VALUES (?1, 0, x'255044462d')",
                    [id],
                )
                .unwrap();
            }),
            "staged upload (content_id 2, started 1970-01-01T00:00:01Z, 1 chunk(s), 5 bytes) left over",
        ),
        (
            "a short subject that does not match its key",
            damaged(&sound, "subject", |c| {
                c.execute(
                    "UPDATE registrations SET short_subject = 'AAAAAAAAAAAA'
                     WHERE registration_id = (SELECT min(registration_id) FROM registrations)",
                    [],
                )
                .unwrap();
            }),
            "stored short subject AAAAAAAAAAAA does not match its key",
        ),
    ];
    for (what, path, expected) in cases {
        let out = cli(dir, &path, &["check"]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{what}: {stdout}{}", text(&out.stderr));
        assert!(
            stdout.lines().any(|l| l.contains(expected)),
            "{what}: no line with '{expected}' in\n{stdout}"
        );
        assert!(text(&out.stderr).contains("finding(s)"), "{what}: {}", text(&out.stderr));
        eprintln!("{what}:\n{}", stdout.trim_end());
    }
    drop(server);
}

/// Bytes and modification time of a file and whether journal files appeared.
fn fingerprint(path: &Path) -> (Vec<u8>, std::time::SystemTime, bool) {
    let journals =
        ["-wal", "-shm", "-journal"].iter().any(|s| Path::new(&format!("{}{s}", path.display())).exists());
    (std::fs::read(path).unwrap(), std::fs::metadata(path).unwrap().modified().unwrap(), journals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_leave_the_file_alone_and_refuse_unknown_versions() {
    let copies = tempfile::tempdir().unwrap();
    let (server, sound) = populated(copies.path()).await;
    let dir = copies.path();
    let h: String = {
        let conn = common::open_db(&sound);
        let h: Vec<u8> = conn.query_row("SELECT h_body FROM kyc_contents", [], |r| r.get(0)).unwrap();
        HashCode::from_bytes(h.try_into().unwrap()).to_string()
    };
    let read_only: Vec<Vec<&str>> = vec![
        vec!["check"],
        vec!["auditors", "list"],
        vec!["auditors", "list", "--json"],
        vec!["extern", "list"],
        vec!["extern", "list", "--json"],
        vec!["registrations", "list"],
        vec!["registrations", "list", "--json"],
        vec!["kyc-bulk", "list"],
        vec!["kyc-bulk", "list", "--json"],
        vec!["kyc-bulk", "export", &h, "-o", "export.pdf"],
    ];
    let before = fingerprint(&sound);
    assert!(!before.2);
    for args in &read_only {
        let out = cli(dir, &sound, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    assert!(fingerprint(&sound) == before, "a read-only command changed the file");

    let newer = damaged(&sound, "newer", |c| c.execute_batch("PRAGMA user_version = 99").unwrap());
    let before = fingerprint(&newer);
    for args in &read_only {
        let out = cli(dir, &newer, args);
        assert_eq!(out.status.code(), Some(1), "{args:?} accepted schema version 99");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("schema version 99, newer"), "{args:?}: {stderr}");
    }
    assert!(fingerprint(&newer) == before, "a refusing command changed the file");
    drop(server);
}

/// Field names of the objects of a JSON array.
fn keys_of(items: &[Value]) -> Vec<Vec<String>> {
    items.iter().map(|i| i.as_object().unwrap().keys().cloned().collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_listings_parse_and_use_the_api_names() {
    let copies = tempfile::tempdir().unwrap();
    let (server, _) = populated(copies.path()).await;
    let listing = |args: &[&str]| -> Vec<Value> {
        let out = cli(server.path(), &server.db, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let value: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&out.stdout)));
        value.as_array().unwrap_or_else(|| panic!("{args:?}: not an array")).clone()
    };
    // The same objects as the operator API's, field for field.
    for (args, api, field) in [
        (&["extern", "list", "--json"][..], "private/extern-keys", "extern_keys"),
        (&["kyc-bulk", "list", "--json"][..], "private/kyc-bulk", "uploads"),
        (&["registrations", "list", "--json"][..], "private/registrations", "registrations"),
    ] {
        let cli_items = listing(args);
        let api_items = server.get_private(api).await.json()[field].as_array().unwrap().clone();
        assert!(!cli_items.is_empty(), "{args:?}");
        assert_eq!(keys_of(&cli_items), keys_of(&api_items), "{args:?}");
        assert_eq!(cli_items, api_items, "{args:?}");
    }
    // Auditors: the public entry's names, and the state the operator needs.
    let auditors = listing(&["auditors", "list", "--json"]);
    let public = &server.get("auditors").await.json()["auditors"][0];
    assert_eq!(auditors.len(), 1);
    for name in ["auditor_pub", "auditor_url", "auditor_name"] {
        assert_eq!(auditors[0][name], public[name], "{name}");
    }
    assert_eq!(auditors[0]["is_active"], true);
    // An empty listing is an empty array.
    let out = cli(server.path(), &server.db, &["kyc-bulk", "list", "--json", "--payto", ACCOUNT]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_and_names_the_part_that_hangs() {
    let app = common::spawn_app(&[]).await;
    let ok = app.get("healthz").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json(), json!({"status": "ok"}));

    // The writer busy with a job that waits: the probe's round trip cannot finish.
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let blocker = app.state.store.write(taler_lite::store::Durability::Lazy, move |_tx| {
        let _ = wait.recv();
        Ok::<_, taler_lite::store::StoreError>(())
    });
    let started = Instant::now();
    let answer = app.get("healthz").await;
    answer.expect_error(503, 50);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    release.send(()).unwrap();
    blocker.await.unwrap();
    assert_eq!(app.get("healthz").await.status, 200);

    // Every pooled reader held: the probe's read cannot get a connection.
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = Arc::new(Mutex::new(wait));
    let (entered, held) = std::sync::mpsc::channel::<()>();
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (wait, entered, store) = (wait.clone(), entered.clone(), app.state.store.clone());
        readers.push(tokio::spawn(async move {
            store
                .read(move |_db| {
                    let _ = entered.send(());
                    let _ = wait.lock().unwrap().recv();
                    Ok(())
                })
                .await
        }));
    }
    for _ in 0..8 {
        held.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    app.get("healthz").await.expect_error(503, 53);
    for _ in 0..8 {
        release.send(()).unwrap();
    }
    for r in readers {
        r.await.unwrap().unwrap();
    }
    assert_eq!(app.get("healthz").await.status, 200);
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: the declared type of every family, and the samples.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the one sample `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let found: Vec<&Sample> =
            self.samples.iter().filter(|s| s.name == name && s.labels == wanted).collect();
        assert!(found.len() <= 1, "{name} {labels:?} twice");
        found.first().map(|s| s.value)
    }

    fn with_name<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }
}

fn is_name(s: &str, colons: bool) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|e| format!("value {s:?}: {e}")),
    }
}

/// Parses the Prometheus text exposition format (0.0.4) strictly: names,
/// label syntax and escapes, values, one TYPE per family before its samples,
/// every sample in a declared family, and histograms whose buckets are
/// cumulative up to a `+Inf` bucket equal to `_count`.
fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut seen_samples: HashSet<String> = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_name(name, true) {
                        return Err(at("bad family name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if seen_samples.contains(name) {
                        return Err(at("TYPE after samples".into()));
                    }
                    if out.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(at("second TYPE".into()));
                    }
                }
                (Some("HELP"), Some(name), _) if is_name(name, true) => {}
                (Some("HELP"), ..) => return Err(at("bad HELP".into())),
                _ => {} // Any other comment.
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => return Err(at("no value".into())),
        };
        if !is_name(name, true) {
            return Err(at("bad metric name".into()));
        }
        let mut labels = BTreeMap::new();
        let rest = if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                inner = inner.trim_start_matches([' ', ',']);
                if let Some(after) = inner.strip_prefix('}') {
                    break after;
                }
                let eq = inner.find('=').ok_or_else(|| at("label without '='".into()))?;
                let key = inner[..eq].trim();
                if !is_name(key, false) {
                    return Err(at(format!("bad label name {key:?}")));
                }
                let mut chars = inner[eq + 1..].char_indices();
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(at("label value not quoted".into()));
                }
                let mut value = String::new();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            _ => return Err(at("bad escape".into())),
                        },
                        Some((i, '"')) => break eq + 1 + i + 1,
                        Some((_, c)) => value.push(c),
                        None => return Err(at("unterminated label value".into())),
                    }
                };
                if labels.insert(key.to_owned(), value).is_some() {
                    return Err(at(format!("label {key} twice")));
                }
                inner = &inner[end..];
            }
        } else {
            rest
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|e| at(format!("timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix).filter(|f| out.types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !out.types.contains_key(family) {
            return Err(at(format!("sample of undeclared family {family}")));
        }
        seen_samples.insert(family.to_owned());
        out.samples.push(Sample { name: name.to_owned(), labels, value });
    }
    // Histograms: per label set (without `le`), cumulative buckets ending in +Inf = _count.
    for (family, _) in out.types.iter().filter(|(_, t)| *t == "histogram") {
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in out.with_name(&format!("{family}_bucket")) {
            let mut labels = s.labels.clone();
            let le = labels.remove("le").ok_or_else(|| format!("{family}: bucket without le"))?;
            series.entry(labels).or_default().push((parse_value(&le)?, s.value));
        }
        for (labels, buckets) in series {
            let mut last = (f64::NEG_INFINITY, 0.0);
            for &(le, n) in &buckets {
                if le <= last.0 || n < last.1 {
                    return Err(format!("{family} {labels:?}: buckets not cumulative"));
                }
                last = (le, n);
            }
            let count_name = format!("{family}_count");
            let count = out
                .with_name(&count_name)
                .find(|s| s.labels == labels)
                .map(|s| s.value)
                .ok_or_else(|| format!("{family} {labels:?}: no _count"))?;
            if last.0 != f64::INFINITY || last.1 != count {
                return Err(format!("{family} {labels:?}: +Inf bucket is not _count"));
            }
            if !out.with_name(&format!("{family}_sum")).any(|s| s.labels == labels) {
                return Err(format!("{family} {labels:?}: no _sum"));
            }
        }
    }
    Ok(out)
}

#[test]
fn the_exposition_parser_refuses_what_is_not_the_format() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\n\"} 1\n";
    assert_eq!(parse_exposition(good).unwrap().samples[0].labels["x"], "q\"\n");
    for bad in [
        "a 1\n",                                     // undeclared
        "# TYPE a counter\na{x=y} 1\n",              // unquoted
        "# TYPE a counter\na{x=\"y} 1\n",            // unterminated
        "# TYPE a counter\na one\n",                 // value
        "# TYPE a counter\na 1\n# TYPE a counter\n", // twice
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\nh_sum 0\n",
        "# TYPE 1a gauge\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

async fn scrape(app: &Http) -> Exposition {
    let answer = app.get_private("metrics").await;
    assert_eq!(answer.status, 200, "{}", text(&answer.body));
    let content_type = answer.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse_exposition(&text(&answer.body)).unwrap_or_else(|e| panic!("{e}\n{}", text(&answer.body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_move_with_requests_and_need_the_token() {
    let party = EddsaPrivateKey::generate().unwrap();
    let app = common::spawn_app(&["--extern-key", &party_arg(&party)]).await;
    app.get("metrics").await.expect_error(401, 40);
    app.send(app.client.get(app.endpoint("metrics")).bearer_auth("wrong")).await.expect_error(401, 40);

    for _ in 0..3 {
        assert_eq!(app.get("config").await.status, 200);
    }
    app.get("nowhere").await.expect_error(404, 21);
    assert_eq!(app.register_reserve(ACCOUNT, "KUDOS:1").await.1.status, 200);
    let body = pdf(2, 4);
    let size: u64 = body.iter().map(|p| p.len() as u64).sum();
    assert_eq!(upload_in_parts(&app, &party, body, Duration::ZERO).await, 204);

    let m = scrape(&app).await;
    for (family, kind) in [
        ("taler_lite_http_requests_total", "counter"),
        ("taler_lite_http_request_duration_seconds", "histogram"),
        ("taler_lite_db_commits_total", "counter"),
        ("taler_lite_db_commit_group_jobs", "histogram"),
        ("taler_lite_db_writer_queue_jobs", "gauge"),
        ("taler_lite_db_size_bytes", "gauge"),
        ("taler_lite_kyc_bulk_received_bytes_total", "counter"),
        ("taler_lite_kyc_bulk_uploads_in_progress", "gauge"),
        ("taler_lite_registrations_live", "gauge"),
        ("taler_lite_long_polls_waiting", "gauge"),
    ] {
        assert_eq!(m.types.get(family).map(String::as_str), Some(kind), "{family}");
    }
    let requests = "taler_lite_http_requests_total";
    let config = [("route", "/config"), ("method", "GET"), ("status", "200")];
    assert_eq!(m.value(requests, &config), Some(3.0));
    assert_eq!(m.value(requests, &[("route", "-"), ("method", "GET"), ("status", "404")]), Some(1.0));
    let upload_route = [("route", "/kyc-bulk/{extern_pub}"), ("method", "POST"), ("status", "204")];
    assert_eq!(m.value(requests, &upload_route), Some(1.0));
    // Routes are patterns: no key, hash or unknown path appears as a label.
    let routes: HashSet<&str> = taler_lite::api::route_table().iter().map(|r| r.pattern()).collect();
    for s in m.with_name(requests) {
        let route = s.labels["route"].as_str();
        assert!(route == "-" || routes.contains(route), "route label {route}");
    }
    assert_eq!(m.value("taler_lite_kyc_bulk_received_bytes_total", &[]), Some(size as f64));
    assert_eq!(m.value("taler_lite_kyc_bulk_uploads_in_progress", &[]), Some(0.0));
    assert_eq!(m.value("taler_lite_registrations_live", &[]), Some(1.0));
    assert_eq!(m.value("taler_lite_db_writer_queue_jobs", &[]), Some(0.0));
    assert!(m.value("taler_lite_db_size_bytes", &[]).unwrap() > size as f64);
    let commits = m.value("taler_lite_db_commits_total", &[]).unwrap();
    let groups = m.value("taler_lite_db_commit_group_jobs_count", &[]).unwrap();
    assert!(commits >= 3.0 && groups == commits, "{commits} commits, {groups} groups");
    let latency = "taler_lite_http_request_duration_seconds_count";
    assert_eq!(m.value(latency, &[("route", "/config")]), Some(3.0));

    // Two more requests and a registration: the counters move by exactly that.
    for _ in 0..2 {
        assert_eq!(app.get("config").await.status, 200);
    }
    assert_eq!(app.register_reserve(ACCOUNT, "KUDOS:1").await.1.status, 200);
    let later = scrape(&app).await;
    assert_eq!(later.value(requests, &config), Some(5.0));
    assert_eq!(later.value(latency, &[("route", "/config")]), Some(5.0));
    assert_eq!(later.value("taler_lite_registrations_live", &[]), Some(2.0));
    assert!(later.value("taler_lite_db_commits_total", &[]).unwrap() > commits);
    let jobs = |e: &Exposition| e.value("taler_lite_db_commit_group_jobs_sum", &[]).unwrap();
    assert!(jobs(&later) > jobs(&m));
    // Scrapes themselves are not counted (Prometheus records them).
    assert!(later.samples.iter().all(|s| s.labels.get("route").is_none_or(|r| r != "/metrics")));
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    verify_unit(
        "contrib/taler-lite.service",
        "ExecStart=/usr/local/bin/taler-lite --database /var/lib/taler-lite/taler-lite.sqlite3 serve",
    );
}

/// The unit that runs the server under `litestream replicate -exec` (README, "Replicate it").
#[test]
fn the_litestream_unit_is_hardened_and_verifies() {
    verify_unit(
        "contrib/taler-lite-litestream.service",
        "ExecStart=/usr/local/bin/litestream replicate -config /etc/taler-lite/litestream.yml -exec \"/usr/local/bin/taler-lite --database /var/lib/taler-lite/taler-lite.sqlite3 serve\"",
    );
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/taler-lite-litestream.service"),
    )
    .unwrap();
    assert!(unit.lines().any(|l| l == "Environment=TALER_LITE_CHECKPOINTS=external"));
}

fn verify_unit(file: &str, exec_start: &str) {
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "User=taler-lite",
        "StateDirectory=taler-lite",
        "WorkingDirectory=/var/lib/taler-lite",
        exec_start,
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let found = std::process::Command::new("systemd-analyze").arg("--version").output();
    let Ok(version) = found else {
        // .ci/run installs it: under CI a missing tool is a failure, never a skip.
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "systemd-analyze is not installed");
        eprintln!(
            "systemd-analyze verify: NOT RUN (systemd-analyze is not installed; CI={:?})",
            std::env::var("CI").ok()
        );
        return;
    };
    // verify wants the ExecStart binary to exist: the one just built stands in.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("taler-lite.service");
    // verify wants the ExecStart binary to exist: the one just built stands in for both.
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/taler-lite", common::BIN)
            .replace("/usr/local/bin/litestream", common::BIN),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
    let first = text(&version.stdout).lines().next().unwrap_or_default().to_owned();
    eprintln!(
        "systemd-analyze verify: RAN ({first}): exit {:?}, {}",
        out.status.code(),
        text(&out.stderr).trim()
    );
    assert!(out.status.success(), "systemd-analyze verify: {}", text(&out.stderr));
    assert_eq!(text(&out.stderr).trim(), "", "systemd-analyze verify warned");
}

/// Log lines never hold up serving: with stderr a pipe that nobody reads (once it is full, a
/// `write` to it blocks), thousands of requests, each logged, are all answered. Before the log
/// thread (src/log_sink.rs) the workers wrote each line themselves and stopped once the
/// pipe's 64 KiB were full.
#[tokio::test]
async fn a_stderr_nobody_reads_does_not_stop_the_server() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--ephemeral"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read up to the ready line, then never again: the pipe stays open and fills.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the server ended before its ready line");
        if let Some(url) = line.trim().strip_prefix("listening on ") {
            break url.trim_end_matches('/').to_owned();
        }
    };
    let client = reqwest::Client::new();
    // About 100 bytes of log a request: several times the pipe's 64 KiB.
    let requests = 4000;
    let answered = tokio::time::timeout(Duration::from_secs(120), async {
        for i in 0..requests {
            let status = client.get(format!("{url}/config")).send().await.map(|r| r.status().as_u16());
            assert_eq!(status.ok(), Some(200), "request {i}");
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    drop(stderr);
    assert!(answered.is_ok(), "the server stopped answering once stderr was full");
}

/// `--checkpoints external` (under Litestream): the server never folds the WAL, not even when it
/// stops, so every page it committed is still in the `-wal` file for the replicator to read; with
/// the default (`auto`) a clean stop leaves one file. Either way every acknowledged registration is
/// read back. The TOML key and the environment variable choose the same as the flag.
#[tokio::test]
async fn external_checkpoints_leave_the_wal_to_the_replicator() {
    let wal_after_stop = |args: &'static [&'static str], toml: Option<&'static str>| async move {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if let Some(toml) = toml {
            let config = dir.path().join("c.toml");
            std::fs::write(&config, toml).unwrap();
            args.extend(["--config".to_owned(), config.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = TestServer::start_in(dir, &args);
        let mut keys = Vec::new();
        for _ in 0..20 {
            let (auth, answer) = server.register_reserve(ACCOUNT, "KUDOS:1").await;
            assert_eq!(answer.status, 200, "{answer:?}");
            keys.push(auth.public_key().to_string());
        }
        let db = server.db.clone();
        let (status, dir) = server.terminate();
        assert!(status.success(), "{status:?}");
        let wal = std::fs::metadata(db.with_extension("sqlite3-wal")).map_or(0, |m| m.len());
        let listed = cli(dir.path(), &db, &["registrations", "list", "--json"]);
        assert!(listed.status.success(), "{}", text(&listed.stderr));
        let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
        let listed: HashSet<&str> =
            listed.as_array().unwrap().iter().filter_map(|r| r["authorization_pub"].as_str()).collect();
        for key in &keys {
            assert!(listed.contains(key.as_str()), "registration {key} lost");
        }
        wal
    };
    assert_eq!(wal_after_stop(&[], None).await, 0, "auto: a clean stop folds the WAL");
    let wal = wal_after_stop(&["--checkpoints", "external"], None).await;
    assert!(wal > 20 * 4096, "external: a WAL of {wal} bytes after 20 commits");
    let wal = wal_after_stop(&[], Some("checkpoints = \"external\"\n")).await;
    assert!(wal > 20 * 4096, "external from the file: a WAL of {wal} bytes");
    // A bad value stops start-up with one line naming the setting.
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let refused = TestServer::try_start_in(dir, &["--checkpoints", "sometimes"]).err().unwrap();
    assert!(refused.contains("checkpoints: 'sometimes' is neither 'auto' nor 'external'"), "{refused}");
}
