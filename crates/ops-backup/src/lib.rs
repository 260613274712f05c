//! `ops-backup`: PostgreSQL backups that are restorable when they say they succeeded.
//!
//! - [`backup`](backup::backup): `pg_dump` (the client matching the server's major version)
//!   streamed through parallel gzip or zstd into every destination at once, with SHA-256
//!   computed on the fly, every copy read back, and a [`Manifest`](manifest::Manifest)
//!   written last. Counts in the manifest come from the same snapshot as the dump.
//! - [`list`](catalog::list), [`verify`](verify::verify), [`prune`](retention::prune) with a
//!   retention [`plan`](retention::plan) that is a pure function.
//! - [`restore`](restore::restore) (safe swap or in place) and [`dr_test`](drill::dr_test), the
//!   restore drill into a throwaway container or, without a container runtime, a local
//!   cluster ([`ops_core::adapters::local_cluster`]).
//!
//! Library functions take the [`Context`](ops_core::Context) and options and return typed
//! reports; progress goes through an injected [`Progress`](progress::Progress). Dumps are
//! plain SQL named `{prefix}_{YYYYMMDDTHHMMSSZ}.sql.gz`, so `gzip -t` and `gunzip | psql`
//! keep working without this tool.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use ops_backup::retention::{plan, Candidate, RetentionPolicy, Verdict};
//! use ops_backup::naming::BackupId;
//!
//! let at = |d| Utc.with_ymd_and_hms(2026, 1, d, 2, 0, 0).unwrap();
//! let backups: Vec<Candidate> = (1..=10)
//!     .map(|d| Candidate::new(BackupId::new("app", at(d)), at(d), true))
//!     .collect();
//! let policy = RetentionPolicy { keep_daily: Some(3), ..Default::default() };
//! let decisions = plan(&backups, &policy, at(10));
//! assert_eq!(decisions.iter().filter(|d| d.action == Verdict::Keep).count(), 3);
//! ```

pub mod backup;
pub mod catalog;
pub mod check;
pub mod compress;
pub mod dependents;
pub mod drill;
pub mod error;
pub mod lock;
pub mod manifest;
pub mod naming;
mod notify;
pub mod pipeline;
pub mod progress;
pub mod restore;
pub mod retention;
pub mod source;
pub mod target;
pub mod verify;

pub use backup::{BackupOptions, BackupReport, CopyCheck, backup, backup_until};
pub use catalog::{BackupEntry, list};
pub use drill::{DrillBackend, DrillOptions, DrillReport, dr_test};
pub use error::{Error, ErrorKind, Result};
pub use notify::NotificationOutcome;
pub use progress::{NoProgress, PhaseTime, Progress, ProgressEvent};
pub use restore::{RestoreOptions, RestorePlan, RestoreReport, restore, restore_until};
pub use retention::{PruneOptions, PruneReport, prune};
pub use verify::{VerifyReport, verify};
