//! Bulk KYC bodies and uploads: staging a body while it streams in, the
//! commit that records an upload, and reading bodies back.
//!
//! A body is written as rows of [`CHUNK_SIZE`] bytes (SQLite caps one value near
//! 1 GB) under a `kyc_contents` row whose hash is NULL until the upload is
//! committed. Each chunk is its own short, non-synced write through the writer
//! thread, so an upload never holds the write lock for long and other requests
//! are served between its chunks; the final durable commit syncs everything.
//! Staged rows of a failed or crashed upload are deleted in small batches (a
//! large body's pages must be walked to free them, and one big delete would
//! hold the writer for seconds). Each batch deletes only while its body is still
//! staged, decided by the statement that deletes: a body committed meanwhile keeps
//! every chunk. The commit in turn checks that every chunk of the body is there.

use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;
use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::params;
use serde::Serialize;

use super::{Db, Durability, Page, Store, StoreError, WriteTx};
use crate::crypto::{EddsaPublicKey, HashCode, ShortHashCode};
use crate::timestamp::Timestamp;

/// Bytes per stored chunk; every chunk but a body's last is exactly this long.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Chunks deleted per write job when discarding.
const DISCARD_BATCH: i64 = 16;

/// A body in the database, staged or stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentId(pub i64);

/// A stored body: where it is and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBody {
    pub content_id: ContentId,
    pub size: u64,
}

/// A body being staged by an upload, and the writer's generation it was begun in: once
/// the database is restored from a snapshot, its id may be another body's
/// (`crate::store::snapshots`), and every further job for it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staging {
    pub content: ContentId,
    generation: u64,
}

impl Staging {
    /// Inside a job: whether the database is still the one this body was begun in.
    fn current(&self) -> Result<(), StoreError> {
        if super::writer::generation() == self.generation { Ok(()) } else { Err(StoreError::Restored) }
    }
}

/// A body staged inside the current job ([`begin_in`]), as a [`Staging`].
pub fn staged_in(content: ContentId) -> Staging {
    Staging { content, generation: super::writer::generation() }
}

/// Starts staging a body.
pub async fn begin(store: &Store, now_us: i64) -> Result<Staging, StoreError> {
    store
        .write(Durability::Lazy, move |tx| {
            Ok(Staging { content: begin_in(tx, now_us)?, generation: super::writer::generation() })
        })
        .await
}

/// Starts staging a body inside a job (the fixtures stage a whole file in their one transaction).
pub fn begin_in(tx: &WriteTx<'_>, now_us: i64) -> Result<ContentId, StoreError> {
    tx.execute("INSERT INTO kyc_contents (h_body, size, created_us) VALUES (NULL, 0, ?1)", [now_us])?;
    Ok(ContentId(tx.last_insert_rowid()))
}

/// Queues chunk `seq` of a staged body (now); the future resolves once written.
pub fn append(
    store: &Store,
    staged: Staging,
    seq: i64,
    data: Bytes,
) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
    store.write(Durability::Lazy, move |tx| {
        staged.current()?;
        append_in(tx, staged.content, seq, &data)
    })
}

/// Writes chunk `seq` of a staged body inside a job.
pub fn append_in(tx: &WriteTx<'_>, content: ContentId, seq: i64, data: &[u8]) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO kyc_chunks (content_id, seq, data) VALUES (?1, ?2, ?3)",
        params![content.0, seq, data],
    )?;
    Ok(())
}

/// Deletes a staged body, a few chunks per write job; nothing once the database was
/// restored from a snapshot (the body went with the state it was staged in), and never
/// a chunk of a body that is no longer staged (committed by an upload meanwhile).
pub async fn discard(store: &Store, staged: Staging) -> Result<(), StoreError> {
    discard_content(store, staged.content, Some(staged)).await
}

async fn discard_content(
    store: &Store,
    content: ContentId,
    staged: Option<Staging>,
) -> Result<(), StoreError> {
    let gone = move || staged.is_some_and(|s| s.current().is_err());
    loop {
        let deleted = store
            .write(Durability::Lazy, move |tx| {
                if gone() {
                    return Ok(0);
                }
                tx.execute(
                    "DELETE FROM kyc_chunks WHERE content_id = ?1 AND seq IN
                       (SELECT seq FROM kyc_chunks WHERE content_id = ?1 ORDER BY seq LIMIT ?2)
                     AND EXISTS (SELECT 1 FROM kyc_contents WHERE content_id = ?1 AND h_body IS NULL)",
                    params![content.0, DISCARD_BATCH],
                )
            })
            .await?;
        if deleted == 0 {
            break;
        }
    }
    store
        .write(Durability::Lazy, move |tx| {
            if gone() {
                return Ok(());
            }
            tx.execute("DELETE FROM kyc_contents WHERE content_id = ?1 AND h_body IS NULL", [content.0])
                .map(|_| ())
        })
        .await
}

/// Discards in the background (a failed upload's answer need not wait for it), then gives
/// the space back to the file system ([`super::space`]). `held` (the upload's share of the
/// staging budget) is dropped only once the body's rows are deleted, so that what is
/// staged never passes the budget; or, when they cannot be, when the attempt ends.
pub fn discard_later<H: Send + 'static>(store: &Store, staged: Staging, held: H) {
    let store = store.clone();
    let id = staged.content.0;
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                let discarded = discard(&store, staged).await;
                drop(held);
                match discarded {
                    Ok(()) => super::space::reclaim_later(&store),
                    Err(e) => log::warn!("cannot discard staged upload {id} (removed at next start): {e}"),
                }
            });
        }
        Err(_) => log::warn!("staged upload {id} left for the next start"),
    }
}

/// Removes what uploads interrupted by a crash left staged, then gives the space back to
/// the file system in the background.
pub async fn discard_all_staged(store: &Store) -> Result<usize, StoreError> {
    let staged = store
        .read(|db| {
            db.query_all("SELECT content_id FROM kyc_contents WHERE h_body IS NULL", [], |r| {
                r.get("content_id")
            })
        })
        .await?;
    for id in &staged {
        discard_content(store, ContentId(*id), None).await?;
    }
    super::space::reclaim_later(store);
    Ok(staged.len())
}

/// The stored body with this hash: of a `kyc_contents` row, what every read of a stored body
/// needs (on every upload's path: the two columns, by name).
pub fn find(db: &Db<'_>, h_body: &HashCode) -> Result<Option<StoredBody>, StoreError> {
    Ok(db
        .query_optional("SELECT content_id, size FROM kyc_contents WHERE h_body = ?1", [h_body], |r| {
            Ok((r.get::<_, i64>("content_id")?, r.get::<_, i64>("size")?))
        })?
        .map(|(id, size)| StoredBody { content_id: ContentId(id), size: u64::try_from(size).unwrap_or(0) }))
}

/// Whether this customer already has an upload of this body.
pub fn is_known(db: &Db<'_>, h_customer: &ShortHashCode, h_body: &HashCode) -> Result<bool, StoreError> {
    Ok(db
        .query_optional(
            "SELECT 1 FROM kyc_uploads WHERE h_normalized_payto = ?1 AND h_body = ?2",
            params![h_customer, h_body],
            |_| Ok(()),
        )?
        .is_some())
}

/// A row of `kyc_uploads`. Every read of the table gives this, its columns read by name
/// ([`upload_row`]); the operator API's [`UploadEntry`] and the console's lists are built from it.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub upload_id: i64,
    pub content_id: ContentId,
    pub extern_pub: EddsaPublicKey,
    /// As sent.
    pub payto: String,
    pub h_normalized_payto: ShortHashCode,
    pub h_body: HashCode,
    pub content_type: String,
    pub size: u64,
    pub uploaded_us: i64,
}

/// The columns [`upload_row`] reads, as a literal for `concat!` (one `&'static str` per statement).
macro_rules! upload_columns {
    () => {
        "upload_id, content_id, extern_pub, payto, h_normalized_payto, h_body, content_type, size, uploaded_us"
    };
}
pub(super) use upload_columns;

/// A row of [`upload_columns!`].
pub fn upload_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok(UploadRow {
        upload_id: r.get("upload_id")?,
        content_id: ContentId(r.get("content_id")?),
        extern_pub: r.get("extern_pub")?,
        payto: r.get("payto")?,
        h_normalized_payto: r.get("h_normalized_payto")?,
        h_body: r.get("h_body")?,
        content_type: r.get("content_type")?,
        size: u64::try_from(r.get::<_, i64>("size")?).unwrap_or(0),
        uploaded_us: r.get("uploaded_us")?,
    })
}

impl UploadRow {
    pub fn uploaded(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.uploaded_us)
    }
}

/// The upload this customer has of this body.
pub fn upload_of(
    db: &Db<'_>,
    h_customer: &ShortHashCode,
    h_body: &HashCode,
) -> Result<Option<UploadRow>, StoreError> {
    db.query_optional(
        concat!(
            "SELECT ",
            upload_columns!(),
            " FROM kyc_uploads WHERE h_normalized_payto = ?1 AND h_body = ?2"
        ),
        params![h_customer, h_body],
        upload_row,
    )
}

/// One chunk of a body.
pub fn read_chunk(db: &Db<'_>, content: ContentId, seq: i64) -> Result<Bytes, StoreError> {
    db.query_optional(
        "SELECT data FROM kyc_chunks WHERE content_id = ?1 AND seq = ?2",
        params![content.0, seq],
        |r| r.get::<_, Vec<u8>>("data"),
    )?
    .map(Bytes::from)
    .ok_or_else(|| StoreError::Invariant(format!("chunk {seq} of content {} is missing", content.0)))
}

/// An upload to record.
pub struct UploadRecord {
    pub extern_pub: EddsaPublicKey,
    pub payto: String,
    pub h_customer: ShortHashCode,
    pub h_body: HashCode,
    pub content_type: String,
    pub size: u64,
    pub uploaded_us: i64,
}

/// How recording an upload went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored. A staged body that turned out to duplicate a stored one comes
    /// back, to be discarded.
    Stored { duplicate: Option<Staging> },
    /// The third party was disabled while the body streamed in.
    ExternUnknown,
    /// This customer already has this body (a concurrent upload won, or it
    /// was there before and the client did not say the hash).
    AlreadyKnown,
}

/// Stores the body once per hash (taking over `staged`, or referring to the
/// stored copy) and records the upload.
pub fn record_upload(
    tx: &WriteTx<'_>,
    staged: Option<Staging>,
    r: &UploadRecord,
) -> Result<Recorded, StoreError> {
    if let Some(staged) = &staged {
        staged.current()?;
    }
    let staged_content = staged.map(|s| s.content);
    if !super::extern_keys::is_active(tx, &r.extern_pub)? {
        return Ok(Recorded::ExternUnknown);
    }
    let size = i64::try_from(r.size).map_err(|_| StoreError::Invariant("size overflow".into()))?;
    let (content, duplicate) = match (find(tx, &r.h_body)?, staged_content) {
        (Some(stored), _) => (stored.content_id, staged),
        (None, Some(id)) => {
            // Every chunk of the body must be there (and the body still staged): a 2xx
            // is never given for a body that is not whole.
            let chunks: i64 = tx
                .query_optional(
                    "SELECT count(*) AS chunks FROM kyc_chunks WHERE content_id = ?1",
                    [id.0],
                    |r| r.get("chunks"),
                )?
                .unwrap_or(0);
            let expected = i64::try_from(r.size.div_ceil(CHUNK_SIZE as u64)).unwrap_or(i64::MAX);
            let updated = tx.execute(
                "UPDATE kyc_contents SET h_body = ?2, size = ?3 WHERE content_id = ?1 AND h_body IS NULL",
                params![id.0, r.h_body, size],
            )?;
            if chunks != expected || updated != 1 {
                return Err(StoreError::Invariant(format!(
                    "staged body {} has {chunks} of {expected} chunks{}",
                    id.0,
                    if updated == 1 { "" } else { " and is no longer staged" }
                )));
            }
            (id, None)
        }
        (None, None) => return Err(StoreError::Invariant("the stored body vanished".into())),
    };
    let inserted = tx.execute(
        "INSERT INTO kyc_uploads (content_id, extern_pub, payto, h_normalized_payto, h_body, content_type, size, uploaded_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (h_normalized_payto, h_body) DO NOTHING",
        params![content.0, r.extern_pub, r.payto, r.h_customer, r.h_body, r.content_type, size, r.uploaded_us],
    )?;
    if inserted == 0 {
        return Ok(Recorded::AlreadyKnown);
    }
    Ok(Recorded::Stored { duplicate })
}

/// An upload as the operator API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct UploadEntry {
    pub row_id: i64,
    pub h_body: HashCode,
    pub content_type: String,
    pub size: u64,
    pub uploaded_at: Timestamp,
    pub extern_pub: EddsaPublicKey,
    pub extern_name: String,
    pub payto: String,
}

impl UploadEntry {
    /// The view of a row, with the name of the third party that sent it.
    pub fn of(row: UploadRow, extern_name: String) -> UploadEntry {
        UploadEntry {
            row_id: row.upload_id,
            uploaded_at: row.uploaded(),
            h_body: row.h_body,
            content_type: row.content_type,
            size: row.size,
            extern_pub: row.extern_pub,
            extern_name,
            payto: row.payto,
        }
    }
}

/// Uploads, of one customer (by normalized payto) or of all, a page at a time.
pub fn list(
    db: &Db<'_>,
    customer: Option<ShortHashCode>,
    page: &Page,
) -> Result<Vec<UploadEntry>, StoreError> {
    let sql = format!(
        concat!(
            "SELECT ",
            upload_columns!(),
            ", (SELECT name FROM extern_keys e WHERE e.extern_pub = kyc_uploads.extern_pub) AS extern_name
             FROM kyc_uploads WHERE (?1 IS NULL OR h_normalized_payto = ?1) AND {}
             ORDER BY upload_id {} LIMIT ?3"
        ),
        page.condition("upload_id", "?2"),
        page.order()
    );
    db.query_all(&sql, params![customer, page.start, page.limit], |r| {
        Ok(UploadEntry::of(upload_row(r)?, r.get("extern_name")?))
    })
}

/// A stored body and the Content-Type it was last uploaded with.
#[derive(Debug, Clone)]
pub struct Blob {
    pub body: StoredBody,
    pub content_type: String,
}

/// The stored body with this hash, for reading back.
pub fn find_blob(db: &Db<'_>, h_body: &HashCode) -> Result<Option<Blob>, StoreError> {
    let Some(body) = find(db, h_body)? else { return Ok(None) };
    let content_type = db
        .query_optional(
            "SELECT content_type FROM kyc_uploads WHERE content_id = ?1 ORDER BY upload_id DESC LIMIT 1",
            [body.content_id.0],
            |r| r.get("content_type"),
        )?
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok(Some(Blob { body, content_type }))
}

/// A stored or staged body as `Read + Seek`, one chunk in memory at a time: the
/// ZIP check reads an archive's central directory and entry headers through it.
/// Holds a pooled connection: for blocking threads doing bounded work only.
pub struct ChunkReader {
    conn: PooledConnection<SqliteConnectionManager>,
    body: StoredBody,
    pos: u64,
    cached: Option<(i64, Bytes)>,
}

impl ChunkReader {
    pub fn new(store: &Store, body: StoredBody) -> Result<ChunkReader, StoreError> {
        Ok(ChunkReader { conn: store.reader()?, body, pos: 0, cached: None })
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.body.size || buf.is_empty() {
            return Ok(0);
        }
        let seq = i64::try_from(self.pos / CHUNK_SIZE as u64).map_err(io::Error::other)?;
        if self.cached.as_ref().map(|(s, _)| *s) != Some(seq) {
            let data =
                read_chunk(&Db::new(&self.conn), self.body.content_id, seq).map_err(io::Error::other)?;
            self.cached = Some((seq, data));
        }
        let data = self.cached.as_ref().map(|(_, d)| d.as_ref()).unwrap_or_default();
        let offset = (self.pos % CHUNK_SIZE as u64) as usize;
        let available = data.get(offset..).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ChunkReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.body.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
