//! Start-up honours a signal and the end of standard input at every step that can take
//! long (README "Known limits"): reading and hashing a fixture's file of gigabytes, the
//! one-time conversion of an older database (`VACUUM`), and the start-up clean-up of staged
//! uploads. A stopped start exits cleanly, leaves no key, token or lock file it made, and
//! leaves the database as it was. Against the real binary.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::robust::PAYTO;
use taler_lite::crypto::EddsaPrivateKey;

/// A `serve` that may never become ready, and its log as it comes.
struct Starting {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Starting {
    fn spawn(dir: &Path, args: &[&str], stdin: Stdio) -> Starting {
        let mut child = Command::new(common::BIN)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .args(["serve", "--listen", "127.0.0.1:0", "--database", "taler-lite.sqlite3"])
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (log, _) = common::collect_lines(child.stderr.take().unwrap());
        Starting { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) for a log line containing `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log().contains(text) {
            assert!(self.child.try_wait().unwrap().is_none(), "exited before {text:?}:\n{}", self.log());
            assert!(Instant::now() < deadline, "no {text:?} in the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn signal(&self, name: &str) {
        assert!(
            Command::new("kill")
                .arg(format!("-{name}"))
                .arg(self.child.id().to_string())
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits (bounded, generously: the point is that it exits at all, not how fast) for the
    /// exit; its status and log.
    fn exit(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The log thread ends with the pipe.
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still starting 60 s after it was stopped:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A fixture file whose `[[upload]]` names a sparse 4 GiB PDF (a few seconds of hashing at
/// best, twice: once to check, once to store): the start is stopped while it is read.
fn big_fixture(dir: &Path) {
    let party = EddsaPrivateKey::generate().unwrap().public_key();
    let file = std::fs::File::create(dir.join("scan.pdf")).unwrap();
    std::io::Write::write_all(&mut &file, b"%PDF-1.7\n").unwrap();
    file.set_len(4 << 30).unwrap();
    std::fs::write(
        dir.join("fixtures.toml"),
        format!(
            "[[extern]]\npub = \"{party}\"\nname = \"Acme\"\n\n[[upload]]\nextern_pub = \"{party}\"\npayto = \"{PAYTO}\"\nfile = \"scan.pdf\"\n"
        ),
    )
    .unwrap();
}

fn stopped_while_reading_the_fixtures(stop: impl FnOnce(&mut Starting), stdin: Stdio, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    big_fixture(dir.path());
    let before = files(dir.path());
    let args = [&["--fixtures", "fixtures.toml", "--max-upload", "8GiB"][..], extra].concat();
    let mut starting = Starting::spawn(dir.path(), &args, stdin);
    starting.wait_for("[[upload]] entries: reading and hashing 1 file(s)");
    stop(&mut starting);
    let (status, log) = starting.exit();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("start-up stopped while preparing the fixtures"), "{log}");
    // Neither the database nor the key, token or lock file: nothing this start made.
    assert_eq!(files(dir.path()), before, "{log}");
}

#[test]
fn sigterm_while_a_large_fixture_file_is_hashed_stops_start_up() {
    stopped_while_reading_the_fixtures(|s| s.signal("TERM"), Stdio::null(), &[]);
}

#[test]
fn sigint_while_a_large_fixture_file_is_hashed_stops_start_up() {
    stopped_while_reading_the_fixtures(|s| s.signal("INT"), Stdio::null(), &[]);
}

#[test]
fn stdin_eof_while_a_large_fixture_file_is_hashed_stops_start_up() {
    stopped_while_reading_the_fixtures(
        |s| drop(s.child.stdin.take().expect("stdin piped")),
        Stdio::piped(),
        &["--exit-on-stdin-eof"],
    );
}

/// An older database (schema version 3, no auto-vacuum) holding a staged body of 256 MiB
/// that a crash left: SIGTERM while it is converted stops the `VACUUM` and leaves the file as
/// it was (version 3, the staged body there); the next start converts it, removes the staged
/// body and gives its space back to the file system.
#[test]
fn sigterm_during_the_conversion_of_an_older_database_leaves_it_as_it_was() {
    // A current file, made a version 3 one: version 4 only added auto-vacuum.
    let (status, dir) = common::TestServer::start(&[]).terminate();
    assert!(status.success());
    let db = dir.path().join("taler-lite.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 4);
    conn.execute_batch(
        "PRAGMA auto_vacuum=NONE; VACUUM; PRAGMA user_version=3;
         INSERT INTO kyc_contents (content_id, h_body, size, created_us) VALUES (1, NULL, 0, 0);
         WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 255)
         INSERT INTO kyc_chunks (content_id, seq, data) SELECT 1, n, randomblob(1048576) FROM s;",
    )
    .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    drop(conn);
    let state = || {
        let conn = common::open_db(&db);
        conn.query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), (SELECT auto_vacuum FROM pragma_auto_vacuum),
                    (SELECT count(*) FROM kyc_chunks)",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
        )
        .unwrap()
    };
    assert_eq!(state(), (3, 0, 256));
    let big = std::fs::metadata(&db).unwrap().len();

    let mut starting = Starting::spawn(dir.path(), &[], Stdio::null());
    starting.wait_for("to incremental auto-vacuum, once");
    starting.signal("TERM");
    let (status, log) = starting.exit();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("start-up stopped while opening the database"), "{log}");
    assert_eq!(state(), (3, 0, 256), "{log}");

    // Started again and left alone: converted, cleaned up, and the file back to its size
    // without the body.
    let server = common::TestServer::start_in(dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (version, mode, chunks) = state();
        let size = std::fs::metadata(&db).unwrap().len();
        if (version, mode, chunks) == (4, 2, 0) && size < big / 8 {
            break;
        }
        assert!(Instant::now() < deadline, "{version} {mode} {chunks} {size} of {big}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.log().contains("removed 1 staged upload(s)"), "{}", server.log());
}
