//! The throwaway PostgreSQL and S3 containers.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn docker() -> Command {
    Command::new("docker")
}

pub(super) use crate::bench::host_port;

/// The PostgreSQL container, reached with the host's client programs.
pub(super) struct Pg {
    pub(super) port: u16,
}

impl Pg {
    /// `program -h 127.0.0.1 -p PORT -U postgres -d DB`, password in the child's environment.
    pub(super) fn cmd(&self, program: &str, db: &str) -> Command {
        let mut c = Command::new(program);
        for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGPASSFILE", "PGOPTIONS"] {
            c.env_remove(var);
        }
        c.env("PGPASSWORD", PG_PASSWORD);
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", db]);
        c
    }

    pub(super) fn pg_dump(&self) -> Command {
        self.cmd("pg_dump", PG_DB)
    }

    pub(super) fn psql(&self, db: &str) -> Command {
        let mut c = self.cmd("psql", db);
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
        c
    }

    pub(super) fn query(&self, db: &str, sql: &str) -> Result<String> {
        Ok(cmd::capture(self.psql(db).args(["-At", "-c", sql]))?.trim().to_owned())
    }

    pub(super) fn url(&self, db: &str) -> String {
        format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }
}

/// `docker run -d --rm` with this run's label; the guard removes the container whatever happens.
pub(super) fn run_labelled(guard: &mut Guard, args: &[&str]) -> Result<String> {
    let id = crate::bench::docker_run(args)?;
    guard.containers.push(id.clone());
    Ok(id)
}

pub(super) fn start_postgres(guard: &mut Guard) -> Result<((Pg, String), String)> {
    let args = crate::bench::postgres_args(&["--shm-size=512m"], &["shared_buffers=256MB", "max_wal_size=4GB"]);
    let id = run_labelled(guard, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let pg = Pg { port: host_port(&id, "5432/tcp")? };
    let ready = cmd::wait_until(Duration::from_secs(90), Duration::from_millis(250), || {
        cmd::succeeds(pg.cmd("pg_isready", PG_DB).args(["-t", "2"])) && pg.query(PG_DB, "SELECT 1").is_ok()
    });
    if !ready {
        let logs = cmd::capture(docker().args(["logs", "--tail", "20", &id])).unwrap_or_default();
        bail!("PostgreSQL did not become ready in 90 s; last logs:\n{logs}");
    }
    let version = pg.query(PG_DB, "SHOW server_version")?;
    let note = format!("port {}, PostgreSQL {version}", pg.port);
    Ok(((pg, id), note))
}

pub(super) fn start_s3(guard: &mut Guard) -> Result<(String, u16)> {
    let id = run_labelled(
        guard,
        &[
            "-p",
            "127.0.0.1::9000",
            "-e",
            &format!("S3_ACCESS_KEY={S3_ACCESS_KEY}"),
            "-e",
            &format!("S3_SECRET_KEY={S3_SECRET_KEY}"),
            S3_IMAGE,
        ],
    )?;
    let port = host_port(&id, "9000/tcp")?;
    let ready = cmd::wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        cmd::capture(docker().args(["logs", &id])).is_ok_and(|l| l.contains("server is running at"))
    });
    if !ready {
        bail!("s3s-fs did not log \"server is running at\" in 60 s");
    }
    // s3s-fs keeps a bucket as a directory under /data.
    cmd::capture(docker().args(["exec", &id, "mkdir", "-p", &format!("/data/{BUCKET}")]))?;
    Ok((id, port))
}
