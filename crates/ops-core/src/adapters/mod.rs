//! Real adapters, one folder each, behind cargo features.
//!
//! Each translates its library's types and errors into the port's, so nothing above this
//! module knows bollard, sqlx, redis, aws-sdk-s3 or reqwest.

#[cfg(feature = "docker")]
pub mod docker;
pub mod fs;
pub mod local_cluster;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "state")]
pub mod state;
#[cfg(feature = "webhook")]
pub mod webhook;

/// Environment variables of the parent that must not reach the PostgreSQL programs this
/// crate runs: the client programs (`pg_dump`, `psql`) and a local cluster's `initdb`,
/// `pg_ctl` and `postgres`. Each gets its settings from its own arguments only.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const INHERITED_PG_VARS: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGOPTIONS",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGTZ",
    "PGCLIENTENCODING",
    "PGSSLMODE",
    "PGTARGETSESSIONATTRS",
];

/// The last `max` characters of a process's stderr, for error messages.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().rev().nth(max) {
        Some((i, _)) => format!("…{}", &text[i..]),
        None => text.to_owned(),
    }
}
