//! The audit log: every change this tool makes to the operated stack (an action, a restore's
//! swap or drop, a retention prune, a certificate renewal) appended as one JSON line (time UTC,
//! actor, action, target, before, after, result), fsynced, so later tools can build incident
//! timelines. One writer, one record shape, for every capability.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One applied action on one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// When it was applied.
    pub time: DateTime<Utc>,
    /// Who asked (`opsctl:root@host`, `api:<key id>`).
    pub actor: String,
    /// The action (`terminate`, `kill-idle`, `vacuum`, `redis-set-policy`, `restart`).
    pub action: String,
    /// What it touched (`backend:4242`, `table:public.orders`, `redis:main`, `container:api`).
    pub target: String,
    /// State before (the session, the policy, the container state).
    pub before: serde_json::Value,
    /// State after.
    pub after: serde_json::Value,
    /// `ok`, or what went wrong.
    pub result: String,
}

/// An append-only JSON-lines file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// Opens (creating the file and its directory) and checks it can be appended to, so an
    /// action is refused before it runs when its record could not be kept.
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be created or written.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private_fs::create_dir_all(dir).map_err(|e| {
                Error::unavailable(format!(
                    "audit log directory {} (perf.audit-log) cannot be created: {e}",
                    dir.display()
                ))
            })?;
        }
        crate::private_fs::options().create(true).append(true).open(path).map_err(|e| {
            Error::unavailable(format!("audit log {} (perf.audit-log) cannot be opened: {e}", path.display()))
        })?;
        Ok(Self { path: path.to_owned() })
    }

    /// Where it is.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and syncs it to disk.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    pub fn append(&self, entry: &AuditEntry) -> Result<()> {
        let mut line = serde_json::to_string(entry).map_err(|e| Error::internal(format!("audit entry: {e}")))?;
        line.push('\n');
        // Created again when logrotate moved it away since it was opened.
        let mut file = crate::private_fs::options()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::unavailable(format!("audit log {}: {e}", self.path.display())))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::unavailable(format!("audit log {}: {e}", self.path.display())))
    }

    /// Every entry, oldest first (lines that do not parse are skipped).
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be read.
    pub fn read(&self) -> Result<Vec<AuditEntry>> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| Error::unavailable(format!("audit log {}: {e}", self.path.display())))?;
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }
}

/// Copies the entries appended to `log` since the last mirror into the state store, so the
/// store holds the audit trail too (the file stays the record written before each change).
/// A file that was rotated or truncated since is mirrored from its start; entries already
/// mirrored are not doubled. Returns how many lines were read.
///
/// # Errors
/// `Unavailable` when the file cannot be read or the store written.
pub async fn mirror(log: &AuditLog, store: &dyn crate::ports::StateStore) -> Result<usize> {
    use sha2::Digest as _;
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncSeekExt as _};
    let unavailable = |e: std::io::Error| Error::unavailable(format!("audit log {}: {e}", log.path().display()));
    let mut file = match tokio::fs::File::open(log.path()).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(unavailable(e)),
    };
    let len = file.metadata().await.map_err(unavailable)?.len();
    // The first line names the file: a rotated or truncated log has another.
    let mut first = Vec::new();
    tokio::io::BufReader::new((&mut file).take(64 * 1024)).read_until(b'\n', &mut first).await.map_err(unavailable)?;
    let head = hex::encode(&sha2::Sha256::digest(&first)[..8]);
    // One position per host and file: replicas sharing a store each mirror their own log.
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let source = format!("{host}:{}", log.path().display());
    let start = match store.audit_mirror_position(&source).await? {
        Some((offset, h)) if h == head && offset <= len => offset,
        _ => 0,
    };
    file.seek(std::io::SeekFrom::Start(start)).await.map_err(unavailable)?;
    let mut bytes = Vec::new();
    file.take(len - start).read_to_end(&mut bytes).await.map_err(unavailable)?;
    // Only whole lines: a line being written now is mirrored next time.
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n').map(|p| p + 1) else {
        return Ok(0);
    };
    let text = String::from_utf8_lossy(&bytes[..end]);
    let entries: Vec<AuditEntry> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for chunk in entries.chunks(500) {
        store.mirror_audit(&source, chunk, start, &head).await?;
    }
    store.mirror_audit(&source, &[], start + end as u64, &head).await?;
    Ok(text.lines().count())
}

/// Who acts when the caller does not say: a program embedding the library.
pub const LIBRARY_ACTOR: &str = "library";

/// An audit log and who is acting: what a call that changes the stack needs to record each
/// change. Open it before the first change: no record, no change.
#[derive(Debug, Clone)]
pub struct Audit {
    log: AuditLog,
    actor: String,
}

impl Audit {
    /// Opens the configured audit log (`perf.audit-log`) for `actor` (`opsctl:root@host`,
    /// `api:<key fingerprint>`; [`LIBRARY_ACTOR`] when `None`).
    ///
    /// # Errors
    /// As [`AuditLog::open`].
    pub fn open(config: &crate::config::OpsConfig, actor: Option<&str>) -> Result<Self> {
        Ok(Self { log: AuditLog::open(&config.perf.audit_log)?, actor: actor.unwrap_or(LIBRARY_ACTOR).to_owned() })
    }

    /// An audit log at `path`, for `actor`.
    ///
    /// # Errors
    /// As [`AuditLog::open`].
    pub fn at(path: &Path, actor: &str) -> Result<Self> {
        Ok(Self { log: AuditLog::open(path)?, actor: actor.to_owned() })
    }

    /// Who is acting.
    #[must_use]
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The log.
    #[must_use]
    pub const fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Appends one record, now, by this actor.
    ///
    /// # Errors
    /// `Unavailable` when the write fails.
    pub fn record(
        &self,
        action: &str,
        target: &str,
        before: serde_json::Value,
        after: serde_json::Value,
        result: &str,
    ) -> Result<()> {
        self.log.append(&AuditEntry {
            time: Utc::now(),
            actor: self.actor.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            before,
            after,
            result: result.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("sub/audit.jsonl")).unwrap();
        let entry = AuditEntry {
            time: Utc::now(),
            actor: "test".into(),
            action: "terminate".into(),
            target: "backend:42".into(),
            before: serde_json::json!({ "state": "idle" }),
            after: serde_json::json!(null),
            result: "ok".into(),
        };
        log.append(&entry).unwrap();
        log.append(&entry).unwrap();
        assert_eq!(log.read().unwrap(), vec![entry.clone(), entry]);
        assert_eq!(std::fs::read_to_string(log.path()).unwrap().lines().count(), 2);
    }

    #[test]
    fn an_unwritable_log_is_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        // A path under a regular file cannot be created.
        assert!(AuditLog::open(&file.join("audit.jsonl")).is_err());
    }
}
