//! `cargo xtask bench …`: each benchmark measures `opsctl` against the commands the runbooks
//! run by hand, in the same run, on the same data, and reports ratios.
//!
//! - [`backup`]: backups and restores against `pg_dump`, `gzip`, `zstd` and `psql` pipelines.
//! - [`perf`]: `opsctl perf analyze` against the runbooks' `perf-analyze.sh` queries.
//! - [`probes`]: `opsctl triage` against the first responder's one-liners.

pub mod backup;
pub mod perf;
pub mod probes;
