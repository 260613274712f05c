//! Where a restore or drill reads its dump from: a backup id, `latest`, a local path, or an
//! `s3://bucket/key` URI inside the configured storage.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use ops_core::Context;
use ops_core::ports::{ByteReader, ObjectStore};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::catalog::{self, read_manifest};
use crate::compress::Compression;
use crate::manifest::Manifest;
use crate::naming::{KeyKind, classify};
use crate::verify::{Digest, read_through};
use crate::{Error, Result, target};

/// A resolved source.
#[derive(Clone, Serialize, Deserialize)]
pub struct Source {
    /// What the user asked for.
    pub requested: String,
    /// Where it is read from (`s3://…/key`, a path).
    pub location: String,
    /// The manifest, when there is one (ids and `latest` always have one).
    pub manifest: Option<Manifest>,
    /// Compression, from the manifest or the file name.
    pub compression: Compression,
    #[serde(skip)]
    pub(crate) reader: Option<SourceReader>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("location", &self.location)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub(crate) enum SourceReader {
    Store(Arc<dyn ObjectStore>, String),
    Path(PathBuf),
}

impl Source {
    /// Opens the compressed bytes.
    pub(crate) async fn open(&self) -> Result<ByteReader> {
        match &self.reader {
            Some(SourceReader::Store(store, key)) => store.get(key).await,
            Some(SourceReader::Path(path)) => {
                let f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| Error::from(e).context(format!("opening {}", path.display())))?;
                Ok(Box::pin(tokio::io::BufReader::with_capacity(256 * 1024, f)))
            }
            None => Err(Error::internal("source without a reader")),
        }
    }

    /// Opens the decompressed SQL, decompressing on a blocking thread, for a second pass over a
    /// source a first pass checked: no checksum (nobody would read it), but a decompression
    /// error or a missing trailer still fails the stream.
    pub(crate) async fn open_sql(&self) -> Result<ByteReader> {
        Ok(self.open_sql_with(false).await?.0)
    }

    /// Opens the decompressed SQL and, once it has been read to the end, what the one pass
    /// found: checksum, sizes, decompression error, trailer.
    pub(crate) async fn open_sql_digest(&self) -> Result<(ByteReader, oneshot::Receiver<Digest>)> {
        self.open_sql_with(true).await
    }

    async fn open_sql_with(&self, hash: bool) -> Result<(ByteReader, oneshot::Receiver<Digest>)> {
        let compressed = self.open().await?;
        let compression = self.compression;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
        let (done_tx, done_rx) = oneshot::channel();
        let bridge = SyncIoBridge::new(compressed);
        tokio::task::spawn_blocking(move || {
            let digest = read_through(bridge, compression, hash, |chunk| {
                tx.blocking_send(Ok(Bytes::copy_from_slice(chunk))).is_ok()
            });
            if digest.consumer_stopped {
                // Nobody is reading any more.
            } else if let Some(e) = &digest.error {
                // The SQL stream must fail, not end: a truncated input must not look complete.
                let _ = tx.blocking_send(Err(io::Error::other(e.clone())));
            } else if !digest.trailer {
                let _ = tx.blocking_send(Err(io::Error::other("the dump is truncated")));
            }
            let _ = done_tx.send(digest);
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        Ok((Box::pin(StreamReader::new(Box::pin(stream))), done_rx))
    }
}

fn compression_of(name: &str) -> Result<Compression> {
    if name.ends_with(".gz") {
        Ok(Compression::Gzip)
    } else if name.ends_with(".zst") {
        Ok(Compression::Zstd)
    } else {
        Err(Error::invalid_input(format!("{name}: expected a .sql.gz or .sql.zst dump")))
    }
}

/// Resolves `requested` against the configured storage.
///
/// # Errors
/// `NotFound` for an unknown id or missing file, `InvalidInput` for an s3 URI outside the
/// configured storage or an unknown file type.
pub async fn resolve(ctx: &Context, requested: &str) -> Result<Source> {
    resolve_with(ctx, requested, None).await
}

/// [`resolve`], reusing a listing the caller already made (`catalog::index`).
pub(crate) async fn resolve_with(
    ctx: &Context,
    requested: &str,
    listing: Option<Vec<catalog::BackupEntry>>,
) -> Result<Source> {
    if let Some(rest) = requested.strip_prefix("s3://") {
        let storage =
            ctx.storage.as_ref().ok_or_else(|| Error::invalid_input("no [storage] configured for s3:// sources"))?;
        let base = storage.location();
        let base_rest = base.strip_prefix("s3://").unwrap_or_default();
        let key = rest
            .strip_prefix(base_rest)
            .map(|k| k.trim_start_matches('/'))
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::invalid_input(format!("{requested} is outside the configured storage {base}")))?;
        let compression = compression_of(key)?;
        let manifest = match classify(key) {
            Some(KeyKind::Dump(id, _)) => read_manifest(storage.as_ref(), &id).await.ok(),
            _ => None,
        };
        if storage.head(key).await?.is_none() {
            return Err(Error::not_found(format!("no object {requested}")));
        }
        return Ok(Source {
            requested: requested.to_owned(),
            location: requested.to_owned(),
            manifest,
            compression,
            reader: Some(SourceReader::Store(Arc::clone(storage), key.to_owned())),
        });
    }
    let path = PathBuf::from(requested);
    if requested.contains('/') || requested.ends_with(".gz") || requested.ends_with(".zst") {
        if !path.is_file() {
            return Err(Error::not_found(format!("no file {requested}")));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let compression = compression_of(&name)?;
        // A manifest beside the file, as our backups have, makes the checks exact.
        let manifest = match classify(&name) {
            Some(KeyKind::Dump(id, _)) => {
                let mpath = path.with_file_name(id.manifest_key());
                tokio::fs::read(&mpath).await.ok().and_then(|b| serde_json::from_slice(&b).ok())
            }
            _ => None,
        };
        return Ok(Source {
            requested: requested.to_owned(),
            location: path.display().to_string(),
            manifest,
            compression,
            reader: Some(SourceReader::Path(path)),
        });
    }
    let all = match listing {
        Some(all) => all,
        None => catalog::index(ctx).await?,
    };
    let entry = catalog::find_in(all, requested)?;
    let stores = target::stores(ctx)?;
    // Prefer the local copy: it is the fastest to read.
    for store in stores.iter().rev() {
        let location = store.location();
        let Some(copy) = entry.complete_copies().find(|c| c.location == location) else { continue };
        let key = copy.dump_key.clone().unwrap_or_default();
        let manifest = read_manifest(store.as_ref(), &entry.id).await?;
        return Ok(Source {
            requested: requested.to_owned(),
            location: format!("{location}/{key}"),
            compression: manifest.compression,
            manifest: Some(manifest),
            reader: Some(SourceReader::Store(Arc::clone(store), key)),
        });
    }
    Err(Error::not_found(format!("backup {} has no complete copy", entry.id)))
}
