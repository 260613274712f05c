//! The state directory: the previous snapshot of cumulative statistics per target, so a report
//! covers the window since the last run rather than since the server started.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A directory of JSON snapshots, one file per key (`pg-main.json`).
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Stored<T> {
    taken_at: DateTime<Utc>,
    data: T,
}

impl StateDir {
    /// A state directory at `dir` (created on the first save).
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    fn file(&self, key: &str) -> PathBuf {
        let safe: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        self.dir.join(format!("{safe}.json"))
    }

    /// The snapshot saved under `key` and when it was taken; `None` when there is none or it
    /// no longer parses (a new version of the data): the caller then reports since start.
    #[must_use]
    pub fn load<T: DeserializeOwned>(&self, key: &str) -> Option<(DateTime<Utc>, T)> {
        let text = std::fs::read_to_string(self.file(key)).ok()?;
        let stored: Stored<T> = serde_json::from_str(&text).ok()?;
        Some((stored.taken_at, stored.data))
    }

    /// Saves `data` under `key`, taken at `taken_at`, atomically (temp file + rename).
    ///
    /// # Errors
    /// The I/O error, as text.
    pub fn save<T: Serialize>(&self, key: &str, taken_at: DateTime<Utc>, data: &T) -> Result<(), String> {
        ops_core::private_fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let path = self.file(key);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string(&Stored { taken_at, data }).map_err(|e| e.to_string())?;
        ops_core::private_fs::write(&tmp, text.as_bytes()).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(&dir.path().join("state"));
        assert!(state.load::<Vec<u64>>("pg:main").is_none());
        let at = Utc::now();
        state.save("pg:main", at, &vec![1u64, 2, 3]).unwrap();
        let (when, data) = state.load::<Vec<u64>>("pg:main").unwrap();
        assert_eq!((when, data), (at, vec![1, 2, 3]));
        // A snapshot of another shape reads as none, not as an error.
        assert!(state.load::<String>("pg:main").is_none());
    }
}
