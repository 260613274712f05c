//! `verify`: read every copy back, check its SHA-256 against the manifest, decompress it
//! fully and check the dump's trailer; report `ok` or exactly what is wrong.

use std::io::Read;

use chrono::{DateTime, Utc};
use ops_core::Context;
use ops_core::ports::{ObjectStore, PutOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio_util::io::SyncIoBridge;

use crate::catalog::{self, read_manifest};
use crate::compress::{Compression, decoder};
use crate::naming::BackupId;
use crate::pipeline::has_trailer;
use crate::{Error, Result, target};

/// The last verification of a copy, stored beside it as `{id}.verify.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerificationRecord {
    /// When.
    pub verified_at: DateTime<Utc>,
    /// Whether every check passed.
    pub ok: bool,
    /// What failed.
    pub problems: Vec<String>,
    /// The SHA-256 of the compressed bytes a passing verification read to the end (decompressed
    /// whole, trailer found): the same bytes need no second decompression to be trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl VerificationRecord {
    /// Whether this record is a passed full verification of exactly the bytes whose SHA-256
    /// is `sha256`.
    #[must_use]
    pub fn vouches_for(&self, sha256: &str) -> bool {
        self.ok && self.sha256.as_deref() == Some(sha256)
    }
}

/// The verification of one copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CopyVerification {
    /// Where.
    pub location: String,
    /// Whether every check passed.
    pub ok: bool,
    /// What failed (empty when ok).
    pub problems: Vec<String>,
    /// SHA-256 found.
    pub sha256: Option<String>,
    /// Compressed bytes read.
    pub size_bytes: u64,
    /// Uncompressed bytes.
    pub raw_size_bytes: u64,
}

/// The verification of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReport {
    /// Backup id.
    pub id: BackupId,
    /// Whether every copy passed.
    pub ok: bool,
    /// Each copy.
    pub copies: Vec<CopyVerification>,
    /// When.
    pub verified_at: DateTime<Utc>,
}

/// Counts what passes through and hands a copy to the hashing thread (when there is one), so
/// SHA-256 runs beside decompression instead of before it on the same core.
struct Hashing<R> {
    inner: R,
    to_hasher: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// Bytes not sent yet: the decoder reads 32 KiB at a time, the hasher gets batches (one
    /// wake-up per batch).
    pending: Vec<u8>,
    size: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R, to_hasher: Option<std::sync::mpsc::SyncSender<Vec<u8>>>) -> Self {
        Self { inner, to_hasher, pending: Vec::new(), size: 0 }
    }

    /// Sends what is pending.
    fn flush_hasher(&mut self) {
        if let Some(tx) = &self.to_hasher
            && !self.pending.is_empty()
        {
            // A hasher that is gone (it panicked) leaves an empty checksum: a mismatch, not a pass.
            let _ = tx.send(std::mem::replace(&mut self.pending, Vec::with_capacity(HASH_BATCH)));
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.to_hasher.is_some() {
            self.pending.extend_from_slice(&buf[..n]);
            if self.pending.len() >= HASH_BATCH {
                self.flush_hasher();
            }
        }
        self.size += n as u64;
        Ok(n)
    }
}

/// Bytes per batch handed to the hashing thread, and batches queued at most.
const HASH_BATCH: usize = 256 * 1024;
const HASH_QUEUE: usize = 8;

/// The last bytes of a dump kept for the trailer check.
const TAIL_BYTES: usize = 4096;

/// What one read-through of a compressed dump found.
#[derive(Debug, Clone)]
pub(crate) struct Digest {
    /// SHA-256 of the compressed bytes.
    pub sha256: String,
    /// Compressed bytes.
    pub size: u64,
    /// Decompressed bytes.
    pub raw: u64,
    /// Why decompression stopped early.
    pub error: Option<String>,
    /// Whether the dump ends with its completion trailer.
    pub trailer: bool,
    /// The consumer stopped reading early (psql hit an error): the checksum still covers the
    /// whole object, but the end of the dump was not seen.
    pub consumer_stopped: bool,
}

impl Digest {
    /// What is wrong, against the manifest when there is one.
    pub(crate) fn problems(
        &self,
        manifest: Option<&crate::manifest::Manifest>,
        compression: Compression,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(m) = manifest {
            if self.sha256 != m.sha256 {
                problems.push(format!("sha256 mismatch: manifest {}, object {}", m.sha256, self.sha256));
            }
            if self.size != m.size_bytes {
                problems.push(format!("size mismatch: manifest {} bytes, object {} bytes", m.size_bytes, self.size));
            }
        }
        if self.consumer_stopped {
            return problems;
        }
        if let Some(e) = &self.error {
            problems.push(format!("{compression} decompression failed: {e}"));
        } else if let Some(m) = manifest.filter(|m| m.raw_size_bytes != self.raw) {
            problems.push(format!("uncompressed size {} differs from the manifest's {}", self.raw, m.raw_size_bytes));
        }
        if !self.trailer {
            problems.push("no \"PostgreSQL database dump complete\" trailer: the dump is truncated".to_owned());
        }
        problems
    }
}

/// Reads a compressed dump once: hashes every compressed byte (on a thread of its own, when
/// `hash`), decompresses, hands each decompressed chunk to `sink` (which returns `false` to
/// stop), keeps the tail for the trailer check. Runs on a blocking thread. Without `hash`,
/// `sha256` is empty: for a second pass over a source whose checksum a first pass proved.
pub(crate) fn read_through(
    reader: impl Read,
    compression: Compression,
    hash: bool,
    mut sink: impl FnMut(&[u8]) -> bool,
) -> Digest {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_QUEUE);
        let hasher = hash.then(|| {
            scope.spawn(move || {
                let mut hasher = Sha256::new();
                for chunk in rx {
                    hasher.update(&chunk);
                }
                hex::encode(hasher.finalize())
            })
        });
        let mut hashing = Hashing::new(reader, hash.then_some(tx));
        let mut raw = 0u64;
        let mut tail: Vec<u8> = Vec::with_capacity(2 * TAIL_BYTES);
        let mut error = None;
        let mut consumer_stopped = false;
        match decoder(compression, &mut hashing) {
            Ok(mut d) => {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match d.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            raw += n as u64;
                            let chunk = &buf[..n];
                            if n >= TAIL_BYTES {
                                tail.clear();
                                tail.extend_from_slice(&chunk[n - TAIL_BYTES..]);
                            } else {
                                tail.extend_from_slice(chunk);
                                if tail.len() > TAIL_BYTES {
                                    tail.drain(..tail.len() - TAIL_BYTES);
                                }
                            }
                            if !sink(chunk) {
                                consumer_stopped = true;
                                break;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            error = Some(e.to_string());
                            break;
                        }
                    }
                }
            }
            Err(e) => error = Some(e.to_string()),
        }
        // Hash whatever the decoder did not consume, so the checksum covers the whole object.
        if hash {
            let mut rest = vec![0u8; 256 * 1024];
            while let Ok(n) = hashing.read(&mut rest) {
                if n == 0 {
                    break;
                }
            }
        }
        hashing.flush_hasher();
        let size = hashing.size;
        drop(hashing);
        let sha256 = hasher.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        Digest { sha256, size, raw, error, trailer: has_trailer(&tail), consumer_stopped }
    })
}

async fn verify_copy(store: &dyn ObjectStore, id: &BackupId) -> CopyVerification {
    let mut v = CopyVerification {
        location: store.location(),
        ok: false,
        problems: Vec::new(),
        sha256: None,
        size_bytes: 0,
        raw_size_bytes: 0,
    };
    let manifest = match read_manifest(store, id).await {
        Ok(m) => m,
        Err(e) => {
            v.problems.push(format!("manifest unusable: {e}"));
            return v;
        }
    };
    let reader = match store.get(&manifest.dump_key).await {
        Ok(r) => r,
        Err(e) => {
            v.problems.push(format!("dump unreadable: {e}"));
            return v;
        }
    };
    let bridge = SyncIoBridge::new(reader);
    let compression = manifest.compression;
    let digest = match tokio::task::spawn_blocking(move || read_through(bridge, compression, true, |_| true)).await {
        Ok(d) => d,
        Err(e) => {
            v.problems.push(format!("verification thread failed: {e}"));
            return v;
        }
    };
    v.problems = digest.problems(Some(&manifest), compression);
    v.sha256 = Some(digest.sha256);
    v.size_bytes = digest.size;
    v.raw_size_bytes = digest.raw;
    v.ok = v.problems.is_empty();
    v
}

/// Reads a restore source through once: checksum and size against its manifest (when it has
/// one), full decompression, and the dump trailer. A source whose copy a passed full
/// verification vouches for ([`Source::verified`](crate::source::Source)) is only hashed: the
/// same SHA-256 means the same bytes, which decompressed whole then. Returns the problems found.
pub(crate) async fn check_source(source: &crate::source::Source) -> Result<Vec<String>> {
    if let Some(m) =
        source.manifest.as_ref().filter(|m| source.verified.as_ref().is_some_and(|v| v.vouches_for(&m.sha256)))
    {
        let (sha256, size) = crate::pipeline::hash_reader(source.open().await?, &source.location).await?;
        let mut problems = Vec::new();
        if sha256 != m.sha256 {
            problems.push(format!("sha256 mismatch: manifest {}, object {sha256}", m.sha256));
        }
        if size != m.size_bytes {
            problems.push(format!("size mismatch: manifest {} bytes, object {size} bytes", m.size_bytes));
        }
        return Ok(problems);
    }
    let reader = source.open().await?;
    let bridge = SyncIoBridge::new(reader);
    let compression = source.compression;
    let digest = tokio::task::spawn_blocking(move || read_through(bridge, compression, true, |_| true))
        .await
        .map_err(|e| Error::internal(format!("verification thread failed: {e}")))?;
    Ok(digest.problems(source.manifest.as_ref(), compression))
}

/// Verifies every copy of `wanted` and records the result beside each. `latest` is the
/// newest complete backup of `database` (named, or the only one, or `main`); an id is a
/// backup of `database` when one is named, of any database otherwise.
///
/// # Errors
/// `NotFound` when there is no such backup; `Conflict` for an id of another database than
/// the one named; a failed check is a report with `ok: false`.
pub async fn verify(ctx: &Context, database: Option<&str>, wanted: &str) -> Result<VerifyReport> {
    let all = catalog::index(ctx).await?;
    let entry = match (database, wanted) {
        (None, id) if id != "latest" => {
            all.into_iter().find(|b| b.id.as_str() == id).ok_or_else(|| Error::not_found(format!("no backup {id}")))?
        }
        (name, wanted) => {
            let (config_name, _, _) = target::database(ctx, name)?;
            catalog::find_in(all, config_name, wanted, false)?
        }
    };
    let stores = target::stores(ctx)?;
    let verified_at = Utc::now();
    let mut copies = Vec::new();
    for store in &stores {
        let location = store.location();
        let Some(copy) = entry.copies.iter().find(|c| c.location == location) else { continue };
        let mut v = if copy.dump_key.is_none() {
            CopyVerification {
                location,
                ok: false,
                problems: vec!["dump missing: only the manifest is present".to_owned()],
                sha256: None,
                size_bytes: 0,
                raw_size_bytes: 0,
            }
        } else {
            verify_copy(store.as_ref(), &entry.id).await
        };
        let record = VerificationRecord {
            verified_at,
            ok: v.ok,
            problems: v.problems.clone(),
            sha256: if v.ok { v.sha256.clone() } else { None },
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::internal(e.to_string()))?;
        if let Err(e) =
            store.put(&entry.id.verify_key(), Box::pin(std::io::Cursor::new(json)), &PutOptions::default()).await
        {
            // A verification whose record is lost did not do its job: `list` and retention
            // would not see it.
            v.ok = false;
            v.problems.push(format!("could not record the verification: {e}"));
        }
        copies.push(v);
    }
    Ok(VerifyReport { ok: !copies.is_empty() && copies.iter().all(|c| c.ok), id: entry.id, copies, verified_at })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn dump(rows: usize) -> Vec<u8> {
        let mut sql: Vec<u8> =
            (0..rows).flat_map(|i| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n").into_bytes()).collect();
        sql.extend_from_slice(b"\n--\n-- PostgreSQL database dump complete\n--\n\n");
        sql
    }

    #[test]
    fn one_pass_hashes_decompresses_and_finds_the_trailer() {
        let sql = dump(300_000);
        let gz = gzip(&sql);
        let mut seen = Vec::new();
        let d = read_through(&gz[..], Compression::Gzip, true, |c| {
            seen.extend_from_slice(c);
            true
        });
        assert_eq!(d.sha256, hex::encode(Sha256::digest(&gz)));
        assert_eq!((d.size, d.raw), (gz.len() as u64, sql.len() as u64));
        assert!(d.trailer && d.error.is_none() && !d.consumer_stopped);
        assert!(seen == sql);
        assert!(d.problems(None, Compression::Gzip).is_empty());

        // A second pass without the checksum: same data, same trailer.
        let d = read_through(&gz[..], Compression::Gzip, false, |_| true);
        assert_eq!((d.sha256.as_str(), d.raw, d.trailer), ("", sql.len() as u64, true));
    }

    #[test]
    fn a_stopped_consumer_still_gets_the_whole_checksum() {
        let gz = gzip(&dump(300_000));
        let d = read_through(&gz[..], Compression::Gzip, true, |_| false);
        assert!(d.consumer_stopped);
        assert_eq!(d.sha256, hex::encode(Sha256::digest(&gz)));
        assert_eq!(d.size, gz.len() as u64);
    }

    #[test]
    fn truncation_and_a_missing_trailer_are_found() {
        let sql = dump(100_000);
        let gz = gzip(&sql);
        let d = read_through(&gz[..gz.len() / 2], Compression::Gzip, true, |_| true);
        assert!(d.error.is_some() && !d.trailer, "{d:?}");
        let d = read_through(&gzip(&sql[..sql.len() - 60])[..], Compression::Gzip, true, |_| true);
        assert!(d.error.is_none() && !d.trailer, "{d:?}");
        assert!(d.problems(None, Compression::Gzip).iter().any(|p| p.contains("trailer")));
        // The trailer split over two reads of the decoder is still found.
        let small = dump(3);
        let d = read_through(&gzip(&small)[..], Compression::Gzip, true, |_| true);
        assert!(d.trailer);
    }
}
