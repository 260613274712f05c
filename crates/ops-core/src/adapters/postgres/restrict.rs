//! Plain-SQL restores without psql meta-commands.
//!
//! A plain dump is a psql script, and psql runs `\!` (a shell), `\copy … program`, `\o`,
//! `\i` and the rest wherever a backslash starts a command, not only at the start of a line.
//! A dump from anywhere but our own `pg_dump` (a file placed on the host, an object written to
//! the bucket by someone else) could therefore run commands as the user running the restore.
//! psql's own answer (13.22, 14.19, 15.14, 16.10, 17.6 and later) is restricted mode: after
//! `\restrict KEY` every backslash command is refused until `\unrestrict KEY`. We start every
//! plain restore with `\restrict` and a fresh random key the dump cannot know, so any
//! meta-command in it fails the restore (`ON_ERROR_STOP`) before it runs. A current
//! `pg_dump` writes its own `\restrict KEY` in the header (before any statement) and
//! `\unrestrict KEY` at the end; exactly those two lines are dropped (they would be refused
//! too), nothing else is changed. A `\restrict` anywhere else reaches psql, which refuses it.

use crate::{Error, Result};

/// psql releases that know `\restrict`: the first minor of each major that has it.
const FIRST_WITH_RESTRICT: [(u32, u32); 5] = [(13, 22), (14, 19), (15, 14), (16, 10), (17, 6)];

/// Parses `… (PostgreSQL) 15.18 …` into (15, 18); a `16beta1` or a bare `18` has minor 0.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let after = version.split("(PostgreSQL)").nth(1).unwrap_or(version);
    let word = after.split_whitespace().next()?;
    let mut parts = word.split('.');
    let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>().ok();
    let major = digits(parts.next()?)?;
    let minor = parts.next().and_then(digits).unwrap_or(0);
    Some((major, minor))
}

/// Whether the client of `version` (`psql --version` text) has restricted mode.
///
/// # Errors
/// `Unsupported` naming the version found and the releases that have it.
pub(super) fn require_restrict(version: &str) -> Result<()> {
    let ok = match major_minor(version) {
        Some((major, _)) if major >= 18 => true,
        Some((major, minor)) => FIRST_WITH_RESTRICT.iter().any(|&(m, first)| m == major && minor >= first),
        None => false,
    };
    if ok {
        return Ok(());
    }
    Err(Error::unsupported(format!(
        "the PostgreSQL client ({}) has no \\restrict, which plain-SQL restores need so that a dump cannot run \
         psql meta-commands: install 13.22, 14.19, 15.14, 16.10, 17.6 or later of the same major version",
        version.trim()
    )))
}

/// A fresh restrict key: 32 random letters and digits.
///
/// # Errors
/// `Internal` when the system has no randomness to give.
pub(super) fn new_key() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness for the restrict key: {e}")))?;
    Ok(bytes.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect())
}

/// Longest line held back to see whether it is a `\restrict`/`\unrestrict` line.
const HOLD_MAX: usize = 512;

/// Streams a plain dump through, dropping its own `\restrict KEY` line (only in the header:
/// before anything but comments and blank lines) and the `\unrestrict KEY` lines with that
/// same key; every other byte passes unchanged, so a line inside a string, a function body
/// or COPY data is never touched unless it repeats the dump's own random key. Feed it chunks
/// of any size: a line may span chunks.
#[derive(Debug, Default)]
pub(super) struct RestrictFilter {
    /// Only comments and blank lines so far.
    in_header: bool,
    started: bool,
    mid_line: bool,
    /// The current line starts with `\` and is held until its end (at most [`HOLD_MAX`]).
    holding: bool,
    held: Vec<u8>,
    /// Whether the current line is a comment or blank (while in the header).
    line_is_trivia: bool,
    line_first: Option<u8>,
    /// The key of the dump's own `\restrict`.
    key: Option<Vec<u8>>,
}

impl RestrictFilter {
    /// Appends what `input` contributes to the output to `out`.
    pub(super) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.in_header = true;
        }
        while !input.is_empty() {
            if !self.mid_line {
                self.mid_line = true;
                self.line_first = Some(input[0]);
                self.line_is_trivia = input[0] == b'\n' || input[0] == b'\r' || input[0] == b'-';
                self.holding = input[0] == b'\\';
            }
            match memchr::memchr(b'\n', input) {
                Some(end) => {
                    self.take(&input[..end], out);
                    self.end_line(out, true);
                    input = &input[end + 1..];
                }
                None => {
                    self.take(input, out);
                    input = &[];
                }
            }
        }
    }

    /// Flushes a last line without a newline.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.mid_line {
            self.end_line(out, false);
        }
    }

    fn take(&mut self, seg: &[u8], out: &mut Vec<u8>) {
        if self.holding {
            self.held.extend_from_slice(seg);
            if self.held.len() > HOLD_MAX {
                out.append(&mut self.held);
                self.holding = false;
            }
        } else {
            out.extend_from_slice(seg);
        }
    }

    fn end_line(&mut self, out: &mut Vec<u8>, newline: bool) {
        self.mid_line = false;
        let mut drop_line = false;
        if self.holding {
            self.holding = false;
            match restrict_line(&self.held) {
                Some((false, key)) if self.in_header && self.key.is_none() => {
                    self.key = Some(key.to_vec());
                    drop_line = true;
                }
                Some((true, key)) if self.key.as_deref() == Some(key) => drop_line = true,
                _ => {}
            }
            if !drop_line {
                out.append(&mut self.held);
            }
            self.held.clear();
        }
        // A `--` comment or a blank line keeps the header open; the dump's own `\restrict`
        // line is part of it too.
        if !(self.line_is_trivia || drop_line || self.line_first.is_none()) {
            self.in_header = false;
        }
        self.line_first = None;
        if newline && !drop_line {
            out.push(b'\n');
        }
    }
}

/// `(false, KEY)` for `\restrict KEY`, `(true, KEY)` for `\unrestrict KEY`: KEY letters and
/// digits, an optional `\r`.
fn restrict_line(line: &[u8]) -> Option<(bool, &[u8])> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (un, key) = match line.strip_prefix(b"\\restrict ") {
        Some(k) => (false, k),
        None => (true, line.strip_prefix(b"\\unrestrict ")?),
    };
    (!key.is_empty() && key.iter().all(u8::is_ascii_alphanumeric)).then_some((un, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut f = RestrictFilter::default();
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            f.feed(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    const DUMP: &[u8] = b"--\n-- PostgreSQL database dump\n--\n\n\\restrict Abc123xyz\n\nSET x = 1;\n\
COPY public.t (id, note) FROM stdin;\n1\t\\\\restrict Abc\n\\restrict Kept1\n\\.\n\
CREATE FUNCTION f() RETURNS text AS $$\n\\restrict Kept2\n\\unrestrict Other\n$$ LANGUAGE sql;\n\
SELECT 1;\n\\unrestrict Abc123xyz\n";

    #[test]
    fn drops_the_dumps_own_restrict_lines_only() {
        let expected: &[u8] = b"--\n-- PostgreSQL database dump\n--\n\n\nSET x = 1;\n\
COPY public.t (id, note) FROM stdin;\n1\t\\\\restrict Abc\n\\restrict Kept1\n\\.\n\
CREATE FUNCTION f() RETURNS text AS $$\n\\restrict Kept2\n\\unrestrict Other\n$$ LANGUAGE sql;\n\
SELECT 1;\n";
        for chunk in 1..=DUMP.len() {
            assert_eq!(run(DUMP, chunk), expected, "chunk size {chunk}");
        }
    }

    #[test]
    fn other_meta_commands_pass_to_psql_which_refuses_them() {
        let hostile: &[u8] = b"SELECT 1;\n\\! id\nSELECT 1; \\! id\n\\restrict k; \\! id\n\\copy t from program 'id'\n";
        for chunk in [1, 3, 7, 1000] {
            assert_eq!(run(hostile, chunk), hostile, "chunk size {chunk}");
        }
        // A `\restrict` after the header is not the dump's own: psql gets it (and refuses it).
        let late: &[u8] = b"SELECT 1;\n\\restrict abc\n\\unrestrict abc\n";
        assert_eq!(run(late, 4), late);
        // Only the header's key is ever dropped again.
        let pair: &[u8] = b"\\restrict abc\n\\unrestrict xyz\n\\unrestrict abc";
        assert_eq!(run(pair, 4), b"\\unrestrict xyz\n");
        let long = [b"\\restrict ".as_slice(), &[b'a'; 600]].concat();
        assert_eq!(run(&long, 100), long, "a line too long to hold passes unchanged");
    }

    #[test]
    fn versions() {
        assert!(require_restrict("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)").is_ok());
        assert!(require_restrict("pg_dump (PostgreSQL) 17.6").is_ok());
        assert!(require_restrict("psql (PostgreSQL) 18beta1").is_ok());
        assert!(require_restrict("psql (PostgreSQL) 15.13").is_err());
        assert!(require_restrict("psql (PostgreSQL) 12.22").is_err());
        assert!(require_restrict("garbage").is_err());
        let key = new_key().unwrap();
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(key, new_key().unwrap());
    }
}
