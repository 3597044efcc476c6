//! `taler-lite check`: is the file sound?
//!
//! Everything runs in one read transaction on a pooled read-only connection,
//! so a check of the file a server is writing judges one consistent snapshot
//! and never writes, migrates or blocks the server. What it looks at:
//! SQLite's own `integrity_check` and `foreign_key_check`; every stored body
//! (chunks `0..n` without gaps, each but the last exactly [`CHUNK_SIZE`], their
//! sizes adding up to `kyc_contents.size`, and their SHA-512, streamed, equal
//! to `h_body`); uploads that point at a body of another hash; staged bodies
//! (`h_body` NULL) older than the allowed age; and live registrations whose
//! stored derived subjects are not the ones their key derives.
//!
//! "Older than the server's start" is not something the file records, so a
//! staged body counts as left over when it is older than
//! [`CheckOptions::staged_max_age`]: `serve` deletes every staged body when it
//! starts, so a younger one is an upload streaming in right now, an older one
//! was missed by that clean-up (or belongs to an upload slower than the limit).

use std::fmt;
use std::time::Duration;

use rusqlite::Connection;
use sha2::{Digest, Sha512};

use super::kyc::CHUNK_SIZE;
use super::{Store, StoreError, backup};
use crate::crypto::{EddsaPublicKey, HashCode};
use crate::subject;

/// What the check compares with.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The server's `short_subject_length`: the stored short subjects were derived with it.
    pub short_subject_length: usize,
    /// The server's `qr_reference_prefix`.
    pub qr_reference_prefix: String,
    /// A staged body older than this is left over.
    pub staged_max_age: Duration,
    /// Now, in microseconds since the epoch.
    pub now_us: i64,
}

/// Something wrong with the file: one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A line of `PRAGMA integrity_check` other than "ok".
    Integrity(String),
    /// A row of `PRAGMA foreign_key_check`.
    ForeignKey { table: String, rowid: Option<i64>, parent: String },
    /// Chunks absent from a stored body's sequence.
    ChunksMissing { body: BodyRef, missing: Vec<i64>, expected: i64 },
    /// A chunk other than the last that is not exactly [`CHUNK_SIZE`] bytes
    /// (or a last one that is empty or longer).
    ChunkSize { body: BodyRef, seq: i64, len: u64 },
    /// The chunks add up to another size than the one recorded.
    BodySize { body: BodyRef, recorded: u64, stored: u64 },
    /// The chunks are all there but hash to something else.
    BodyHash { body: BodyRef, actual: HashCode },
    /// An upload whose body has another hash than the upload records (or is still staged).
    UploadBody { upload_id: i64, h_body: HashCode },
    /// A staged body older than the allowed age.
    StagedLeftOver { content_id: i64, created_us: i64, chunks: u64, bytes: u64, max_age: Duration },
    /// A live registration's stored subject is not the one its key derives.
    Subject {
        registration_id: i64,
        authorization_pub: EddsaPublicKey,
        format: &'static str,
        stored: String,
        derived: String,
    },
}

/// A stored body, as findings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRef {
    pub content_id: i64,
    pub h_body: HashCode,
}

impl fmt::Display for BodyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "body {} (content_id {})", self.h_body, self.content_id)
    }
}

/// Microseconds since the epoch as RFC 3339, or the number when out of range.
fn time_text(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{us} us"))
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Integrity(line) => write!(f, "integrity_check: {line}"),
            Finding::ForeignKey { table, rowid, parent } => {
                let row = rowid.map(|r| format!(" row {r}")).unwrap_or_default();
                write!(f, "foreign_key_check: {table}{row} refers to a missing {parent} row")
            }
            Finding::ChunksMissing { body, missing, expected } => {
                let shown: Vec<String> = missing.iter().take(10).map(i64::to_string).collect();
                let more = if missing.len() > 10 {
                    format!(" and {} more", missing.len() - 10)
                } else {
                    String::new()
                };
                write!(f, "{body}: incomplete, chunk(s) {}{more} missing of {expected}", shown.join(", "))
            }
            Finding::ChunkSize { body, seq, len } => {
                write!(
                    f,
                    "{body}: chunk {seq} holds {len} bytes, not {CHUNK_SIZE} (only the last may be shorter)"
                )
            }
            Finding::BodySize { body, recorded, stored } => {
                write!(f, "{body}: its chunks hold {stored} bytes, kyc_contents.size says {recorded}")
            }
            Finding::BodyHash { body, actual } => {
                write!(f, "{body}: its chunks hash to {actual}, not to its h_body")
            }
            Finding::UploadBody { upload_id, h_body } => {
                write!(f, "upload row {upload_id}: its body is not the stored body {h_body}")
            }
            Finding::StagedLeftOver { content_id, created_us, chunks, bytes, max_age } => write!(
                f,
                "staged upload (content_id {content_id}, started {}, {chunks} chunk(s), {bytes} bytes) left over: older than {} minutes",
                time_text(*created_us),
                max_age.as_secs() / 60
            ),
            Finding::Subject { registration_id, authorization_pub, format, stored, derived } => write!(
                f,
                "registration {authorization_pub} (row {registration_id}): stored {format} {stored} does not match its key (derived: {derived})"
            ),
        }
    }
}

/// Told about the check as it goes: progress, and each finding as it is found.
pub trait Observer {
    /// A step begins ("integrity_check", "bodies", ...).
    fn step(&mut self, name: &'static str);
    /// The bodies to hash, in bytes, before the first.
    fn bodies(&mut self, total_bytes: u64);
    /// `n` more bytes hashed.
    fn hashed(&mut self, n: u64);
    fn finding(&mut self, finding: &Finding);
}

/// What was checked.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub schema_version: i64,
    pub bodies: u64,
    pub body_bytes: u64,
    pub uploads: u64,
    pub staged: u64,
    pub live_registrations: u64,
    pub findings: u64,
    /// Rows per table of the file ([`super::stats::row_counts`]: every table, as `backup`
    /// reports them and `reset` empties them).
    pub rows: Vec<(String, u64)>,
}

/// Runs every check on a snapshot of `store` (opened read-only or not).
pub fn check(
    store: &Store,
    options: &CheckOptions,
    observer: &mut dyn Observer,
) -> Result<Summary, StoreError> {
    let conn = store.reader()?;
    backup::begin_snapshot(&conn)?;
    let result = run(&conn, options, observer);
    // A read transaction: ending it cannot lose anything.
    let _ = conn.execute_batch("COMMIT");
    result
}

/// Passes findings on and counts them.
struct Counting<'o> {
    observer: &'o mut dyn Observer,
    findings: u64,
}

impl Counting<'_> {
    fn report(&mut self, finding: Finding) {
        self.findings += 1;
        self.observer.finding(&finding);
    }
}

fn run(
    conn: &Connection,
    options: &CheckOptions,
    observer: &mut dyn Observer,
) -> Result<Summary, StoreError> {
    let mut summary = Summary {
        schema_version: conn.query_row("PRAGMA user_version", [], |r| r.get(0))?,
        ..Summary::default()
    };
    let mut out = Counting { observer, findings: 0 };

    out.observer.step("rows");
    summary.rows = super::stats::row_counts(&super::Db::new(conn))?;

    out.observer.step("integrity_check");
    for line in backup::integrity_problems(conn)? {
        out.report(Finding::Integrity(line));
    }

    out.observer.step("foreign_key_check");
    {
        let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            out.report(Finding::ForeignKey { table: r.get(0)?, rowid: r.get(1)?, parent: r.get(2)? });
        }
    }

    out.observer.step("bodies");
    check_bodies(conn, &mut out, &mut summary)?;

    out.observer.step("uploads");
    {
        summary.uploads =
            conn.query_row("SELECT count(*) FROM kyc_uploads", [], |r| r.get::<_, i64>(0))?.max(0) as u64;
        let mut stmt = conn.prepare(
            "SELECT u.upload_id, u.h_body FROM kyc_uploads u LEFT JOIN kyc_contents c ON c.content_id = u.content_id
             WHERE c.h_body IS NOT u.h_body ORDER BY u.upload_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            out.report(Finding::UploadBody { upload_id: r.get(0)?, h_body: r.get(1)? });
        }
    }

    out.observer.step("staged uploads");
    {
        let max_age_us = i64::try_from(options.staged_max_age.as_micros()).unwrap_or(i64::MAX);
        let cutoff = options.now_us.saturating_sub(max_age_us);
        let mut stmt = conn.prepare(
            "SELECT c.content_id, c.created_us, count(k.seq), coalesce(sum(length(k.data)), 0)
             FROM kyc_contents c LEFT JOIN kyc_chunks k ON k.content_id = c.content_id
             WHERE c.h_body IS NULL GROUP BY c.content_id ORDER BY c.content_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            summary.staged += 1;
            let created_us: i64 = r.get(1)?;
            if created_us < cutoff {
                out.report(Finding::StagedLeftOver {
                    content_id: r.get(0)?,
                    created_us,
                    chunks: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    bytes: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    max_age: options.staged_max_age,
                });
            }
        }
    }

    out.observer.step("registrations");
    check_registrations(conn, options, &mut out, &mut summary)?;

    summary.findings = out.findings;
    Ok(summary)
}

fn check_bodies(conn: &Connection, out: &mut Counting<'_>, summary: &mut Summary) -> Result<(), StoreError> {
    let bodies: Vec<(BodyRef, u64)> = {
        let mut stmt = conn.prepare(
            "SELECT content_id, h_body, size FROM kyc_contents WHERE h_body IS NOT NULL ORDER BY content_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                BodyRef { content_id: r.get(0)?, h_body: r.get(1)? },
                u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            ))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    summary.bodies = bodies.len() as u64;
    summary.body_bytes = bodies.iter().map(|(_, size)| size).sum();
    out.observer.bodies(summary.body_bytes);
    let chunk = CHUNK_SIZE as u64;
    let mut stmt = conn.prepare("SELECT seq, data FROM kyc_chunks WHERE content_id = ?1 ORDER BY seq")?;
    for (body, recorded) in bodies {
        let expected = i64::try_from(recorded.div_ceil(chunk)).unwrap_or(i64::MAX);
        let mut hasher = Sha512::new();
        let mut missing = Vec::new();
        let mut next_seq = 0i64;
        let mut stored = 0u64;
        // (seq, length) of the chunk before, judged once it is known not to be the last.
        let mut previous: Option<(i64, u64)> = None;
        let mut size_findings = Vec::new();
        let mut rows = stmt.query([body.content_id])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let data = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            let len = data.len() as u64;
            missing.extend(next_seq..seq.min(next_seq.saturating_add(1_000_000)));
            next_seq = seq.saturating_add(1);
            if let Some((seq, len)) = previous
                && len != chunk
            {
                size_findings.push(Finding::ChunkSize { body, seq, len });
            }
            previous = Some((seq, len));
            stored += len;
            hasher.update(data);
            out.observer.hashed(len);
        }
        if let Some((seq, len)) = previous
            && (len == 0 || len > chunk)
        {
            size_findings.push(Finding::ChunkSize { body, seq, len });
        }
        missing.extend(next_seq..expected.min(next_seq.saturating_add(1_000_000)));
        let sound = missing.is_empty() && size_findings.is_empty() && stored == recorded;
        if !missing.is_empty() {
            out.report(Finding::ChunksMissing { body, missing, expected });
        }
        for finding in size_findings {
            out.report(finding);
        }
        if stored != recorded {
            out.report(Finding::BodySize { body, recorded, stored });
        }
        // A body that is incomplete is not also reported as hashing wrong.
        let digest: [u8; 64] = hasher.finalize().into();
        let actual = HashCode::from_bytes(digest);
        if sound && actual != body.h_body {
            out.report(Finding::BodyHash { body, actual });
        }
    }
    Ok(())
}

fn check_registrations(
    conn: &Connection,
    options: &CheckOptions,
    out: &mut Counting<'_>,
    summary: &mut Summary,
) -> Result<(), StoreError> {
    let now_s = options.now_us.div_euclid(1_000_000);
    let mut stmt = conn.prepare(concat!(
        "SELECT ",
        super::registrations::columns!(),
        " FROM registrations WHERE expiration_s > ?1 ORDER BY registration_id"
    ))?;
    let mut rows = stmt.query([now_s])?;
    while let Some(r) = rows.next()? {
        summary.live_registrations += 1;
        let row = super::registrations::row(r)?;
        let (registration_id, authorization_pub) = (row.registration_id, row.authorization_pub);
        let key = authorization_pub.as_bytes();
        // A NULL subject is a format the server's settings do not use: nothing to compare.
        if let Some(stored) = row.registration.short_subject {
            let derived = subject::short_subject(key, options.short_subject_length);
            if stored != derived {
                out.report(Finding::Subject {
                    registration_id,
                    authorization_pub,
                    format: "short subject",
                    stored,
                    derived,
                });
            }
        }
        if let Some(stored) = row.registration.qr_reference {
            let derived = subject::qr_reference(key, &options.qr_reference_prefix)
                .map_err(|e| StoreError::Invariant(format!("--qr-reference-prefix: {e}")))?;
            if stored != derived {
                out.report(Finding::Subject {
                    registration_id,
                    authorization_pub,
                    format: "QR reference",
                    stored,
                    derived,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, OpenOptions, kyc};

    #[derive(Default)]
    struct Collect(Vec<String>, u64);

    impl Observer for Collect {
        fn step(&mut self, _: &'static str) {}
        fn bodies(&mut self, _: u64) {}
        fn hashed(&mut self, n: u64) {
            self.1 += n;
        }
        fn finding(&mut self, finding: &Finding) {
            self.0.push(finding.to_string());
        }
    }

    fn options(now_us: i64) -> CheckOptions {
        CheckOptions {
            short_subject_length: 12,
            qr_reference_prefix: String::new(),
            staged_max_age: Duration::from_secs(3600),
            now_us,
        }
    }

    /// A store holding one body of 2.5 chunks, committed.
    fn store_with_body(dir: &Path) -> (Store, Vec<u8>) {
        let store = Store::open(&dir.join("t.sqlite3"), &OpenOptions::default()).unwrap();
        let body: Vec<u8> = (0..CHUNK_SIZE * 5 / 2).map(|i| (i % 251) as u8).collect();
        let digest: [u8; 64] = Sha512::digest(&body).into();
        let h_body = HashCode::from_bytes(digest);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let id = kyc::begin(&store, 1).await.unwrap();
            for (seq, part) in body.chunks(CHUNK_SIZE).enumerate() {
                kyc::append(&store, id, seq as i64, bytes::Bytes::copy_from_slice(part)).await.unwrap();
            }
            let size = body.len() as i64;
            store
                .write(Durability::Durable, move |tx| {
                    tx.execute(
                        "UPDATE kyc_contents SET h_body = ?2, size = ?3 WHERE content_id = ?1",
                        rusqlite::params![id.content.0, h_body, size],
                    )
                })
                .await
                .unwrap();
        });
        (store, body)
    }

    use std::path::Path;

    fn edit(store: &Store, sql: &str) {
        let sql = sql.to_owned();
        store.write_blocking(move |tx| tx.execute(&sql, [])).unwrap();
    }

    #[test]
    fn a_sound_body_passes_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (store, body) = store_with_body(dir.path());
        let mut seen = Collect::default();
        let summary = check(&store, &options(10), &mut seen).unwrap();
        assert_eq!(seen.0, Vec::<String>::new());
        assert_eq!((summary.bodies, summary.body_bytes, summary.findings), (1, body.len() as u64, 0));
        assert_eq!(seen.1, body.len() as u64);

        edit(&store, "UPDATE kyc_chunks SET data = zeroblob(length(data)) WHERE seq = 2");
        let mut seen = Collect::default();
        check(&store, &options(10), &mut seen).unwrap();
        assert_eq!(seen.0.len(), 1, "{:?}", seen.0);
        assert!(seen.0[0].contains("hash to"), "{:?}", seen.0);

        edit(&store, "DELETE FROM kyc_chunks WHERE seq = 1");
        let mut seen = Collect::default();
        let summary = check(&store, &options(10), &mut seen).unwrap();
        assert!(seen.0.iter().any(|l| l.contains("chunk(s) 1 missing of 3")), "{:?}", seen.0);
        assert!(seen.0.iter().any(|l| l.contains("kyc_contents.size")), "{:?}", seen.0);
        assert_eq!(summary.findings, seen.0.len() as u64);
        store.close();
    }

    #[test]
    fn staged_bodies_count_only_when_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.sqlite3"), &OpenOptions::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let now = 10_000_000_000_000;
        rt.block_on(kyc::begin(&store, now - 1_000)).unwrap();
        let mut seen = Collect::default();
        assert_eq!(check(&store, &options(now), &mut seen).unwrap().staged, 1);
        assert!(seen.0.is_empty(), "{:?}", seen.0);
        let later = now + 3_600_000_001;
        let mut seen = Collect::default();
        check(&store, &options(later), &mut seen).unwrap();
        assert_eq!(seen.0.len(), 1);
        assert!(seen.0[0].starts_with("staged upload (content_id 1"), "{:?}", seen.0);
        store.close();
    }
}
