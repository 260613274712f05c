//! The [`StateStore`] on SQL: one file of SQLite (`sqlite:///var/lib/ops/state.db`, the
//! default) or a PostgreSQL database shared by several replicas (`postgres://…`), through
//! sqlx's `Any` driver so both run the same statements.
//!
//! Every statement is written once for both: text timestamps of fixed width (they sort as
//! they compare), `$N` parameters (sqlx's SQLite driver takes them too), and `ON CONFLICT`
//! upserts. The budget check takes a row lock on its key first (an upsert: on PostgreSQL the
//! row's lock, on SQLite the database's write lock), so two replicas asking at once are
//! served one after the other.

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::audit::AuditEntry;
use crate::ports::state::{
    Approval, BudgetDecision, BudgetRequest, COMPONENT_STATUSES, ComponentDay, IncidentQuery, MAX_EVENTS,
    MAX_LEDGER_PER_JOB, MAX_LISTED, NewEvent, RunQuery, ScheduleQuery, ScheduledRun, StateStore, StoredEvent,
    StoredIncident, StoredRun,
};
use crate::secret::SecretUrl;
use crate::{Error, Result};

/// The schema, one migration per version, in order. A migration is never edited once
/// released: a change is a new version.
const MIGRATIONS: &[(u32, &str, &[&str])] = &[
    (
        1,
        "runs, budgets, approvals, audit mirror",
        &[
            "CREATE TABLE ops_runs (id TEXT PRIMARY KEY, runbook TEXT NOT NULL, status TEXT NOT NULL, \
         started_at TEXT NOT NULL, updated_at TEXT NOT NULL, document TEXT NOT NULL)",
            "CREATE INDEX ops_runs_started ON ops_runs (started_at)",
            "CREATE TABLE ops_budget_keys (budget_key TEXT PRIMARY KEY, touched_at TEXT NOT NULL)",
            "CREATE TABLE ops_budget_uses (budget_key TEXT NOT NULL, used_at TEXT NOT NULL, run_id TEXT NOT NULL)",
            "CREATE INDEX ops_budget_uses_key ON ops_budget_uses (budget_key, used_at)",
            "CREATE TABLE ops_approvals (run_id TEXT NOT NULL, step BIGINT NOT NULL, actor TEXT NOT NULL, \
         approved_at TEXT NOT NULL, PRIMARY KEY (run_id, step))",
            "CREATE TABLE ops_audit (id TEXT PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL, \
         action TEXT NOT NULL, target TEXT NOT NULL, state_before TEXT NOT NULL, state_after TEXT NOT NULL, \
         result TEXT NOT NULL)",
            "CREATE INDEX ops_audit_time ON ops_audit (time)",
            "CREATE TABLE ops_audit_mirror (source TEXT PRIMARY KEY, position BIGINT NOT NULL, head TEXT NOT NULL)",
        ],
    ),
    (
        2,
        "incidents, documents, component history, leases",
        &[
            "CREATE TABLE ops_incidents (id TEXT PRIMARY KEY, status TEXT NOT NULL, severity TEXT NOT NULL, \
         opened_at TEXT NOT NULL, updated_at TEXT NOT NULL, resolved_at TEXT NOT NULL, open_key TEXT NOT NULL UNIQUE, \
         document TEXT NOT NULL, version BIGINT NOT NULL)",
            "CREATE INDEX ops_incidents_opened ON ops_incidents (opened_at)",
            "CREATE TABLE ops_incident_events (incident_id TEXT NOT NULL, seq BIGINT NOT NULL, time TEXT NOT NULL, \
         kind TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (incident_id, seq))",
            "CREATE TABLE ops_documents (collection TEXT NOT NULL, doc_key TEXT NOT NULL, updated_at TEXT NOT NULL, \
         document TEXT NOT NULL, PRIMARY KEY (collection, doc_key))",
            "CREATE TABLE ops_component_days (component TEXT NOT NULL, day TEXT NOT NULL, operational BIGINT NOT NULL, \
         degraded_performance BIGINT NOT NULL, partial_outage BIGINT NOT NULL, major_outage BIGINT NOT NULL, \
         under_maintenance BIGINT NOT NULL, PRIMARY KEY (component, day))",
            "CREATE INDEX ops_component_days_day ON ops_component_days (day)",
            "CREATE TABLE ops_leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TEXT NOT NULL)",
        ],
    ),
    (
        3,
        "scheduled runs",
        &[
            "CREATE TABLE ops_schedule_runs (job TEXT NOT NULL, scheduled_at TEXT NOT NULL, holder TEXT NOT NULL, \
         status TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, heartbeat_at TEXT NOT NULL, \
         error TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (job, scheduled_at))",
            "CREATE INDEX ops_schedule_runs_status ON ops_schedule_runs (status, heartbeat_at)",
        ],
    ),
];

/// The newest schema version this build knows.
#[must_use]
pub fn schema_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

/// A [`StateStore`] on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStateStore {
    pool: AnyPool,
    shown: String,
}

/// Where a `state.url` points, checked: `sqlite://PATH` (a relative or absolute path) or
/// `postgres://…`.
///
/// # Errors
/// `InvalidInput` naming what is wrong, never the URL's credentials.
pub fn sqlite_path(url: &str) -> Result<Option<PathBuf>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(Error::invalid_input(
                "state.url: sqlite:// needs a file path (sqlite:///var/lib/ops/state.db)",
            ));
        }
        return Ok(Some(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(None);
    }
    Err(Error::invalid_input("state.url: use sqlite://PATH or postgres://user@host/db"))
}

impl SqlStateStore {
    /// Connects (creating the SQLite file, owner-only, and its directory) and migrates.
    ///
    /// # Errors
    /// `InvalidInput` for a URL of another scheme; `Unavailable` when the file or server
    /// cannot be reached; as [`StateStore::migrate`].
    pub async fn open(url: &SecretUrl) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let raw = url.expose();
        let (engine, connect_url) = match sqlite_path(raw)? {
            Some(path) => {
                create_private_file(&path)?;
                (Engine::Sqlite, format!("sqlite://{}?mode=rwc", path.display()))
            }
            None => (Engine::Postgres, raw.to_owned()),
        };
        let shown = url.redacted();
        let pool = AnyPoolOptions::new()
            .max_connections(if engine == Engine::Sqlite { 4 } else { 5 })
            .acquire_timeout(Duration::from_secs(15))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // WAL: readers do not block the writer; a busy database is waited for,
                        // not failed; every commit is on disk.
                        for pragma in
                            ["PRAGMA journal_mode = WAL", "PRAGMA busy_timeout = 15000", "PRAGMA synchronous = FULL"]
                        {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&connect_url)
            .await
            .map_err(|e| Error::unavailable(format!("state store {shown}: {}", clean(&e))))?;
        let store = Self { pool, shown };
        store.migrate().await?;
        Ok(store)
    }

    /// Inserts events numbered from `first`, in the caller's transaction.
    async fn insert_events(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        incident_id: &str,
        first: u64,
        events: &[NewEvent],
    ) -> Result<Vec<u64>> {
        let mut seqs = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let seq = first + i as u64;
            if seq > MAX_EVENTS {
                return Err(Error::conflict(format!(
                    "incident {incident_id} has {MAX_EVENTS} events, the most one keeps"
                )));
            }
            let body =
                serde_json::to_string(&event.document).map_err(|e| Error::internal(format!("incident event: {e}")))?;
            sqlx::query(
                "INSERT INTO ops_incident_events (incident_id, seq, time, kind, document) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(incident_id)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(ts(event.time))
            .bind(&event.kind)
            .bind(body)
            .execute(&mut **tx)
            .await
            .map_err(|e| self.err("appending an incident event", &e))?;
            seqs.push(seq);
        }
        Ok(seqs)
    }

    fn err(&self, what: &str, e: &sqlx::Error) -> Error {
        Error::unavailable(format!("state store {}: {what}: {}", self.shown, clean(e)))
    }

    async fn applied(&self) -> Result<Vec<u32>> {
        let rows = sqlx::query("SELECT version FROM ops_schema ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("reading the schema version", &e))?;
        rows.iter()
            .map(|r| {
                r.try_get::<i64, _>(0)
                    .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
                    .map_err(|e| self.err("reading the schema version", &e))
            })
            .collect()
    }
}

/// A database error without anything the server echoed of our statement's values.
fn clean(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => format!("database error {}", d.code().unwrap_or_default()),
        other => other.to_string(),
    }
}

fn create_private_file(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private_fs::create_dir_all(dir).map_err(|e| {
            Error::unavailable(format!("state store directory {} (state.url) cannot be created: {e}", dir.display()))
        })?;
    }
    crate::private_fs::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::unavailable(format!("state store {} (state.url) cannot be opened: {e}", path.display())))?;
    Ok(())
}

/// Fixed-width UTC text: sorts as it compares.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::integrity(format!("state store: a stored time does not parse: {e}")))
}

fn text(row: &AnyRow, column: &str) -> Result<String> {
    row.try_get::<String, _>(column).map_err(|e| Error::integrity(format!("state store: column {column}: {e}")))
}

fn run_of(row: &AnyRow) -> Result<StoredRun> {
    Ok(StoredRun {
        id: text(row, "id")?,
        runbook: text(row, "runbook")?,
        status: text(row, "status")?,
        started_at: parse_ts(&text(row, "started_at")?)?,
        updated_at: parse_ts(&text(row, "updated_at")?)?,
        document: serde_json::from_str(&text(row, "document")?)
            .map_err(|e| Error::integrity(format!("state store: a run's document does not parse: {e}")))?,
    })
}

fn incident_of(row: &AnyRow) -> Result<StoredIncident> {
    let resolved = text(row, "resolved_at")?;
    Ok(StoredIncident {
        id: text(row, "id")?,
        status: text(row, "status")?,
        severity: text(row, "severity")?,
        opened_at: parse_ts(&text(row, "opened_at")?)?,
        updated_at: parse_ts(&text(row, "updated_at")?)?,
        resolved_at: if resolved.is_empty() { None } else { Some(parse_ts(&resolved)?) },
        open_key: text(row, "open_key")?,
        document: json_of(row, "document")?,
        version: count(row, "version")?,
    })
}

fn json_of(row: &AnyRow, column: &str) -> Result<serde_json::Value> {
    serde_json::from_str(&text(row, column)?)
        .map_err(|e| Error::integrity(format!("state store: a stored {column} does not parse: {e}")))
}

fn count(row: &AnyRow, column: &str) -> Result<u64> {
    let n =
        row.try_get::<i64, _>(column).map_err(|e| Error::integrity(format!("state store: column {column}: {e}")))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

const INCIDENT_COLUMNS: &str = "id, status, severity, opened_at, updated_at, resolved_at, open_key, document, version";

fn limit(n: usize) -> i64 {
    i64::try_from(n.clamp(1, MAX_LISTED)).unwrap_or(1)
}

#[async_trait]
impl StateStore for SqlStateStore {
    fn location(&self) -> String {
        self.shown.clone()
    }

    async fn migrate(&self) -> Result<u32> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS ops_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("creating the schema table", &e))?;
        let applied = self.applied().await?;
        if let Some(&newest) = applied.last()
            && newest > schema_version()
        {
            return Err(Error::conflict(format!(
                "state store {} has schema version {newest}, newer than this build's {}: upgrade ops",
                self.shown,
                schema_version()
            )));
        }
        for (version, name, statements) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            let mut tx = self.pool.begin().await.map_err(|e| self.err("starting a migration", &e))?;
            // The version row first: a replica migrating at the same time waits on it, then
            // fails on its key, and finds the migration done.
            let claimed = sqlx::query("INSERT INTO ops_schema (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(i64::from(*version))
                .bind(*name)
                .bind(ts(Utc::now()))
                .execute(&mut *tx)
                .await;
            if let Err(e) = claimed {
                drop(tx);
                if self.applied().await?.contains(version) {
                    continue;
                }
                return Err(self.err(&format!("migration {version}"), &e));
            }
            for statement in *statements {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(&format!("migration {version} ({name})"), &e))?;
            }
            tx.commit().await.map_err(|e| self.err(&format!("migration {version}"), &e))?;
        }
        Ok(schema_version())
    }

    async fn save_run(&self, run: &StoredRun) -> Result<()> {
        let document = serde_json::to_string(&run.document).map_err(|e| Error::internal(format!("run: {e}")))?;
        sqlx::query(
            "INSERT INTO ops_runs (id, runbook, status, started_at, updated_at, document) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET runbook = excluded.runbook, \
             status = excluded.status, updated_at = excluded.updated_at, document = excluded.document",
        )
        .bind(&run.id)
        .bind(&run.runbook)
        .bind(&run.status)
        .bind(ts(run.started_at))
        .bind(ts(run.updated_at))
        .bind(document)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("saving a run", &e))?;
        Ok(())
    }

    async fn run(&self, id: &str) -> Result<Option<StoredRun>> {
        let row =
            sqlx::query("SELECT id, runbook, status, started_at, updated_at, document FROM ops_runs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.err("reading a run", &e))?;
        row.as_ref().map(run_of).transpose()
    }

    async fn runs(&self, query: &RunQuery) -> Result<Vec<StoredRun>> {
        // Empty filters match everything, so one statement serves every query.
        let rows = sqlx::query(
            "SELECT id, runbook, status, started_at, updated_at, document FROM ops_runs \
             WHERE ($1 = '' OR runbook = $1) AND ($2 = '' OR status = $2) \
             ORDER BY started_at DESC, id DESC LIMIT $3",
        )
        .bind(query.runbook.clone().unwrap_or_default())
        .bind(query.status.clone().unwrap_or_default())
        .bind(limit(if query.limit == 0 { 100 } else { query.limit }))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("listing runs", &e))?;
        rows.iter().map(run_of).collect()
    }

    async fn take_budget(&self, request: &BudgetRequest) -> Result<BudgetDecision> {
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        let window_start =
            request.now.checked_sub_signed(secs(request.window_secs)).unwrap_or(DateTime::<Utc>::MIN_UTC);
        // Far enough back for the cooldown too, which may be longer than the window.
        let since = request
            .now
            .checked_sub_signed(secs(request.window_secs.max(request.cooldown_secs)))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut tx = self.pool.begin().await.map_err(|e| self.err("starting a budget check", &e))?;
        // The key's row, locked until commit: the next asker of this key waits here.
        sqlx::query(
            "INSERT INTO ops_budget_keys (budget_key, touched_at) VALUES ($1, $2) \
             ON CONFLICT (budget_key) DO UPDATE SET touched_at = excluded.touched_at",
        )
        .bind(&request.key)
        .bind(ts(request.now))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err("locking a budget", &e))?;
        let rows =
            sqlx::query("SELECT used_at FROM ops_budget_uses WHERE budget_key = $1 AND used_at > $2 ORDER BY used_at")
                .bind(&request.key)
                .bind(ts(since))
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err("reading a budget", &e))?;
        let uses: Vec<DateTime<Utc>> =
            rows.iter().map(|r| text(r, "used_at").and_then(|t| parse_ts(&t))).collect::<Result<_>>()?;
        let used = u32::try_from(uses.iter().filter(|u| **u > window_start).count()).unwrap_or(u32::MAX);
        let last_use = uses.last().copied();
        let mut reason = None;
        if used >= request.max {
            reason = Some(format!(
                "{used} of {} allowed in the last {}",
                request.max,
                crate::units::human_duration(Duration::from_secs(request.window_secs))
            ));
        } else if let Some(last) = last_use
            && request.cooldown_secs > 0
        {
            let since_last = (request.now - last).to_std().unwrap_or_default();
            if since_last < Duration::from_secs(request.cooldown_secs) {
                reason = Some(format!(
                    "cooldown: last use {} ago, {} required",
                    crate::units::human_duration(since_last),
                    crate::units::human_duration(Duration::from_secs(request.cooldown_secs))
                ));
            }
        }
        let granted = reason.is_none();
        if granted {
            sqlx::query("INSERT INTO ops_budget_uses (budget_key, used_at, run_id) VALUES ($1, $2, $3)")
                .bind(&request.key)
                .bind(ts(request.now))
                .bind(&request.run_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("recording a budget use", &e))?;
        }
        tx.commit().await.map_err(|e| self.err("recording a budget use", &e))?;
        Ok(BudgetDecision { granted, used, max: request.max, last_use, reason })
    }

    async fn budget_uses(&self, key: &str, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>> {
        let rows =
            sqlx::query("SELECT used_at FROM ops_budget_uses WHERE budget_key = $1 AND used_at > $2 ORDER BY used_at")
                .bind(key)
                .bind(ts(since))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("reading a budget", &e))?;
        rows.iter().map(|r| text(r, "used_at").and_then(|t| parse_ts(&t))).collect()
    }

    async fn approve(&self, approval: &Approval) -> Result<()> {
        sqlx::query(
            "INSERT INTO ops_approvals (run_id, step, actor, approved_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run_id, step) DO NOTHING",
        )
        .bind(&approval.run_id)
        .bind(i64::from(approval.step))
        .bind(&approval.actor)
        .bind(ts(approval.time))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("recording an approval", &e))?;
        Ok(())
    }

    async fn approval(&self, run_id: &str, step: u32) -> Result<Option<Approval>> {
        let row = sqlx::query("SELECT actor, approved_at FROM ops_approvals WHERE run_id = $1 AND step = $2")
            .bind(run_id)
            .bind(i64::from(step))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err("reading an approval", &e))?;
        row.map(|r| {
            Ok(Approval {
                run_id: run_id.to_owned(),
                step,
                actor: text(&r, "actor")?,
                time: parse_ts(&text(&r, "approved_at")?)?,
            })
        })
        .transpose()
    }

    async fn mirror_audit(&self, source: &str, entries: &[AuditEntry], offset: u64, head: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err("mirroring the audit log", &e))?;
        for entry in entries {
            let id = audit_id(source, head, entry);
            sqlx::query(
                "INSERT INTO ops_audit (id, time, actor, action, target, state_before, state_after, result) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(ts(entry.time))
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(entry.before.to_string())
            .bind(entry.after.to_string())
            .bind(&entry.result)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("mirroring the audit log", &e))?;
        }
        sqlx::query(
            "INSERT INTO ops_audit_mirror (source, position, head) VALUES ($1, $2, $3) \
             ON CONFLICT (source) DO UPDATE SET position = excluded.position, head = excluded.head",
        )
        .bind(source)
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .bind(head)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err("mirroring the audit log", &e))?;
        tx.commit().await.map_err(|e| self.err("mirroring the audit log", &e))
    }

    async fn audit_mirror_position(&self, source: &str) -> Result<Option<(u64, String)>> {
        let row = sqlx::query("SELECT position, head FROM ops_audit_mirror WHERE source = $1")
            .bind(source)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err("reading the audit mirror", &e))?;
        row.map(|r| {
            let position = r.try_get::<i64, _>("position").map_err(|e| self.err("reading the audit mirror", &e))?;
            Ok((u64::try_from(position).unwrap_or(0), text(&r, "head")?))
        })
        .transpose()
    }

    async fn audit(&self, n: usize) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT time, actor, action, target, state_before, state_after, result FROM ops_audit \
             ORDER BY time DESC, id DESC LIMIT $1",
        )
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("reading the audit mirror", &e))?;
        let mut out = rows
            .iter()
            .map(|r| {
                let json = |c: &str| -> Result<serde_json::Value> {
                    serde_json::from_str(&text(r, c)?).map_err(|e| Error::integrity(format!("audit mirror {c}: {e}")))
                };
                Ok(AuditEntry {
                    time: parse_ts(&text(r, "time")?)?,
                    actor: text(r, "actor")?,
                    action: text(r, "action")?,
                    target: text(r, "target")?,
                    before: json("state_before")?,
                    after: json("state_after")?,
                    result: text(r, "result")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    async fn open_incident(&self, incident: &StoredIncident, events: &[NewEvent]) -> Result<Option<Vec<u64>>> {
        let document =
            serde_json::to_string(&incident.document).map_err(|e| Error::internal(format!("incident: {e}")))?;
        let mut tx = self.pool.begin().await.map_err(|e| self.err("opening an incident", &e))?;
        let done = sqlx::query(&format!(
            "INSERT INTO ops_incidents ({INCIDENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) \
             ON CONFLICT (open_key) DO NOTHING"
        ))
        .bind(&incident.id)
        .bind(&incident.status)
        .bind(&incident.severity)
        .bind(ts(incident.opened_at))
        .bind(ts(incident.updated_at))
        .bind(incident.resolved_at.map(ts).unwrap_or_default())
        .bind(&incident.open_key)
        .bind(document)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err("opening an incident", &e))?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let seqs = self.insert_events(&mut tx, &incident.id, 1, events).await?;
        tx.commit().await.map_err(|e| self.err("opening an incident", &e))?;
        Ok(Some(seqs))
    }

    async fn commit_incident(&self, incident: &StoredIncident, events: &[NewEvent]) -> Result<Vec<u64>> {
        let document =
            serde_json::to_string(&incident.document).map_err(|e| Error::internal(format!("incident: {e}")))?;
        let mut tx = self.pool.begin().await.map_err(|e| self.err("saving an incident", &e))?;
        // The header first, and only if nobody saved it since it was read: this write also
        // locks the row (SQLite: the database), so the events' numbers are taken in turn.
        let done = sqlx::query(
            "UPDATE ops_incidents SET status = $2, severity = $3, updated_at = $4, resolved_at = $5, open_key = $6, \
             document = $7, version = version + 1 WHERE id = $1 AND version = $8",
        )
        .bind(&incident.id)
        .bind(&incident.status)
        .bind(&incident.severity)
        .bind(ts(incident.updated_at))
        .bind(incident.resolved_at.map(ts).unwrap_or_default())
        .bind(&incident.open_key)
        .bind(document)
        .bind(i64::try_from(incident.version).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err("saving an incident", &e))?;
        if done.rows_affected() == 0 {
            drop(tx);
            return Err(match self.incident(&incident.id).await? {
                Some(_) => Error::conflict(format!("incident {} was changed meanwhile", incident.id)),
                None => Error::not_found(format!("no incident {}", incident.id)),
            });
        }
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS last FROM ops_incident_events WHERE incident_id = $1")
            .bind(&incident.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err("saving an incident", &e))?;
        let seqs = self.insert_events(&mut tx, &incident.id, count(&row, "last")? + 1, events).await?;
        tx.commit().await.map_err(|e| self.err("saving an incident", &e))?;
        Ok(seqs)
    }

    async fn incident(&self, id: &str) -> Result<Option<StoredIncident>> {
        let row = sqlx::query(&format!("SELECT {INCIDENT_COLUMNS} FROM ops_incidents WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err("reading an incident", &e))?;
        row.as_ref().map(incident_of).transpose()
    }

    async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<StoredIncident>> {
        let rows = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM ops_incidents WHERE ($1 = 0 OR resolved_at = '') AND opened_at >= $2 \
             ORDER BY opened_at DESC, id DESC LIMIT $3"
        ))
        .bind(i64::from(query.unresolved))
        .bind(query.since.map(ts).unwrap_or_default())
        .bind(limit(if query.limit == 0 { 100 } else { query.limit }))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("listing incidents", &e))?;
        rows.iter().map(incident_of).collect()
    }

    async fn append_incident_event(
        &self,
        incident_id: &str,
        time: DateTime<Utc>,
        kind: &str,
        document: &serde_json::Value,
    ) -> Result<u64> {
        let body = serde_json::to_string(document).map_err(|e| Error::internal(format!("incident event: {e}")))?;
        // The incident's row is locked first, by a write (PostgreSQL: its row lock; SQLite: the
        // database's write lock, waited for): appenders take their numbers one after the
        // other. The key would refuse a duplicate number anyway, and that is retried.
        for _ in 0..8 {
            let mut tx = self.pool.begin().await.map_err(|e| self.err("appending an incident event", &e))?;
            let locked = sqlx::query("UPDATE ops_incidents SET updated_at = updated_at WHERE id = $1")
                .bind(incident_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("appending an incident event", &e))?;
            if locked.rows_affected() == 0 {
                return Err(Error::not_found(format!("no incident {incident_id}")));
            }
            let row =
                sqlx::query("SELECT COALESCE(MAX(seq), 0) AS last FROM ops_incident_events WHERE incident_id = $1")
                    .bind(incident_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| self.err("appending an incident event", &e))?;
            let seq = count(&row, "last")? + 1;
            if seq > MAX_EVENTS {
                return Err(Error::conflict(format!(
                    "incident {incident_id} has {MAX_EVENTS} events, the most one keeps"
                )));
            }
            let inserted = sqlx::query(
                "INSERT INTO ops_incident_events (incident_id, seq, time, kind, document) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(incident_id)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(ts(time))
            .bind(kind)
            .bind(&body)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await.map_err(|e| self.err("appending an incident event", &e))?;
                    return Ok(seq);
                }
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => continue,
                Err(e) => return Err(self.err("appending an incident event", &e)),
            }
        }
        Err(Error::unavailable(format!("state store {}: appending an incident event: too much contention", self.shown)))
    }

    async fn incident_events(&self, incident_id: &str, kind: &str) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT seq, time, kind, document FROM ops_incident_events WHERE incident_id = $1 \
             AND ($2 = '' OR kind = $2) ORDER BY seq LIMIT $3",
        )
        .bind(incident_id)
        .bind(kind)
        .bind(i64::try_from(MAX_EVENTS).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("reading incident events", &e))?;
        rows.iter()
            .map(|r| {
                Ok(StoredEvent {
                    seq: count(r, "seq")?,
                    time: parse_ts(&text(r, "time")?)?,
                    kind: text(r, "kind")?,
                    document: json_of(r, "document")?,
                })
            })
            .collect()
    }

    async fn put_document(&self, collection: &str, key: &str, document: &serde_json::Value) -> Result<()> {
        let body = serde_json::to_string(document).map_err(|e| Error::internal(format!("document: {e}")))?;
        sqlx::query(
            "INSERT INTO ops_documents (collection, doc_key, updated_at, document) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (collection, doc_key) DO UPDATE SET updated_at = excluded.updated_at, \
             document = excluded.document",
        )
        .bind(collection)
        .bind(key)
        .bind(ts(Utc::now()))
        .bind(body)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("saving a document", &e))?;
        Ok(())
    }

    async fn delete_document(&self, collection: &str, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM ops_documents WHERE collection = $1 AND doc_key = $2")
            .bind(collection)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err("removing a document", &e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn documents(&self, collection: &str) -> Result<Vec<(String, serde_json::Value)>> {
        let rows =
            sqlx::query("SELECT doc_key, document FROM ops_documents WHERE collection = $1 ORDER BY doc_key LIMIT $2")
                .bind(collection)
                .bind(limit(MAX_LISTED))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("reading documents", &e))?;
        rows.iter().map(|r| Ok((text(r, "doc_key")?, json_of(r, "document")?))).collect()
    }

    async fn add_component_samples(&self, day: chrono::NaiveDate, samples: &[(String, String)]) -> Result<()> {
        let day = day.format("%Y-%m-%d").to_string();
        let mut tx = self.pool.begin().await.map_err(|e| self.err("recording component status", &e))?;
        for (component, status) in samples {
            let Some(column) = COMPONENT_STATUSES.iter().position(|s| s == status) else {
                return Err(Error::invalid_input(format!(
                    "component status {status:?} is not one of {COMPONENT_STATUSES:?}"
                )));
            };
            let mut query = sqlx::query(
                "INSERT INTO ops_component_days (component, day, operational, degraded_performance, partial_outage, \
                 major_outage, under_maintenance) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (component, day) \
                 DO UPDATE SET operational = ops_component_days.operational + excluded.operational, \
                 degraded_performance = ops_component_days.degraded_performance + excluded.degraded_performance, \
                 partial_outage = ops_component_days.partial_outage + excluded.partial_outage, \
                 major_outage = ops_component_days.major_outage + excluded.major_outage, \
                 under_maintenance = ops_component_days.under_maintenance + excluded.under_maintenance",
            )
            .bind(component)
            .bind(&day);
            for i in 0..COMPONENT_STATUSES.len() {
                query = query.bind(i64::from(i == column));
            }
            query.execute(&mut *tx).await.map_err(|e| self.err("recording component status", &e))?;
        }
        tx.commit().await.map_err(|e| self.err("recording component status", &e))
    }

    async fn component_days(&self, since: chrono::NaiveDate) -> Result<Vec<ComponentDay>> {
        let rows = sqlx::query(
            "SELECT component, day, operational, degraded_performance, partial_outage, major_outage, \
             under_maintenance FROM ops_component_days WHERE day >= $1 ORDER BY day, component LIMIT $2",
        )
        .bind(since.format("%Y-%m-%d").to_string())
        .bind(limit(MAX_LISTED) * 100)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("reading component history", &e))?;
        rows.iter()
            .map(|r| {
                let mut samples = std::collections::BTreeMap::new();
                for status in COMPONENT_STATUSES {
                    samples.insert(status.to_owned(), count(r, status)?);
                }
                Ok(ComponentDay { component: text(r, "component")?, day: text(r, "day")?, samples })
            })
            .collect()
    }

    async fn try_lease(&self, name: &str, holder: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool> {
        // One statement: insert, or take over an expired lease or one's own; a lease held by
        // someone else is left alone and nothing is written.
        let done = sqlx::query(
            "INSERT INTO ops_leases (name, holder, expires_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE \
             SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE ops_leases.expires_at < $4 OR ops_leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(ts(until))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("taking a lease", &e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM ops_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err("releasing a lease", &e))?;
        Ok(())
    }

    async fn prune_leases(&self, prefix: &str, now: DateTime<Utc>) -> Result<u64> {
        // A prefix of ASCII letters, digits, `:` and `-` only.
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-')) {
            return Err(Error::invalid_input("a lease prefix is letters, digits, ':' and '-'"));
        }
        // Compared exactly in both engines: neither LIKE (SQLite ignores case) nor a range
        // (PostgreSQL's collations may order punctuation in ways a prefix does not).
        let length = i32::try_from(prefix.len()).map_err(|_| Error::invalid_input("a lease prefix that long"))?;
        let done = sqlx::query("DELETE FROM ops_leases WHERE substr(name, 1, $1) = $2 AND expires_at < $3")
            .bind(length)
            .bind(prefix)
            .bind(ts(now))
            .execute(&self.pool)
            .await
            .map_err(|e| self.err("pruning leases", &e))?;
        Ok(done.rows_affected())
    }

    async fn claim_scheduled_run(&self, run: &ScheduledRun) -> Result<bool> {
        let detail = serde_json::to_string(&run.detail).map_err(|e| Error::internal(format!("ledger row: {e}")))?;
        let mut tx = self.pool.begin().await.map_err(|e| self.err("claiming a scheduled run", &e))?;
        let done = sqlx::query(
            "INSERT INTO ops_schedule_runs (job, scheduled_at, holder, status, started_at, finished_at, heartbeat_at, \
             error, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (job, scheduled_at) DO NOTHING",
        )
        .bind(&run.job)
        .bind(ts(run.scheduled_at))
        .bind(&run.holder)
        .bind(&run.status)
        .bind(ts(run.started_at))
        .bind(run.finished_at.map(ts).unwrap_or_default())
        .bind(ts(run.heartbeat_at))
        .bind(run.error.clone().unwrap_or_default())
        .bind(detail)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err("claiming a scheduled run", &e))?;
        let claimed = done.rows_affected() == 1;
        if claimed {
            // The ledger keeps the newest rows of each job.
            sqlx::query(
                "DELETE FROM ops_schedule_runs WHERE job = $1 AND status <> 'running' AND scheduled_at < \
                 (SELECT MIN(scheduled_at) FROM (SELECT scheduled_at FROM ops_schedule_runs WHERE job = $1 \
                 ORDER BY scheduled_at DESC LIMIT $2) AS newest)",
            )
            .bind(&run.job)
            .bind(limit(MAX_LEDGER_PER_JOB))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("trimming the schedule ledger", &e))?;
        }
        tx.commit().await.map_err(|e| self.err("claiming a scheduled run", &e))?;
        Ok(claimed)
    }

    async fn finish_scheduled_run(&self, run: &ScheduledRun) -> Result<bool> {
        let detail = serde_json::to_string(&run.detail).map_err(|e| Error::internal(format!("ledger row: {e}")))?;
        let done = sqlx::query(
            "UPDATE ops_schedule_runs SET status = $1, finished_at = $2, heartbeat_at = $3, error = $4, detail = $5 \
             WHERE job = $6 AND scheduled_at = $7 AND holder = $8 AND status IN ('running', 'abandoned')",
        )
        .bind(&run.status)
        .bind(run.finished_at.map(ts).unwrap_or_default())
        .bind(ts(run.heartbeat_at))
        .bind(run.error.clone().unwrap_or_default())
        .bind(detail)
        .bind(&run.job)
        .bind(ts(run.scheduled_at))
        .bind(&run.holder)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err("recording a scheduled run", &e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn heartbeat_scheduled_runs(&self, holder: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE ops_schedule_runs SET heartbeat_at = $1 WHERE holder = $2 AND status = 'running'")
            .bind(ts(now))
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err("renewing scheduled runs", &e))?;
        Ok(())
    }

    async fn abandon_scheduled_runs(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ScheduledRun>> {
        let rows = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM ops_schedule_runs WHERE status = 'running' AND heartbeat_at < $1 LIMIT $2"
        ))
        .bind(ts(stale_before))
        .bind(limit(MAX_LISTED))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("reading stale scheduled runs", &e))?;
        let mut abandoned = Vec::new();
        for row in &rows {
            let mut run = scheduled_run_of(row)?;
            run.status = "abandoned".to_owned();
            run.finished_at = Some(now);
            run.error = Some(format!("ops-server {} stopped while it ran (no heartbeat)", run.holder));
            // The same condition again: a row another replica marked, or one whose holder
            // came back meanwhile, is left alone.
            let done = sqlx::query(
                "UPDATE ops_schedule_runs SET status = $1, finished_at = $2, error = $3 \
                 WHERE job = $4 AND scheduled_at = $5 AND status = 'running' AND heartbeat_at < $6",
            )
            .bind(&run.status)
            .bind(ts(now))
            .bind(run.error.clone().unwrap_or_default())
            .bind(&run.job)
            .bind(ts(run.scheduled_at))
            .bind(ts(stale_before))
            .execute(&self.pool)
            .await
            .map_err(|e| self.err("abandoning a scheduled run", &e))?;
            if done.rows_affected() == 1 {
                abandoned.push(run);
            }
        }
        Ok(abandoned)
    }

    async fn scheduled_runs(&self, query: &ScheduleQuery) -> Result<Vec<ScheduledRun>> {
        // One statement per filter, so each uses the (job, scheduled_at) key or the status
        // index rather than a scan.
        let filter = match (query.job.is_some(), query.status.is_some()) {
            (true, true) => "WHERE job = $1 AND status = $2",
            (true, false) => "WHERE job = $1",
            (false, true) => "WHERE status = $1",
            (false, false) => "",
        };
        let sql =
            format!("SELECT {SCHEDULE_COLUMNS} FROM ops_schedule_runs {filter} ORDER BY scheduled_at DESC, job LIMIT ");
        let mut q = String::new();
        let mut binds: Vec<String> = Vec::new();
        binds.extend(query.job.clone());
        binds.extend(query.status.clone());
        q.push_str(&sql);
        q.push_str(&format!("${}", binds.len() + 1));
        let mut statement = sqlx::query(&q);
        for b in &binds {
            statement = statement.bind(b);
        }
        let rows = statement
            .bind(limit(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("reading the schedule ledger", &e))?;
        rows.iter().map(scheduled_run_of).collect()
    }
}

const SCHEDULE_COLUMNS: &str =
    "job, scheduled_at, holder, status, started_at, finished_at, heartbeat_at, error, detail";

fn scheduled_run_of(row: &AnyRow) -> Result<ScheduledRun> {
    let finished = text(row, "finished_at")?;
    let error = text(row, "error")?;
    Ok(ScheduledRun {
        job: text(row, "job")?,
        scheduled_at: parse_ts(&text(row, "scheduled_at")?)?,
        holder: text(row, "holder")?,
        status: text(row, "status")?,
        started_at: parse_ts(&text(row, "started_at")?)?,
        finished_at: if finished.is_empty() { None } else { Some(parse_ts(&finished)?) },
        heartbeat_at: parse_ts(&text(row, "heartbeat_at")?)?,
        error: if error.is_empty() { None } else { Some(error) },
        detail: json_of(row, "detail")?,
    })
}

/// An entry's id in the mirror: the same line of the same file mirrors to the same row.
fn audit_id(source: &str, head: &str, entry: &AuditEntry) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(head.as_bytes());
    h.update([0]);
    h.update(serde_json::to_string(entry).unwrap_or_default().as_bytes());
    hex::encode(&h.finalize()[..16])
}
