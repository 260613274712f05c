//! The catalog reads of performance analysis and the guarded backend signals.
//!
//! Every query here starts with the [`MARKER`] comment, so the analysis can leave its own
//! statements out of `pg_stat_statements`. Sizes come from `relpages` rather than
//! `pg_relation_size`, which would wait for the lock of a table someone holds exclusively (the
//! very situation an analysis is run in), and index definitions from `pg_get_indexdef` only for
//! tables nobody holds or awaits exclusively, and sequence values likewise; `lock_timeout` bounds
//! what is left (a lock taken between the two).

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};

use super::client::{db_err, quote_ident, redact_query};
use crate::ports::database::{
    Backend, BackendCheck, BackendList, BackendSignal, DatabaseStats, IndexStats, PerfSnapshot, SequenceStats,
    SignalOutcome, StatementStats, TableStats,
};
use crate::{Error, Result};

/// Marks the analysis' own statements (kept by `pg_stat_statements` in the query text).
pub(super) const MARKER: &str = "/* ops:perf */";

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn age(secs: Option<f64>) -> Option<Duration> {
    secs.filter(|s| s.is_finite()).map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// Whitespace-separated numbers of an `int2vector`/`oidvector` rendered as text.
fn vector(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// `shared_preload_libraries` names `pg_stat_statements` (the list may quote its items).
pub(super) fn preloads_statements(setting: &str) -> bool {
    setting.split(',').any(|lib| lib.trim().trim_matches('"').trim() == "pg_stat_statements")
}

const STATS_SQL: &str = "/* ops:perf */ SELECT current_setting('server_version_num')::int4, now(), \
        pg_postmaster_start_time(), current_setting('max_connections')::int4, \
        current_setting('superuser_reserved_connections')::int4, current_setting('shared_preload_libraries'), \
        EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'), \
        d.stats_reset, coalesce(d.blks_hit, 0)::int8, coalesce(d.blks_read, 0)::int8, \
        coalesce(d.xact_commit, 0)::int8, coalesce(d.xact_rollback, 0)::int8, coalesce(d.deadlocks, 0)::int8, \
        age(db.datfrozenxid)::int8, o.datname::text, o.age::int8, \
        current_setting('autovacuum_freeze_max_age')::int8, current_database()::text \
    FROM pg_database db \
    LEFT JOIN pg_stat_database d ON d.datid = db.oid \
    LEFT JOIN LATERAL (SELECT datname, age(datfrozenxid) AS age FROM pg_database ORDER BY 2 DESC LIMIT 1) o ON true \
    WHERE db.datname = current_database()";

fn statements_sql(version_num: u32) -> String {
    // PostgreSQL 13 split planning from execution time.
    let total = if version_num >= 130_000 { "total_exec_time" } else { "total_time" };
    format!(
        "{MARKER} SELECT queryid, sum(calls)::int8, sum({total})::float8, sum(rows)::int8, \
                sum(shared_blks_hit)::int8, sum(shared_blks_read)::int8, min(left(query, 1000)) \
         FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND queryid IS NOT NULL AND query NOT LIKE '%ops:perf%' \
         GROUP BY queryid"
    )
}

const TABLES_SQL: &str = "/* ops:perf */ SELECT s.schemaname::text, s.relname::text, \
        quote_ident(s.schemaname) || '.' || quote_ident(s.relname), \
        (c.relpages::int8 + coalesce(t.relpages, 0)::int8) * current_setting('block_size')::int8, \
        c.reltuples::float8, coalesce(s.n_live_tup, 0)::int8, coalesce(s.n_dead_tup, 0)::int8, \
        coalesce(s.n_mod_since_analyze, 0)::int8, coalesce(s.seq_scan, 0)::int8, coalesce(s.seq_tup_read, 0)::int8, \
        s.idx_scan::int8, coalesce(s.idx_tup_fetch, 0)::int8, coalesce(s.n_tup_ins, 0)::int8, \
        coalesce(s.n_tup_upd, 0)::int8, coalesce(s.n_tup_del, 0)::int8, \
        s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze, \
        CASE WHEN c.relkind IN ('r', 'm', 't') THEN age(c.relfrozenxid)::int8 ELSE 0 END \
    FROM pg_stat_user_tables s \
    JOIN pg_class c ON c.oid = s.relid \
    LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
    ORDER BY 1, 2";

/// Indexes. `pg_get_indexdef` takes a share lock on the table, so for a table someone holds or
/// waits for exclusively (a migration, `LOCK TABLE`) the definition is rendered from the catalog
/// instead, with expressions and predicates elided: the analysis never queues behind a lock.
fn indexes_sql(version_num: u32) -> String {
    // PostgreSQL 12 stopped materializing CTEs unless asked to (and learnt the keyword).
    let materialized = if version_num >= 120_000 { "MATERIALIZED " } else { "" };
    format!(
        "{MARKER} WITH locked AS {materialized}( \
           SELECT DISTINCT relation FROM pg_locks \
           WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) \
         SELECT s.schemaname::text, s.relname::text, s.indexrelname::text, \
            quote_ident(s.schemaname) || '.' || quote_ident(s.indexrelname), am.amname::text, \
            ic.relpages::int8 * current_setting('block_size')::int8, coalesce(s.idx_scan, 0)::int8, \
            i.indisunique, i.indisprimary, \
            (i.indisprimary OR i.indisexclusion OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)), \
            i.indisvalid, i.indnkeyatts::int4, i.indkey::text, i.indclass::text, i.indcollation::text, i.indoption::text, \
            regexp_replace(i.indexprs::text, ' :location -?[0-9]+', '', 'g'), \
            regexp_replace(i.indpred::text, ' :location -?[0-9]+', '', 'g'), \
            CASE WHEN i.indrelid IN (SELECT relation FROM locked) OR i.indexrelid IN (SELECT relation FROM locked) \
            THEN format('CREATE %sINDEX %s ON %s USING %s (%s)%s%s', \
                CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END, quote_ident(s.indexrelname), \
                quote_ident(s.schemaname) || '.' || quote_ident(s.relname), am.amname, \
                (SELECT string_agg(CASE WHEN k.attnum = 0 THEN '(expression)' ELSE quote_ident(a.attname) END, \
                                   ', ' ORDER BY k.n) \
                 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
                 LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE k.n <= i.indnkeyatts), \
                (SELECT ' INCLUDE (' || string_agg(quote_ident(a.attname), ', ' ORDER BY k.n) || ')' \
                 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE k.n > i.indnkeyatts), \
                CASE WHEN i.indpred IS NOT NULL THEN ' WHERE (…)' ELSE '' END) \
            ELSE pg_get_indexdef(i.indexrelid) END \
         FROM pg_stat_user_indexes s \
         JOIN pg_index i ON i.indexrelid = s.indexrelid \
         JOIN pg_class ic ON ic.oid = s.indexrelid \
         JOIN pg_am am ON am.oid = ic.relam \
         ORDER BY 1, 2, 3"
    )
}

/// Sequences, from `pg_sequence` rather than the `pg_sequences` view, so the last value is read
/// (`pg_sequence_last_value` takes a row-exclusive lock) only of sequences nobody holds or awaits a
/// conflicting lock on; the others show no last value.
fn sequences_sql(version_num: u32) -> String {
    let materialized = if version_num >= 120_000 { "MATERIALIZED " } else { "" };
    format!(
        "{MARKER} WITH locked AS {materialized}( \
           SELECT DISTINCT relation FROM pg_locks \
           WHERE locktype = 'relation' AND relation IS NOT NULL \
             AND mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock') \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) \
         SELECT n.nspname::text, c.relname::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
            format_type(s.seqtypid, NULL), \
            CASE WHEN c.oid NOT IN (SELECT relation FROM locked) AND has_sequence_privilege(c.oid, 'SELECT,USAGE') \
                 THEN pg_sequence_last_value(c.oid) END, \
            s.seqmin, s.seqmax, s.seqincrement, s.seqcycle, \
            quote_ident(tn.nspname) || '.' || quote_ident(t.relname) || '.' || quote_ident(a.attname), \
            format_type(a.atttypid, NULL) \
         FROM pg_sequence s \
         JOIN pg_class c ON c.oid = s.seqrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid \
              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 \
         LEFT JOIN pg_class t ON t.oid = d.refobjid \
         LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace \
         LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
         WHERE NOT pg_is_other_temp_schema(n.oid) AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY 1, 2"
    )
}

/// Columns of one backend, in the order [`backend_of`] reads them.
const BACKEND_COLUMNS: &str = "pid, coalesce(backend_type, '')::text, usename::text, datname::text, \
        nullif(application_name, ''), host(client_addr), coalesce(state, '')::text, backend_start, query_start, \
        extract(epoch FROM now() - backend_start)::float8, extract(epoch FROM now() - query_start)::float8, \
        extract(epoch FROM now() - xact_start)::float8, extract(epoch FROM now() - state_change)::float8, \
        wait_event_type || ':' || wait_event, \
        CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) ELSE '{}'::int4[] END, left(query, 1000)";

fn backends_sql() -> String {
    format!(
        "{MARKER} SELECT {BACKEND_COLUMNS}, pg_backend_pid() FROM pg_stat_activity \
         ORDER BY backend_start NULLS LAST, pid"
    )
}

fn backend_of(r: &PgRow) -> Backend {
    Backend {
        pid: r.get(0),
        backend_type: r.get(1),
        user: r.get(2),
        database: r.get(3),
        application: r.get(4),
        client_addr: r.get(5),
        state: r.get(6),
        backend_start: r.get(7),
        query_start: r.get(8),
        backend_age: age(r.get(9)),
        query_age: age(r.get(10)),
        transaction_age: age(r.get(11)),
        state_age: age(r.get(12)),
        wait_event: r.get(13),
        blocked_by: r.get::<Option<Vec<i32>>, _>(14).unwrap_or_default(),
        query: redact_query(r.get::<Option<String>, _>(15).as_deref().unwrap_or_default(), Backend::QUERY_CHARS),
    }
}

fn table_of(r: &PgRow) -> TableStats {
    let est: f64 = r.get(4);
    TableStats {
        schema: r.get(0),
        name: r.get(1),
        sql_name: r.get(2),
        size_bytes: u64_of(r.get(3)),
        // reltuples is -1 (PostgreSQL 14+) or 0 before the first VACUUM or ANALYZE.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        estimated_rows: (est >= 0.0).then(|| est.round() as u64),
        live_tuples: u64_of(r.get(5)),
        dead_tuples: u64_of(r.get(6)),
        modified_since_analyze: u64_of(r.get(7)),
        seq_scan: u64_of(r.get(8)),
        seq_tup_read: u64_of(r.get(9)),
        idx_scan: r.get::<Option<i64>, _>(10).map(u64_of),
        idx_tup_fetch: u64_of(r.get(11)),
        n_tup_ins: u64_of(r.get(12)),
        n_tup_upd: u64_of(r.get(13)),
        n_tup_del: u64_of(r.get(14)),
        last_vacuum: r.get(15),
        last_autovacuum: r.get(16),
        last_analyze: r.get(17),
        last_autoanalyze: r.get(18),
        frozen_xid_age: u64_of(r.get(19)),
    }
}

fn index_of(r: &PgRow) -> IndexStats {
    let nkey = usize::try_from(r.get::<i32, _>(11)).unwrap_or(0);
    let columns: Vec<i16> = vector(r.get::<&str, _>(12)).iter().filter_map(|c| c.parse().ok()).collect();
    let (classes, collations, options) =
        (vector(r.get::<&str, _>(13)), vector(r.get::<&str, _>(14)), vector(r.get::<&str, _>(15)));
    let key_details = (0..nkey.min(columns.len()))
        .map(|i| {
            let at = |v: &[String]| v.get(i).cloned().unwrap_or_default();
            format!("{}/{}/{}", at(&classes), at(&collations), at(&options))
        })
        .collect();
    IndexStats {
        schema: r.get(0),
        table: r.get(1),
        name: r.get(2),
        sql_name: r.get(3),
        method: r.get(4),
        size_bytes: u64_of(r.get(5)),
        scans: u64_of(r.get(6)),
        unique: r.get(7),
        primary: r.get(8),
        constraint: r.get(9),
        valid: r.get(10),
        key_columns: columns.iter().take(nkey).copied().collect(),
        key_details,
        include_columns: columns.iter().skip(nkey).copied().collect(),
        expressions: r.get(16),
        predicate: r.get(17),
        definition: r.get(18),
    }
}

fn sequence_of(r: &PgRow) -> SequenceStats {
    SequenceStats {
        schema: r.get(0),
        name: r.get(1),
        sql_name: r.get(2),
        data_type: r.get(3),
        last_value: r.get(4),
        min_value: r.get(5),
        max_value: r.get(6),
        increment: r.get(7),
        cycle: r.get(8),
        owner_column: r.get(9),
        owner_type: r.get(10),
    }
}

/// The whole snapshot on `conn` (statement and lock timeouts are the connection's).
pub(super) async fn snapshot_on(conn: &mut PgConnection) -> Result<PerfSnapshot> {
    let mut queries = 0u32;
    let row = sqlx::query(STATS_SQL).fetch_one(&mut *conn).await.map_err(|e| db_err(e, "database statistics"))?;
    queries += 1;
    let version_num = u32::try_from(row.get::<i32, _>(0)).unwrap_or(0);
    let stats = DatabaseStats {
        version_num,
        postmaster_start: row.get(2),
        stats_reset: row.get(7),
        max_connections: u32::try_from(row.get::<i32, _>(3)).unwrap_or(0),
        reserved_connections: u32::try_from(row.get::<i32, _>(4)).unwrap_or(0),
        blks_hit: u64_of(row.get(8)),
        blks_read: u64_of(row.get(9)),
        xact_commit: u64_of(row.get(10)),
        xact_rollback: u64_of(row.get(11)),
        deadlocks: u64_of(row.get(12)),
        frozen_xid_age: u64_of(row.get(13)),
        oldest_database: row
            .get::<Option<String>, _>(14)
            .map(|d| (d, u64_of(row.get::<Option<i64>, _>(15).unwrap_or(0)))),
        autovacuum_freeze_max_age: u64_of(row.get(16)),
        statements_preloaded: preloads_statements(row.get::<&str, _>(5)),
        statements_installed: row.get(6),
    };
    let taken_at = row.get(1);
    let database: String = row.get(17);

    let mut statements = Vec::new();
    if stats.statements_preloaded && stats.statements_installed {
        let rows = sqlx::query(&statements_sql(version_num))
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_err(e, "read pg_stat_statements"))?;
        queries += 1;
        statements = rows
            .iter()
            .map(|r| StatementStats {
                queryid: r.get(0),
                calls: u64_of(r.get(1)),
                total_ms: r.get::<Option<f64>, _>(2).unwrap_or(0.0),
                rows: u64_of(r.get(3)),
                shared_blks_hit: u64_of(r.get(4)),
                shared_blks_read: u64_of(r.get(5)),
                query: redact_query(r.get::<Option<String>, _>(6).as_deref().unwrap_or_default(), Backend::QUERY_CHARS),
            })
            .collect();
    }

    let tables = sqlx::query(TABLES_SQL).fetch_all(&mut *conn).await.map_err(|e| db_err(e, "table statistics"))?;
    queries += 1;
    let indexes = sqlx::query(&indexes_sql(version_num))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_err(e, "index statistics"))?;
    queries += 1;
    let sequences =
        sqlx::query(&sequences_sql(version_num)).fetch_all(&mut *conn).await.map_err(|e| db_err(e, "sequences"))?;
    queries += 1;
    let backends = backends_on(conn).await?;
    queries += 1;
    Ok(PerfSnapshot {
        database,
        taken_at,
        queries,
        stats,
        statements,
        tables: tables.iter().map(table_of).collect(),
        indexes: indexes.iter().map(index_of).collect(),
        sequences: sequences.iter().map(sequence_of).collect(),
        backends,
    })
}

/// Every backend of the server, in one query.
pub(super) async fn backends_on(conn: &mut PgConnection) -> Result<BackendList> {
    let rows = sqlx::query(&backends_sql()).fetch_all(&mut *conn).await.map_err(|e| db_err(e, "list backends"))?;
    let own_pid = rows.first().map_or(0, |r| r.get::<i32, _>(16));
    Ok(BackendList { own_pid, backends: rows.iter().map(backend_of).collect() })
}

/// User tables with their statistics, in one query.
pub(super) async fn tables_on(conn: &mut PgConnection) -> Result<Vec<TableStats>> {
    let rows = sqlx::query(TABLES_SQL).fetch_all(&mut *conn).await.map_err(|e| db_err(e, "table statistics"))?;
    Ok(rows.iter().map(table_of).collect())
}

/// Checks and signals in one statement: nothing is sent unless every check holds.
pub(super) async fn signal_on(
    conn: &mut PgConnection,
    pid: i32,
    signal: BackendSignal,
    check: &BackendCheck,
) -> Result<SignalOutcome> {
    let function = match signal {
        BackendSignal::Cancel => "pg_cancel_backend",
        BackendSignal::Terminate => "pg_terminate_backend",
    };
    let sql = format!(
        "{MARKER} SELECT {BACKEND_COLUMNS}, m, CASE WHEN m THEN {function}(pid) END FROM ( \
           SELECT a.*, ( \
             a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() \
             AND ($2::timestamptz IS NULL OR a.backend_start = $2) \
             AND ($3::text IS NULL OR a.state = $3) \
             AND ($4::float8 IS NULL OR now() - a.state_change >= make_interval(secs => $4)) \
             AND ($5::timestamptz IS NULL OR a.query_start = $5) \
             AND ($6::float8 IS NULL OR now() - a.query_start >= make_interval(secs => $6)) \
             AND NOT (coalesce(a.application_name, '') = ANY($7::text[])) \
           ) IS TRUE AS m \
           FROM pg_stat_activity a WHERE a.pid = $1) s"
    );
    let row = sqlx::query(&sql)
        .bind(pid)
        .bind(check.backend_start)
        .bind(check.state.as_deref())
        .bind(check.min_state_age.map(|d| d.as_secs_f64()))
        .bind(check.query_start)
        .bind(check.min_query_age.map(|d| d.as_secs_f64()))
        .bind(&check.protected_applications)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| db_err(e, &format!("signal backend {pid}")))?;
    let Some(row) = row else { return Ok(SignalOutcome::Gone) };
    if row.get::<bool, _>(16) {
        Ok(SignalOutcome::Sent { delivered: row.get::<Option<bool>, _>(17).unwrap_or(false) })
    } else {
        Ok(SignalOutcome::Changed { now: Box::new(backend_of(&row)) })
    }
}

/// `VACUUM` of one table (after checking it exists) or of the database, outside a transaction
/// (no `BEGIN`).
pub(super) async fn vacuum_on(conn: &mut PgConnection, table: Option<(String, String)>, analyze: bool) -> Result<()> {
    let target = match &table {
        Some((schema, name)) => {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'm', 'p', 't'))",
            )
            .bind(schema)
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| db_err(e, "look up the table"))?;
            if !exists {
                return Err(Error::not_found(format!("table {schema}.{name} does not exist")));
            }
            format!(" {}.{}", quote_ident(schema), quote_ident(name))
        }
        None => String::new(),
    };
    let sql = format!("VACUUM{}{target}", if analyze { " (ANALYZE)" } else { "" });
    let what = table.map_or_else(|| "vacuum the database".to_owned(), |(s, n)| format!("vacuum {s}.{n}"));
    // A query without arguments goes over the simple protocol: no implicit transaction block
    // around it, which VACUUM refuses.
    sqlx::Executor::execute(&mut *conn, sql.as_str()).await.map_err(|e| db_err(e, &what))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_lists_are_read_like_the_server_does() {
        assert!(preloads_statements("pg_stat_statements"));
        assert!(preloads_statements("auto_explain, \"pg_stat_statements\""));
        assert!(!preloads_statements(""));
        assert!(!preloads_statements("pg_stat_statements_extra"));
    }

    #[test]
    fn every_analysis_query_carries_the_marker() {
        for sql in [
            STATS_SQL,
            TABLES_SQL,
            &indexes_sql(150_000),
            &sequences_sql(150_000),
            &statements_sql(150_000),
            &backends_sql(),
        ] {
            assert!(sql.starts_with(MARKER), "{sql}");
        }
        assert!(statements_sql(120_000).contains("sum(total_time)"));
        assert!(statements_sql(130_000).contains("sum(total_exec_time)"));
        assert!(indexes_sql(110_000).contains("WITH locked AS ("));
        assert!(indexes_sql(120_000).contains("WITH locked AS MATERIALIZED ("));
    }
}
