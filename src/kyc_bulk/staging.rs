//! Bodies in the database: staging while they stream in, reading them back.
//!
//! A body is written as rows of [`CHUNK_SIZE`] bytes (SQLite caps one value near
//! 1 GB) under a `kyc_contents` row whose hash is NULL until the upload is
//! committed. Each chunk is its own short, non-synced write through the writer
//! thread, so an upload never holds the write lock for long and other requests
//! are served between its chunks; the final durable commit syncs everything.
//! Staged rows of a failed or crashed upload are deleted in small batches (a
//! large body's pages must be walked to free them, and one big delete would
//! hold the writer for seconds).

use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;
use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{OptionalExtension, params};

use crate::crypto::HashCode;
use crate::error::ApiError;
use crate::store::{Durability, Store, StoreError};

/// Bytes per stored chunk; every chunk but a body's last is exactly this long.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Chunks deleted per write job when discarding.
const DISCARD_BATCH: i64 = 16;

/// Starts staging a body; returns its `content_id`.
pub async fn begin(store: &Store, now_us: i64) -> Result<i64, ApiError> {
    store
        .write_with(Durability::Lazy, move |conn| {
            conn.execute(
                "INSERT INTO kyc_contents (h_body, size, created_us) VALUES (NULL, 0, ?1)",
                [now_us],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
}

/// Queues chunk `seq` of a staged body (now); the future resolves once written.
pub fn append(
    store: &Store,
    content_id: i64,
    seq: i64,
    data: Bytes,
) -> impl Future<Output = Result<(), ApiError>> + Send + use<> {
    store.write_with(Durability::Lazy, move |conn| {
        conn.prepare_cached("INSERT INTO kyc_chunks (content_id, seq, data) VALUES (?1, ?2, ?3)")?
            .execute(params![content_id, seq, data.as_ref()])?;
        Ok(())
    })
}

/// Deletes a staged body, a few chunks per write job.
pub async fn discard(store: &Store, content_id: i64) -> Result<(), StoreError> {
    loop {
        let deleted = store
            .write_with(Durability::Lazy, move |conn| {
                Ok::<_, StoreError>(conn.execute(
                    "DELETE FROM kyc_chunks WHERE content_id = ?1 AND seq IN
                       (SELECT seq FROM kyc_chunks WHERE content_id = ?1 ORDER BY seq LIMIT ?2)",
                    params![content_id, DISCARD_BATCH],
                )?)
            })
            .await?;
        if deleted == 0 {
            break;
        }
    }
    store
        .write_with(Durability::Lazy, move |conn| {
            conn.execute("DELETE FROM kyc_contents WHERE content_id = ?1 AND h_body IS NULL", [content_id])?;
            Ok::<_, StoreError>(())
        })
        .await
}

/// Discards in the background (a failed upload's answer need not wait for it).
pub fn discard_later(store: &Store, content_id: i64) {
    let store = store.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                if let Err(e) = discard(&store, content_id).await {
                    log::warn!("cannot discard staged upload {content_id} (removed at next start): {e}");
                }
            });
        }
        Err(_) => log::warn!("staged upload {content_id} left for the next start"),
    }
}

/// Removes what uploads interrupted by a crash left staged.
pub async fn discard_all_staged(store: &Store) -> Result<usize, StoreError> {
    let staged: Vec<i64> = store
        .read(|conn| {
            let mut stmt = conn.prepare("SELECT content_id FROM kyc_contents WHERE h_body IS NULL")?;
            let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
            Ok(ids)
        })
        .await?;
    for id in &staged {
        discard(store, *id).await?;
    }
    Ok(staged.len())
}

/// The stored body with this hash: `(content_id, size)`.
pub fn find(conn: &rusqlite::Connection, h_body: &HashCode) -> Result<Option<(i64, u64)>, StoreError> {
    Ok(conn
        .query_row("SELECT content_id, size FROM kyc_contents WHERE h_body = ?1", [h_body], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()?
        .map(|(id, size)| (id, u64::try_from(size).unwrap_or(0))))
}

/// One chunk of a body.
pub fn read_chunk(conn: &rusqlite::Connection, content_id: i64, seq: i64) -> Result<Vec<u8>, StoreError> {
    conn.query_row(
        "SELECT data FROM kyc_chunks WHERE content_id = ?1 AND seq = ?2",
        params![content_id, seq],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::Invariant(format!("chunk {seq} of content {content_id} is missing")))
}

/// A stored or staged body as `Read + Seek`, one chunk in memory at a time: the
/// ZIP check reads an archive's central directory and entry headers through it.
pub struct ChunkReader {
    conn: PooledConnection<SqliteConnectionManager>,
    content_id: i64,
    size: u64,
    pos: u64,
    cached: Option<(i64, Vec<u8>)>,
}

impl ChunkReader {
    pub fn new(store: &Store, content_id: i64, size: u64) -> Result<ChunkReader, StoreError> {
        Ok(ChunkReader { conn: store.reader()?, content_id, size, pos: 0, cached: None })
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let seq = i64::try_from(self.pos / CHUNK_SIZE as u64).map_err(io::Error::other)?;
        if self.cached.as_ref().map(|(s, _)| *s) != Some(seq) {
            let data = read_chunk(&self.conn, self.content_id, seq).map_err(io::Error::other)?;
            self.cached = Some((seq, data));
        }
        let data = self.cached.as_ref().map(|(_, d)| d.as_slice()).unwrap_or_default();
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
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
