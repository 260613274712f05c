//! Where a restore or drill reads its dump from: a backup id, `latest`, an `s3://bucket/key`
//! URI inside the configured storage, or (from the command line only) a local path.
//!
//! A source is scoped to the database it is restored into: `latest` is that database's
//! newest complete backup, and a backup whose manifest names another database is refused
//! unless [`SourceRules::allow_other_database`]. A host path is read only with
//! [`SourceRules::allow_host_path`], which an HTTP caller can never set: an API answer never
//! tells whether a host file exists.

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
use crate::naming::{BackupId, KeyKind, classify};
use crate::verify::{Digest, read_through};
use crate::{Error, Result, target};

/// A resolved source.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Source {
    /// What the user asked for.
    pub requested: String,
    /// Where it is read from (`s3://…/key`, a path).
    pub location: String,
    /// The manifest, when there is one (ids and `latest` always have one).
    pub manifest: Option<Manifest>,
    /// Compression, from the manifest or the file name.
    pub compression: Compression,
    /// The copy's last verification, when it was a passed full one of exactly these bytes
    /// (the manifest's SHA-256): an in-place restore then checks the SHA-256 alone first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<crate::verify::VerificationRecord>,
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

/// What a source string names, before anything is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The newest complete backup of the database.
    Latest,
    /// A backup id.
    Id(BackupId),
    /// `s3://bucket/key`: an object that must be inside the configured storage.
    Object(String),
    /// A file on this host.
    Path(PathBuf),
}

/// Longest source string accepted.
pub const MAX_SOURCE_LEN: usize = 4096;

impl SourceSpec {
    /// Parses a source string: `latest`, a backup id, `s3://bucket/key`, or a path (anything
    /// with a `/`, or a `.gz`/`.zst` file name).
    ///
    /// # Errors
    /// `InvalidInput` for an empty, over-long or control-character string, or one that is
    /// none of these.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::invalid_input("empty source: give a backup id, latest, s3://bucket/key or a path"));
        }
        if s.len() > MAX_SOURCE_LEN {
            return Err(Error::invalid_input(format!("source longer than {MAX_SOURCE_LEN} bytes")));
        }
        if s.chars().any(char::is_control) {
            return Err(Error::invalid_input("source contains control characters"));
        }
        if s == "latest" {
            return Ok(Self::Latest);
        }
        if s.starts_with("s3://") {
            return Ok(Self::Object(s.to_owned()));
        }
        if s.contains('/') || s.ends_with(".gz") || s.ends_with(".zst") {
            return Ok(Self::Path(PathBuf::from(s)));
        }
        match BackupId::parse(s) {
            Some(id) if !s.contains('\\') => Ok(Self::Id(id)),
            _ => Err(Error::invalid_input(format!(
                "{s:?} is not a backup id (PREFIX_YYYYMMDDTHHMMSSZ), latest, s3://bucket/key or a path"
            ))),
        }
    }
}

/// Which sources a caller may use, and for which database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRules {
    /// Config name of the database restored into.
    pub database: String,
    /// Accept a backup whose manifest names another database.
    pub allow_other_database: bool,
    /// Accept a path on this host (the command line; never an HTTP caller).
    pub allow_host_path: bool,
}

impl SourceRules {
    /// Parses `requested` and refuses a host path unless [`Self::allow_host_path`], before any
    /// file system access: the answer never tells whether a file exists. Callers that check a
    /// request before starting a job use it too.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed source or a path that is not allowed.
    pub fn spec(&self, requested: &str) -> Result<SourceSpec> {
        match SourceSpec::parse(requested)? {
            SourceSpec::Path(_) if !self.allow_host_path => Err(Error::invalid_input(
                "source: give a backup id, latest, or s3://bucket/key inside the configured storage (host paths are \
                 for the command line only)",
            )),
            spec => Ok(spec),
        }
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

/// Resolves `requested` against the configured storage, for the database and with the
/// permissions of `rules`.
///
/// # Errors
/// `InvalidInput` for a malformed source, a path without `allow_host_path`, an s3 URI
/// outside the configured storage or an unknown file type; `NotFound` for an unknown id or
/// missing object or file; `Conflict` for another database's backup without
/// `allow_other_database`.
pub async fn resolve(ctx: &Context, requested: &str, rules: &SourceRules) -> Result<Source> {
    resolve_with(ctx, requested, rules, None).await
}

/// [`resolve`], reusing a listing the caller already made (`catalog::index`).
pub(crate) async fn resolve_with(
    ctx: &Context,
    requested: &str,
    rules: &SourceRules,
    listing: Option<Vec<catalog::BackupEntry>>,
) -> Result<Source> {
    let source = match rules.spec(requested)? {
        SourceSpec::Object(uri) => from_object(ctx, &uri).await?,
        SourceSpec::Path(path) => from_path(requested, path).await?,
        SourceSpec::Latest | SourceSpec::Id(_) => {
            let all = match listing {
                Some(all) => all,
                None => catalog::index(ctx).await?,
            };
            let entry = catalog::find_in(all, &rules.database, requested, rules.allow_other_database)?;
            from_entry(ctx, requested, &entry).await?
        }
    };
    match &source.manifest {
        Some(m) if m.database_config_name != rules.database && !rules.allow_other_database => {
            Err(catalog::other_database(&m.id, Some(&m.database_config_name), &rules.database))
        }
        // Without a manifest nothing tells whose dump it is: only an explicit yes restores it.
        None if !rules.allow_other_database => Err(Error::conflict(format!(
            "{} has no manifest, so nothing tells which database it is a dump of: allow it explicitly \
             (--allow-other-database) to restore it into {}",
            source.location, rules.database
        ))),
        _ => Ok(source),
    }
}

async fn from_object(ctx: &Context, requested: &str) -> Result<Source> {
    let rest = requested.strip_prefix("s3://").unwrap_or_default();
    let storage =
        ctx.storage.as_ref().ok_or_else(|| Error::invalid_input("no [storage] configured for s3:// sources"))?;
    let base = storage.location();
    let base_rest = base.strip_prefix("s3://").unwrap_or_default();
    let key = rest
        .strip_prefix(base_rest)
        .filter(|k| base_rest.is_empty() || base_rest.ends_with('/') || k.starts_with('/') || k.is_empty())
        .map(|k| k.trim_start_matches('/'))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::invalid_input(format!("{requested} is outside the configured storage {base}")))?;
    ops_core::ports::object_store::validate_key(key)?;
    let compression = compression_of(key)?;
    let manifest = match classify(key) {
        // No manifest is an answer; a manifest that cannot be read is an error, not a reason
        // to skip the checks it makes possible.
        Some(KeyKind::Dump(id, _)) => match read_manifest(storage.as_ref(), &id).await {
            Ok(m) => Some(m),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => None,
            Err(e) => return Err(e.context(format!("reading the manifest of {requested}"))),
        },
        _ => None,
    };
    if storage.head(key).await?.is_none() {
        return Err(Error::not_found(format!("no object {requested}")));
    }
    Ok(Source {
        requested: requested.to_owned(),
        location: requested.to_owned(),
        manifest,
        compression,
        verified: None,
        reader: Some(SourceReader::Store(Arc::clone(storage), key.to_owned())),
    })
}

async fn from_path(requested: &str, path: PathBuf) -> Result<Source> {
    if !path.is_file() {
        return Err(Error::not_found(format!("no file {requested}")));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let compression = compression_of(&name)?;
    // A manifest beside the file, as our backups have, makes the checks exact.
    let manifest = match classify(&name) {
        Some(KeyKind::Dump(id, _)) => {
            let mpath = path.with_file_name(id.manifest_key());
            match tokio::fs::read(&mpath).await {
                Ok(b) => Some(
                    serde_json::from_slice(&b)
                        .map_err(|e| Error::integrity(format!("{} is not a valid manifest: {e}", mpath.display())))?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::from(e).context(format!("reading {}", mpath.display()))),
            }
        }
        _ => None,
    };
    Ok(Source {
        requested: requested.to_owned(),
        location: path.display().to_string(),
        manifest,
        compression,
        verified: None,
        reader: Some(SourceReader::Path(path)),
    })
}

async fn from_entry(ctx: &Context, requested: &str, entry: &catalog::BackupEntry) -> Result<Source> {
    let stores = target::stores(ctx)?;
    // Prefer the local copy: it is the fastest to read.
    for store in stores.iter().rev() {
        let location = store.location();
        let Some(copy) = entry.complete_copies().find(|c| c.location == location) else { continue };
        let key = copy.dump_key.clone().unwrap_or_default();
        let manifest = read_manifest(store.as_ref(), &entry.id).await?;
        // A record that cannot be read vouches for nothing: the full check runs.
        let verified = catalog::read_json::<crate::verify::VerificationRecord>(store.as_ref(), &entry.id.verify_key())
            .await
            .ok()
            .filter(|v| v.vouches_for(&manifest.sha256));
        return Ok(Source {
            requested: requested.to_owned(),
            location: format!("{location}/{key}"),
            verified,
            compression: manifest.compression,
            manifest: Some(manifest),
            reader: Some(SourceReader::Store(Arc::clone(store), key)),
        });
    }
    Err(Error::not_found(format!("backup {} has no complete copy", entry.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_into_their_kinds() {
        assert_eq!(SourceSpec::parse("latest").unwrap(), SourceSpec::Latest);
        assert!(matches!(SourceSpec::parse("app_20261122T020005Z").unwrap(), SourceSpec::Id(_)));
        assert!(matches!(SourceSpec::parse("s3://b/p/app_20261122T020005Z.sql.gz").unwrap(), SourceSpec::Object(_)));
        assert!(matches!(SourceSpec::parse("/tmp/x.sql.gz").unwrap(), SourceSpec::Path(_)));
        assert!(matches!(SourceSpec::parse("x.sql.gz").unwrap(), SourceSpec::Path(_)));
        for bad in ["", "nonsense", "app_2026", "a\nb", "a\u{0}b", "app_\\20261122T020005Z"] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad:?}");
        }
        assert!(SourceSpec::parse(&"a".repeat(MAX_SOURCE_LEN + 1)).is_err());
    }
}
