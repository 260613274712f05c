//! The manifest: what a backup contains, written last, after the dump was uploaded and read
//! back. A dump without a manifest is not a backup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::compress::Compression;
use crate::naming::BackupId;

/// Version of the manifest format.
pub const MANIFEST_VERSION: u32 = 1;

/// One table as it was in the dump's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableCount {
    /// Schema.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Rows: exact for key tables, the planner estimate otherwise.
    pub rows: Option<u64>,
    /// Whether `rows` is an exact count (key tables) or an estimate.
    pub exact: bool,
}

impl TableCount {
    /// `schema.name`.
    #[must_use]
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Everything known about one backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Manifest {
    /// Format version.
    pub manifest_version: u32,
    /// Backup id.
    pub id: BackupId,
    /// Database name (as on the server).
    pub database: String,
    /// Config name of the database (`main`).
    pub database_config_name: String,
    /// PostgreSQL server version.
    pub server_version: String,
    /// `pg_dump --version`.
    pub pg_dump_version: String,
    /// Dump format (`plain`).
    pub format: String,
    /// Compression.
    pub compression: Compression,
    /// Compression level.
    pub compression_level: u32,
    /// Key of the dump object.
    pub dump_key: String,
    /// Compressed size in bytes.
    pub size_bytes: u64,
    /// Uncompressed size in bytes.
    pub raw_size_bytes: u64,
    /// SHA-256 of the compressed object, lowercase hex.
    pub sha256: String,
    /// When the dump started.
    pub started_at: DateTime<Utc>,
    /// When the upload was complete and verified.
    pub finished_at: DateTime<Utc>,
    /// Seconds from start to verified upload.
    pub duration_seconds: f64,
    /// Tables with row counts from the same snapshot as the dump.
    pub tables: Vec<TableCount>,
    /// Number of tables.
    pub table_count: usize,
    /// Installed extensions.
    pub extensions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::Manifest;

    /// Found by the `manifest` fuzz target: without correctly rounded float parsing
    /// (serde_json's `float_roundtrip`), a long decimal read back as another number after one
    /// write.
    #[test]
    fn a_manifest_read_and_written_reads_back_the_same() {
        let text = include_str!("../../../fuzz/seeds/manifest/long-float-duration.json");
        let m: Manifest = serde_json::from_str(text).unwrap();
        let again: Manifest = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(m, again);
        assert!((m.duration_seconds - 1.222_222_222_222_222_2e27).abs() < 1e12, "{}", m.duration_seconds);
    }
}
