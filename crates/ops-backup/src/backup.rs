//! `backup`: one consistent, verified, manifested dump of a database into every destination.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ops_core::Context;
use ops_core::ports::{DumpFormat, DumpOptions, Notification, NotificationLevel, ObjectStore, PutOptions, PutProof};
use serde::{Deserialize, Serialize};

use crate::compress::Compression;
use crate::manifest::{MANIFEST_VERSION, Manifest, TableCount};
use crate::naming::BackupId;
use crate::notify::{NotificationOutcome, notify_all};
use crate::pipeline::{CompressSettings, hash_object, stream_dump};
use crate::progress::{PhaseClock, PhaseTime, Progress, ProgressEvent};
use crate::{Error, Result, lock, target};

/// Options of [`backup`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupOptions {
    /// Config name of the database; the only one, or `main`, when unset.
    pub database: Option<String>,
    /// Compression.
    pub compression: Compression,
    /// Compression level (gzip 1–9, zstd 1–19); gzip 1, zstd 3 when unset.
    pub level: Option<u32>,
    /// Compression threads; all available cores when unset.
    pub threads: Option<usize>,
    /// File name prefix; the database name when unset.
    pub prefix: Option<String>,
}

/// One destination of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DestinationReport {
    /// Where (`s3://bucket/prefix`, `file:///dir`).
    pub location: String,
    /// Key of the dump.
    pub key: String,
    /// Bytes stored.
    pub size_bytes: u64,
    /// Multipart parts (1 for a single request or a file).
    pub parts: u32,
    /// How the copy was proven to hold the dump's bytes.
    #[serde(default)]
    pub verified_by: CopyCheck,
}

/// How a copy was proven to hold exactly the bytes of the dump (the SHA-256 in the manifest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum CopyCheck {
    /// Read back whole from the destination and hashed.
    #[default]
    ReadBack,
    /// The S3 server checked every part's SHA-256 on arrival and its checksum over the parts
    /// matched ours on completion ([`ops_core::ports::PutProof::ServerSha256`]); no read-back.
    ServerSha256,
    /// The S3 server's multipart ETag, the MD5 of the MD5s of the parts it stored, matched
    /// ours on completion ([`ops_core::ports::PutProof::ServerMd5`]); no read-back.
    ServerMd5,
}

/// What a successful backup did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupReport {
    /// Backup id.
    pub id: BackupId,
    /// The manifest written beside every copy.
    pub manifest: Manifest,
    /// Each destination.
    pub destinations: Vec<DestinationReport>,
    /// Compressed over raw size.
    pub compression_ratio: f64,
    /// Notifications sent.
    pub notifications: Vec<NotificationOutcome>,
    /// Where the time went: each phase (`prepare`, `dump`, `verify-upload`, `manifest`) and
    /// its seconds.
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
}

/// Most compression threads a caller may ask for.
pub const MAX_THREADS: usize = 256;

impl BackupOptions {
    /// Checks the numbers a caller gave.
    ///
    /// # Errors
    /// `InvalidInput` naming the field and its range.
    pub fn validate(&self) -> Result<()> {
        if let Some(level) = self.level {
            let max = match self.compression {
                Compression::Gzip => 9,
                Compression::Zstd => 19,
            };
            ops_core::limits::check_range("level", level, 1, max)?;
        }
        if let Some(t) = self.threads {
            ops_core::limits::check_range("threads", t, 1, MAX_THREADS)?;
        }
        if let Some(p) = &self.prefix {
            check_prefix(p)?;
        }
        Ok(())
    }
}

fn threads(opts: &BackupOptions) -> usize {
    opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get)).max(1)
}

/// Dumps the database (`pg_dump`, the client matching the server's major version) through
/// compression into every configured destination at once, proves every copy holds the dump's
/// SHA-256 (an S3 server that checks each part's SHA-256 on arrival proves it itself; every
/// other copy is read back and hashed), then writes the manifest beside each copy. Only one backup, restore or drill of a
/// database runs at a time. Success and failure are sent to the configured webhooks.
///
/// # Errors
/// `Conflict` when another operation on the database is running; `Integrity` when `pg_dump`
/// fails or the dump is truncated or a copy reads back differently; `Unavailable` when a
/// destination fails. After an error no destination holds a dump or manifest of this backup.
pub async fn backup(ctx: &Context, opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupReport> {
    backup_until(ctx, opts, progress, Box::pin(std::future::pending())).await
}

/// [`backup`], stopped when `cancel` resolves (SIGTERM, a server shutting down): the dump
/// stream fails, every destination discards its part (no temp file, no unfinished multipart
/// upload), a failure record is written and the failure is notified, as for any failed
/// backup.
///
/// # Errors
/// As [`backup`]; an interrupted backup is `Unavailable`.
pub async fn backup_until(
    ctx: &Context,
    opts: &BackupOptions,
    progress: &dyn Progress,
    cancel: crate::pipeline::Cancel,
) -> Result<BackupReport> {
    opts.validate()?;
    let (config_name, db_config, db) = target::database(ctx, opts.database.as_deref())?;
    let stores = target::stores(ctx)?;
    let prefix = opts.prefix.clone().unwrap_or_else(|| db.name().to_owned());
    check_prefix(&prefix)?;
    // Refused while another backup, restore or drill of this database runs: nothing started,
    // so nothing is notified or recorded. Any other failure to take the lock (the server is
    // down, the password is wrong) is a failed backup like any other: notified and recorded.
    let lock = match lock::acquire(db.as_ref(), target::local_dir(ctx).as_deref(), "backup").await {
        Err(e) if e.kind() == crate::ErrorKind::Conflict => return Err(e),
        other => other,
    };
    let (id, started_at) = fresh_id(&stores, &prefix, opts.compression).await;
    // Whether the backup was stopped while it ran: its failure records then get less time.
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cancel: crate::pipeline::Cancel = {
        let stopping = Arc::clone(&stopping);
        Box::pin(async move {
            cancel.await;
            stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let result = match lock {
        // The lock is held until the backup has run.
        Ok(_lock) => {
            run(opts, progress, config_name, &db_config.key_tables, db.as_ref(), &stores, &id, started_at, cancel).await
        }
        Err(e) => Err(e),
    };
    let (title, level, mut fields) = match &result {
        Ok(r) => (
            format!("backup of {} succeeded", db.name()),
            NotificationLevel::Info,
            BTreeMap::from([
                ("size_bytes".to_owned(), r.manifest.size_bytes.to_string()),
                ("duration_seconds".to_owned(), format!("{:.1}", r.manifest.duration_seconds)),
                ("tables".to_owned(), r.manifest.table_count.to_string()),
            ]),
        ),
        Err(e) => (
            format!("backup of {} FAILED", db.name()),
            NotificationLevel::Critical,
            BTreeMap::from([("error".to_owned(), e.to_string())]),
        ),
    };
    fields.insert("database".to_owned(), db.name().to_owned());
    fields.insert("backup_id".to_owned(), id.to_string());
    fields.insert("destinations".to_owned(), stores.iter().map(|s| s.location()).collect::<Vec<_>>().join(", "));
    let project = &ctx.config.project.name;
    let text = if project.is_empty() { String::new() } else { format!("project {project}") };
    let outcomes = notify_all(ctx, &Notification { title, text, level, fields }).await;
    if let Err(e) = &result {
        let limit =
            if stopping.load(std::sync::atomic::Ordering::Relaxed) { STOPPING_RECORD_TIMEOUT } else { RECORD_TIMEOUT };
        record_failure(&stores, &id, db.name(), config_name, e, limit).await;
    }
    result.map(|mut r| {
        r.notifications = outcomes;
        r
    })
}

/// Longest file name prefix.
const MAX_PREFIX_LEN: usize = 100;

/// A prefix is part of every object key: letters, digits, `_`, `-` and `.`, not starting
/// with a dot.
fn check_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && !prefix.starts_with('.')
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "invalid prefix: use 1 to {MAX_PREFIX_LEN} letters, digits, '_', '-' or '.', not starting with '.'"
        )))
    }
}

/// An id no destination uses yet. Ids have second precision (the runbooks' file names), so a
/// backup started in the same second as another one, or as a failed one, waits for the next
/// second instead of overwriting its files or records.
/// An unreachable destination counts as free: the upload to it fails later, loudly.
async fn fresh_id(
    stores: &[Arc<dyn ObjectStore>],
    prefix: &str,
    compression: Compression,
) -> (BackupId, DateTime<Utc>) {
    loop {
        let at = Utc::now();
        let id = BackupId::new(prefix, at);
        let mut taken = false;
        for store in stores {
            for key in [id.dump_key(compression), id.manifest_key(), id.failed_key()] {
                taken |= matches!(store.head(&key).await, Ok(Some(_)));
            }
        }
        if !taken {
            return (id, at);
        }
        let next = 1_000 - u64::from(at.timestamp_subsec_millis()).min(999);
        tokio::time::sleep(std::time::Duration::from_millis(next)).await;
    }
}

/// Leaves `{id}.failed.json` in every destination that takes it within `limit` (all at
/// once), so the failure is visible after this process is gone. Best effort: a
/// destination may be why the backup failed.
async fn record_failure(
    stores: &[Arc<dyn ObjectStore>],
    id: &BackupId,
    database: &str,
    config_name: &str,
    e: &Error,
    limit: std::time::Duration,
) {
    let record = crate::catalog::FailureRecord {
        failed_at: Utc::now(),
        database: database.to_owned(),
        database_config_name: Some(config_name.to_owned()),
        error: e.to_string(),
    };
    let Ok(json) = serde_json::to_vec_pretty(&record) else { return };
    let key = id.failed_key();
    let writes = stores.iter().map(|store| {
        let body = Box::pin(std::io::Cursor::new(json.clone()));
        let key = &key;
        async move {
            match tokio::time::timeout(limit, store.put(key, body, &PutOptions::default())).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(location = %store.location(), error = %err, "could not record the failed backup");
                }
                Err(_) => tracing::warn!(
                    location = %store.location(),
                    "could not record the failed backup: no answer within {} s",
                    limit.as_secs()
                ),
            }
        }
    });
    futures::future::join_all(writes).await;
}

/// How long a destination may take to store a failure record: one that does not answer in a
/// minute is likely why the backup failed.
const RECORD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The same for a backup that was stopped: the process is on its way out (a service manager
/// kills it 90 s after SIGTERM by default), so it must not wait for a client's timeout.
const STOPPING_RECORD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[allow(clippy::too_many_arguments)]
async fn run(
    opts: &BackupOptions,
    progress: &dyn Progress,
    config_name: &str,
    key_tables: &[String],
    db: &dyn ops_core::ports::Database,
    stores: &[Arc<dyn ObjectStore>],
    id: &BackupId,
    started_at: DateTime<Utc>,
    cancel: crate::pipeline::Cancel,
) -> Result<BackupReport> {
    let clock = Instant::now();
    let phases = PhaseClock::new(progress, "prepare");
    let progress = &phases;
    let server = db.server_version().await?;
    let extensions = db.extensions().await?;
    // Counts and dump from one snapshot: the manifest describes exactly what was dumped.
    let snapshot = db.export_snapshot().await?;
    let tables = snapshot.tables(key_tables).await?;
    let size_hint = Some(tables.iter().map(|t| t.size_bytes).sum::<u64>()).filter(|s| *s > 0);
    progress.event(ProgressEvent::Phase { name: "dump".to_owned() });
    let dump = db
        .dump(&DumpOptions { format: DumpFormat::Plain, snapshot: Some(snapshot.id()), ..Default::default() })
        .await?;
    let pg_dump_version = dump.client.version.clone();
    let compression = opts.compression;
    let level = opts.level.unwrap_or_else(|| compression.default_level());
    let settings = CompressSettings { compression, level, threads: threads(opts) };
    let key = id.dump_key(compression);
    let streamed = stream_dump(dump, stores, &key, settings, size_hint, progress, cancel).await?;
    drop(snapshot);

    let key_ref = &key;
    let cleanup = |e: Error| async move {
        crate::pipeline::discard(stores, &[&id.manifest_key(), key_ref]).await;
        Err::<BackupReport, Error>(e)
    };
    progress.event(ProgressEvent::Phase { name: "verify-upload".to_owned() });
    for (store, put) in stores.iter().zip(&streamed.puts) {
        if put.proof.by_server() {
            continue;
        }
        match hash_object(store.as_ref(), &key).await {
            Ok((sha, size)) if sha == streamed.sha256 && size == streamed.compressed_bytes => {}
            Ok((sha, size)) => {
                return cleanup(Error::integrity(format!(
                    "{} reads back {size} bytes with sha256 {sha}, expected {} bytes with {}",
                    store.location(),
                    streamed.compressed_bytes,
                    streamed.sha256
                )))
                .await;
            }
            Err(e) => return cleanup(e.context(format!("reading the upload back from {}", store.location()))).await,
        }
    }

    let finished_at = Utc::now();
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        id: id.clone(),
        database: db.name().to_owned(),
        database_config_name: config_name.to_owned(),
        server_version: server.full,
        pg_dump_version,
        format: "plain".to_owned(),
        compression,
        compression_level: level,
        dump_key: key.clone(),
        size_bytes: streamed.compressed_bytes,
        raw_size_bytes: streamed.raw_bytes,
        sha256: streamed.sha256.clone(),
        started_at,
        finished_at,
        duration_seconds: clock.elapsed().as_secs_f64(),
        table_count: tables.len(),
        tables: tables
            .iter()
            .map(|t| TableCount {
                schema: t.schema.clone(),
                name: t.name.clone(),
                rows: t.exact_rows.or(t.estimated_rows),
                exact: t.exact_rows.is_some(),
            })
            .collect(),
        extensions,
    };
    progress.event(ProgressEvent::Phase { name: "manifest".to_owned() });
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::internal(format!("manifest json: {e}")))?;
    for store in stores {
        let put = store
            .put(
                &id.manifest_key(),
                Box::pin(std::io::Cursor::new(json.clone())),
                &PutOptions { size_hint: None, content_type: Some("application/json".to_owned()) },
            )
            .await;
        if let Err(e) = put {
            return cleanup(e.context(format!("writing the manifest to {}", store.location()))).await;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let compression_ratio =
        if streamed.raw_bytes == 0 { 0.0 } else { streamed.compressed_bytes as f64 / streamed.raw_bytes as f64 };
    Ok(BackupReport {
        id: id.clone(),
        destinations: stores
            .iter()
            .zip(&streamed.puts)
            .map(|(s, p)| DestinationReport {
                location: s.location(),
                key: p.key.clone(),
                size_bytes: p.size,
                parts: p.parts,
                verified_by: match p.proof {
                    PutProof::ServerSha256 => CopyCheck::ServerSha256,
                    PutProof::ServerMd5 => CopyCheck::ServerMd5,
                    PutProof::None => CopyCheck::ReadBack,
                },
            })
            .collect(),
        manifest,
        compression_ratio,
        notifications: Vec::new(),
        phases: phases.times(),
    })
}
