//! Database contract against a real PostgreSQL 15, and the client programs on the host.

use std::time::Duration;

use ops_core::adapters::docker::DockerRuntime;
use ops_core::adapters::postgres::{PostgresDatabase, PostgresOptions, find_client};
use ops_core::ports::{
    BackendCheck, BackendSignal, ContainerRuntime, Database, DumpFormat, DumpOptions, ExecSpec, Readiness,
    SignalOutcome,
};
use ops_core::{ErrorKind, SecretUrl};
use tokio::io::AsyncReadExt;

use crate::harness::{Postgres, postgres, require_docker};

fn db(url: String) -> PostgresDatabase {
    let mut opts = PostgresOptions::new(SecretUrl::new(url));
    opts.timeout = Duration::from_secs(5);
    PostgresDatabase::new(opts).unwrap()
}

/// Runs SQL inside the container as the local superuser (trust over the socket).
async fn psql(rt: &DockerRuntime, pg: &Postgres, database: &str, sql: &str) -> String {
    let out = rt
        .exec(
            pg.id(),
            &ExecSpec {
                cmd: ["psql", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-XAtc", sql]
                    .map(str::to_owned)
                    .to_vec(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "psql failed: {}", out.stderr);
    out.stdout
}

const SCHEMA: &str = "CREATE TABLE trades (id serial PRIMARY KEY, amount numeric NOT NULL);
 CREATE TABLE events (id serial PRIMARY KEY, ledger_sequence bigint);
 CREATE SCHEMA audit; CREATE TABLE audit.log (id int);
 INSERT INTO trades (amount) SELECT g FROM generate_series(1, 100) g;
 INSERT INTO events (ledger_sequence) SELECT g FROM generate_series(1, 250) g;
 INSERT INTO audit.log SELECT g FROM generate_series(1, 7) g;
 ANALYZE;";

async fn read_all(mut r: ops_core::ports::ByteReader) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).await.unwrap();
    v
}

#[tokio::test]
async fn postgres_database_contract() {
    let rt = require_docker().await;
    let pg = postgres(&[]).await;
    psql(&rt, &pg, "app", SCHEMA).await;
    let app = db(pg.url("postgres", "postgres", "app"));
    assert_eq!(app.name(), "app");

    assert_eq!(app.readiness().await, Readiness::Accepting);
    let v = app.server_version().await.unwrap();
    assert_eq!(v.major, 15, "{v:?}");
    assert!(v.full.starts_with("15."));

    let client = app.client().await.unwrap();
    assert_eq!(client.major, 15);
    assert!(client.version.contains("15."), "{client:?}");

    let tables = app.tables(&["trades".to_owned(), "audit.log".to_owned()]).await.unwrap();
    let names: Vec<String> = tables.iter().map(|t| t.qualified_name()).collect();
    assert_eq!(names, ["audit.log", "public.events", "public.trades"]);
    let trades = tables.iter().find(|t| t.name == "trades").unwrap();
    assert_eq!(trades.exact_rows, Some(100));
    assert_eq!(trades.estimated_rows, Some(100), "analyzed estimate");
    assert!(trades.size_bytes > 0);
    assert_eq!(tables.iter().find(|t| t.name == "events").unwrap().exact_rows, None, "only key tables are counted");
    assert_eq!(tables.iter().find(|t| t.name == "log").unwrap().exact_rows, Some(7));
    let all = app.tables(&["*".to_owned()]).await.unwrap();
    assert!(all.iter().all(|t| t.exact_rows.is_some()));
    let missing = app.tables(&["nope".to_owned()]).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    psql(&rt, &pg, "app", "CREATE EXTENSION pg_stat_statements").await;
    let ext = app.extensions().await.unwrap();
    assert!(ext.contains(&"plpgsql".to_owned()) && ext.contains(&"pg_stat_statements".to_owned()), "{ext:?}");

    let conns = app.connections().await.unwrap();
    assert_eq!(conns.max_connections, 100);
    assert!(conns.total >= 1 && conns.total == conns.by_state.values().sum::<u32>(), "{conns:?}");

    // Admin operations.
    assert!(!app.database_exists("scratch").await.unwrap());
    app.create_database("scratch").await.unwrap();
    assert_eq!(app.create_database("scratch").await.unwrap_err().kind(), ErrorKind::Conflict);
    let scratch = db(pg.url("postgres", "postgres", "scratch"));
    scratch.server_version().await.unwrap(); // holds a connection to scratch
    assert_eq!(app.rename_database("scratch", "scratch2").await.unwrap_err().kind(), ErrorKind::Conflict, "in use");
    assert!(app.terminate_connections("scratch").await.unwrap() >= 1);
    app.rename_database("scratch", "scratch2").await.unwrap();
    assert!(app.database_exists("scratch2").await.unwrap());
    app.drop_database("scratch2").await.unwrap();
    assert_eq!(app.drop_database("scratch2").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(app.create_database("bad name; drop").await.unwrap_err().kind(), ErrorKind::InvalidInput);
    let gone = app.signal_backend(999_999, BackendSignal::Terminate, &BackendCheck::default()).await.unwrap();
    assert_eq!(gone, SignalOutcome::Gone, "no such backend: nothing signalled");

    // Plain dump, streamed, restored into a new database.
    let dump = app.dump(&DumpOptions::default()).await.unwrap();
    let client = dump.client.clone();
    let bytes = read_all(dump.reader.into_async()).await;
    (dump.completion).await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("PostgreSQL database dump complete"), "plain dump trailer");
    assert!(!text.contains("postgres:postgres"), "no credentials in the dump");
    assert_eq!(client.major, 15);
    app.create_database("restored").await.unwrap();
    let outcome =
        app.restore("restored", DumpFormat::Plain, Box::pin(std::io::Cursor::new(bytes.clone()))).await.unwrap();
    assert_eq!(outcome.bytes, bytes.len() as u64);
    let restored = db(pg.url("postgres", "postgres", "restored"));
    let counts = restored.tables(&["*".to_owned()]).await.unwrap();
    let exact: Vec<(String, Option<u64>)> = counts.iter().map(|t| (t.qualified_name(), t.exact_rows)).collect();
    assert_eq!(
        exact,
        [("audit.log".into(), Some(7)), ("public.events".into(), Some(250)), ("public.trades".into(), Some(100))]
    );

    // Custom-format dump and pg_restore.
    let dump = app.dump(&DumpOptions { format: DumpFormat::Custom, ..Default::default() }).await.unwrap();
    let bytes = read_all(dump.reader.into_async()).await;
    (dump.completion).await.unwrap();
    assert!(bytes.starts_with(b"PGDMP"), "custom archive header");
    app.create_database("restored_custom").await.unwrap();
    app.restore("restored_custom", DumpFormat::Custom, Box::pin(std::io::Cursor::new(bytes))).await.unwrap();
    let rc = db(pg.url("postgres", "postgres", "restored_custom"));
    assert_eq!(
        rc.tables(&["trades".to_owned()]).await.unwrap().iter().find(|t| t.name == "trades").unwrap().exact_rows,
        Some(100)
    );

    // A failing restore stops at the first error and leaves the target as it was.
    app.create_database("target").await.unwrap();
    let bad = b"CREATE TABLE kept_out (id int);\nTHIS IS NOT SQL;\n".to_vec();
    let e = app.restore("target", DumpFormat::Plain, Box::pin(std::io::Cursor::new(bad))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.message().contains("syntax error"), "{e}");
    let target = db(pg.url("postgres", "postgres", "target"));
    assert!(target.tables(&[]).await.unwrap().is_empty(), "single transaction: nothing applied");
}

#[tokio::test]
async fn postgres_failed_dump_is_an_error_even_after_output() {
    let rt = require_docker().await;
    let pg = postgres(&[]).await;
    psql(
        &rt,
        &pg,
        "app",
        "CREATE TABLE public_data (id int); INSERT INTO public_data VALUES (1);
         CREATE TABLE secret_data (id int);
         CREATE ROLE limited LOGIN PASSWORD 'limitedpw';
         GRANT SELECT ON public_data TO limited;",
    )
    .await;
    let limited = db(pg.url("limited", "limitedpw", "app"));
    let dump = limited.dump(&DumpOptions::default()).await.unwrap();
    let bytes = read_all(dump.reader.into_async()).await;
    let e = (dump.completion).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity);
    assert!(e.message().contains("permission denied"), "{e}");
    assert!(!e.message().contains("limitedpw"), "no password in errors: {e}");
    assert!(!String::from_utf8_lossy(&bytes).contains("dump complete"), "no trailer on a failed dump");
}

#[tokio::test]
async fn postgres_readiness_is_distinguished_like_pg_isready() {
    let rt = require_docker().await;
    let pg = postgres(&["-c", "max_connections=3", "-c", "superuser_reserved_connections=0"]).await;
    psql(&rt, &pg, "app", "SELECT 1").await;

    // Wrong password: the server answered, so it is accepting (pg_isready says the same).
    let wrong = db(pg.url("postgres", "wrong", "app"));
    assert_eq!(wrong.readiness().await, Readiness::Accepting);
    let e = wrong.server_version().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.message().contains("wrong"), "{e}");

    // All slots taken: rejecting.
    let app = db(pg.url("postgres", "postgres", "app"));
    let mut held = Vec::new();
    for i in 0..3 {
        let c = db(pg.url("postgres", "postgres", "app"));
        c.server_version().await.unwrap_or_else(|e| panic!("connection {i}: {e}"));
        held.push(c);
    }
    match app.readiness().await {
        Readiness::Rejecting { reason } => assert!(reason.contains("too many"), "{reason}"),
        other => panic!("expected rejecting, got {other:?}"),
    }
    drop(held);

    // Nothing listening: no response.
    let port = pg.port;
    drop(pg);
    let gone = db(format!("postgres://postgres:postgres@127.0.0.1:{port}/app"));
    assert!(matches!(gone.readiness().await, Readiness::NoResponse { .. }));
    assert_eq!(gone.server_version().await.unwrap_err().kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn postgres_client_of_another_major_is_a_clear_error() {
    let e = find_client(99, &[]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("PostgreSQL 99") && e.message().contains("postgresql-client-99"), "{e}");
    assert!(e.message().contains("15 at"), "names what was found: {e}");
}

/// [`fingerprint`](crate::backup::fingerprint) (rows and content of every table), every
/// sequence's value, and the post-data objects (constraints, indexes, triggers).
async fn contents(rt: &DockerRuntime, pg: &Postgres, database: &str) -> String {
    let mut out = crate::backup::fingerprint(rt, pg, database).await.join("\n");
    out.push_str(
        &psql(
            rt,
            pg,
            database,
            "SELECT (SELECT string_agg(sequencename || '=' || coalesce(last_value::text, '-'), ',' ORDER BY sequencename) FROM pg_sequences),
                    (SELECT string_agg(conname || ':' || contype::text, ',' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
                    (SELECT string_agg(indexname || '@' || coalesce(tablespace, '-'), ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'),
                    (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal)",
        )
        .await,
    );
    out
}

#[tokio::test]
async fn postgres_plain_restore_loads_the_data_over_parallel_sessions_with_the_same_result() {
    let rt = require_docker().await;
    let pg = postgres(&[]).await;
    // Everything in a tablespace of its own: pg_dump sets `default_tablespace` once, after its
    // header, and every later session must start with it for the indexes to land there too.
    for cmd in [
        vec!["mkdir", "-p", "/var/lib/postgresql/fast"],
        vec!["chown", "postgres:postgres", "/var/lib/postgresql/fast"],
    ] {
        let spec = ExecSpec {
            cmd: cmd.into_iter().map(str::to_owned).collect(),
            user: Some("root".into()),
            ..Default::default()
        };
        assert_eq!(rt.exec(pg.id(), &spec).await.unwrap().exit_code, 0);
    }
    psql(&rt, &pg, "app", "CREATE TABLESPACE fast LOCATION '/var/lib/postgresql/fast'").await;
    // Constraints, an index and a trigger that pg_dump puts after the data; a table of several
    // units of rows; sequences; an empty table; a function whose body holds `\.` and COPY lines.
    psql(
        &rt,
        &pg,
        "app",
        "SET default_tablespace = fast;
         CREATE TABLE parent (id serial PRIMARY KEY, name text UNIQUE);
         CREATE TABLE child (id bigserial PRIMARY KEY, parent_id int NOT NULL REFERENCES parent (id),
           note text CHECK (length(note) > 0), tags text[]);
         CREATE INDEX child_parent ON child (parent_id);
         CREATE TABLE empty_table (id int);
         CREATE SEQUENCE standalone_seq START 42; SELECT nextval('standalone_seq');
         CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           -- a body with lines a COPY block would end on:
           RAISE NOTICE '%', E'\\\\.\\nCOPY x FROM stdin;';
           NEW.note := NEW.note || '!';
           RETURN NEW;
         END $$;
         CREATE TRIGGER child_stamp BEFORE INSERT ON child FOR EACH ROW EXECUTE FUNCTION stamp();
         INSERT INTO parent (name) SELECT 'p' || g FROM generate_series(1, 300) g;
         INSERT INTO child (parent_id, note, tags)
           SELECT 1 + g % 300, repeat(md5(g::text), 3) || E'\\ttab\\nline\\\\.', ARRAY['a' || g, 'b,c']
           FROM generate_series(1, 40000) g;
         CREATE VIEW busy AS SELECT parent_id, count(*) FROM child GROUP BY 1;",
    )
    .await;
    let app = db(pg.url("postgres", "postgres", "app"));
    let dump = app.dump(&DumpOptions::default()).await.unwrap();
    let bytes = read_all(dump.reader.into_async()).await;
    (dump.completion).await.unwrap();
    assert!(bytes.len() > 4 * 1024 * 1024, "several units of rows: {} bytes", bytes.len());
    let want = contents(&rt, &pg, "app").await;
    assert!(want.contains("child_parent@fast"), "{want}");

    // The default: the schema in one session, the rows over two, the rest in a last one.
    app.create_database("par").await.unwrap();
    let par = app.restore("par", DumpFormat::Plain, Box::pin(std::io::Cursor::new(bytes.clone()))).await.unwrap();
    assert_eq!(par.data_sessions, 2, "{par:?}");
    assert_eq!(par.bytes, bytes.len() as u64);
    assert_eq!(contents(&rt, &pg, "par").await, want);

    // One session: the same database.
    let mut opts = PostgresOptions::new(SecretUrl::new(pg.url("postgres", "postgres", "app")));
    opts.restore_jobs = 1;
    let one = PostgresDatabase::new(opts).unwrap();
    one.create_database("seq").await.unwrap();
    let seq = one.restore("seq", DumpFormat::Plain, Box::pin(std::io::Cursor::new(bytes.clone()))).await.unwrap();
    assert_eq!(seq.data_sessions, 1);
    assert_eq!(contents(&rt, &pg, "seq").await, want);

    // A bad row in the middle of the big table fails the restore with the server's error;
    // the other data session is stopped, and the post-data never runs.
    let text = String::from_utf8(bytes).unwrap();
    let at = text.find("COPY public.child").unwrap();
    let row = at + text[at..].find('\n').unwrap() + 1 + 2 * 1024 * 1024;
    let row = row + text[row..].find('\n').unwrap() + 1;
    let broken = format!("{}not-a-number\tx\n{}", &text[..row], &text[row..]);
    app.create_database("broken").await.unwrap();
    let e = app
        .restore("broken", DumpFormat::Plain, Box::pin(std::io::Cursor::new(broken.into_bytes())))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.message().contains("invalid input syntax for type bigint"), "{e}");
    assert_eq!(
        psql(&rt, &pg, "broken", "SELECT count(*) FROM pg_indexes WHERE indexname = 'child_parent'").await.trim(),
        "0"
    );
}
