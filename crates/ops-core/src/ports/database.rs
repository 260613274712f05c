//! [`Database`]: one PostgreSQL database, its server, and the client programs that dump
//! and restore it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::object_store::ByteReader;
use crate::Result;

/// Whether the server takes connections, distinguished like `pg_isready`'s exit codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Readiness {
    /// Accepting connections (`pg_isready` exit 0; wrong credentials still count: the server
    /// answered and is up).
    Accepting,
    /// Up but refusing connections: starting, shutting down, in recovery, or out of slots
    /// (`pg_isready` exit 1).
    Rejecting {
        /// The server's reason.
        reason: String,
    },
    /// Nothing answered (`pg_isready` exit 2).
    NoResponse {
        /// Why (refused, timed out, host not found).
        reason: String,
    },
}

/// PostgreSQL server version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerVersion {
    /// Major version (15).
    pub major: u32,
    /// Minor version (18).
    pub minor: u32,
    /// `server_version` as the server reports it (`15.18 (Debian 15.18-0+deb12u1)`).
    pub full: String,
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// One user table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Schema (`public`).
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Planner estimate (`pg_class.reltuples`); `None` when never analyzed.
    pub estimated_rows: Option<u64>,
    /// `count(*)`, for the tables asked for.
    pub exact_rows: Option<u64>,
    /// Total size with indexes and TOAST.
    pub size_bytes: u64,
}

impl TableInfo {
    /// `schema.name`.
    #[must_use]
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Connections against the server's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// `max_connections`.
    pub max_connections: u32,
    /// `superuser_reserved_connections`.
    pub reserved_connections: u32,
    /// Client backends now connected.
    pub total: u32,
    /// Client backends by `pg_stat_activity.state` (`active`, `idle`, `idle in transaction`).
    pub by_state: BTreeMap<String, u32>,
}

/// One client session of the server, as `pg_stat_activity` shows it. Never carries a password:
/// the query is truncated and the literals after `PASSWORD` (and `password=` in connection
/// strings, and URL credentials) are replaced by `***`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Backend process id (for `pg_terminate_backend`).
    pub pid: i32,
    /// Role name, when visible.
    pub user: Option<String>,
    /// Database name, when visible.
    pub database: Option<String>,
    /// `application_name`, when set.
    pub application: Option<String>,
    /// Client address (`None` over the Unix socket or when not visible).
    pub client_addr: Option<String>,
    /// `active`, `idle`, `idle in transaction`, `idle in transaction (aborted)`, or `unknown`
    /// when the session belongs to a role whose details we may not see.
    pub state: String,
    /// Time since the current (or last) query started.
    pub query_age: Option<Duration>,
    /// Time since the open transaction started (`None` outside a transaction).
    pub transaction_age: Option<Duration>,
    /// Time in the current state (how long it has been idle in its transaction).
    pub state_age: Option<Duration>,
    /// What it waits for (`Lock:transactionid`), if anything.
    pub wait_event: Option<String>,
    /// The current or last query, truncated to [`Session::QUERY_CHARS`] characters and redacted.
    pub query: String,
}

impl Session {
    /// Characters of the query kept.
    pub const QUERY_CHARS: usize = 200;

    /// Whether the session is inside a transaction and waiting for its client.
    #[must_use]
    pub fn is_idle_in_transaction(&self) -> bool {
        self.state.starts_with("idle in transaction")
    }
}

/// Dump format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpFormat {
    /// Plain SQL (`pg_dump -Fp`), restorable with `psql`.
    #[default]
    Plain,
    /// Custom archive (`pg_dump -Fc`), restorable with `pg_restore`.
    Custom,
}

/// Options of [`Database::dump`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpOptions {
    /// Format.
    pub format: DumpFormat,
    /// Omit ownership commands (`--no-owner`), for restores under another role.
    pub no_owner: bool,
    /// Omit privilege commands (`--no-privileges`).
    pub no_privileges: bool,
    /// Dump the data as of this exported snapshot (`--snapshot`), so counts taken in
    /// [`Snapshot`] match the dump exactly.
    pub snapshot: Option<String>,
}

/// A read-only transaction whose snapshot is exported: `pg_dump --snapshot=ID` sees exactly
/// the same data as [`tables`](Snapshot::tables). Released when dropped.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Snapshot: Send + Sync {
    /// The exported snapshot id, for [`DumpOptions::snapshot`].
    fn id(&self) -> String;

    /// [`Database::tables`] as of the snapshot.
    ///
    /// # Errors
    /// `Unavailable`, `NotFound` when a table in `exact` does not exist.
    async fn tables(&self, exact: &[String]) -> Result<Vec<TableInfo>>;
}

/// A session-level advisory lock, held until dropped.
pub trait HeldLock: Send + Sync + fmt::Debug {}

/// The outcome of [`Database::try_lock`].
#[derive(Debug)]
pub enum LockAttempt {
    /// The lock is ours until the guard is dropped.
    Acquired(Box<dyn HeldLock>),
    /// Another session holds it.
    Busy {
        /// When the holding session connected (roughly when its operation started).
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// The holder's `application_name` and client address, when visible.
        holder: Option<String>,
    },
}

/// The PostgreSQL client programs chosen for a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgClient {
    /// Their major version (equal to the server's).
    pub major: u32,
    /// `pg_dump --version` output.
    pub version: String,
    /// `pg_dump`.
    pub pg_dump: PathBuf,
    /// `psql`.
    pub psql: PathBuf,
    /// `pg_restore`.
    pub pg_restore: PathBuf,
}

/// A running `pg_dump`: read [`reader`](Self::reader) to the end, then await
/// [`finish`](Self::finish), which fails when the program exited non-zero, even after it
/// wrote bytes.
pub struct DumpStream {
    /// The dump's bytes as `pg_dump` writes them.
    pub reader: ByteReader,
    /// The client that writes it.
    pub client: PgClient,
    /// Resolves when the process exits.
    pub completion: Pin<Box<dyn Future<Output = Result<()>> + Send>>,
}

impl DumpStream {
    /// Waits for the dump process to exit.
    ///
    /// # Errors
    /// `Integrity` when `pg_dump` exited non-zero, with the tail of its stderr.
    pub async fn finish(self) -> Result<()> {
        self.completion.await
    }
}

impl fmt::Debug for DumpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpStream").field("client", &self.client).finish_non_exhaustive()
    }
}

/// How a restore ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOutcome {
    /// Target database.
    pub database: String,
    /// The client that restored.
    pub client: PgClient,
    /// Bytes fed to it.
    pub bytes: u64,
    /// Wall time.
    pub duration: Duration,
}

/// One PostgreSQL database (the one named in its URL) and admin access to its server.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Database: Send + Sync {
    /// The database name from the URL.
    fn name(&self) -> &str;

    /// An adapter for another database on the same server, with the same credentials.
    ///
    /// # Errors
    /// `InvalidInput` for an invalid name.
    fn with_database(&self, database: &str) -> Result<std::sync::Arc<dyn Database>>;

    /// Whether the server accepts connections, like `pg_isready`. Never fails: not answering
    /// is a [`Readiness`].
    async fn readiness(&self) -> Readiness;

    /// Server version.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn server_version(&self) -> Result<ServerVersion>;

    /// User tables with estimated row counts, and exact counts for `exact` (names as
    /// `table` or `schema.table`; `*` for all).
    ///
    /// # Errors
    /// `Unavailable`, `Auth`, `NotFound` when a table in `exact` does not exist.
    async fn tables(&self, exact: &[String]) -> Result<Vec<TableInfo>>;

    /// Installed extensions (`plpgsql`, `pg_stat_statements`).
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn extensions(&self) -> Result<Vec<String>>;

    /// Connection counts against `max_connections`.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn connections(&self) -> Result<ConnectionStats>;

    /// Client sessions of the whole server except this one, oldest transaction first, like
    /// the runbooks' `SELECT pid, now() - query_start, query FROM pg_stat_activity`.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn activity(&self) -> Result<Vec<Session>>;

    /// Whether a database of that name exists on the server.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn database_exists(&self, name: &str) -> Result<bool>;

    /// `CREATE DATABASE name`.
    ///
    /// # Errors
    /// `Conflict` when it exists, `InvalidInput` for a bad name, `Auth` without the right.
    async fn create_database(&self, name: &str) -> Result<()>;

    /// `DROP DATABASE name` (fails while connections exist).
    ///
    /// # Errors
    /// `NotFound`, `Conflict` (in use).
    async fn drop_database(&self, name: &str) -> Result<()>;

    /// `ALTER DATABASE from RENAME TO to` (fails while connections to `from` exist).
    ///
    /// # Errors
    /// `NotFound`, `Conflict` (in use, or `to` exists).
    async fn rename_database(&self, from: &str, to: &str) -> Result<()>;

    /// Terminates every other backend connected to `database`; returns how many.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn terminate_connections(&self, database: &str) -> Result<u32>;

    /// Terminates one backend; `false` when no such backend existed.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn terminate_backend(&self, pid: i32) -> Result<bool>;

    /// Opens a transaction with an exported snapshot (for consistent dumps and counts).
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn export_snapshot(&self) -> Result<Box<dyn Snapshot>>;

    /// Tries to take the advisory lock named `name` on this server, without waiting.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn try_lock(&self, name: &str) -> Result<LockAttempt>;

    /// The client programs matching the server's major version.
    ///
    /// # Errors
    /// `NotFound` naming the version needed and the versions found.
    async fn client(&self) -> Result<PgClient>;

    /// Starts `pg_dump` of this database and streams its output.
    ///
    /// # Errors
    /// `NotFound` (no matching client), `Unavailable`.
    async fn dump(&self, options: &DumpOptions) -> Result<DumpStream>;

    /// Feeds a dump into `database` on the same server (which must exist) with `psql` or
    /// `pg_restore`, stopping at the first error.
    ///
    /// # Errors
    /// `Integrity` when the client exits non-zero, with the tail of its stderr.
    async fn restore(&self, database: &str, format: DumpFormat, input: ByteReader) -> Result<RestoreOutcome>;
}

/// Makes [`Database`] adapters for servers not in the configuration (a drill's throwaway
/// PostgreSQL).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait DatabaseConnector: Send + Sync {
    /// An adapter for `url`; nothing connects until it is used.
    ///
    /// # Errors
    /// `InvalidInput` for an unusable URL.
    fn connect(&self, url: &crate::secret::SecretUrl) -> Result<std::sync::Arc<dyn Database>>;
}
