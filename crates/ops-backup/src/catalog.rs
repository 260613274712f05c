//! `list`: backups of every destination merged, newest first, complete or not, each
//! attributed to the database it is a backup of.
//!
//! Attribution: a backup belongs to the database its manifest names (`database-config-name`),
//! else the one its failure record names, else the configured database whose config name or
//! server name is the id's prefix. Ids alone cannot tell: `--prefix` is free text. Every
//! operation that picks backups (`latest`, ids, retention, drills, metrics) works on one
//! database's backups only, so one database's dump is never taken for another's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// When the newest of this backup's objects here was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    /// A failure record is there (read into `failure` only by [`list`]).
    #[serde(skip)]
    pub(crate) has_failure_record: bool,
}

/// What a failed backup leaves behind: `{id}.failed.json`, so the failure stays visible to
/// `list`, to ops-server's metrics after a restart, and to whoever looks at the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureRecord {
    /// When it failed.
    pub failed_at: DateTime<Utc>,
    /// Database (its name on the server).
    pub database: String,
    /// Config name of the database (`main`); absent in records written before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_config_name: Option<String>,
    /// The error.
    pub error: String,
}

/// One backup, over all destinations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Config name of the database this is a backup of (see the module docs); `None` when
    /// nothing tells.
    #[serde(default)]
    pub database: Option<String>,
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

    /// Whether this is a backup of the database configured as `name`.
    #[must_use]
    pub fn is_of(&self, name: &str) -> bool {
        self.database.as_deref() == Some(name)
    }

    /// Whether the last verification of some complete copy failed (and none passed after).
    #[must_use]
    pub fn failed_verification(&self) -> bool {
        let mut failed = false;
        for v in self.complete_copies().filter_map(|c| c.last_verification.as_ref()) {
            if v.ok {
                return false;
            }
            failed = true;
        }
        failed
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

/// One listing of a store: per backup, its copy there (which records it has) and its
/// compression. With `details`, the verification and failure records are read too (one
/// small GET each); without, only the listing is used.
async fn list_store(store: Arc<dyn ObjectStore>, details: bool) -> Result<Vec<(BackupId, Copy, Compression)>> {
    let objects = store.list("").await?;
    // Per id: the copy, its compression, and whether a verification record exists.
    let mut by_id: BTreeMap<BackupId, (Copy, Option<Compression>, bool)> = BTreeMap::new();
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
                    last_modified: None,
                    has_failure_record: false,
                },
                None,
                false,
            )
        });
        entry.0.last_modified = entry.0.last_modified.max(o.last_modified);
        match kind {
            KeyKind::Dump(_, c) => {
                entry.0.dump_key = Some(o.key);
                entry.0.size_bytes = Some(o.size);
                entry.1 = Some(c);
            }
            KeyKind::Manifest(_) => entry.0.has_manifest = true,
            KeyKind::Verification(_) => entry.2 = true,
            KeyKind::Failure(_) => entry.0.has_failure_record = true,
        }
    }
    // The records are small; read them a few at a time, and only when they are shown.
    let entries: Vec<_> = futures::stream::iter(by_id)
        .map(|(id, (mut copy, c, has_verify))| {
            let store = Arc::clone(&store);
            async move {
                if details && has_verify {
                    copy.last_verification = read_json(store.as_ref(), &id.verify_key()).await.ok();
                }
                if details && copy.has_failure_record {
                    copy.failure = read_json(store.as_ref(), &id.failed_key()).await.ok();
                }
                (id, copy, c.unwrap_or_default())
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
    let listings = futures::future::join_all(stores.iter().map(|s| list_store(Arc::clone(s), details))).await;
    let mut merged: BTreeMap<BackupId, BackupEntry> = BTreeMap::new();
    for listing in listings {
        for (id, copy, compression) in listing? {
            let Some(started_at) = id.timestamp() else { continue };
            let e = merged.entry(id.clone()).or_insert_with(|| BackupEntry {
                id,
                started_at,
                compression: None,
                complete: false,
                failed: false,
                database: None,
                copies: Vec::new(),
            });
            if copy.dump_key.is_some() {
                e.compression = Some(compression);
            }
            e.complete |= copy.dump_key.is_some() && copy.has_manifest;
            e.failed = !e.complete && (e.failed || copy.has_failure_record);
            e.copies.push(copy);
        }
    }
    let mut out: Vec<BackupEntry> = merged.into_values().collect();
    attribute(ctx, &stores, &mut out).await;
    out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| b.id.cmp(&a.id)));
    Ok(out)
}

/// Who a record says a backup belongs to, by `{location}\n{key}`. Manifests and failure
/// records are written once and never changed, so a listing reads each one once per process.
static OWNERS: LazyLock<Mutex<HashMap<String, Option<String>>>> = LazyLock::new(Mutex::default);
/// Bound of [`OWNERS`]; past it the cache starts over.
const OWNERS_MAX: usize = 100_000;

/// The database a record names: a manifest's config name, or a failure record's (or, in an
/// older record, its server name mapped to the configured database of that name).
async fn owner_from_record(ctx: &Context, store: &dyn ObjectStore, id: &BackupId, manifest: bool) -> Option<String> {
    let key = if manifest { id.manifest_key() } else { id.failed_key() };
    let cache_key = format!("{}\n{key}", store.location());
    if let Some(hit) = OWNERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&cache_key) {
        return hit.clone();
    }
    let owner = if manifest {
        match read_manifest(store, id).await {
            Ok(m) => Some(m.database_config_name),
            // Unreadable now (a network error) or never (bad json): decide without it, and
            // do not remember the miss.
            Err(_) => return None,
        }
    } else {
        match read_json::<FailureRecord>(store, &key).await {
            Ok(r) => r.database_config_name.or_else(|| owner_by_name(ctx, &r.database)),
            Err(_) => return None,
        }
    };
    let mut cache = OWNERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= OWNERS_MAX {
        cache.clear();
    }
    cache.insert(cache_key, owner.clone());
    owner
}

/// The configured database whose config name or server name is `name`, when exactly one is.
fn owner_by_name(ctx: &Context, name: &str) -> Option<String> {
    let mut found = ctx
        .config
        .databases
        .keys()
        .filter(|k| k.as_str() == name || ctx.databases.get(*k).is_some_and(|d| d.name() == name));
    let first = found.next()?;
    found.next().is_none().then(|| first.clone())
}

/// Fills [`BackupEntry::database`] for every entry (see the module docs), reading records a
/// few at a time.
async fn attribute(ctx: &Context, stores: &[Arc<dyn ObjectStore>], entries: &mut [BackupEntry]) {
    let by_location: HashMap<String, Arc<dyn ObjectStore>> =
        stores.iter().map(|s| (s.location(), Arc::clone(s))).collect();
    let lookups: Vec<std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send + '_>>> =
        entries.iter().map(|e| Box::pin(owner_of(ctx, &by_location, e)) as _).collect();
    let owners: Vec<Option<String>> = futures::stream::iter(lookups).buffered(16).collect().await;
    for (e, owner) in entries.iter_mut().zip(owners) {
        e.database = owner;
    }
}

/// One entry's database: its manifest, else its failure record, else its id's prefix.
async fn owner_of(
    ctx: &Context,
    by_location: &HashMap<String, Arc<dyn ObjectStore>>,
    e: &BackupEntry,
) -> Option<String> {
    if e.copies.iter().any(|c| c.has_manifest) {
        for c in e.copies.iter().filter(|c| c.has_manifest) {
            let Some(store) = by_location.get(&c.location) else { continue };
            if let Some(owner) = owner_from_record(ctx, store.as_ref(), &e.id, true).await {
                return Some(owner);
            }
        }
        // A manifest that cannot be read now is no reason to guess from the file name:
        // `--prefix` is free text. Unknown, the backup is never pruned or picked.
        return None;
    }
    for c in e.copies.iter().filter(|c| c.has_failure_record) {
        if let Some(f) = &c.failure {
            if let Some(owner) = f.database_config_name.clone().or_else(|| owner_by_name(ctx, &f.database)) {
                return Some(owner);
            }
            continue;
        }
        let Some(store) = by_location.get(&c.location) else { continue };
        if let Some(owner) = owner_from_record(ctx, store.as_ref(), &e.id, false).await {
            return Some(owner);
        }
    }
    owner_by_name(ctx, e.id.prefix())
}

/// The backups of the database configured as `database`, in the order given.
#[must_use]
pub fn of_database(all: Vec<BackupEntry>, database: &str) -> Vec<BackupEntry> {
    all.into_iter().filter(|b| b.is_of(database)).collect()
}

/// Finds a backup of `database` in a listing: `latest` is the newest complete backup of `database`
/// (one whose last verification failed only when no other is left); an id of another
/// database's backup is refused unless `allow_other_database`.
///
/// # Errors
/// `NotFound` naming what was looked for; `Conflict` naming both databases.
pub fn find_in(all: Vec<BackupEntry>, database: &str, wanted: &str, allow_other_database: bool) -> Result<BackupEntry> {
    if wanted == "latest" {
        let mine: Vec<BackupEntry> = all.into_iter().filter(|b| b.is_of(database) && b.complete).collect();
        return mine
            .iter()
            .find(|b| !b.failed_verification())
            .or(mine.first())
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no complete backup of database {database} found")));
    }
    let entry = all
        .into_iter()
        .find(|b| b.id.as_str() == wanted)
        .ok_or_else(|| Error::not_found(format!("no backup {wanted}")))?;
    if !entry.is_of(database) && !allow_other_database {
        return Err(other_database(&entry.id, entry.database.as_deref(), database));
    }
    Ok(entry)
}

/// The refusal to use one database's backup for another.
pub(crate) fn other_database(id: &BackupId, owner: Option<&str>, database: &str) -> Error {
    let owner = owner.map_or_else(|| "an unknown database".to_owned(), |o| format!("database {o}"));
    Error::conflict(format!(
        "backup {id} is a backup of {owner}, not of {database}: name a backup of {database}, \
         or allow another database's backup explicitly (--allow-other-database)"
    ))
}
