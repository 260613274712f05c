//! The streaming core of a backup: `pg_dump` -> compression (several threads) -> SHA-256 ->
//! every destination at once, with bounded memory and no temporary file.
//!
//! ```text
//! pg_dump stdout ─(blocking thread: read, keep the tail, compress)─► chunks ─► fan-out task
//!                                                        hash + count ─┬─► store A put
//!                                                                      └─► store B put
//! ```
//! Destinations see a clean end of stream only when the dump was complete: `pg_dump` exited
//! 0 and its output ended with the `PostgreSQL database dump complete` trailer. Otherwise
//! every destination gets a read error, so the stores discard what they received (the
//! filesystem store removes its temp file, the S3 store aborts its multipart upload).

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::StreamExt;
use ops_core::ports::{DumpOutput, DumpStream, ObjectStore, PutOptions, PutReport};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};
use tokio_util::sync::CancellationToken;

use crate::compress::{Compression, encoder};
use crate::progress::{Progress, ProgressEvent};
use crate::{Error, Result};

/// The trailer `pg_dump` writes at the very end of a complete plain dump.
pub(crate) const DUMP_TRAILER: &[u8] = b"-- PostgreSQL database dump complete";
const CHUNK: usize = 1024 * 1024;
const TAIL: usize = 4096;
/// Bytes of the dump read at once.
const READ_BUF: usize = 256 * 1024;
/// A read shorter than this found the pipe nearly empty: `pg_dump` is slower than we are.
const SHORT_READ: usize = 64 * 1024;
/// How long the reader waits after a short read, so the next read takes a batch. `pg_dump`
/// writes 4 KiB at a time; reading each write as it comes cost a wake-up of this thread and of
/// the runtime's I/O driver per write (38 000 reads of 8.6 KiB on average for a 331 MB dump,
/// 0.4–0.8 CPU-seconds of two cores that PostgreSQL and the compression need). Only for a
/// pipe of at least [`BATCH_PIPE`] (the PostgreSQL adapter asks for 1 MiB): 2 ms of a dump at
/// 500 MB/s. A smaller pipe (the kernel refused to enlarge it) would fill during the wait and
/// stall `pg_dump`, so it is read as it comes.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(2);
/// The smallest pipe read in batches.
const BATCH_PIPE: usize = 1 << 20;

/// What went through the pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Streamed {
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
    pub sha256: String,
    pub puts: Vec<PutReport>,
}

/// How to compress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompressSettings {
    pub compression: Compression,
    pub level: u32,
    pub threads: usize,
}

/// Sends compressed output downstream in chunks of about 1 MiB.
struct ChannelSink {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChannelSink {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(chunk).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for ChannelSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Reads the dump, keeps its last bytes, compresses; `batch`: wait [`BATCH_WAIT`] after a
/// short read. Runs on a blocking thread.
fn compress_blocking(
    mut input: impl Read,
    batch: bool,
    settings: CompressSettings,
    sink: ChannelSink,
    raw: &AtomicU64,
) -> io::Result<Vec<u8>> {
    let mut enc = encoder(settings.compression, settings.level, settings.threads, sink)?;
    let mut buf = vec![0u8; READ_BUF];
    let mut tail: Vec<u8> = Vec::with_capacity(2 * TAIL);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        enc.write_all(&buf[..n])?;
        raw.fetch_add(n as u64, Ordering::Relaxed);
        // Only the last `TAIL` bytes are kept: no second copy of the dump.
        let read = &buf[n.saturating_sub(TAIL)..n];
        tail.extend_from_slice(read);
        if tail.len() > TAIL {
            tail.drain(..tail.len() - TAIL);
        }
        if batch && n < SHORT_READ {
            std::thread::sleep(BATCH_WAIT);
        }
    }
    enc.finish()?;
    Ok(tail)
}

/// How long removing what a failed backup left may take per object: best effort, since an
/// object without its manifest is no backup and `backup prune` removes it after a day.
const DISCARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Removes `keys` from `stores`, all at once, each within [`DISCARD_TIMEOUT`]; what does not go
/// is logged.
pub(crate) async fn discard<'a>(stores: impl IntoIterator<Item = &'a Arc<dyn ObjectStore>>, keys: &[&str]) {
    let deletes = stores.into_iter().flat_map(|store| {
        keys.iter().map(move |key| async move {
            match tokio::time::timeout(DISCARD_TIMEOUT, store.delete(key)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(location = %store.location(), key, error = %e, "could not remove"),
                Err(_) => tracing::warn!(
                    location = %store.location(),
                    key,
                    "could not remove: no answer within {} s",
                    DISCARD_TIMEOUT.as_secs()
                ),
            }
        })
    });
    futures::future::join_all(deletes).await;
}

/// How a stopped backup's error begins.
const INTERRUPTED: &str = "backup interrupted (the process is stopping)";

/// How long a stopped backup waits for its destinations to discard what they received (abort
/// a multipart upload, remove a temp file) before it abandons one that does not answer.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the last bytes of a plain dump carry the completion trailer.
pub(crate) fn has_trailer(tail: &[u8]) -> bool {
    tail.windows(DUMP_TRAILER.len()).any(|w| w == DUMP_TRAILER)
}

/// Streams `dump` compressed into `key` of every store. On success every store holds the
/// same bytes; on failure none holds anything at `key`.
/// A signal that stops a backup: when it resolves, the dump's stream fails, so every
/// destination discards what it received and the backup fails like any other.
pub type Cancel = Pin<Box<dyn Future<Output = ()> + Send>>;

/// `pg_dump`'s output, failing from the moment `cancel` resolves.
struct Cancellable {
    inner: ops_core::ports::ByteReader,
    cancel: Cancel,
    fired: Arc<AtomicBool>,
}

impl tokio::io::AsyncRead for Cancellable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.fired.load(Ordering::Relaxed) && self.cancel.as_mut().poll(cx).is_ready() {
            self.fired.store(true, Ordering::Relaxed);
        }
        if self.fired.load(Ordering::Relaxed) {
            // Not `ErrorKind::Interrupted`: readers retry that one.
            return Poll::Ready(Err(io::Error::other("the backup was interrupted")));
        }
        self.inner.as_mut().poll_read(cx, buf)
    }
}

pub(crate) async fn stream_dump(
    dump: DumpStream,
    stores: &[Arc<dyn ObjectStore>],
    key: &str,
    settings: CompressSettings,
    size_hint: Option<u64>,
    progress: &dyn Progress,
    cancel: Cancel,
) -> Result<Streamed> {
    let DumpStream { reader, completion, .. } = dump;
    let interrupted = Arc::new(AtomicBool::new(false));
    let stopped = CancellationToken::new();
    let raw = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let sink = ChannelSink { tx, buf: Vec::with_capacity(CHUNK) };
    // When `cancel` resolves: a pipe's reader stops at the flag, a stream fails at the token
    // (see `Cancellable`), and the destinations get `STOP_GRACE`. Aborted when the backup ends.
    let watch = {
        let (fired, stopped) = (Arc::clone(&interrupted), stopped.clone());
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            cancel.await;
            fired.store(true, Ordering::Relaxed);
            stopped.cancel();
        }))
    };
    let producer = {
        let raw = Arc::clone(&raw);
        match reader {
            DumpOutput::Pipe(pipe) => {
                let batch = pipe.capacity().is_some_and(|c| c >= BATCH_PIPE);
                let pipe = pipe.stop_on(Arc::clone(&interrupted));
                tokio::task::spawn_blocking(move || compress_blocking(pipe, batch, settings, sink, &raw))
            }
            DumpOutput::Stream(stream) => {
                let cancel = Box::pin(stopped.clone().cancelled_owned());
                let stream = Cancellable { inner: stream, cancel, fired: Arc::clone(&interrupted) };
                let bridge = SyncIoBridge::new(stream);
                tokio::task::spawn_blocking(move || compress_blocking(bridge, false, settings, sink, &raw))
            }
        }
    };

    let options = PutOptions { size_hint, content_type: Some("application/octet-stream".to_owned()) };
    // Per destination: its put has returned; it returned Ok (an object at `key`); the fan is
    // waiting for it to take something, or has handed it the stream's end or error.
    let flags = || stores.iter().map(|_| AtomicBool::new(false)).collect::<Vec<_>>();
    let (answered, stored, waited_on) = (flags(), flags(), flags());
    let mut senders = Vec::with_capacity(stores.len());
    let mut puts = Vec::with_capacity(stores.len());
    for ((store, answer), ok) in stores.iter().zip(&answered).zip(&stored) {
        let (dtx, drx) = mpsc::channel::<io::Result<Bytes>>(4);
        let stream = futures::stream::unfold(drx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let body = StreamReader::new(Box::pin(stream));
        senders.push(dtx);
        let options = options.clone();
        let store = Arc::clone(store);
        let key = key.to_owned();
        puts.push(async move {
            let r = store.put(&key, Box::pin(body), &options).await;
            ok.store(r.is_ok(), Ordering::Relaxed);
            answer.store(true, Ordering::Relaxed);
            r
        });
    }

    let fan = async {
        let mut hasher = Sha256::new();
        let mut compressed = 0u64;
        let mut broken = None;
        // A stop while a destination does not take its chunk: the stream ends here, unfinished.
        let mut cut = false;
        'chunks: while let Some(chunk) = rx.recv().await {
            hasher.update(&chunk);
            compressed += chunk.len() as u64;
            for (i, d) in senders.iter().enumerate() {
                waited_on[i].store(true, Ordering::Relaxed);
                let sent = tokio::select! {
                    biased;
                    () = stopped.cancelled() => {
                        cut = true;
                        break 'chunks;
                    }
                    sent = d.send(Ok(chunk.clone())) => sent,
                };
                waited_on[i].store(false, Ordering::Relaxed);
                if sent.is_err() {
                    broken = Some(i);
                    break 'chunks;
                }
            }
            progress.event(ProgressEvent::Bytes { raw: raw.load(Ordering::Relaxed), compressed, expected: size_hint });
        }
        drop(rx);
        let verdict: Result<(u64, u64, String)> = match broken {
            None if cut => {
                drop(completion);
                Err(Error::unavailable(format!("{INTERRUPTED}; nothing was kept")))
            }
            Some(i) => Err(Error::unavailable(format!("upload to {} stopped", stores[i].location()))),
            None => match producer.await {
                Err(e) => Err(Error::internal(format!("compression thread failed: {e}"))),
                Ok(Err(_)) if interrupted.load(Ordering::Relaxed) => {
                    // pg_dump dies of the closed pipe; the cause is the interruption.
                    drop(completion);
                    Err(Error::unavailable(format!("{INTERRUPTED}; nothing was kept")))
                }
                Ok(Err(e)) => {
                    // A read error from pg_dump's pipe, or a compression error. pg_dump's own
                    // exit status explains more, when there is one.
                    match completion.await {
                        Err(dump_err) => Err(dump_err),
                        Ok(()) => Err(Error::integrity(format!("reading the dump failed: {e}"))),
                    }
                }
                Ok(Ok(tail)) => match completion.await {
                    Err(e) => Err(e),
                    Ok(()) if raw.load(Ordering::Relaxed) == 0 => Err(Error::integrity("pg_dump produced no output")),
                    Ok(()) if !has_trailer(&tail) => {
                        Err(Error::integrity("the dump is truncated: no \"PostgreSQL database dump complete\" trailer"))
                    }
                    Ok(()) => Ok((raw.load(Ordering::Relaxed), compressed, hex::encode(hasher.finalize()))),
                },
            },
        };
        if let Err(e) = &verdict {
            // Make every destination fail, so none keeps a partial or truncated object; all at
            // once, so one that does not read holds up none of the others. A sender is dropped
            // (end of stream) only after its error is delivered.
            let message = e.to_string();
            for w in &waited_on {
                w.store(true, Ordering::Relaxed);
            }
            futures::future::join_all(senders.iter().map(|d| d.send(Err(io::Error::other(message.clone()))))).await;
        }
        drop(senders);
        for w in &waited_on {
            w.store(true, Ordering::Relaxed);
        }
        (verdict, broken)
    };
    let work = async { tokio::join!(fan, futures::future::join_all(puts)) };
    let ((verdict, broken), results) = tokio::select! {
        biased;
        r = work => r,
        () = async {
            stopped.cancelled().await;
            tokio::time::sleep(STOP_GRACE).await;
        } => {
            // A destination stuck in a request (a server that stopped answering) would hold
            // the stop up until its client's timeout: its request is dropped instead, and
            // whatever reached `key` is removed.
            let hung: Vec<String> = stores
                .iter()
                .enumerate()
                .filter(|(i, _)| !answered[*i].load(Ordering::Relaxed) && waited_on[*i].load(Ordering::Relaxed))
                .map(|(_, s)| s.location())
                .collect();
            let at_key = stores
                .iter()
                .enumerate()
                .filter(|(i, _)| stored[*i].load(Ordering::Relaxed) || !answered[*i].load(Ordering::Relaxed))
                .map(|(_, s)| s);
            discard(at_key, &[key]).await;
            let grace = STOP_GRACE.as_secs();
            return Err(Error::unavailable(if hung.is_empty() {
                format!("{INTERRUPTED}; the dump did not stop within {grace} s and was abandoned; nothing was kept")
            } else {
                format!(
                    "{INTERRUPTED}; no answer within {grace} s from {}, so the upload there was abandoned: \
                     what it left (a temp file, an unfinished upload, or a dump without a manifest) is \
                     removed by `opsctl backup prune` once it is a day old",
                    hung.join(", ")
                )
            }));
        }
    };
    drop(watch);
    let (raw_bytes, compressed_bytes, sha256) = match verdict {
        Ok(v) => v,
        Err(e) => {
            // A destination may have finished before the failure was known: remove it.
            discard(stores.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(s, _)| s), &[key]).await;
            // A destination that stopped taking the stream says why itself (a full disk, a
            // refused part), rather than only that it stopped.
            return Err(match broken.and_then(|i| results.into_iter().nth(i).map(|r| (i, r))) {
                Some((i, Err(cause))) => cause.context(format!("upload to {}", stores[i].location())),
                _ => e,
            });
        }
    };
    let mut reports = Vec::with_capacity(results.len());
    let mut first_err = None;
    for (store, r) in stores.iter().zip(results) {
        match r {
            Ok(report) => reports.push(report),
            Err(e) => {
                first_err.get_or_insert(e.context(format!("upload to {}", store.location())));
            }
        }
    }
    if let Some(e) = first_err {
        discard(stores, &[key]).await;
        return Err(e);
    }
    for (store, r) in stores.iter().zip(&reports) {
        if r.sha256 != sha256 || r.size != compressed_bytes {
            discard(stores, &[key]).await;
            return Err(Error::integrity(format!(
                "{} stored {} bytes with sha256 {}, expected {compressed_bytes} bytes with {sha256}",
                store.location(),
                r.size,
                r.sha256
            )));
        }
    }
    Ok(Streamed { raw_bytes, compressed_bytes, sha256, puts: reports })
}

/// Reads an object back and returns its SHA-256 and size.
pub(crate) async fn hash_object(store: &dyn ObjectStore, key: &str) -> Result<(String, u64)> {
    hash_reader(store.get(key).await?, &format!("{key} back from {}", store.location())).await
}

/// The SHA-256 and size of everything `reader` yields; `what` names it in an error.
pub(crate) async fn hash_reader(reader: ops_core::ports::ByteReader, what: &str) -> Result<(String, u64)> {
    let mut stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::from(e).context(format!("reading {what}")))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::has_trailer;

    #[test]
    fn trailer() {
        assert!(has_trailer(b"COMMIT;\n\n--\n-- PostgreSQL database dump complete\n--\n\n"));
        assert!(!has_trailer(b"COPY public.trades (id) FROM stdin;\n1\n2\n"));
    }
}
