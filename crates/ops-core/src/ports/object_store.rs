//! [`ObjectStore`]: where backups live (S3-compatible bucket or local directory).

use std::pin::Pin;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::Result;

/// A stream of bytes read with bounded memory.
pub type ByteReader = Pin<Box<dyn AsyncRead + Send>>;

/// Options of [`ObjectStore::put`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutOptions {
    /// Expected size, if known (for example the previous backup's), so multipart uploads can
    /// pick a part size that keeps under 10,000 parts.
    pub size_hint: Option<u64>,
    /// Content type.
    pub content_type: Option<String>,
}

/// What [`ObjectStore::put`] stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutReport {
    /// Key, relative to the store's prefix.
    pub key: String,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the bytes stored, lowercase hex.
    pub sha256: String,
    /// Parts uploaded (1 for a single request or a file).
    pub parts: u32,
    /// What the store proved about the stored bytes, beyond answering "stored".
    #[serde(default)]
    pub proof: PutProof,
}

/// What a store proved about an object it stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PutProof {
    /// Nothing: the object must be read back to know it holds what was sent.
    #[default]
    None,
    /// The server checked the SHA-256 of every part against the one computed here before
    /// taking it (the store first saw it refuse a part with a wrong one), and its SHA-256 over
    /// the part checksums, in order, matched the one computed here once the object was
    /// complete: every byte stored is a byte sent, checked end to end.
    ServerSha256,
    /// The server checks no part checksum, but the ETag of the completed multipart object is
    /// the MD5 of the MD5s the server computed of the parts, in order, then `-N` (S3's
    /// multipart ETag: most servers hash a part as it arrives; s3s-fs reads every stored part
    /// again on completion), and it equals the one computed here from the bytes sent: the same
    /// footing as [`Self::ServerSha256`], a digest computed here checked against one the
    /// server computed. Any other ETag proves nothing (the object is read back).
    ServerMd5,
}

impl PutProof {
    /// Whether the server's own digest proved the stored bytes (no read-back needed).
    #[must_use]
    pub fn by_server(self) -> bool {
        matches!(self, Self::ServerSha256 | Self::ServerMd5)
    }
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectMeta {
    /// Key, relative to the store's prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub last_modified: Option<DateTime<Utc>>,
}

/// A flat namespace of immutable objects under a prefix. Keys use `/` as separator and are
/// relative to the store's prefix. A put is all-or-nothing: a failed or interrupted put
/// leaves no object and no partial upload behind.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Where this store points (`s3://bucket/prefix`, `file:///var/backups`), without secrets.
    fn location(&self) -> String;

    /// Streams `body` into `key` with bounded memory, replacing any object there.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`, `InvalidInput` (bad key, object too large), or the body's read
    /// error; in every case nothing is left at `key` (nor a pending multipart upload).
    async fn put(&self, key: &str, body: ByteReader, options: &PutOptions) -> Result<PutReport>;

    /// Streams an object.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`, `Auth`.
    async fn get(&self, key: &str) -> Result<ByteReader>;

    /// Metadata of an object; `None` when it does not exist.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;

    /// Every object whose key starts with `prefix`, sorted by key, fetched page by page.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes an object; deleting a missing object is not an error.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Removes what interrupted puts left behind (a temp file of a killed process, an
    /// unfinished multipart upload) that began more than `older_than` ago, so a put still in
    /// progress is never touched; returns how many were removed.
    ///
    /// # Errors
    /// The listing's or a removal's error.
    async fn sweep_incomplete(&self, older_than: std::time::Duration) -> Result<u64>;
}

/// Rejects keys that could escape the prefix or mean different things on different stores.
///
/// # Errors
/// `InvalidInput` naming the problem.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.ends_with('/')
        || key.contains('\\')
        || key.contains('\0')
        || key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        return Err(crate::Error::invalid_input(format!(
            "invalid object key {key:?}: use non-empty segments separated by single slashes, without . or .."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_key;

    #[test]
    fn keys() {
        assert!(validate_key("main/main_20260101T000000Z.sql.gz").is_ok());
        for bad in ["", "/a", "a/", "a//b", "../a", "a/./b", "a\\b"] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }
}
