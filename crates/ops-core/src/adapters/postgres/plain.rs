//! Plain-SQL restores: the dump runs in restricted psql sessions (see `restrict`), and its
//! table data is loaded over several sessions at once.
//!
//! A plain `pg_dump` script has three sections, in this order: the schema without indexes or
//! constraints (pre-data), the rows of every table as `COPY … FROM stdin;` blocks and the
//! sequences' `setval` calls (data), then indexes, constraints, triggers and grants
//! (post-data). Every entry starts with a comment naming it and its type
//! (`-- Data for Name: t; Type: TABLE DATA; …`). pg_restore's `--jobs` loads a custom-format
//! archive the same way; here the plain stream is split as it arrives:
//!
//! 1. one session runs the header and pre-data, and commits;
//! 2. `jobs` sessions load the data: each `COPY` block is cut at row boundaries into units of
//!    about [`UNIT_BYTES`], every unit a complete `COPY … FROM stdin; rows \.`, and each unit
//!    goes to whichever session is free;
//! 3. once all of them have committed, one session runs the rest, in order.
//!
//! Only the order of rows between data entries changes, and nothing in the data section
//! depends on it: pg_dump creates every constraint, index and trigger in post-data. Anything
//! the splitter does not recognise in the data section (an `INSERT`, a `SET`, large objects)
//! ends the data section there: it and everything after run in the last session, in order. A
//! header with anything but `SET` and `set_config` (a dump not written by pg_dump) keeps the
//! whole restore in one session, as does `jobs` 1. A statement the splitter cut wrongly
//! (a function body containing an entry comment) cannot run: psql fails the restore.
//!
//! Every later session starts with the header, then the last value of each one-line `SET`
//! the first session ran after it (pg_dump writes `SET default_tablespace`, and with
//! `--use-set-session-authorization` `SET SESSION AUTHORIZATION`, only when the value
//! changes), so each statement runs in the session state it would have had in one session.
//!
//! Failure: a session that fails stops the sessions still loading, killed before they commit,
//! and fails the restore. What committed before stays: the schema, and the data a session
//! finished. The safe swap then drops its side database; an in-place restore leaves the
//! recreated database partly loaded (one session left it empty), and says the restore failed.
//!
//! Memory: at most `2 × jobs` units wait for a session, `jobs` are being written and one is
//! being filled, each at most [`UNIT_BYTES`] plus one row; a row longer than [`ROW_MAX`] ends
//! the data section there, and that `COPY` and the rest run in the last session, streamed.

use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::restrict;
use crate::ports::ByteReader;
use crate::{Error, Result};

/// Target size of one unit of `COPY` rows.
pub(super) const UNIT_BYTES: usize = 1024 * 1024;
/// Longest `COPY` row a data unit holds; a longer one goes, streamed, to the last session.
pub(super) const ROW_MAX: usize = 1024 * 1024;
/// Longest line the splitter holds to look at (an entry comment, a `COPY` header).
const LINE_MAX: usize = 64 * 1024;
/// Largest header replayed at the start of every later session.
const PREAMBLE_MAX: usize = 64 * 1024;
/// Bytes read from the dump at a time.
const READ_BUF: usize = 256 * 1024;

/// What the splitter asks of the sessions.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// Bytes for the sequential session (the first, or the last once the data is loaded).
    Seq(Vec<u8>),
    /// The pre-data is complete: finish the first session, start the data sessions.
    BeginData,
    /// A complete statement for any data session: a `COPY` unit or a `setval` call.
    Unit(Vec<u8>),
    /// The data section is over: finish the data sessions; what follows is sequential.
    EndData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Header and pre-data.
    Pre,
    /// Between statements of the data section.
    Data,
    /// Inside a `COPY` block's rows.
    Copy,
    /// Everything after the data section.
    Post,
}

/// Splits a plain dump (already through the restrict filter) into [`Event`]s. Feed it chunks
/// of any size; a line may span chunks.
#[derive(Debug)]
pub(super) struct Splitter {
    state: State,
    /// Whether a data section may still be split off.
    parallel: bool,
    unit_bytes: usize,
    /// The header: the lines before the first entry comment.
    preamble: Vec<u8>,
    in_preamble: bool,
    /// One-line `SET`s run by the first session after the header, the last of each name.
    settings: Vec<(Vec<u8>, Vec<u8>)>,
    /// Data units handed out so far.
    units: usize,
    /// The current line, held in `Pre` (while watching) and `Data`.
    line: Vec<u8>,
    /// The rest of the current (over-long) line passes straight to the sequential session.
    pass_line: bool,
    /// Pending bytes for the sequential session.
    seq: Vec<u8>,
    /// The `COPY … FROM stdin;` line of the current block, and the unit being filled.
    copy_header: Vec<u8>,
    unit: Vec<u8>,
    /// Where the current row starts in `unit`.
    row_start: usize,
}

impl Splitter {
    /// A splitter; `parallel` false passes everything to the first session.
    pub(super) fn new(parallel: bool, unit_bytes: usize) -> Self {
        Self {
            state: State::Pre,
            parallel,
            unit_bytes: unit_bytes.max(1),
            preamble: Vec::new(),
            in_preamble: true,
            settings: Vec::new(),
            units: 0,
            line: Vec::new(),
            pass_line: false,
            seq: Vec::new(),
            copy_header: Vec::new(),
            unit: Vec::new(),
            row_start: 0,
        }
    }

    /// What every session after the first starts with: the dump's header, then the last value
    /// of every setting the first session changed after it.
    pub(super) fn prelude(&self) -> Vec<u8> {
        let mut out = self.preamble.clone();
        for (_, line) in &self.settings {
            out.extend_from_slice(line);
        }
        out
    }

    /// Whether any data unit was handed out (the data loaded over several sessions).
    pub(super) fn split_data(&self) -> bool {
        self.units > 0
    }

    /// Appends the events `input` gives to `events`.
    pub(super) fn feed(&mut self, mut input: &[u8], events: &mut Vec<Event>) {
        while !input.is_empty() {
            match self.state {
                State::Post => {
                    self.seq.extend_from_slice(input);
                    input = &[];
                }
                State::Pre if !self.parallel => {
                    self.seq.extend_from_slice(input);
                    input = &[];
                }
                State::Copy => input = self.copy_rows(input, events),
                State::Pre | State::Data => {
                    let (seg, newline) = match memchr::memchr(b'\n', input) {
                        Some(i) => (&input[..=i], true),
                        None => (input, false),
                    };
                    input = &input[seg.len()..];
                    if self.pass_line {
                        self.seq.extend_from_slice(seg);
                        self.pass_line = !newline;
                        continue;
                    }
                    self.line.extend_from_slice(seg);
                    if newline {
                        self.end_line(events);
                    } else if self.line.len() > LINE_MAX {
                        self.overlong_line(events);
                    }
                }
            }
        }
        self.flush_seq(events);
    }

    /// The end of the dump: a last line without a newline, a cut-off `COPY` block.
    pub(super) fn finish(&mut self, events: &mut Vec<Event>) {
        match self.state {
            State::Copy => {
                // A dump cut off inside its rows: the unit goes as it is, as psql would have
                // run it; the dump's own checks (checksum, trailer) refuse the restore.
                Self::push_unit(&mut self.units, events, std::mem::take(&mut self.unit));
                self.state = State::Data;
            }
            State::Pre | State::Data if !self.line.is_empty() => self.end_line(events),
            _ => {}
        }
        self.flush_seq(events);
    }

    fn push_unit(units: &mut usize, events: &mut Vec<Event>, unit: Vec<u8>) {
        *units += 1;
        events.push(Event::Unit(unit));
    }

    fn flush_seq(&mut self, events: &mut Vec<Event>) {
        if !self.seq.is_empty() {
            events.push(Event::Seq(std::mem::take(&mut self.seq)));
        }
    }

    /// A line longer than anything the splitter looks for.
    fn overlong_line(&mut self, events: &mut Vec<Event>) {
        let line = std::mem::take(&mut self.line);
        match self.state {
            State::Data => self.end_data(events),
            _ => {
                if self.in_preamble {
                    self.parallel = false;
                }
            }
        }
        self.seq.extend_from_slice(&line);
        self.pass_line = true;
    }

    fn end_data(&mut self, events: &mut Vec<Event>) {
        events.push(Event::EndData);
        self.state = State::Post;
    }

    fn end_line(&mut self, events: &mut Vec<Event>) {
        let line = std::mem::take(&mut self.line);
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        match self.state {
            State::Pre => {
                if self.in_preamble {
                    if entry_type(text).is_some() {
                        self.in_preamble = false;
                        self.parallel = self.parallel && preamble_is_settings(&self.preamble);
                    } else if self.preamble.len() + line.len() > PREAMBLE_MAX {
                        self.parallel = false;
                    } else {
                        self.preamble.extend_from_slice(&line);
                    }
                }
                if !self.in_preamble
                    && self.parallel
                    && let Some(name) = setting_name(text)
                {
                    let mut kept = text.to_vec();
                    kept.push(b'\n');
                    // Kept in the order of their last change, so the replay ends in the state
                    // the first session was in (`SET ROLE` after `SET SESSION AUTHORIZATION`).
                    if let Some(i) = self.settings.iter().position(|(n, _)| *n == name) {
                        self.settings.remove(i);
                    }
                    if self.settings.len() < 64 {
                        self.settings.push((name, kept));
                    } else {
                        // More distinct settings than any pg_dump writes: keep one session.
                        self.parallel = false;
                    }
                }
                if self.parallel && !self.in_preamble && entry_type(text) == Some(b"TABLE DATA".as_slice()) {
                    self.flush_seq(events);
                    events.push(Event::BeginData);
                    self.state = State::Data;
                } else {
                    self.seq.extend_from_slice(&line);
                }
            }
            State::Data => {
                if text.is_empty() {
                    return;
                }
                if text.starts_with(b"--") {
                    match entry_type(text) {
                        Some(b"TABLE DATA" | b"SEQUENCE SET") | None => {}
                        Some(_) => {
                            self.end_data(events);
                            self.seq.extend_from_slice(&line);
                        }
                    }
                } else if text.starts_with(b"COPY ") && text.ends_with(b" FROM stdin;") {
                    self.copy_header.clear();
                    self.copy_header.extend_from_slice(text);
                    self.copy_header.push(b'\n');
                    self.unit.clear();
                    self.unit.extend_from_slice(&self.copy_header);
                    self.row_start = self.unit.len();
                    self.state = State::Copy;
                } else if is_setval(text) {
                    let mut unit = text.to_vec();
                    unit.push(b'\n');
                    Self::push_unit(&mut self.units, events, unit);
                } else {
                    self.end_data(events);
                    self.seq.extend_from_slice(&line);
                }
            }
            State::Copy | State::Post => self.seq.extend_from_slice(&line),
        }
    }

    /// Takes `COPY` rows from `input` up to the end of the block; returns what follows it.
    fn copy_rows<'a>(&mut self, mut input: &'a [u8], events: &mut Vec<Event>) -> &'a [u8] {
        while let Some(i) = memchr::memchr(b'\n', input) {
            self.unit.extend_from_slice(&input[..=i]);
            input = &input[i + 1..];
            if matches!(&self.unit[self.row_start..], b"\\.\n" | b"\\.\r\n") {
                Self::push_unit(&mut self.units, events, std::mem::take(&mut self.unit));
                self.state = State::Data;
                return input;
            }
            // A full unit goes once the next row is known (never an empty unit at the end).
            if self.row_start - self.copy_header.len() >= self.unit_bytes {
                let mut next = Vec::with_capacity(self.unit_bytes + self.unit_bytes / 4);
                next.extend_from_slice(&self.copy_header);
                next.extend_from_slice(&self.unit[self.row_start..]);
                self.unit.truncate(self.row_start);
                self.unit.extend_from_slice(b"\\.\n");
                Self::push_unit(&mut self.units, events, std::mem::replace(&mut self.unit, next));
            }
            self.row_start = self.unit.len();
        }
        self.unit.extend_from_slice(input);
        if self.unit.len() - self.row_start > ROW_MAX {
            // A row too long to hold: the rest of this block and the dump run, streamed, in the
            // last session, after the data sessions have committed what they have.
            let partial = self.unit.split_off(self.row_start);
            if self.unit.len() > self.copy_header.len() {
                self.unit.extend_from_slice(b"\\.\n");
                Self::push_unit(&mut self.units, events, std::mem::take(&mut self.unit));
            }
            self.unit = Vec::new();
            self.end_data(events);
            self.seq.extend_from_slice(&self.copy_header);
            self.seq.extend_from_slice(&partial);
        }
        &[]
    }
}

/// The type of an entry comment (`-- Name: x; Type: TABLE; …`,
/// `-- Data for Name: x; Type: TABLE DATA; …`).
fn entry_type(line: &[u8]) -> Option<&[u8]> {
    if !(line.starts_with(b"-- Name: ") || line.starts_with(b"-- Data for Name: ")) {
        return None;
    }
    let at = memchr::memmem::find(line, b"; Type: ")? + b"; Type: ".len();
    let rest = &line[at..];
    Some(&rest[..memchr::memchr(b';', rest)?])
}

/// Whether a header holds only comments, blank lines and one-line `SET`s and `set_config`
/// calls, so that it can run again at the start of every session.
fn preamble_is_settings(preamble: &[u8]) -> bool {
    preamble.split(|b| *b == b'\n').all(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.is_empty()
            || line.starts_with(b"--")
            || ((line.starts_with(b"SET ") || line.starts_with(b"SELECT pg_catalog.set_config("))
                && line.ends_with(b";")
                && memchr::memchr(b';', line) == Some(line.len() - 1))
    })
}

/// The name a one-line `SET` sets (`SET default_tablespace = '';` -> `default_tablespace`,
/// `SET SESSION AUTHORIZATION 'x';` -> `SESSION AUTHORIZATION`); `set_config` calls are keyed
/// by their whole first argument. None for anything else.
fn setting_name(line: &[u8]) -> Option<Vec<u8>> {
    if !(line.ends_with(b";") && memchr::memchr(b';', line) == Some(line.len() - 1)) {
        return None;
    }
    let name = if let Some(rest) = line.strip_prefix(b"SELECT pg_catalog.set_config(") {
        // `set_config('search_path', …)` sets the same thing as `SET search_path …`.
        let end = memchr::memchr(b',', rest)?;
        let quoted = &rest[..end];
        quoted.strip_prefix(b"'").and_then(|q| q.strip_suffix(b"'")).unwrap_or(quoted)
    } else {
        let rest = line.strip_prefix(b"SET ")?;
        if rest.starts_with(b"SESSION AUTHORIZATION") {
            &rest[..b"SESSION AUTHORIZATION".len()]
        } else {
            &rest[..rest.iter().position(|b| *b == b' ' || *b == b'=')?]
        }
    };
    // Setting names are case-insensitive.
    Some(name.to_ascii_lowercase())
}

/// `SELECT pg_catalog.setval('name', 42, true);`: one literal (quotes doubled inside), a
/// number and a boolean, nothing else.
fn is_setval(line: &[u8]) -> bool {
    let Some(mut rest) = line.strip_prefix(b"SELECT pg_catalog.setval('") else { return false };
    loop {
        let Some(q) = memchr::memchr(b'\'', rest) else { return false };
        if rest.get(q + 1) == Some(&b'\'') {
            rest = &rest[q + 2..];
        } else {
            rest = &rest[q + 1..];
            break;
        }
    }
    let Some(rest) = rest.strip_prefix(b", ") else { return false };
    let digits = rest.strip_prefix(b"-").unwrap_or(rest);
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return false;
    }
    matches!(&digits[n..], b", true);" | b", false);")
}

/// One psql session fed through its stdin. Dropped before [`Session::finish`], psql is
/// killed before its stdin closes, so it never commits.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: tokio::task::JoinHandle<String>,
    name: String,
}

impl Session {
    /// Starts `cmd` and writes `\restrict KEY` with a fresh key, then `prelude`.
    async fn start(mut cmd: Command, name: &str, prelude: &[u8]) -> Result<Self> {
        let key = restrict::new_key()?;
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::from(e).context(format!("start {name}")))?;
        let stdin = child.stdin.take().ok_or_else(|| Error::internal("restore client has no stdin"))?;
        let stderr = super::client::drain_stderr(child.stderr.take());
        let mut s = Self { child, stdin: Some(stdin), stderr, name: name.to_owned() };
        let mut head = format!("\\restrict {key}\n").into_bytes();
        head.extend_from_slice(prelude);
        s.write(&head).await?;
        Ok(s)
    }

    /// Writes to psql; when psql has stopped (an error ended it), its own error.
    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(stdin) = self.stdin.as_mut() else { return Err(Error::internal("restore session already closed")) };
        match stdin.write_all(bytes).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let fed = Error::from(e).context(format!("feeding the dump to {}", self.name));
                Err(match self.finish_ref().await {
                    Err(psql) => psql,
                    Ok(()) => fed,
                })
            }
        }
    }

    /// Closes stdin (psql commits) and waits for psql.
    async fn finish(mut self) -> Result<()> {
        self.finish_ref().await
    }

    async fn finish_ref(&mut self) -> Result<()> {
        drop(self.stdin.take());
        super::client::wait_client(&mut self.child, &mut self.stderr, &self.name).await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.start_kill();
        }
    }
}

/// The data sessions, each taking the next unit when it is free.
struct Pool {
    tx: mpsc::Sender<Vec<u8>>,
    workers: tokio::task::JoinSet<Result<()>>,
    failed: CancellationToken,
}

impl Pool {
    async fn start(jobs: usize, command: &(dyn Fn() -> Command + Sync), name: &str, preamble: &[u8]) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(jobs * 2);
        let rx = Arc::new(Mutex::new(rx));
        let failed = CancellationToken::new();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..jobs {
            let session = match Session::start(command(), name, preamble).await {
                Ok(s) => s,
                Err(e) => {
                    failed.cancel();
                    workers.shutdown().await;
                    return Err(e);
                }
            };
            workers.spawn(load(session, Arc::clone(&rx), failed.clone()));
        }
        Ok(Self { tx, workers, failed })
    }

    /// Hands a unit to the next free session.
    async fn send(&mut self, unit: Vec<u8>) -> Result<()> {
        tokio::select! {
            biased;
            () = self.failed.cancelled() => {}
            sent = self.tx.send(unit) => if sent.is_ok() { return Ok(()) },
        }
        Err(self.first_error().await)
    }

    /// Waits for every session to commit; the first failure otherwise.
    async fn finish(self) -> Result<()> {
        let Self { tx, mut workers, failed } = self;
        drop(tx);
        join_all(&mut workers, &failed).await.map_or(Ok(()), Err)
    }

    /// Stops every session (none commits) and returns the first failure.
    async fn first_error(&mut self) -> Error {
        self.failed.cancel();
        join_all(&mut self.workers, &self.failed)
            .await
            .unwrap_or_else(|| Error::internal("the restore sessions stopped"))
    }

    /// Stops every session without committing.
    async fn abort(mut self) {
        self.failed.cancel();
        join_all(&mut self.workers, &self.failed).await;
    }
}

/// Waits for every session, stopping the others at the first failure; returns that failure.
async fn join_all(workers: &mut tokio::task::JoinSet<Result<()>>, failed: &CancellationToken) -> Option<Error> {
    let mut first = None;
    while let Some(done) = workers.join_next().await {
        if let Err(e) = done.unwrap_or_else(|e| Err(Error::internal(format!("restore session task: {e}")))) {
            failed.cancel();
            first.get_or_insert(e);
        }
    }
    first
}

/// One data session: takes units until there are none, then commits. When another session
/// fails it stops without committing (the process is killed).
async fn load(mut session: Session, rx: Arc<Mutex<mpsc::Receiver<Vec<u8>>>>, failed: CancellationToken) -> Result<()> {
    loop {
        let unit = tokio::select! {
            biased;
            () = failed.cancelled() => {
                let _ = session.child.start_kill();
                let _ = session.child.wait().await;
                return Ok(());
            }
            unit = async { rx.lock().await.recv().await } => unit,
        };
        let Some(unit) = unit else { break };
        if let Err(e) = session.write(&unit).await {
            failed.cancel();
            return Err(e);
        }
    }
    let done = session.finish().await;
    if done.is_err() {
        failed.cancel();
    }
    done
}

/// Restores a plain dump into the database `command` connects to, over `jobs` data sessions
/// (1: the whole dump in one session). Returns the dump's bytes read and the sessions that
/// loaded the table data (1 when it all ran in one session).
pub(super) async fn restore(
    mut input: ByteReader,
    command: &(dyn Fn() -> Command + Sync),
    name: &str,
    jobs: usize,
) -> Result<(u64, usize)> {
    let mut filter = restrict::RestrictFilter::default();
    let mut split = Splitter::new(jobs > 1, UNIT_BYTES);
    let mut seq = Some(Session::start(command(), name, b"").await?);
    let mut pool: Option<Pool> = None;
    let mut buf = vec![0u8; READ_BUF];
    let mut out = Vec::with_capacity(READ_BUF + 1024);
    let mut events = Vec::new();
    let mut total = 0u64;
    let outcome: Result<()> = async {
        loop {
            let n = input
                .read(&mut buf)
                .await
                .map_err(|e| Error::from(e).context(format!("feeding the dump to {name}")))?;
            total += n as u64;
            out.clear();
            if n == 0 {
                filter.finish(&mut out);
                split.feed(&out, &mut events);
                split.finish(&mut events);
            } else {
                filter.feed(&buf[..n], &mut out);
                split.feed(&out, &mut events);
            }
            for event in events.drain(..) {
                match event {
                    Event::Seq(bytes) => {
                        if seq.is_none() {
                            seq = Some(Session::start(command(), name, &split.prelude()).await?);
                        }
                        if let Some(s) = seq.as_mut() {
                            s.write(&bytes).await?;
                        }
                    }
                    Event::BeginData => {
                        if let Some(s) = seq.take() {
                            s.finish().await?;
                        }
                        pool = Some(Pool::start(jobs, command, name, &split.prelude()).await?);
                    }
                    Event::Unit(unit) => match pool.as_mut() {
                        Some(p) => p.send(unit).await?,
                        None => return Err(Error::internal("a data unit outside the data section")),
                    },
                    Event::EndData => {
                        if let Some(p) = pool.take() {
                            p.finish().await?;
                        }
                    }
                }
            }
            if n == 0 {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = outcome {
        // Nothing commits after a failure: the sessions still open are killed.
        if let Some(p) = pool.take() {
            p.abort().await;
        }
        drop(seq);
        return Err(e);
    }
    if let Some(p) = pool.take() {
        p.finish().await?;
    }
    if let Some(s) = seq.take() {
        s.finish().await?;
    }
    Ok((total, if split.split_data() { jobs } else { 1 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 17.6\n\n\
SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', false);\n\n\
--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\n\
CREATE TABLE public.t (\n    id integer,\n    note text\n);\n\n\
CREATE FUNCTION public.f() RETURNS text AS $$\n\\.\nCOPY x FROM stdin;\n$$ LANGUAGE sql;\n\n\
--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n\
COPY public.t (id, note) FROM stdin;\n1\tone\n2\t\\\\.\n3\t\\.x\n4\tfour\n5\tfive\n\\.\n\n\n\
--\n-- Data for Name: u; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n\
COPY public.u (id) FROM stdin;\n\\.\n\n\
--\n-- Name: t_id_seq; Type: SEQUENCE SET; Schema: public; Owner: app\n--\n\n\
SELECT pg_catalog.setval('public.t_id_seq', 5, true);\n\n\n\
--\n-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: app\n--\n\n\
ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n\n--\n-- PostgreSQL database dump complete\n--\n";

    fn split(dump: &[u8], chunk: usize, parallel: bool, unit: usize) -> (Vec<Event>, Vec<u8>) {
        let mut s = Splitter::new(parallel, unit);
        let mut events = Vec::new();
        for c in dump.chunks(chunk.max(1)) {
            s.feed(c, &mut events);
        }
        s.finish(&mut events);
        // Adjacent Seq events are one stream: join them so every chunk size compares equal.
        let mut joined: Vec<Event> = Vec::new();
        for e in events {
            match (joined.last_mut(), e) {
                (Some(Event::Seq(a)), Event::Seq(b)) => a.extend_from_slice(&b),
                (_, e) => joined.push(e),
            }
        }
        (joined, s.prelude())
    }

    fn text(e: &Event) -> String {
        match e {
            Event::Seq(b) => format!("seq:{}", String::from_utf8_lossy(b)),
            Event::Unit(b) => format!("unit:{}", String::from_utf8_lossy(b)),
            Event::BeginData => "begin".to_owned(),
            Event::EndData => "end".to_owned(),
        }
    }

    #[test]
    fn a_pg_dump_splits_into_pre_data_units_and_post_data() {
        let (events, preamble) = split(DUMP.as_bytes(), 1 << 20, true, 1 << 20);
        let got: Vec<String> = events.iter().map(text).collect();
        let pre_end = DUMP.find("-- Data for Name: t;").unwrap();
        let post = DUMP.find("-- Name: t t_pkey").unwrap();
        assert_eq!(got[0], format!("seq:{}", &DUMP[..pre_end]), "pre-data, up to the first data entry");
        assert_eq!(got[1], "begin");
        assert_eq!(
            got[2],
            "unit:COPY public.t (id, note) FROM stdin;\n1\tone\n2\t\\\\.\n3\t\\.x\n4\tfour\n5\tfive\n\\.\n"
        );
        assert_eq!(got[3], "unit:COPY public.u (id) FROM stdin;\n\\.\n");
        assert_eq!(got[4], "unit:SELECT pg_catalog.setval('public.t_id_seq', 5, true);\n");
        assert_eq!(got[5], "end");
        assert_eq!(got[6], format!("seq:{}", &DUMP[post..]), "post-data runs in order");
        assert_eq!(got.len(), 7);
        assert!(String::from_utf8_lossy(&preamble).ends_with("false);\n\n--\n"), "{preamble:?}");
        assert!(preamble_is_settings(&preamble));
        // The function body's `\.` and `COPY` lines are pre-data text, never rows.
        assert!(got[0].contains("$$\n\\.\nCOPY x FROM stdin;\n$$"));
    }

    #[test]
    fn any_chunk_size_gives_the_same_events() {
        let (whole, _) = split(DUMP.as_bytes(), DUMP.len(), true, 16);
        for chunk in 1..64 {
            assert_eq!(split(DUMP.as_bytes(), chunk, true, 16).0, whole, "chunk size {chunk}");
        }
    }

    #[test]
    fn copy_blocks_are_cut_at_rows_into_complete_statements() {
        let (events, _) = split(DUMP.as_bytes(), 7, true, 16);
        let units: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Event::Unit(b) if b.starts_with(b"COPY public.t ") => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect();
        assert!(units.len() > 1, "{units:?}");
        let mut rows = String::new();
        for u in &units {
            let body = u.strip_prefix("COPY public.t (id, note) FROM stdin;\n").unwrap();
            let body = body.strip_suffix("\\.\n").unwrap();
            assert!(!body.is_empty() && body.ends_with('\n'), "whole rows only: {u:?}");
            rows.push_str(body);
        }
        assert_eq!(rows, "1\tone\n2\t\\\\.\n3\t\\.x\n4\tfour\n5\tfive\n");
    }

    #[test]
    fn one_session_when_not_parallel_or_the_header_is_not_settings() {
        let (events, _) = split(DUMP.as_bytes(), 5, false, 16);
        assert_eq!(events, vec![Event::Seq(DUMP.as_bytes().to_vec())]);
        let handmade = DUMP.replace("SET client_encoding = 'UTF8';\n", "CREATE TABLE x (a int);\n");
        let (events, _) = split(handmade.as_bytes(), 5, true, 16);
        assert_eq!(events, vec![Event::Seq(handmade.into_bytes())]);
        let no_entries = "SET a = 1;\nCREATE TABLE t (a int);\nCOPY t (a) FROM stdin;\n1\n\\.\n";
        assert_eq!(split(no_entries.as_bytes(), 3, true, 16).0, vec![Event::Seq(no_entries.as_bytes().to_vec())]);
    }

    #[test]
    fn anything_unknown_in_the_data_section_ends_it_there() {
        let odd =
            DUMP.replace("COPY public.u (id) FROM stdin;\n\\.\n", "SELECT 1/0;\nCOPY public.u (id) FROM stdin;\n\\.\n");
        let (events, _) = split(odd.as_bytes(), 9, true, 1 << 20);
        let got: Vec<String> = events.iter().map(text).collect();
        assert_eq!(got[1], "begin");
        assert!(got[2].starts_with("unit:COPY public.t "));
        assert_eq!(got[3], "end");
        let rest = &odd[odd.find("SELECT 1/0;").unwrap()..];
        assert_eq!(got[4], format!("seq:{rest}"), "the rest, in order, in one session");
        assert_eq!(got.len(), 5);
        // A COPY in another format, an INSERT, or a setval with more in it are not data units.
        for line in [
            "COPY public.u (id) FROM stdin WITH (FORMAT csv);",
            "INSERT INTO public.u VALUES (1);",
            "SELECT pg_catalog.setval('a', 1, true); SELECT 2;",
        ] {
            let odd = DUMP.replace("COPY public.u (id) FROM stdin;\n\\.\n", &format!("{line}\n"));
            let (events, _) = split(odd.as_bytes(), 4096, true, 1 << 20);
            assert_eq!(events.iter().filter(|e| **e == Event::EndData).count(), 1, "{line}");
            assert!(text(&events[events.len() - 1]).starts_with(&format!("seq:{line}\n")), "{line}");
        }
    }

    #[test]
    fn a_cut_off_dump_passes_what_it_has() {
        let cut = &DUMP[..DUMP.find("4\tfour").unwrap()];
        let (events, _) = split(cut.as_bytes(), 11, true, 1 << 20);
        assert_eq!(
            text(events.last().unwrap()),
            "unit:COPY public.t (id, note) FROM stdin;\n1\tone\n2\t\\\\.\n3\t\\.x\n"
        );
        assert!(!events.contains(&Event::EndData));
    }

    #[test]
    fn later_sessions_start_with_the_settings_the_first_one_changed_last() {
        let dump = DUMP
            .replace(
                "CREATE TABLE public.t (",
                "SET default_tablespace = fast;\nSET SESSION AUTHORIZATION 'app';\nCREATE TABLE public.t (",
            )
            .replace("CREATE FUNCTION", "SET default_tablespace = '';\nCREATE FUNCTION");
        let mut s = Splitter::new(true, 1 << 20);
        let mut events = Vec::new();
        s.feed(dump.as_bytes(), &mut events);
        s.finish(&mut events);
        let prelude = String::from_utf8(s.prelude()).unwrap();
        // In the order of their last change: the tablespace changed after the authorization.
        assert!(prelude.ends_with("--\nSET SESSION AUTHORIZATION 'app';\nSET default_tablespace = '';\n"), "{prelude}");
        assert!(s.split_data());
        assert_eq!(setting_name(b"SET search_path = public, pg_catalog;"), Some(b"search_path".to_vec()));
        assert_eq!(setting_name(b"SET Search_Path TO public;"), Some(b"search_path".to_vec()));
        assert_eq!(
            setting_name(b"SELECT pg_catalog.set_config('search_path', '', false);"),
            Some(b"search_path".to_vec())
        );
        assert_eq!(setting_name(b"SET a = 1; DROP TABLE t;"), None);
    }

    #[test]
    fn a_crlf_end_of_rows_ends_the_block() {
        let dump = DUMP.replace("5\tfive\n\\.\n", "5\tfive\n\\.\r\n");
        let (events, _) = split(dump.as_bytes(), 3, true, 1 << 20);
        assert_eq!(
            text(&events[2]),
            "unit:COPY public.t (id, note) FROM stdin;\n1\tone\n2\t\\\\.\n3\t\\.x\n4\tfour\n5\tfive\n\\.\r\n"
        );
        assert_eq!(text(&events[5]), "end", "the setval and the post-data still follow: {events:?}");
    }

    #[test]
    fn a_row_longer_than_a_unit_may_hold_streams_to_the_last_session() {
        let long = "x".repeat(ROW_MAX + 10_000);
        let dump = DUMP.replace("4\tfour\n", &format!("4\t{long}\n"));
        let (events, _) = split(dump.as_bytes(), 4096, true, 1 << 20);
        let got: Vec<String> = events.iter().map(text).collect();
        assert_eq!(got[1], "begin");
        assert_eq!(got[2], "unit:COPY public.t (id, note) FROM stdin;\n1\tone\n2\t\\\\.\n3\t\\.x\n\\.\n");
        assert_eq!(got[3], "end");
        let rest = &dump[dump.find("4\tx").unwrap()..];
        assert_eq!(got[4], format!("seq:COPY public.t (id, note) FROM stdin;\n{rest}"));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn setval_and_entry_comments() {
        assert!(is_setval(b"SELECT pg_catalog.setval('public.\"we''ird\"', 42, true);"));
        assert!(is_setval(b"SELECT pg_catalog.setval('s', -1, false);"));
        assert!(!is_setval(b"SELECT pg_catalog.setval('s', 1, true);;"));
        assert!(!is_setval(b"SELECT pg_catalog.setval('s', x, true);"));
        assert!(!is_setval(b"SELECT pg_catalog.setval('s'); DROP TABLE t; --', 1, true);"));
        assert_eq!(
            entry_type(b"-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: a"),
            Some(&b"TABLE DATA"[..])
        );
        assert_eq!(entry_type(b"-- Name: t; Type: TABLE; Schema: public; Owner: a"), Some(&b"TABLE"[..]));
        assert_eq!(entry_type(b"-- Dumped from database version 17.6"), None);
        assert!(!preamble_is_settings(b"SET a = 1; DROP TABLE t;\n"));
    }
}
