//! [`PostgresDatabase`]: [`Database`](crate::ports::Database) over sqlx, with dumps and
//! restores streamed through the PostgreSQL client programs whose major version matches the
//! server's.
//!
//! Passwords reach the client programs through `PGPASSWORD` in their environment, never on
//! their command line, and never through a shell.

mod client;
mod perf;
mod plain;
mod programs;
mod restrict;
#[cfg(test)]
mod tests;

pub use client::{PostgresConnector, PostgresDatabase, PostgresOptions};
pub use programs::{find_client, parse_client_version};
