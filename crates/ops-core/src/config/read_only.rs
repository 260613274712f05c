//! Whether a `[[sql]]` check's query only reads, decided when the configuration loads.
//!
//! The query runs as one prepared statement in a `READ ONLY` transaction that is rolled back,
//! so a write fails on the server anyway; this check refuses it earlier, with the file and
//! key, and also refuses what a read-only transaction allows but a check must not do:
//! signalling backends, taking advisory locks, changing settings, reading server files.
//! Words inside string literals and comments are not looked at; quoted identifiers are names
//! like any other. A word list is never complete: run checks as a role that may only read
//! (`GRANT pg_read_all_data`, or `SELECT` on the tables they read), so the server refuses what
//! this check cannot foresee.

/// Statement words that write, lock, or change the session.
const REFUSED_WORDS: [&str; 30] = [
    "insert",
    "update",
    "delete",
    "merge",
    "truncate",
    "drop",
    "alter",
    "create",
    "grant",
    "revoke",
    "copy",
    "call",
    "do",
    "vacuum",
    "analyze",
    "cluster",
    "reindex",
    "lock",
    "set",
    "reset",
    "listen",
    "notify",
    "unlisten",
    "prepare",
    "execute",
    "deallocate",
    "discard",
    "into",
    "refresh",
    "import",
];

/// Functions with effects a read-only transaction still allows, or that read the server's files.
const REFUSED_FUNCTION_PREFIXES: [&str; 29] = [
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_advisory",
    "pg_try_advisory",
    "set_config",
    "nextval",
    "setval",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_promote",
    "pg_read_",
    "pg_ls_",
    "pg_stat_file",
    "lo_",
    "dblink",
    "pg_notify",
    // These run the SQL text they are given, which this check never sees.
    "query_to_xml",
    "cursor_to_xml",
    "table_to_xml",
    "schema_to_xml",
    "database_to_xml",
    "xpath",
    // Allowed in a read-only transaction, and not a check's to do.
    "pg_stat_reset",
    "pg_create_",
    "pg_drop_",
    "pg_replication_slot",
    "txid_current",
    "pg_current_xact_id",
];

/// `Ok` when `query` is one statement that starts with `SELECT`, `WITH`, `VALUES` or `TABLE`
/// and names nothing of the refused lists; else why not (naming the word, never the query).
pub(crate) fn check(query: &str) -> Result<(), String> {
    let words = words_outside_literals(query)?;
    let Some(first) = words.first() else { return Err("is empty: give one SELECT".to_owned()) };
    if !matches!(first.as_str(), "select" | "with" | "values" | "table") {
        return Err(format!("must be a SELECT (or WITH, VALUES, TABLE) query, not {}", first.to_uppercase()));
    }
    for w in &words {
        if w == ";" {
            continue;
        }
        if REFUSED_WORDS.contains(&w.as_str()) {
            return Err(format!("is not read-only: {} is refused in a check", w.to_uppercase()));
        }
        let name = w.strip_prefix('"').unwrap_or(w);
        if let Some(f) = REFUSED_FUNCTION_PREFIXES.iter().find(|p| name.starts_with(*p)) {
            return Err(format!("calls {}…, which a check may not", f.trim_end_matches('_')));
        }
    }
    // `FOR UPDATE` / `FOR SHARE` lock rows ("update" is refused above; "share" here).
    if words.windows(2).any(|p| p[0] == "for" && matches!(p[1].as_str(), "share" | "no" | "key")) {
        return Err("is not read-only: FOR SHARE / FOR KEY SHARE lock rows".to_owned());
    }
    let semis: Vec<usize> = words.iter().enumerate().filter(|(_, w)| *w == ";").map(|(i, _)| i).collect();
    if semis.iter().any(|&i| i + 1 != words.len()) {
        return Err("holds more than one statement: give one SELECT".to_owned());
    }
    Ok(())
}

/// Lower-cased words (letters, digits, `_`, `$`) and `;`, outside `'…'`, `E'…'`, `"…"`,
/// `$tag$…$tag$`, `-- …` and `/* … */`.
fn words_outside_literals(q: &str) -> Result<Vec<String>, String> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                // `E'…'` (or `e'…'`) escapes with a backslash; a standard string does not.
                let escaped = i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !is_word(b[i - 2]));
                let close = find_close(b, i + 1, c, escaped).ok_or("has an unclosed quote")?;
                i = close + 1;
            }
            b'"' => {
                // A quoted identifier is a name like any other: `"pg_terminate_backend"(…)`.
                let close = find_close(b, i + 1, c, false).ok_or("has an unclosed quote")?;
                // Marked with its quote: never a keyword, but a function name all the same.
                out.push(format!("\"{}", q[i + 1..close].replace("\"\"", "\"").to_ascii_lowercase()));
                i = close + 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = q[i + 2..].find("*/").ok_or("has an unclosed /* comment")?;
                i = i + 2 + end + 2;
            }
            b'$' => {
                // A dollar-quoted string: $$…$$ or $tag$…$tag$; `$1` is a parameter.
                let tag_end = b[i + 1..].iter().position(|&x| !(x.is_ascii_alphanumeric() || x == b'_'));
                match tag_end.map(|p| i + 1 + p) {
                    Some(e) if b[e] == b'$' && !b[i + 1..e].first().is_some_and(u8::is_ascii_digit) => {
                        let tag = &q[i..=e];
                        let body = e + 1;
                        let close = q[body..].find(tag).ok_or("has an unclosed $-quoted string")?;
                        i = body + close + tag.len();
                    }
                    _ => i += 1,
                }
            }
            b';' => {
                out.push(";".to_owned());
                i += 1;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < b.len() && is_word(b[i]) {
                    i += 1;
                }
                out.push(q[start..i].to_ascii_lowercase());
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The index of the quote closing one opened before `from` (a doubled quote is a literal
/// one; with `escaped`, a backslash escapes the next byte, as in PostgreSQL's `E'…'`).
fn find_close(b: &[u8], mut from: usize, quote: u8, escaped: bool) -> Option<usize> {
    while from < b.len() {
        if b[from] == quote {
            if b.get(from + 1) == Some(&quote) {
                from += 2;
                continue;
            }
            return Some(from);
        }
        if escaped && b[from] == b'\\' {
            from += 2;
            continue;
        }
        from += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn reads_pass_and_writes_are_refused_by_their_word() {
        for ok in [
            "SELECT MAX(ledger_sequence) FROM events",
            "select count(*) from payments where status = 'pending' and created_at < now() - interval '30 minutes';",
            "WITH x AS (SELECT 1 AS v) SELECT v FROM x",
            "SELECT 'drop table users; insert' AS text_is_fine",
            "SELECT \"update\" FROM t -- delete in a comment\n",
            "SELECT $$ delete $$, max(created_at) FROM t /* drop */",
            "SELECT extract(epoch FROM now() - max(created_at)) FROM events",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        let refused = |q: &str| check(q).unwrap_err();
        assert!(refused("DELETE FROM events").contains("must be a SELECT"));
        assert!(refused("WITH d AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM d").contains("DELETE"));
        assert!(refused("SELECT 1; DROP TABLE users").contains("DROP"));
        assert!(refused("SELECT 1; SELECT 2").contains("more than one statement"));
        assert!(refused("SELECT * INTO copy_of FROM t").contains("INTO"));
        assert!(refused("SELECT pg_terminate_backend(123)").contains("pg_terminate_backend"));
        assert!(refused("SELECT pg_advisory_lock(1)").contains("pg_advisory"));
        assert!(refused("SELECT nextval('s')").contains("nextval"));
        assert!(refused("SELECT * FROM t FOR UPDATE").contains("UPDATE"));
        assert!(refused("SELECT * FROM t FOR SHARE").contains("FOR SHARE"));
        assert!(refused("SELECT 'unclosed").contains("unclosed"));
        assert!(refused("  ").contains("empty"));
        // Ways around a word list: a quoted name, a backslash that ends nothing in a standard
        // string, SQL run from a string.
        assert!(refused("SELECT \"pg_terminate_backend\"(pid) FROM pg_stat_activity").contains("pg_terminate_backend"));
        assert!(
            refused("SELECT 'x\\', pg_terminate_backend(pid) -- '\nFROM pg_stat_activity")
                .contains("pg_terminate_backend")
        );
        assert!(
            refused("SELECT query_to_xml('select pg_terminate_backend(1)', true, true, '')").contains("query_to_xml")
        );
        assert!(refused("SELECT pg_stat_reset()").contains("pg_stat_reset"));
        // An escaped quote inside E'…' does not end it.
        assert_eq!(check("SELECT E'it\\'s; drop' AS t"), Ok(()));
    }
}
