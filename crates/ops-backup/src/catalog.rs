//! `list`: backups of every destination merged, newest first, complete or not.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use ops_core::Context;
use ops_core::ports::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::compress::Compression;
use crate::manifest::Manifest;
use crate::naming::{BackupId, KeyKind, classify};
use crate::verify::VerificationRecord;
use crate::{Error, Result, target};

/// One backup in one destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Copy {
    /// Where.
    pub location: String,
    /// Key of the dump, if present.
    pub dump_key: Option<String>,
    /// Size of the dump.
    pub size_bytes: Option<u64>,
    /// Whether the manifest is present.
    pub has_manifest: bool,
    /// The last verification of this copy.
    pub last_verification: Option<VerificationRecord>,
    /// Why the backup failed, when it did (no dump, no manifest: a record of the failure).
    pub failure: Option<FailureRecord>,
}

/// What a failed backup leaves behind: `{id}.failed.json`, so the failure stays visible to
/// `list`, to ops-server's metrics after a restart, and to whoever looks at the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// When it failed.
    pub failed_at: DateTime<Utc>,
    /// Database.
    pub database: String,
    /// The error.
    pub error: String,
}

/// One backup, over all destinations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupEntry {
    /// Backup id.
    pub id: BackupId,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Compression, from the dump's name.
    pub compression: Option<Compression>,
    /// Complete: some copy has both its dump and its manifest.
    pub complete: bool,
    /// The backup failed (a failure record exists and no copy is complete).
    pub failed: bool,
    /// The copies.
    pub copies: Vec<Copy>,
}

impl BackupEntry {
    /// Size of the first copy that has a dump.
    #[must_use]
    pub fn size_bytes(&self) -> Option<u64> {
        self.copies.iter().find_map(|c| c.size_bytes)
    }

    /// The copies holding both dump and manifest.
    pub fn complete_copies(&self) -> impl Iterator<Item = &Copy> {
        self.copies.iter().filter(|c| c.dump_key.is_some() && c.has_manifest)
    }
}

/// Reads a small JSON object.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(store: &dyn ObjectStore, key: &str) -> Result<T> {
    let mut text = Vec::new();
    store
        .get(key)
        .await?
        .take(16 * 1024 * 1024)
        .read_to_end(&mut text)
        .await
        .map_err(|e| Error::from(e).context(format!("reading {key} from {}", store.location())))?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::integrity(format!("{key} in {} is not valid json: {e}", store.location())))
}

/// Reads the manifest of `id` from `store`.
///
/// # Errors
/// `NotFound` when there is none, `Integrity` when it does not parse.
pub async fn read_manifest(store: &dyn ObjectStore, id: &BackupId) -> Result<Manifest> {
    read_json(store, &id.manifest_key()).await
}

/// One listing of a store: per backup, its copy there, its compression, and whether a failure
/// record exists. With `details`, the verification and failure records are read too (one
/// small GET each); without, only the listing is used.
async fn list_store(store: Arc<dyn ObjectStore>, details: bool) -> Result<Vec<(BackupId, Copy, Compression, bool)>> {
    let objects = store.list("").await?;
    // Per id: the copy, its compression, and whether a verification / failure record exists.
    let mut by_id: BTreeMap<BackupId, (Copy, Option<Compression>, bool, bool)> = BTreeMap::new();
    for o in objects {
        let Some(kind) = classify(&o.key) else { continue };
        let id = match &kind {
            KeyKind::Dump(id, _) | KeyKind::Manifest(id) | KeyKind::Verification(id) | KeyKind::Failure(id) => {
                id.clone()
            }
        };
        let entry = by_id.entry(id).or_insert_with(|| {
            (
                Copy {
                    location: store.location(),
                    dump_key: None,
                    size_bytes: None,
                    has_manifest: false,
                    last_verification: None,
                    failure: None,
                },
                None,
                false,
                false,
            )
        });
        match kind {
            KeyKind::Dump(_, c) => {
                entry.0.dump_key = Some(o.key);
                entry.0.size_bytes = Some(o.size);
                entry.1 = Some(c);
            }
            KeyKind::Manifest(_) => entry.0.has_manifest = true,
            KeyKind::Verification(_) => entry.2 = true,
            KeyKind::Failure(_) => entry.3 = true,
        }
    }
    // The records are small; read them a few at a time, and only when they are shown.
    let entries: Vec<_> = futures::stream::iter(by_id)
        .map(|(id, (mut copy, c, has_verify, has_failure))| {
            let store = Arc::clone(&store);
            async move {
                if details && has_verify {
                    copy.last_verification = read_json(store.as_ref(), &id.verify_key()).await.ok();
                }
                if details && has_failure {
                    copy.failure = read_json(store.as_ref(), &id.failed_key()).await.ok();
                }
                (id, copy, c.unwrap_or_default(), has_failure)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    Ok(entries)
}

/// Every backup of every destination, newest first, with each copy's last verification and
/// failure record.
///
/// # Errors
/// `InvalidInput` without storage; the store's error when a listing fails.
pub async fn list(ctx: &Context) -> Result<Vec<BackupEntry>> {
    merged(ctx, true).await
}

/// Like [`list`], from the listings alone: no verification or failure record is read, so it
/// costs one listing per destination (what `find`, retention, drills and metrics need).
///
/// # Errors
/// As [`list`].
pub async fn index(ctx: &Context) -> Result<Vec<BackupEntry>> {
    merged(ctx, false).await
}

async fn merged(ctx: &Context, details: bool) -> Result<Vec<BackupEntry>> {
    let stores = target::stores(ctx)?;
    let listings = futures::future::join_all(stores.into_iter().map(|s| list_store(s, details))).await;
    let mut merged: BTreeMap<BackupId, BackupEntry> = BTreeMap::new();
    for listing in listings {
        for (id, copy, compression, has_failure) in listing? {
            let Some(started_at) = id.timestamp() else { continue };
            let e = merged.entry(id.clone()).or_insert_with(|| BackupEntry {
                id,
                started_at,
                compression: None,
                complete: false,
                failed: false,
                copies: Vec::new(),
            });
            if copy.dump_key.is_some() {
                e.compression = Some(compression);
            }
            e.complete |= copy.dump_key.is_some() && copy.has_manifest;
            e.failed = !e.complete && (e.failed || has_failure);
            e.copies.push(copy);
        }
    }
    let mut out: Vec<BackupEntry> = merged.into_values().collect();
    out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| b.id.cmp(&a.id)));
    Ok(out)
}

/// Finds a backup by id, or the newest complete one for `latest`.
///
/// # Errors
/// `NotFound` naming what was looked for.
pub async fn find(ctx: &Context, wanted: &str) -> Result<BackupEntry> {
    find_in(index(ctx).await?, wanted)
}

/// [`find`] in a listing already made.
///
/// # Errors
/// `NotFound` naming what was looked for.
pub fn find_in(all: Vec<BackupEntry>, wanted: &str) -> Result<BackupEntry> {
    let found = if wanted == "latest" {
        all.into_iter().find(|b| b.complete)
    } else {
        all.into_iter().find(|b| b.id.as_str() == wanted)
    };
    found.ok_or_else(|| {
        if wanted == "latest" {
            Error::not_found("no complete backup found")
        } else {
            Error::not_found(format!("no backup {wanted}"))
        }
    })
}
