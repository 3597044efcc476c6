//! Response bodies streamed from the store, never held whole in memory: a stored body read
//! one chunk at a time ([`stream_body`]), and the output of blocking work, such as
//! decompressing an archive entry, handed over a buffer at a time ([`blocking_body`]).

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

use crate::store::kyc::{self, CHUNK_SIZE, StoredBody};
use crate::store::{Store, StoreError};

/// A stored body as a response body (with its Content-Length), one chunk read at a time.
pub fn stream_body(store: &Store, body: StoredBody) -> Response {
    let stream = ChunkStream { store: store.clone(), body, next: 0, reading: None };
    let mut r = warp::reply::Reply::into_response(warp::reply::stream(SyncStream::new(stream)));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(body.size));
    r
}

/// A response body of `size` bytes that `write` produces on a blocking thread, writing into
/// the [`io::Write`] it is given; the bytes go out as they come (four buffers in flight at
/// most), and an error of `write` ends the body early.
pub fn blocking_body<F>(size: u64, write: F) -> Response
where
    F: FnOnce(&mut dyn io::Write) -> Result<(), String> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter(tx.clone());
        if let Err(e) = write(&mut out) {
            let _ = tx.blocking_send(Err(io::Error::other(e)));
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut r = warp::reply::Reply::into_response(warp::reply::stream(SyncStream::new(stream)));
    r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    r
}

type ChunkRead = Pin<Box<dyn Future<Output = Result<Bytes, StoreError>> + Send>>;

/// A stored body as a stream of its chunks, each read on demand with a pooled
/// connection taken for that read only: a client that stops reading holds no
/// connection and no thread while hyper waits for it (and the connection's
/// write idle limit cuts it off).
struct ChunkStream {
    store: Store,
    body: StoredBody,
    next: i64,
    reading: Option<ChunkRead>,
}

impl Stream for ChunkStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let chunks = i64::try_from(self.body.size.div_ceil(CHUNK_SIZE as u64)).unwrap_or(i64::MAX);
        if self.reading.is_none() {
            if self.next >= chunks {
                return Poll::Ready(None);
            }
            let (store, content, seq) = (self.store.clone(), self.body.content_id, self.next);
            self.reading =
                Some(Box::pin(async move { store.read(move |db| kyc::read_chunk(db, content, seq)).await }));
        }
        let Some(reading) = self.reading.as_mut() else { return Poll::Ready(None) };
        let chunk = std::task::ready!(reading.as_mut().poll(cx));
        self.reading = None;
        self.next += 1;
        Poll::Ready(Some(chunk.map_err(|e| io::Error::other(e.to_string()))))
    }
}

type BoxedStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// warp's streaming body must be `Sync`; the stream is only ever polled
/// through `&mut`, so the mutex is never locked (`get_mut`).
struct SyncStream(Mutex<BoxedStream>);

impl SyncStream {
    fn new(stream: impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static) -> SyncStream {
        SyncStream(Mutex::new(Box::pin(stream)))
    }
}

impl Stream for SyncStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(inner) => inner.as_mut().poll_next(cx),
            Err(_) => Poll::Ready(Some(Err(io::Error::other("the body stream panicked earlier")))),
        }
    }
}

/// Hands bytes written on a blocking thread to the response, a buffer at a time.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>);

impl io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::other("the client left"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
