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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionStats {
    /// `max_connections`.
    pub max_connections: u32,
    /// `superuser_reserved_connections`.
    pub reserved_connections: u32,
    /// Client backends now connected.
    pub total: u32,
    /// Client backends by `pg_stat_activity.state` (`active`, `idle`, `idle in transaction`).
    pub by_state: BTreeMap<String, u32>,
    /// The round trip of a trivial query on an open connection, in microseconds: how fast
    /// the server answers, without the cost of connecting.
    #[serde(default)]
    pub round_trip_micros: u64,
}

/// Dump format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PgClient {
    /// Their major version (equal to the server's).
    pub major: u32,
    /// `pg_dump --version` output.
    pub version: String,
    /// `pg_dump`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub pg_dump: PathBuf,
    /// `psql`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub psql: PathBuf,
    /// `pg_restore`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub pg_restore: PathBuf,
}

/// The bytes a dump process writes.
pub enum DumpOutput {
    /// Its stdout pipe, read with blocking reads on a thread of its own. The pipe is
    /// registered with no async runtime, whose I/O driver would otherwise wake for every
    /// write of the process (`pg_dump` writes 4 KiB at a time: 80 000 wake-ups for a 331 MB
    /// dump).
    Pipe(PipeReader),
    /// Any other stream.
    Stream(ByteReader),
}

impl fmt::Debug for DumpOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pipe(p) => f.debug_tuple("Pipe").field(p).finish(),
            Self::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl DumpOutput {
    /// The bytes as an async stream (a pipe is then read on tokio's blocking threads).
    #[must_use]
    pub fn into_async(self) -> ByteReader {
        match self {
            Self::Pipe(p) => Box::pin(tokio::fs::File::from_std(p.file)),
            Self::Stream(s) => s,
        }
    }
}

/// A pipe read with blocking reads that fail once a stop flag is set: while no bytes come,
/// the flag is checked every 100 ms, so a stalled writer cannot keep the reader waiting.
#[derive(Debug)]
pub struct PipeReader {
    file: std::fs::File,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl PipeReader {
    /// Reads `fd`, which must be in blocking mode.
    #[must_use]
    pub fn new(fd: std::os::fd::OwnedFd) -> Self {
        Self { file: fd.into(), stop: None }
    }

    /// Bytes the pipe holds (`F_GETPIPE_SZ`); `None` where that cannot be known.
    #[must_use]
    pub fn capacity(&self) -> Option<usize> {
        #[cfg(target_os = "linux")]
        return rustix::pipe::fcntl_getpipe_size(&self.file).ok();
        #[cfg(not(target_os = "linux"))]
        None
    }

    /// Makes every read fail (`Interrupted` is not used: readers retry it) once `stop` is set.
    #[must_use]
    pub fn stop_on(mut self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }
}

impl std::io::Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(stop) = &self.stop else { return self.file.read(buf) };
        let tick = rustix::time::Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        loop {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(std::io::Error::other("the backup was interrupted"));
            }
            let mut fds = [rustix::event::PollFd::new(&self.file, rustix::event::PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&tick)) {
                // Readable, closed (a read returns 0) or failed (the read says how).
                Ok(n) if n > 0 => return self.file.read(buf),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A running `pg_dump`: read [`reader`](Self::reader) to the end, then await
/// [`finish`](Self::finish), which fails when the program exited non-zero, even after it
/// wrote bytes.
pub struct DumpStream {
    /// The dump's bytes as `pg_dump` writes them.
    pub reader: DumpOutput,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreOutcome {
    /// Target database.
    pub database: String,
    /// The client that restored.
    pub client: PgClient,
    /// Bytes fed to it.
    pub bytes: u64,
    /// Wall time.
    pub duration: Duration,
    /// Client sessions that loaded the table data at once: 1 when the whole dump ran in one
    /// session (a custom archive, `restore-jobs` 1, a dump the splitter keeps whole).
    pub data_sessions: usize,
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

    /// Whether a database of that name exists on the server.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn database_exists(&self, name: &str) -> Result<bool>;

    /// Names of the server's roles, without PostgreSQL's own (`pg_*`): what a plain dump's
    /// `OWNER TO` and `GRANT … TO` may name.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn roles(&self) -> Result<Vec<String>>;

    /// Creates each role that does not exist yet, `NOLOGIN` (a throwaway server restoring a
    /// dump of a database owned by an application role).
    ///
    /// # Errors
    /// `Unavailable`, `Auth` (needs `CREATEROLE`), `InvalidInput` for an empty name.
    async fn create_roles(&self, names: &[String]) -> Result<()>;

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

    /// Statements, tables, indexes, sequences, database counters and backends, for performance
    /// analysis: one connection, a fixed number of catalog queries whatever the number of
    /// tables, no table locks, each query bounded by the adapter's timeout.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`, `Timeout`.
    async fn perf_snapshot(&self) -> Result<PerfSnapshot>;

    /// Every backend of the server (one query).
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn backends(&self) -> Result<BackendList>;

    /// Cancels the query of, or terminates, backend `pid` only if `check` still holds and it is
    /// a client backend other than the calling session, all in one statement.
    ///
    /// # Errors
    /// `Unavailable`, `Auth` (not allowed to signal that backend).
    async fn signal_backend(&self, pid: i32, signal: BackendSignal, check: &BackendCheck) -> Result<SignalOutcome>;

    /// User tables of this database with their statistics (one query).
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    async fn table_stats(&self) -> Result<Vec<TableStats>>;

    /// `VACUUM` (with `ANALYZE`) of one table (`(schema, name)`, quoted as identifiers) or of
    /// the whole database, outside a transaction.
    ///
    /// # Errors
    /// `NotFound` when the table does not exist, `Unavailable`, `Auth`.
    async fn vacuum(&self, table: Option<(String, String)>, analyze: bool) -> Result<()>;

    /// The single value of a read-only query: run in a `READ ONLY` transaction that is rolled
    /// back, with `statement_timeout` and `lock_timeout` set to `timeout`, as one prepared
    /// statement (so never two statements). The `[[sql]]` checks.
    ///
    /// # Errors
    /// `InvalidInput` when the answer is not one row of one column, or of a type that is not
    /// a number, a time or an interval (`SqlValue::Null` for a `NULL`); `Timeout`;
    /// `Unavailable`, `Auth`; `Internal` for an error of the query itself (its message, which
    /// names no value of the configuration).
    async fn query_value(&self, query: &str, timeout: Duration) -> Result<SqlValue>;
}

/// The single value a `[[sql]]` check's query returned.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case", tag = "type", content = "value")]
pub enum SqlValue {
    /// A number (integer, floating point or `numeric`).
    Number(f64),
    /// A point in time (`timestamptz`; `timestamp` and `date` are read as UTC).
    Time(chrono::DateTime<chrono::Utc>),
    /// A duration (`interval`; a month counts 30 days), seconds.
    Interval(f64),
    /// SQL `NULL` (`max()` of an empty table).
    Null,
}

/// One backend process of the server (any type: client, autovacuum, walsender, …), as
/// `pg_stat_activity` shows it, with what the guarded actions need to recognise it again: a pid
/// is reused, a pid with the same `backend_start` is the same session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Backend {
    /// Process id.
    pub pid: i32,
    /// `client backend`, `autovacuum worker`, `walsender`, `background worker`, ….
    pub backend_type: String,
    /// Role name, when visible.
    pub user: Option<String>,
    /// Database name, when connected to one.
    pub database: Option<String>,
    /// `application_name`, when set (`pg_dump`, `psql`).
    pub application: Option<String>,
    /// Client address (`None` over the Unix socket).
    pub client_addr: Option<String>,
    /// `active`, `idle`, `idle in transaction`, … (empty for background processes).
    pub state: String,
    /// When the session connected (with the pid, its identity).
    pub backend_start: Option<chrono::DateTime<chrono::Utc>>,
    /// When its current (or last) query started.
    pub query_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Time since the session connected.
    pub backend_age: Option<Duration>,
    /// Time since the current (or last) query started.
    pub query_age: Option<Duration>,
    /// Time since the open transaction started (`None` outside a transaction).
    pub transaction_age: Option<Duration>,
    /// Time in the current state.
    pub state_age: Option<Duration>,
    /// What it waits for (`Lock:relation`), if anything.
    pub wait_event: Option<String>,
    /// The pids holding the lock it waits for (`pg_blocking_pids`; empty unless waiting on a
    /// lock).
    pub blocked_by: Vec<i32>,
    /// The current or last query, truncated to [`Backend::QUERY_CHARS`] characters, with the
    /// literals after `PASSWORD` (and `password=` in connection strings, and URL credentials)
    /// replaced by `***`.
    pub query: String,
}

impl Backend {
    /// Characters of the query kept.
    pub const QUERY_CHARS: usize = 200;

    /// Whether the session is inside a transaction and waiting for its client.
    #[must_use]
    pub fn is_idle_in_transaction(&self) -> bool {
        self.state.starts_with("idle in transaction")
    }

    /// A regular client connection (not autovacuum, replication or a background worker).
    #[must_use]
    pub fn is_client(&self) -> bool {
        self.backend_type == "client backend"
    }
}

/// Backends for tests.
#[cfg(any(test, feature = "mocks"))]
pub mod fixtures {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::Backend;

    /// A client backend of role `app` on database `app`, run by application `app` (none when
    /// empty), in `state` for `age_secs` (its query and its connection as old), connected at
    /// 2023-11-14 22:13:20.123456 UTC with its query started 100 s later, running
    /// `SELECT {pid}`. Override what a test needs with struct update syntax.
    #[must_use]
    pub fn client_backend(pid: i32, app: &str, state: &str, age_secs: u64) -> Backend {
        let age = Some(Duration::from_secs(age_secs));
        Backend {
            pid,
            backend_type: "client backend".into(),
            user: Some("app".into()),
            database: Some("app".into()),
            application: Some(app.to_owned()).filter(|a| !a.is_empty()),
            client_addr: None,
            state: state.into(),
            backend_start: chrono::Utc.timestamp_opt(1_700_000_000, 123_456_000).single(),
            query_start: chrono::Utc.timestamp_opt(1_700_000_100, 0).single(),
            backend_age: age,
            query_age: age,
            transaction_age: None,
            state_age: age,
            wait_event: None,
            blocked_by: Vec::new(),
            query: format!("SELECT {pid}"),
        }
    }
}

/// Every backend of the server, and the pid of the session that listed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackendList {
    /// `pg_backend_pid()` of the connection used (never a target of an action).
    pub own_pid: i32,
    /// The backends, own one included.
    pub backends: Vec<Backend>,
}

/// What [`Database::signal_backend`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum BackendSignal {
    /// `pg_cancel_backend`: cancel the running query, keep the session.
    Cancel,
    /// `pg_terminate_backend`: end the session.
    Terminate,
}

/// What must still hold, checked in the same statement that signals, so a session that changed
/// since it was planned is left alone. The backend must also be a client backend and not the
/// signalling session itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackendCheck {
    /// The session's `backend_start` (same pid and same start: same session).
    pub backend_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Its state (`idle`, `active`).
    pub state: Option<String>,
    /// At least this long in that state.
    pub min_state_age: Option<Duration>,
    /// The same query still running (its `query_start`).
    pub query_start: Option<chrono::DateTime<chrono::Utc>>,
    /// The query running at least this long.
    pub min_query_age: Option<Duration>,
    /// `application_name`s never signalled (`pg_dump`).
    pub protected_applications: Vec<String>,
}

/// What [`Database::signal_backend`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum SignalOutcome {
    /// The checks held and the signal was sent; `delivered` is the function's answer.
    Sent {
        /// `pg_cancel_backend`/`pg_terminate_backend` returned true.
        delivered: bool,
    },
    /// No backend with that pid any more.
    Gone,
    /// The backend exists but a check failed; nothing was sent.
    Changed {
        /// The backend as it is now.
        now: Box<Backend>,
    },
}

/// Cumulative statistics of one normalized statement (`pg_stat_statements`, summed over users).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatementStats {
    /// `queryid`.
    pub queryid: i64,
    /// Executions.
    pub calls: u64,
    /// Total execution time, milliseconds.
    pub total_ms: f64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Shared blocks found in the buffer cache.
    pub shared_blks_hit: u64,
    /// Shared blocks read from disk (or the OS cache).
    pub shared_blks_read: u64,
    /// The normalized text (constants are `$1`), truncated to [`Backend::QUERY_CHARS`]
    /// characters and redacted like [`Backend::query`].
    pub query: String,
}

/// One user table: size, tuples, scans and maintenance (`pg_stat_user_tables`, `pg_class`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableStats {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// `schema.name` quoted as SQL needs it (`public."Order"`).
    pub sql_name: String,
    /// Heap and TOAST size, bytes, from `relpages` (an estimate kept by VACUUM and ANALYZE;
    /// reading it takes no lock).
    pub size_bytes: u64,
    /// Planner row estimate (`reltuples`); `None` before the first VACUUM or ANALYZE.
    pub estimated_rows: Option<u64>,
    /// `n_live_tup`.
    pub live_tuples: u64,
    /// `n_dead_tup`.
    pub dead_tuples: u64,
    /// `n_mod_since_analyze`.
    pub modified_since_analyze: u64,
    /// Sequential scans.
    pub seq_scan: u64,
    /// Rows read by sequential scans.
    pub seq_tup_read: u64,
    /// Index scans (`None`: the table has no index).
    pub idx_scan: Option<u64>,
    /// Rows fetched by index scans.
    pub idx_tup_fetch: u64,
    /// Rows inserted, updated, deleted.
    pub n_tup_ins: u64,
    /// Rows updated.
    pub n_tup_upd: u64,
    /// Rows deleted.
    pub n_tup_del: u64,
    /// Last manual VACUUM.
    pub last_vacuum: Option<chrono::DateTime<chrono::Utc>>,
    /// Last autovacuum.
    pub last_autovacuum: Option<chrono::DateTime<chrono::Utc>>,
    /// Last manual ANALYZE.
    pub last_analyze: Option<chrono::DateTime<chrono::Utc>>,
    /// Last autoanalyze.
    pub last_autoanalyze: Option<chrono::DateTime<chrono::Utc>>,
    /// `age(relfrozenxid)`: transactions since the table was last frozen.
    pub frozen_xid_age: u64,
}

impl TableStats {
    /// `schema.name`, unquoted.
    #[must_use]
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// One index of a user table, with what is needed to tell duplicates (`pg_index`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndexStats {
    /// Schema.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Index name.
    pub name: String,
    /// `schema.name` of the index, quoted as SQL needs it.
    pub sql_name: String,
    /// Access method (`btree`, `gin`, …).
    pub method: String,
    /// Size, bytes, from `relpages`.
    pub size_bytes: u64,
    /// Index scans since the statistics were reset.
    pub scans: u64,
    /// `indisunique`.
    pub unique: bool,
    /// `indisprimary`.
    pub primary: bool,
    /// Backs or serves a constraint (primary key, unique, exclusion, or referenced by a
    /// foreign key).
    pub constraint: bool,
    /// `indisvalid` (false after a failed `CREATE INDEX CONCURRENTLY`, or while one runs).
    pub valid: bool,
    /// Key columns (`indkey`: attribute numbers, 0 for an expression), in order.
    pub key_columns: Vec<i16>,
    /// Operator class, collation and options of each key column, as `opclass/collation/option`.
    pub key_details: Vec<String>,
    /// Columns added with `INCLUDE`.
    pub include_columns: Vec<i16>,
    /// The key expressions, when any, as the server's node tree (for comparison, not display).
    pub expressions: Option<String>,
    /// The partial index predicate, when any, as the server's node tree (for comparison).
    pub predicate: Option<String>,
    /// `pg_get_indexdef`: `CREATE INDEX … ON … USING btree (…)`; while the table is locked
    /// exclusively, rendered from the catalog with `(expression)` and `WHERE (…)` elided.
    pub definition: String,
}

/// One sequence and its limit (`pg_sequence`, and the column it feeds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SequenceStats {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// `schema.name` quoted as SQL needs it.
    pub sql_name: String,
    /// `smallint`, `integer` or `bigint`.
    pub data_type: String,
    /// Last value handed out (`None`: never used, not readable by us, or locked right now).
    pub last_value: Option<i64>,
    /// `min_value`.
    pub min_value: i64,
    /// `max_value`.
    pub max_value: i64,
    /// `increment_by`.
    pub increment: i64,
    /// `cycle`: wraps around instead of failing.
    pub cycle: bool,
    /// The column it is owned by (`public.orders.id`, quoted as SQL needs it), when any.
    pub owner_column: Option<String>,
    /// That column's type (`integer`), which may be narrower than the sequence's.
    pub owner_type: Option<String>,
}

/// Database-wide numbers of [`PerfSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseStats {
    /// `server_version_num` (150008).
    pub version_num: u32,
    /// `pg_postmaster_start_time()`.
    pub postmaster_start: chrono::DateTime<chrono::Utc>,
    /// `pg_stat_database.stats_reset` of this database (`None`: never reset).
    pub stats_reset: Option<chrono::DateTime<chrono::Utc>>,
    /// `max_connections`.
    pub max_connections: u32,
    /// `superuser_reserved_connections`.
    pub reserved_connections: u32,
    /// Buffer cache hits of this database.
    pub blks_hit: u64,
    /// Blocks read from disk (or the OS cache).
    pub blks_read: u64,
    /// Committed transactions.
    pub xact_commit: u64,
    /// Rolled back transactions.
    pub xact_rollback: u64,
    /// Deadlocks detected.
    pub deadlocks: u64,
    /// `age(datfrozenxid)` of this database.
    pub frozen_xid_age: u64,
    /// The database of the server with the oldest `datfrozenxid`, and its age.
    pub oldest_database: Option<(String, u64)>,
    /// `autovacuum_freeze_max_age`.
    pub autovacuum_freeze_max_age: u64,
    /// `pg_stat_statements` is in `shared_preload_libraries`.
    pub statements_preloaded: bool,
    /// `pg_stat_statements` is installed in this database (`CREATE EXTENSION`).
    pub statements_installed: bool,
}

/// Everything performance analysis judges, read on one connection in a fixed number of
/// catalog queries (never one per table), taking no table locks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PerfSnapshot {
    /// The database.
    pub database: String,
    /// The server's `now()` when the snapshot was taken.
    pub taken_at: chrono::DateTime<chrono::Utc>,
    /// Catalog queries sent.
    pub queries: u32,
    /// Database-wide numbers.
    pub stats: DatabaseStats,
    /// Statements of this database (empty when `pg_stat_statements` is not usable).
    pub statements: Vec<StatementStats>,
    /// User tables.
    pub tables: Vec<TableStats>,
    /// Indexes of user tables.
    pub indexes: Vec<IndexStats>,
    /// Sequences.
    pub sequences: Vec<SequenceStats>,
    /// Every backend of the server.
    pub backends: BackendList,
}

/// Makes [`Database`] adapters for servers not in the configuration (a drill's throwaway
/// PostgreSQL).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait DatabaseConnector: Send + Sync {
    /// An adapter for `url` whose restores load a plain dump over `restore_jobs` sessions
    /// (see [`DatabaseConfig::restore_jobs`](crate::config::DatabaseConfig::restore_jobs));
    /// nothing connects until it is used.
    ///
    /// # Errors
    /// `InvalidInput` for an unusable URL.
    fn connect(&self, url: &crate::secret::SecretUrl, restore_jobs: usize) -> Result<std::sync::Arc<dyn Database>>;
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::PipeReader;

    #[test]
    fn a_pipe_reads_to_its_end_and_a_stalled_one_stops_on_the_flag() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut reader = PipeReader::new(r).stop_on(Arc::clone(&stop));
        let mut w = std::fs::File::from(w);
        w.write_all(b"-- dump\n").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(reader.read(&mut buf).unwrap(), 8);
        // The writer stays open and silent (a pg_dump waiting for a lock): the read gives up
        // once the flag is set instead of waiting for it.
        let setter = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(250));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let e = reader.read(&mut buf).unwrap_err();
        assert!(e.to_string().contains("interrupted"), "{e}");
        setter.join().unwrap();
        // Without a flag: bytes, then the end when the writer closes.
        let (r, w) = rustix::pipe::pipe().unwrap();
        let mut reader = PipeReader::new(r);
        let mut w = std::fs::File::from(w);
        w.write_all(b"abc").unwrap();
        drop(w);
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abc");
    }
}
