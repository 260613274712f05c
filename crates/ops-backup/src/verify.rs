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
pub struct VerificationRecord {
    /// When.
    pub verified_at: DateTime<Utc>,
    /// Whether every check passed.
    pub ok: bool,
    /// What failed.
    pub problems: Vec<String>,
}

/// The verification of one copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

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

/// Reads a compressed dump once: hashes every compressed byte, decompresses, hands each
/// decompressed chunk to `sink` (which returns `false` to stop), keeps the tail for the
/// trailer check. Runs on a blocking thread.
pub(crate) fn read_through(reader: impl Read, compression: Compression, mut sink: impl FnMut(&[u8]) -> bool) -> Digest {
    let mut hashing = Hashing { inner: reader, hasher: Sha256::new(), size: 0 };
    let mut raw = 0u64;
    let mut tail: Vec<u8> = Vec::new();
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
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > 4096 {
                            tail.drain(..tail.len() - 4096);
                        }
                        if !sink(&buf[..n]) {
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
    let mut rest = vec![0u8; 256 * 1024];
    while let Ok(n) = hashing.read(&mut rest) {
        if n == 0 {
            break;
        }
    }
    Digest {
        sha256: hex::encode(hashing.hasher.finalize()),
        size: hashing.size,
        raw,
        error,
        trailer: has_trailer(&tail),
        consumer_stopped,
    }
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
    let digest = match tokio::task::spawn_blocking(move || read_through(bridge, compression, |_| true)).await {
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
/// one), full decompression, and the dump trailer. Returns the problems found.
pub(crate) async fn check_source(source: &crate::source::Source) -> Result<Vec<String>> {
    let reader = source.open().await?;
    let bridge = SyncIoBridge::new(reader);
    let compression = source.compression;
    let digest = tokio::task::spawn_blocking(move || read_through(bridge, compression, |_| true))
        .await
        .map_err(|e| Error::internal(format!("verification thread failed: {e}")))?;
    Ok(digest.problems(source.manifest.as_ref(), compression))
}

/// Verifies every copy of `wanted` (an id or `latest`) and records the result beside each.
///
/// # Errors
/// `NotFound` when there is no such backup; a failed check is a report with `ok: false`.
pub async fn verify(ctx: &Context, wanted: &str) -> Result<VerifyReport> {
    let entry = catalog::find(ctx, wanted).await?;
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
        let record = VerificationRecord { verified_at, ok: v.ok, problems: v.problems.clone() };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::internal(e.to_string()))?;
        if let Err(e) =
            store.put(&entry.id.verify_key(), Box::pin(std::io::Cursor::new(json)), &PutOptions::default()).await
        {
            v.problems.push(format!("could not record the verification: {e}"));
        }
        copies.push(v);
    }
    Ok(VerifyReport { ok: !copies.is_empty() && copies.iter().all(|c| c.ok), id: entry.id, copies, verified_at })
}
