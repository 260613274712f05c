//! Proving a restored database: at least `min-tables` tables, every table of the manifest
//! present, exact counts equal, estimates within a tolerance.

use ops_core::ports::Database;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::manifest::Manifest;

/// One table: what the manifest says and what the restored database has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TableCheck {
    /// `schema.table`.
    pub table: String,
    /// Rows in the manifest.
    pub expected: Option<u64>,
    /// Whether `expected` is exact.
    pub exact: bool,
    /// Rows found (`count(*)`), `None` when the table is missing.
    pub found: Option<u64>,
    /// Whether it matches.
    pub ok: bool,
}

/// The proof, table by table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreCheck {
    /// Whether everything matched.
    pub ok: bool,
    /// Tables found.
    pub table_count: usize,
    /// Minimum required.
    pub min_tables: u32,
    /// Each table.
    pub tables: Vec<TableCheck>,
    /// Every mismatch, in words.
    pub problems: Vec<String>,
}

/// How far an estimate may be off: 10 % of the estimate, at least 1,000 rows.
fn estimate_ok(expected: u64, found: u64) -> bool {
    let slack = (expected / 10).max(1000);
    found.abs_diff(expected) <= slack
}

/// Counts every table of `db` exactly and compares with `manifest`.
pub(crate) async fn check_restored(
    db: &dyn Database,
    manifest: Option<&Manifest>,
    min_tables: u32,
) -> Result<RestoreCheck> {
    let found = db.tables(&["*".to_owned()]).await?;
    let mut problems = Vec::new();
    let mut tables = Vec::new();
    if found.len() < min_tables as usize {
        problems.push(format!("{} tables restored, at least {min_tables} required", found.len()));
    }
    if let Some(m) = manifest {
        for t in &m.tables {
            let name = t.qualified_name();
            let rows = found.iter().find(|f| f.qualified_name() == name).and_then(|f| f.exact_rows);
            let ok = match (t.rows, rows) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(e), Some(f)) if t.exact => e == f,
                (Some(e), Some(f)) => estimate_ok(e, f),
            };
            if !ok {
                problems.push(match rows {
                    None => format!("{name}: missing"),
                    Some(f) => format!(
                        "{name}: {} {} rows, found {f}",
                        if t.exact { "expected" } else { "estimated" },
                        t.rows.unwrap_or(0)
                    ),
                });
            }
            tables.push(TableCheck { table: name, expected: t.rows, exact: t.exact, found: rows, ok });
        }
        for f in &found {
            if !m.tables.iter().any(|t| t.qualified_name() == f.qualified_name()) {
                tables.push(TableCheck {
                    table: f.qualified_name(),
                    expected: None,
                    exact: false,
                    found: f.exact_rows,
                    ok: true,
                });
            }
        }
    } else {
        tables = found
            .iter()
            .map(|f| TableCheck {
                table: f.qualified_name(),
                expected: None,
                exact: false,
                found: f.exact_rows,
                ok: true,
            })
            .collect();
    }
    Ok(RestoreCheck { ok: problems.is_empty(), table_count: found.len(), min_tables, tables, problems })
}

/// The last lines of a command's output, for error messages.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::estimate_ok;

    #[test]
    fn estimates_have_slack() {
        assert!(estimate_ok(100, 900), "small tables: 1,000 rows of slack");
        assert!(estimate_ok(1_000_000, 1_090_000));
        assert!(!estimate_ok(1_000_000, 1_200_000));
    }
}
