//! One backup, restore or drill per database at a time: a lock file in the local backup
//! directory (for this host) and a PostgreSQL advisory lock (for every host).

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use ops_core::ports::{Database, HeldLock, LockAttempt};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Who holds a lock file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Holder {
    pid: u32,
    operation: String,
    started_at: DateTime<Utc>,
}

/// Both locks, released when dropped.
#[derive(Debug)]
pub struct OperationLock {
    _file: Option<File>,
    _db: Box<dyn HeldLock>,
}

fn busy(database: &str, since: Option<DateTime<Utc>>, who: Option<String>) -> Error {
    let since = since.map_or_else(|| "an unknown time".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    let who = who.map(|w| format!(" ({w})")).unwrap_or_default();
    Error::conflict(format!("a backup, restore or drill of {database} is already running since {since}{who}"))
}

fn lock_file(dir: &Path, database: &str, operation: &str) -> Result<File> {
    ops_core::private_fs::create_dir_all(dir)
        .map_err(|e| Error::from(e).context(format!("creating {}", dir.display())))?;
    let path = dir.join(format!(".ops-{database}.lock"));
    let mut file = ops_core::private_fs::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::from(e).context(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            let holder = Holder { pid: std::process::id(), operation: operation.to_owned(), started_at: Utc::now() };
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(serde_json::to_string(&holder).unwrap_or_default().as_bytes())?;
            file.flush()?;
            Ok(file)
        }
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder: Option<Holder> = serde_json::from_str(&text).ok();
            Err(busy(
                database,
                holder.as_ref().map(|h| h.started_at),
                holder.map(|h| format!("{} by pid {}", h.operation, h.pid)),
            ))
        }
        Err(TryLockError::Error(e)) => Err(Error::from(e).context(format!("locking {}", path.display()))),
    }
}

/// Takes the local lock (when a local directory is configured), then the advisory lock: the
/// one lock per database that backups, restores, drills and runbook steps with `lock = true`
/// share.
///
/// # Errors
/// `Conflict` naming who holds it; the errors of the lock file and of the database.
pub async fn acquire(db: &dyn Database, local_dir: Option<&Path>, operation: &str) -> Result<OperationLock> {
    let name = db.name().to_owned();
    let file = local_dir.map(|d| lock_file(d, &name, operation)).transpose()?;
    match db.try_lock(&format!("ops:{name}")).await? {
        LockAttempt::Acquired(guard) => Ok(OperationLock { _file: file, _db: guard }),
        LockAttempt::Busy { since, holder } => Err(busy(&name, since, holder)),
    }
}
