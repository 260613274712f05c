//! `ops-backup`: PostgreSQL backup, verify, retention, restore and DR drill.
//!
//! It will stream dumps from the [`Database`](ops_core::ports::Database) port into
//! [`ObjectStore`](ops_core::ports::ObjectStore)s with manifests and checksums. This crate is
//! part of the workspace skeleton; its functions arrive with the backup issue.
