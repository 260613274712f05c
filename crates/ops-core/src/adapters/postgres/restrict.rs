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
//! `pg_dump` writes its own `\restrict`/`\unrestrict` pair; those two lines are dropped (they
//! would be refused too), nothing else is changed.

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
/// Bytes of a line's start and end kept to recognise `COPY … FROM stdin;` and `\.`.
const EDGE: usize = 16;

/// Streams a plain dump through, dropping its own `\restrict KEY` and `\unrestrict KEY`
/// lines outside `COPY … FROM stdin;` data; every other byte passes unchanged. Feed it chunks
/// of any size: a line may span chunks.
#[derive(Debug, Default)]
pub(super) struct RestrictFilter {
    in_copy: bool,
    mid_line: bool,
    holding: bool,
    held: Vec<u8>,
    head: Vec<u8>,
    tail: Vec<u8>,
    line_len: usize,
}

impl RestrictFilter {
    /// Appends what `input` contributes to the output to `out`.
    pub(super) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            if !self.mid_line {
                self.mid_line = true;
                self.head.clear();
                self.tail.clear();
                self.line_len = 0;
                self.holding = !self.in_copy && input[0] == b'\\';
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
        self.line_len += seg.len();
        if self.head.len() < EDGE {
            let room = EDGE - self.head.len();
            self.head.extend_from_slice(&seg[..seg.len().min(room)]);
        }
        if seg.len() >= EDGE {
            self.tail.clear();
            self.tail.extend_from_slice(&seg[seg.len() - EDGE..]);
        } else {
            self.tail.extend_from_slice(seg);
            let excess = self.tail.len().saturating_sub(EDGE);
            self.tail.drain(..excess);
        }
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
        if self.holding {
            self.holding = false;
            if is_restrict_line(&self.held) {
                self.held.clear();
                return;
            }
            out.append(&mut self.held);
        }
        if newline {
            out.push(b'\n');
        }
        let strip_cr = |s: &[u8]| s.strip_suffix(b"\r").unwrap_or(s).to_vec();
        if self.in_copy {
            if self.line_len <= 3 && strip_cr(&self.head) == b"\\." {
                self.in_copy = false;
            }
        } else if self.head.starts_with(b"COPY ") && strip_cr(&self.tail).ends_with(b" FROM stdin;") {
            self.in_copy = true;
        }
    }
}

/// `\restrict KEY` or `\unrestrict KEY`, KEY letters and digits, an optional `\r`.
fn is_restrict_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(key) = line.strip_prefix(b"\\restrict ").or_else(|| line.strip_prefix(b"\\unrestrict ")) else {
        return false;
    };
    !key.is_empty() && key.iter().all(u8::is_ascii_alphanumeric)
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
SELECT 1;\n\\unrestrict Abc123xyz\n";

    #[test]
    fn drops_the_dumps_own_restrict_lines_only() {
        let expected: &[u8] = b"--\n-- PostgreSQL database dump\n--\n\n\nSET x = 1;\n\
COPY public.t (id, note) FROM stdin;\n1\t\\\\restrict Abc\n\\restrict Kept1\n\\.\n\
SELECT 1;\n";
        for chunk in 1..=DUMP.len() {
            assert_eq!(run(DUMP, chunk), expected, "chunk size {chunk}");
        }
    }

    #[test]
    fn other_meta_commands_pass_to_psql_which_refuses_them() {
        let hostile: &[u8] = b"\\! id\nSELECT 1; \\! id\n\\restrict k; \\! id\n\\copy t from program 'id'\n";
        for chunk in [1, 3, 7, 1000] {
            assert_eq!(run(hostile, chunk), hostile, "chunk size {chunk}");
        }
        assert_eq!(run(b"\\restrict abc", 4), b"");
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
