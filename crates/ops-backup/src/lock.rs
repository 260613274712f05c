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
    _db: Option<Box<dyn HeldLock>>,
}

fn busy(database: &str, since: Option<DateTime<Utc>>, who: Option<String>) -> Error {
    let since = since.map_or_else(|| "an unknown time".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    let who = who.map(|w| format!(" ({w})")).unwrap_or_default();
    Error::conflict(format!("a backup, restore or drill of {database} is already running since {since}{who}"))
}

/// The `Conflict` naming who holds a busy lock file, as its holder wrote itself in.
fn held_by(file: &mut File, database: &str) -> Error {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let holder: Option<Holder> = serde_json::from_str(&text).ok();
    busy(database, holder.as_ref().map(|h| h.started_at), holder.map(|h| format!("{} by pid {}", h.operation, h.pid)))
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
        Err(TryLockError::WouldBlock) => Err(held_by(&mut file, database)),
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
        LockAttempt::Acquired(guard) => Ok(OperationLock { _file: file, _db: Some(guard) }),
        LockAttempt::Busy { since, holder } => Err(busy(&name, since, holder)),
    }
}

/// Whether the lock file in `dir` is free, read without writing to it: a shared lock taken
/// and let go (it conflicts with the exclusive one an operation holds).
fn file_free(dir: &Path, database: &str) -> Result<()> {
    let path = dir.join(format!(".ops-{database}.lock"));
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::from(e).context(format!("opening {}", path.display()))),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(held_by(&mut file, database)),
        Err(TryLockError::Error(e)) => Err(Error::from(e).context(format!("locking {}", path.display()))),
    }
}

/// Whether a backup, restore or drill of `db` runs now (on this host by the lock file, on any
/// host by the advisory lock), taking neither for longer than the look.
///
/// # Errors
/// `Conflict` naming who holds it; the errors of the lock file and of the database.
pub async fn check_free(db: &dyn Database, local_dir: Option<&Path>) -> Result<()> {
    let name = db.name().to_owned();
    if let Some(dir) = local_dir {
        file_free(dir, &name)?;
    }
    match db.try_lock(&format!("ops:{name}")).await? {
        LockAttempt::Acquired(guard) => {
            drop(guard);
            Ok(())
        }
        LockAttempt::Busy { since, holder } => Err(busy(&name, since, holder)),
    }
}

/// For an operation that stops the database's server (a rollback of its container): the
/// advisory lock is checked and let go (a session held on a server being stopped would hold
/// the stop up), and the local lock file is held, so that no backup, restore or drill starts
/// on this host meanwhile. Without a local directory only the check is made.
///
/// # Errors
/// Those of [`check_free`] and of the lock file.
pub async fn acquire_local(db: &dyn Database, local_dir: Option<&Path>, operation: &str) -> Result<OperationLock> {
    let name = db.name().to_owned();
    let file = local_dir.map(|d| lock_file(d, &name, operation)).transpose()?;
    match db.try_lock(&format!("ops:{name}")).await? {
        LockAttempt::Acquired(guard) => drop(guard),
        LockAttempt::Busy { since, holder } => return Err(busy(&name, since, holder)),
    }
    Ok(OperationLock { _file: file, _db: None })
}
