//! The sqlx-backed database adapter.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::OnceCell;

use super::programs::find_client;
use super::restrict;
use crate::adapters::tail;
use crate::ports::database::{
    BackendCheck, BackendList, BackendSignal, ConnectionStats, Database, DumpFormat, DumpOptions, DumpOutput,
    DumpStream, HeldLock, LockAttempt, PerfSnapshot, PgClient, PipeReader, Readiness, RestoreOutcome, ServerVersion,
    SignalOutcome, Snapshot, SqlValue, TableInfo, TableStats,
};
use crate::ports::object_store::ByteReader;
use crate::secret::SecretUrl;
use crate::{Error, ErrorKind, Result};

/// How to reach a database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/dbname?sslmode=…`.
    pub url: SecretUrl,
    /// Time to connect, and for one admin query.
    pub timeout: Duration,
    /// Directories searched first for the client programs.
    pub client_dirs: Vec<PathBuf>,
    /// psql sessions that load a plain dump's table data at once (1: the whole dump in one
    /// session and one transaction; at most [`MAX_RESTORE_JOBS`](crate::limits::MAX_RESTORE_JOBS),
    /// larger values are clamped to it).
    pub restore_jobs: usize,
}

impl PostgresOptions {
    /// Options with a 10 s timeout, the usual client directories and
    /// [`DEFAULT_RESTORE_JOBS`](crate::config::DEFAULT_RESTORE_JOBS) data sessions.
    pub fn new(url: SecretUrl) -> Self {
        Self {
            url,
            timeout: Duration::from_secs(10),
            client_dirs: Vec::new(),
            restore_jobs: crate::config::DEFAULT_RESTORE_JOBS,
        }
    }
}

/// Makes [`PostgresDatabase`]s for URLs outside the configuration.
#[derive(Debug, Clone, Default)]
pub struct PostgresConnector {
    /// Directories searched first for the client programs.
    pub client_dirs: Vec<PathBuf>,
}

impl crate::ports::database::DatabaseConnector for PostgresConnector {
    fn connect(&self, url: &SecretUrl, restore_jobs: usize) -> Result<std::sync::Arc<dyn Database>> {
        let mut options = PostgresOptions::new(url.clone());
        options.client_dirs.clone_from(&self.client_dirs);
        options.restore_jobs = restore_jobs;
        Ok(std::sync::Arc::new(PostgresDatabase::new(options)?))
    }
}

/// A PostgreSQL database.
#[derive(Debug)]
pub struct PostgresDatabase {
    connect: PgConnectOptions,
    pool: PgPool,
    admin: PgPool,
    name: String,
    options: PostgresOptions,
    client: OnceCell<PgClient>,
}

pub(super) fn db_err(e: sqlx::Error, what: &str) -> Error {
    let kind = match &e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("28P01" | "28000") => ErrorKind::Auth,
            Some("3D000" | "42P01" | "42704") => ErrorKind::NotFound,
            Some("42P04" | "55006" | "40001" | "40P01") => ErrorKind::Conflict,
            Some("42501") => ErrorKind::Auth,
            Some("57P03" | "53300" | "57P01") => ErrorKind::Unavailable,
            Some(c) if c.starts_with("42") || c.starts_with("22") => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        },
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => ErrorKind::Unavailable,
        // The pool retries connecting until its timeout and then hides the cause: the server
        // is unreachable, refusing, or out of slots. All mean "unavailable" to the caller.
        sqlx::Error::PoolTimedOut => ErrorKind::Unavailable,
        sqlx::Error::Configuration(_) => ErrorKind::InvalidInput,
        sqlx::Error::RowNotFound => ErrorKind::NotFound,
        _ => ErrorKind::Internal,
    };
    // sqlx messages carry the server's text, never the connection string.
    let detail = match &e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        sqlx::Error::PoolTimedOut => "no connection to the server within the timeout".to_owned(),
        other => other.to_string(),
    };
    Error::new(kind, format!("{what}: {detail}"))
}

/// The pipe `pg_dump` writes into: 1 MiB (Linux's default `pipe-max-size`) holds 15 ms of a
/// dump at 66 MB/s.
#[cfg(target_os = "linux")]
const DUMP_PIPE_BYTES: usize = 1 << 20;

/// Read-ahead of a restore's input, so the client's stdin gets pipe-sized writes.
const RESTORE_BUF: usize = 256 * 1024;

/// Quotes an identifier for SQL (`"my""db"`).
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A query as shown in [`Backend::query`]: passwords replaced by `***` (the literal after
/// `PASSWORD`, `password=` values of connection strings, URL credentials), whitespace runs
/// folded into one space, at most `max` characters.
pub(super) fn redact_query(query: &str, max: usize) -> String {
    static RULES: std::sync::LazyLock<[(regex::Regex, &str); 5]> = std::sync::LazyLock::new(|| {
        let re = |p: &str| regex::Regex::new(p).expect("valid redaction pattern");
        [
            // CREATE ROLE x PASSWORD 'secret', ALTER USER x WITH ENCRYPTED PASSWORD 'secret'; the
            // closing quote may have been cut off.
            (re(r"(?i)(\bpassword\b\s*=?\s*)'(?:[^']|'')*'?"), "${1}'***'"),
            // dblink('host=db password=secret'), unquoted values in connection strings.
            (re(r"(?i)(\bpassword\s*=\s*)[^\s']+"), "${1}***"),
            // postgres://user:secret@host
            (re(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/\s@']*:)[^@\s']+@"), "${1}***@"),
            // Authorization: Bearer abc…
            (re(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"), "${1}***"),
            // token: abc, "api_key": "abc", secret=abc, password: abc (also inside JSON)
            (
                re(
                    r#"(?i)(\b(?:token|api[_-]?key|apikey|secret|secret[_-]?key|access[_-]?key|auth|authorization|password|passwd)\b["']?\s*[:=]\s*)(?:"[^"]*"?|'(?:[^']|'')*'?|[^\s,;)}'"]+)"#,
                ),
                "${1}***",
            ),
        ]
    });
    let mut text = query.split_whitespace().collect::<Vec<_>>().join(" ");
    for (pattern, replacement) in RULES.iter() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Database names this adapter creates, renames or passes to client programs: plain
/// identifiers, so a name can never be read as a connection string by `psql -d`.
pub(super) fn check_db_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!("invalid database name {name:?}: use at most 63 letters, digits, _ or -")))
    }
}

impl PostgresDatabase {
    /// The client programs matching the server's major version (found once).
    ///
    /// # Errors
    /// `NotFound` naming the version needed and the versions found.
    pub async fn client(&self) -> Result<PgClient> {
        self.client
            .get_or_try_init(|| async {
                let server = self.server_version().await?;
                find_client(server.major, &self.options.client_dirs).await
            })
            .await
            .cloned()
    }

    /// Prepares the adapter; connections are opened on first use.
    ///
    /// # Errors
    /// `InvalidInput` when the URL is not a PostgreSQL URL or names no database.
    pub fn new(options: PostgresOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(options.url.expose())
            .map_err(|_| Error::invalid_input(format!("invalid postgres url {}", options.url)))?
            .application_name("ops")
            .disable_statement_logging();
        let name = connect.get_database().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(Error::invalid_input(format!("postgres url {} names no database", options.url)));
        }
        let pool_opts = || {
            PgPoolOptions::new()
                .max_connections(2)
                .min_connections(0)
                .acquire_timeout(options.timeout)
                .idle_timeout(Duration::from_secs(30))
        };
        let pool = pool_opts().connect_lazy_with(connect.clone());
        let admin = pool_opts().connect_lazy_with(connect.clone().database("postgres"));
        Ok(Self { connect, pool, admin, name, options, client: OnceCell::new() })
    }

    fn env_for(&self, database: &str) -> Vec<(&'static str, String)> {
        let c = &self.connect;
        let mut env = vec![
            ("PGHOST", c.get_host().to_owned()),
            ("PGPORT", c.get_port().to_string()),
            ("PGUSER", c.get_username().to_owned()),
            ("PGDATABASE", database.to_owned()),
            ("PGAPPNAME", "ops".to_owned()),
            ("PGCONNECT_TIMEOUT", self.options.timeout.as_secs().max(2).to_string()),
        ];
        // The password travels in the child's environment only (never argv, never a shell).
        if let Ok(url) = url::Url::parse(self.options.url.expose()) {
            if let Some(p) = url.password() {
                let decoded = percent_decode(p);
                env.push(("PGPASSWORD", decoded));
            }
            if let Some((_, mode)) = url.query_pairs().find(|(k, _)| k == "sslmode") {
                env.push(("PGSSLMODE", mode.into_owned()));
            }
        }
        env
    }

    fn command(&self, program: &std::path::Path, database: &str) -> Command {
        let mut cmd = Command::new(program);
        // Connection settings come only from our URL: inherited libpq variables could point the
        // client at another server or database.
        for var in crate::adapters::INHERITED_PG_VARS {
            cmd.env_remove(var);
        }
        for (k, v) in self.env_for(database) {
            cmd.env(k, v);
        }
        cmd.kill_on_drop(true);
        cmd
    }
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits for a client program (`name`: `pg_dump`, `psql`, `pg_restore`); a failure is an
/// `Integrity` error with the end of what it wrote to stderr.
pub(super) async fn wait_client(
    child: &mut tokio::process::Child,
    stderr: &mut tokio::task::JoinHandle<String>,
    name: &str,
) -> Result<()> {
    let status = child.wait().await.map_err(|e| Error::from(e).context(format!("wait for {name}")))?;
    let err_text = stderr.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(Error::integrity(format!("{name} failed ({status}): {}", tail(&err_text, 2000))))
    }
}

/// Collects a child's stderr in the background, keeping the last 64 KiB.
pub(super) fn drain_stderr(stderr: Option<tokio::process::ChildStderr>) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let Some(mut stderr) = stderr else { return String::new() };
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 64 * 1024 {
                kept.drain(..kept.len() - 64 * 1024);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// User tables with estimates, and exact counts for `exact`, on one connection (so a snapshot
/// transaction sees one consistent state).
async fn tables_on(conn: &mut PgConnection, exact: &[String], database: &str) -> Result<Vec<TableInfo>> {
    let rows = sqlx::query(
        "SELECT n.nspname::text, c.relname::text, c.reltuples::float8, pg_total_relation_size(c.oid)::int8 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_err(e, "list tables"))?;
    let mut tables: Vec<TableInfo> = rows
        .iter()
        .map(|r| {
            let est: f64 = r.get(2);
            let size: i64 = r.get(3);
            TableInfo {
                schema: r.get(0),
                name: r.get(1),
                // reltuples is -1 for a table never vacuumed or analyzed.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                estimated_rows: (est >= 0.0).then(|| est.round() as u64),
                exact_rows: None,
                size_bytes: u64::try_from(size).unwrap_or(0),
            }
        })
        .collect();
    let is = |t: &TableInfo, wanted: &str| match wanted.split_once('.') {
        Some((s, n)) => t.schema == s && t.name == n,
        None => t.name == wanted,
    };
    for wanted in exact.iter().filter(|e| *e != "*") {
        if !tables.iter().any(|t| is(t, wanted)) {
            return Err(Error::not_found(format!("table {wanted} does not exist in database {database}")));
        }
    }
    let all = exact.iter().any(|e| e == "*");
    for t in &mut tables {
        if all || exact.iter().any(|w| is(t, w)) {
            let sql = format!("SELECT count(*)::int8 FROM {}.{}", quote_ident(&t.schema), quote_ident(&t.name));
            let n: i64 = sqlx::query_scalar(&sql)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| db_err(e, &format!("count rows of {}", t.qualified_name())))?;
            t.exact_rows = Some(u64::try_from(n).unwrap_or(0));
        }
    }
    Ok(tables)
}

/// An open `REPEATABLE READ` transaction with an exported snapshot.
struct PgSnapshot {
    conn: tokio::sync::Mutex<PgConnectionSlot>,
    id: String,
    database: String,
}

impl std::fmt::Debug for PgSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSnapshot").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Ends the snapshot's transaction and closes its session, so the server logs no "unexpected
/// EOF on client connection with an open transaction" after every backup (a line the next
/// triage would report as a problem).
impl Drop for PgSnapshot {
    fn drop(&mut self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        // The connection is ours alone now: moved out and finished on the runtime.
        let conn = std::mem::replace(self.conn.get_mut(), PgConnectionSlot::Closed);
        if let PgConnectionSlot::Open(mut conn) = conn {
            handle.spawn(async move {
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                let _ = sqlx::Connection::close(conn).await;
            });
        }
    }
}

#[async_trait]
impl Snapshot for PgSnapshot {
    fn id(&self) -> String {
        self.id.clone()
    }

    async fn tables(&self, exact: &[String]) -> Result<Vec<TableInfo>> {
        let mut slot = self.conn.lock().await;
        match &mut *slot {
            PgConnectionSlot::Open(conn) => tables_on(conn, exact, &self.database).await,
            PgConnectionSlot::Closed => Err(Error::internal("the snapshot was closed")),
        }
    }
}

/// The snapshot's session, until it is closed.
enum PgConnectionSlot {
    Open(PgConnection),
    Closed,
}

/// A session holding an advisory lock; closing the connection releases it.
#[derive(Debug)]
struct PgLock {
    _conn: PgConnection,
}

impl HeldLock for PgLock {}

/// A stable 64-bit key for an advisory lock name (FNV-1a), the same in every process.
pub(super) fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Classifies a failed connection attempt the way `pg_isready` does.
fn readiness_of(e: &sqlx::Error) -> Readiness {
    match e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            // Starting up, shutting down, in recovery, out of connection slots.
            Some("57P03" | "53300" | "57P01" | "57P02") => Readiness::Rejecting { reason: d.message().to_owned() },
            // The server answered: authentication or a missing database do not make it down.
            _ => Readiness::Accepting,
        },
        sqlx::Error::PoolTimedOut => Readiness::NoResponse { reason: "timed out".to_owned() },
        other => Readiness::NoResponse { reason: other.to_string() },
    }
}

#[async_trait]
impl Database for PostgresDatabase {
    fn name(&self) -> &str {
        &self.name
    }

    fn with_database(&self, database: &str) -> Result<std::sync::Arc<dyn Database>> {
        check_db_name(database)?;
        let mut url = url::Url::parse(self.options.url.expose())
            .map_err(|_| Error::invalid_input(format!("invalid postgres url {}", self.options.url)))?;
        url.set_path(&format!("/{database}"));
        let options = PostgresOptions { url: SecretUrl::new(url.to_string()), ..self.options.clone() };
        Ok(std::sync::Arc::new(Self::new(options)?))
    }

    async fn readiness(&self) -> Readiness {
        let attempt = tokio::time::timeout(self.options.timeout, self.connect.connect()).await;
        match attempt {
            Err(_) => Readiness::NoResponse { reason: format!("no answer within {:?}", self.options.timeout) },
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                Readiness::Accepting
            }
            Ok(Err(e)) => readiness_of(&e),
        }
    }

    async fn server_version(&self) -> Result<ServerVersion> {
        let row = sqlx::query("SELECT current_setting('server_version_num')::int4, current_setting('server_version')")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_err(e, "server version"))?;
        let num: i32 = row.get(0);
        let num = u32::try_from(num).unwrap_or(0);
        Ok(ServerVersion { major: num / 10_000, minor: num % 10_000, full: row.get(1) })
    }

    async fn tables(&self, exact: &[String]) -> Result<Vec<TableInfo>> {
        let mut conn = self.pool.acquire().await.map_err(|e| db_err(e, "list tables"))?;
        tables_on(&mut conn, exact, &self.name).await
    }

    async fn extensions(&self) -> Result<Vec<String>> {
        sqlx::query_scalar::<_, String>("SELECT extname::text FROM pg_extension ORDER BY 1")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err(e, "list extensions"))
    }

    async fn connections(&self) -> Result<ConnectionStats> {
        // One connection for both queries: back to back on the pool, the second could open
        // another connection while the first is still being returned, and count it.
        let mut conn = self.admin.acquire().await.map_err(|e| db_err(e, "connection limits"))?;
        let asked = std::time::Instant::now();
        let limits = sqlx::query(
            "SELECT current_setting('max_connections')::int4, current_setting('superuser_reserved_connections')::int4",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_err(e, "connection limits"))?;
        let round_trip_micros = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
        let rows = sqlx::query(
            "SELECT coalesce(state, 'unknown')::text, count(*)::int8 FROM pg_stat_activity \
             WHERE backend_type = 'client backend' GROUP BY 1",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_err(e, "connection states"))?;
        let by_state: BTreeMap<String, u32> =
            rows.iter().map(|r| (r.get::<String, _>(0), u32::try_from(r.get::<i64, _>(1)).unwrap_or(0))).collect();
        Ok(ConnectionStats {
            max_connections: u32::try_from(limits.get::<i32, _>(0)).unwrap_or(0),
            reserved_connections: u32::try_from(limits.get::<i32, _>(1)).unwrap_or(0),
            total: by_state.values().sum(),
            by_state,
            round_trip_micros,
        })
    }

    async fn database_exists(&self, name: &str) -> Result<bool> {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&self.admin)
            .await
            .map_err(|e| db_err(e, "look up database"))
    }

    async fn roles(&self) -> Result<Vec<String>> {
        sqlx::query_scalar::<_, String>("SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1")
            .fetch_all(&self.admin)
            .await
            .map_err(|e| db_err(e, "list roles"))
    }

    async fn create_roles(&self, names: &[String]) -> Result<()> {
        for name in names {
            if name.is_empty() {
                return Err(Error::invalid_input("a role needs a name"));
            }
            let exists = sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(name)
                .fetch_one(&self.admin)
                .await
                .map_err(|e| db_err(e, "look up role"))?;
            if !exists {
                sqlx::query(&format!("CREATE ROLE {} NOLOGIN", quote_ident(name)))
                    .execute(&self.admin)
                    .await
                    .map_err(|e| db_err(e, &format!("create role {name}")))?;
            }
        }
        Ok(())
    }

    async fn create_database(&self, name: &str) -> Result<()> {
        check_db_name(name)?;
        sqlx::query(&format!("CREATE DATABASE {}", quote_ident(name)))
            .execute(&self.admin)
            .await
            .map_err(|e| db_err(e, &format!("create database {name}")))?;
        Ok(())
    }

    async fn drop_database(&self, name: &str) -> Result<()> {
        check_db_name(name)?;
        sqlx::query(&format!("DROP DATABASE {}", quote_ident(name)))
            .execute(&self.admin)
            .await
            .map_err(|e| db_err(e, &format!("drop database {name}")))?;
        Ok(())
    }

    async fn rename_database(&self, from: &str, to: &str) -> Result<()> {
        check_db_name(from)?;
        check_db_name(to)?;
        sqlx::query(&format!("ALTER DATABASE {} RENAME TO {}", quote_ident(from), quote_ident(to)))
            .execute(&self.admin)
            .await
            .map_err(|e| db_err(e, &format!("rename database {from} to {to}")))?;
        Ok(())
    }

    async fn terminate_connections(&self, database: &str) -> Result<u32> {
        let n = sqlx::query_scalar::<_, i64>(
            "SELECT count(*)::int8 FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()) t",
        )
        .bind(database)
        .fetch_one(&self.admin)
        .await
        .map_err(|e| db_err(e, &format!("terminate connections to {database}")))?;
        Ok(u32::try_from(n).unwrap_or(0))
    }

    async fn export_snapshot(&self) -> Result<Box<dyn Snapshot>> {
        let mut conn = tokio::time::timeout(self.options.timeout, self.connect.connect())
            .await
            .map_err(|_| Error::timeout("connecting to open a snapshot", self.options.timeout))?
            .map_err(|e| db_err(e, "open a snapshot"))?;
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut conn)
            .await
            .map_err(|e| db_err(e, "open a snapshot"))?;
        let id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_err(e, "export a snapshot"))?;
        Ok(Box::new(PgSnapshot {
            conn: tokio::sync::Mutex::new(PgConnectionSlot::Open(conn)),
            id,
            database: self.name.clone(),
        }))
    }

    async fn try_lock(&self, name: &str) -> Result<LockAttempt> {
        let key = lock_key(name);
        // Held on a connection to the maintenance database: a restore terminates every
        // session of the live database, and that must not release the lock mid-swap.
        let mut conn = tokio::time::timeout(self.options.timeout, self.connect.clone().database("postgres").connect())
            .await
            .map_err(|_| Error::timeout("connecting to take the advisory lock", self.options.timeout))?
            .map_err(|e| db_err(e, "connect to the maintenance database postgres for the advisory lock"))?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_err(e, "take the advisory lock"))?;
        if got {
            return Ok(LockAttempt::Acquired(Box::new(PgLock { _conn: conn })));
        }
        let bits = u64::from_ne_bytes(key.to_ne_bytes());
        let holder = sqlx::query(
            "SELECT a.backend_start, coalesce(nullif(a.application_name, ''), 'unknown') || \
                    coalesce(' from ' || host(a.client_addr), '') \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int8::oid \
               AND l.objid = $2::int8::oid AND l.objsubid = 1 LIMIT 1",
        )
        .bind(i64::try_from(bits >> 32).unwrap_or(0))
        .bind(i64::try_from(bits & 0xffff_ffff).unwrap_or(0))
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| db_err(e, "look up the lock holder"))?;
        let _ = conn.close().await;
        Ok(LockAttempt::Busy {
            since: holder.as_ref().map(|r| r.get::<chrono::DateTime<chrono::Utc>, _>(0)),
            holder: holder.as_ref().map(|r| r.get::<String, _>(1)),
        })
    }

    async fn dump(&self, options: &DumpOptions) -> Result<DumpStream> {
        let client = self.client().await?;
        let mut cmd = self.command(&client.pg_dump, &self.name);
        cmd.arg("--no-password");
        cmd.arg(match options.format {
            DumpFormat::Plain => "--format=plain",
            DumpFormat::Custom => "--format=custom",
        });
        if options.no_owner {
            cmd.arg("--no-owner");
        }
        if options.no_privileges {
            cmd.arg("--no-privileges");
        }
        if let Some(snapshot) = &options.snapshot {
            cmd.arg(format!("--snapshot={snapshot}"));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child =
            cmd.spawn().map_err(|e| Error::from(e).context(format!("start {}", client.pg_dump.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| Error::internal("pg_dump has no stdout"))?;
        // pg_dump writes 4 KiB at a time. A pipe of `DUMP_PIPE_BYTES` holds what it writes
        // while the reader waits to read in large batches (see `ops_backup::pipeline`), so
        // neither side wakes the other for every write. Without it (a lower
        // `/proc/sys/fs/pipe-max-size`) the dump is only slower.
        #[cfg(target_os = "linux")]
        if let Err(e) = rustix::pipe::fcntl_setpipe_size(&stdout, DUMP_PIPE_BYTES) {
            tracing::debug!(error = %e, "could not enlarge pg_dump's pipe");
        }
        // Off the runtime: see `DumpOutput::Pipe`.
        let pipe = stdout.into_owned_fd().map_err(|e| Error::from(e).context("pg_dump's output pipe"))?;
        let mut stderr = drain_stderr(child.stderr.take());
        let completion = async move { wait_client(&mut child, &mut stderr, "pg_dump").await };
        Ok(DumpStream { reader: DumpOutput::Pipe(PipeReader::new(pipe)), client, completion: Box::pin(completion) })
    }

    async fn restore(&self, database: &str, format: DumpFormat, input: ByteReader) -> Result<RestoreOutcome> {
        check_db_name(database)?;
        let client = self.client().await?;
        let started = Instant::now();
        let program = match format {
            DumpFormat::Plain => &client.psql,
            DumpFormat::Custom => &client.pg_restore,
        };
        let name = program.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        if format == DumpFormat::Plain {
            // A plain dump is a psql script: psql runs in restricted mode, so the dump cannot
            // run meta-commands (`\!`, `\copy … program`); see `restrict`. Its table data loads
            // over `restore_jobs` sessions; see `plain`.
            restrict::require_restrict(&client.version)?;
            let command = || {
                let mut cmd = self.command(program, database);
                cmd.args(["--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction"]);
                cmd.arg(format!("--dbname={database}"));
                cmd
            };
            let jobs = self.options.restore_jobs.clamp(1, crate::limits::MAX_RESTORE_JOBS);
            let (bytes, data_sessions) = super::plain::restore(input, &command, &name, jobs).await?;
            return Ok(RestoreOutcome {
                database: database.to_owned(),
                client,
                bytes,
                duration: started.elapsed(),
                data_sessions,
            });
        }
        let mut cmd = self.command(program, database);
        cmd.args(["--no-password", "--exit-on-error", "--single-transaction", "--no-owner"]);
        cmd.arg(format!("--dbname={database}"));
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::from(e).context(format!("start {}", program.display())))?;
        let mut stdin = child.stdin.take().ok_or_else(|| Error::internal("restore client has no stdin"))?;
        let mut stderr = drain_stderr(child.stderr.take());
        // Large writes: `tokio::io::copy` moves 8 KiB per write, which costs a syscall and
        // often a wake-up each (the pipe is full while the server is busy).
        let copied =
            tokio::io::copy_buf(&mut tokio::io::BufReader::with_capacity(RESTORE_BUF, input), &mut stdin).await;
        drop(stdin);
        wait_client(&mut child, &mut stderr, &name).await?;
        let bytes = copied.map_err(|e| Error::from(e).context(format!("feeding the dump to {name}")))?;
        Ok(RestoreOutcome {
            database: database.to_owned(),
            client,
            bytes,
            duration: started.elapsed(),
            data_sessions: 1,
        })
    }

    async fn perf_snapshot(&self) -> Result<PerfSnapshot> {
        // A connection of its own, so a query cut short by a timeout never returns to the pool,
        // and so the server itself bounds each query and never waits long for a lock.
        let limit = self.options.timeout;
        let statement_ms = limit.as_millis().max(1).to_string();
        let lock_ms = limit.min(Duration::from_secs(1)).as_millis().max(1).to_string();
        let options =
            self.connect.clone().options([("statement_timeout", statement_ms.as_str()), ("lock_timeout", &lock_ms)]);
        let mut conn = tokio::time::timeout(limit, options.connect())
            .await
            .map_err(|_| Error::timeout("connect for the analysis", limit))?
            .map_err(|e| db_err(e, "connect for the analysis"))?;
        let overall = limit * 6;
        let result = tokio::time::timeout(overall, super::perf::snapshot_on(&mut conn)).await;
        match result {
            Ok(snapshot) => {
                let _ = conn.close().await;
                snapshot
            }
            Err(_) => Err(Error::timeout("the analysis queries", overall)),
        }
    }

    async fn backends(&self) -> Result<BackendList> {
        let mut conn = self.pool.acquire().await.map_err(|e| db_err(e, "list backends"))?;
        super::perf::backends_on(&mut conn).await
    }

    async fn signal_backend(&self, pid: i32, signal: BackendSignal, check: &BackendCheck) -> Result<SignalOutcome> {
        let mut conn = self.pool.acquire().await.map_err(|e| db_err(e, &format!("signal backend {pid}")))?;
        super::perf::signal_on(&mut conn, pid, signal, check).await
    }

    async fn table_stats(&self) -> Result<Vec<TableStats>> {
        let mut conn = self.pool.acquire().await.map_err(|e| db_err(e, "table statistics"))?;
        super::perf::tables_on(&mut conn).await
    }

    async fn vacuum(&self, table: Option<(String, String)>, analyze: bool) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(|e| db_err(e, "vacuum"))?;
        super::perf::vacuum_on(&mut conn, table, analyze).await
    }

    async fn query_value(&self, query: &str, timeout: Duration) -> Result<SqlValue> {
        // A connection of its own, closed at the end, never one of the pool: a check dropped
        // between BEGIN and ROLLBACK (its caller's time ran out) cannot hand a connection still
        // in a read-only or aborted transaction to the next user, and nothing a query took
        // (a session lock) outlives it.
        let work = async {
            let mut conn = self.connect.connect().await.map_err(|e| db_err(e, "connect"))?;
            let value = value_on(&mut conn, query, timeout).await;
            let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
            let _ = conn.close().await;
            value
        };
        // The server's own timeout ends the statement; this bounds the connect and a server
        // that stopped answering.
        let outer = timeout.saturating_add(self.options.timeout);
        tokio::time::timeout(outer, work).await.map_err(|_| Error::timeout("the query", outer))?
    }
}

/// One value of `query` in a read-only transaction (left open: the caller rolls it back).
async fn value_on(conn: &mut PgConnection, query: &str, timeout: Duration) -> Result<SqlValue> {
    use futures::TryStreamExt as _;
    use sqlx::{TypeInfo as _, ValueRef as _};
    sqlx::query("BEGIN TRANSACTION READ ONLY").execute(&mut *conn).await.map_err(|e| db_err(e, "begin"))?;
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128).to_string();
    sqlx::query("SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true)")
        .bind(&ms)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_err(e, "set the timeouts"))?;
    let mut rows = Vec::new();
    {
        // A prepared statement is one statement: `SELECT 1; DROP …` is refused by the server.
        let mut stream = sqlx::query(query).fetch(&mut *conn);
        while let Some(row) = stream.try_next().await.map_err(|e| query_err(e, timeout))? {
            rows.push(row);
            if rows.len() > 1 {
                break;
            }
        }
    }
    let row = match rows.as_slice() {
        [row] => row,
        [] => return Err(Error::invalid_input("the query returned no row: it must return exactly one value")),
        _ => {
            return Err(Error::invalid_input("the query returned more than one row: it must return exactly one value"));
        }
    };
    if row.columns().len() != 1 {
        return Err(Error::invalid_input(format!(
            "the query returned {} columns: it must return exactly one value",
            row.columns().len()
        )));
    }
    let raw = row.try_get_raw(0).map_err(|e| db_err(e, "read the value"))?;
    if raw.is_null() {
        return Ok(SqlValue::Null);
    }
    let type_name = raw.type_info().name().to_owned();
    let get = |e: sqlx::Error| db_err(e, "read the value");
    Ok(match type_name.as_str() {
        "INT2" => SqlValue::Number(f64::from(row.try_get::<i16, _>(0).map_err(get)?)),
        "INT4" => SqlValue::Number(f64::from(row.try_get::<i32, _>(0).map_err(get)?)),
        #[allow(clippy::cast_precision_loss)] // an age or a count: f64's 53 bits are plenty
        "INT8" => SqlValue::Number(row.try_get::<i64, _>(0).map_err(get)? as f64),
        "FLOAT4" => SqlValue::Number(f64::from(row.try_get::<f32, _>(0).map_err(get)?)),
        "FLOAT8" => SqlValue::Number(row.try_get::<f64, _>(0).map_err(get)?),
        "NUMERIC" => {
            let bytes = raw.as_bytes().map_err(|e| Error::internal(format!("read the value: {e}")))?;
            SqlValue::Number(numeric_to_f64(bytes).ok_or_else(|| Error::invalid_input("the query returned NaN"))?)
        }
        // Read from the wire format, not through chrono's decoders: `infinity` (and a date
        // past chrono's range) must be an error, not a panic.
        "TIMESTAMPTZ" | "TIMESTAMP" | "DATE" => {
            let bytes = raw.as_bytes().map_err(|e| Error::internal(format!("read the value: {e}")))?;
            SqlValue::Time(time_of(&type_name, bytes)?)
        }
        "INTERVAL" => {
            let i = row.try_get::<sqlx::postgres::types::PgInterval, _>(0).map_err(get)?;
            #[allow(clippy::cast_precision_loss)]
            let micros = i.microseconds as f64;
            SqlValue::Interval(f64::from(i.months) * 30.0 * 86_400.0 + f64::from(i.days) * 86_400.0 + micros / 1e6)
        }
        other => {
            return Err(Error::invalid_input(format!(
                "the query returned a value of type {other}: a number, a time or an interval is judged (cast it, like ::float8)"
            )));
        }
    })
}

/// A `timestamptz`/`timestamp` (microseconds since 2000-01-01 UTC, i64) or `date` (days since
/// 2000-01-01, i32) in PostgreSQL's binary format; `timestamp` and `date` read as UTC.
fn time_of(type_name: &str, b: &[u8]) -> Result<chrono::DateTime<chrono::Utc>> {
    let epoch = chrono::DateTime::<chrono::Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
    let out_of_range = || Error::invalid_input("the query returned infinity or a time out of range");
    let shifted = if type_name == "DATE" {
        let days = i32::from_be_bytes(b.try_into().map_err(|_| out_of_range())?);
        if days == i32::MAX || days == i32::MIN {
            return Err(out_of_range());
        }
        chrono::Duration::try_days(i64::from(days))
    } else {
        let micros = i64::from_be_bytes(b.try_into().map_err(|_| out_of_range())?);
        if micros == i64::MAX || micros == i64::MIN {
            return Err(out_of_range());
        }
        Some(chrono::Duration::microseconds(micros))
    };
    shifted.and_then(|d| epoch.checked_add_signed(d)).ok_or_else(out_of_range)
}

/// A query's own failure: its statement timeout is a `Timeout`, the rest as [`db_err`] says.
fn query_err(e: sqlx::Error, timeout: Duration) -> Error {
    if let sqlx::Error::Database(d) = &e {
        match d.code().as_deref() {
            Some("57014") => return Error::timeout("the query (statement_timeout)", timeout),
            Some("55P03") => return Error::timeout("the query (lock_timeout)", timeout),
            Some("25006") => return Error::invalid_input(format!("the query tried to write: {}", d.message())),
            _ => {}
        }
    }
    db_err(e, "the query")
}

/// PostgreSQL's binary `numeric`: digit count, weight, sign, scale, then base-10000 digits.
fn numeric_to_f64(b: &[u8]) -> Option<f64> {
    let word = |i: usize| b.get(i..i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let ndigits = usize::from(word(0)?);
    #[allow(clippy::cast_possible_wrap)]
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    match sign {
        0x0000 | 0x4000 => {}
        0xD000 => return Some(f64::INFINITY),
        0xF000 => return Some(f64::NEG_INFINITY),
        _ => return None,
    }
    let mut value = 0.0f64;
    for i in 0..ndigits {
        let digit = f64::from(word(8 + 2 * i)?);
        #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
        let exp = weight - i as i32;
        value += digit * 10_000f64.powi(exp);
    }
    Some(if sign == 0x4000 { -value } else { value })
}
