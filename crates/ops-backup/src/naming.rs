//! Backup ids and object keys: `{prefix}_{YYYYMMDDTHHMMSSZ}` plus `.sql.gz`/`.sql.zst`, and
//! the manifest beside it, so the files stay usable with plain `gunzip | psql`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::compress::Compression;

const TS_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Suffix of a manifest object.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
/// Suffix of a verification record.
pub const VERIFY_SUFFIX: &str = ".verify.json";
/// Suffix of the record a failed backup leaves (instead of a dump).
pub const FAILED_SUFFIX: &str = ".failed.json";

/// Identifies one backup: its prefix (by default the database name) and its start time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupId(String);

impl BackupId {
    /// `{prefix}_{timestamp}` for a backup started at `at` (second precision, UTC).
    #[must_use]
    pub fn new(prefix: &str, at: DateTime<Utc>) -> Self {
        Self(format!("{prefix}_{}", at.format(TS_FORMAT)))
    }

    /// Parses an id, checking it ends in a valid timestamp written exactly as [`Self::new`]
    /// writes it (so one backup has one id: `+2026…` or a short field is not another spelling).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let id = Self(s.to_owned());
        let ts = id.timestamp()?;
        (Self::new(id.prefix(), ts) == id).then_some(id)
    }

    /// The id text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix part.
    #[must_use]
    pub fn prefix(&self) -> &str {
        self.0.rsplit_once('_').map_or("", |(p, _)| p)
    }

    /// When the backup started.
    #[must_use]
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        let (_, ts) = self.0.rsplit_once('_')?;
        NaiveDateTime::parse_from_str(ts, TS_FORMAT).ok().map(|t| t.and_utc())
    }

    /// Key of the dump object.
    #[must_use]
    pub fn dump_key(&self, compression: Compression) -> String {
        format!("{}{}", self.0, compression.extension())
    }

    /// Key of the manifest object.
    #[must_use]
    pub fn manifest_key(&self) -> String {
        format!("{}{MANIFEST_SUFFIX}", self.0)
    }

    /// Key of the last verification record.
    #[must_use]
    pub fn verify_key(&self) -> String {
        format!("{}{VERIFY_SUFFIX}", self.0)
    }

    /// Key of the failure record.
    #[must_use]
    pub fn failed_key(&self) -> String {
        format!("{}{FAILED_SUFFIX}", self.0)
    }
}

impl std::fmt::Display for BackupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of object a key is, and the backup it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// A dump.
    Dump(BackupId, Compression),
    /// A manifest.
    Manifest(BackupId),
    /// A verification record.
    Verification(BackupId),
    /// The record of a failed backup.
    Failure(BackupId),
}

/// Classifies a key of a store; `None` for objects that are not ours.
#[must_use]
pub fn classify(key: &str) -> Option<KeyKind> {
    let name = key.rsplit('/').next().unwrap_or(key);
    if let Some(id) = name.strip_suffix(MANIFEST_SUFFIX) {
        return BackupId::parse(id).map(KeyKind::Manifest);
    }
    if let Some(id) = name.strip_suffix(VERIFY_SUFFIX) {
        return BackupId::parse(id).map(KeyKind::Verification);
    }
    if let Some(id) = name.strip_suffix(FAILED_SUFFIX) {
        return BackupId::parse(id).map(KeyKind::Failure);
    }
    for c in [Compression::Gzip, Compression::Zstd] {
        if let Some(id) = name.strip_suffix(c.extension()) {
            return BackupId::parse(id).map(|id| KeyKind::Dump(id, c));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ids_round_trip() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 5).unwrap();
        let id = BackupId::new("stellar_escrow", at);
        assert_eq!(id.as_str(), "stellar_escrow_20261122T020005Z");
        assert_eq!(id.prefix(), "stellar_escrow");
        assert_eq!(id.timestamp(), Some(at));
        assert_eq!(id.dump_key(Compression::Gzip), "stellar_escrow_20261122T020005Z.sql.gz");
        assert_eq!(
            classify("stellar_escrow_20261122T020005Z.sql.zst"),
            Some(KeyKind::Dump(id.clone(), Compression::Zstd))
        );
        assert_eq!(classify("x/stellar_escrow_20261122T020005Z.manifest.json"), Some(KeyKind::Manifest(id)));
        assert_eq!(classify("notes.txt"), None);
        assert_eq!(BackupId::parse("db_2026"), None);
    }
}
