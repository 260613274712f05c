//! Running `opsctl` (and the runbook pipelines beside it) against the containers.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The environment variables opsctl would otherwise pick up from this shell.
pub(super) const OPS_ENV: &[&str] = &[
    "OPS_CONFIG",
    "DATABASE_URL",
    "S3_BUCKET",
    "RETENTION_DAYS",
    "BACKUP_ALERT_WEBHOOK",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
];

pub(super) struct Ctx {
    pub(super) opsctl: PathBuf,
    pub(super) work: PathBuf,
    /// `target/bench`: what outlives the run (log, reports, the table).
    pub(super) keep: PathBuf,
    pub(super) log: PathBuf,
    pub(super) pg: Pg,
    pub(super) pg_id: String,
    pub(super) s3_id: String,
    /// s3s-fs: `ip:port`.
    pub(super) s3_addr: String,
    pub(super) seaweed_port: u16,
    pub(super) seaweed_pid: u32,
    /// The AWS CLI (`target/bench/awscli/bin/aws`).
    pub(super) aws: PathBuf,
    pub(super) ticks_per_sec: f64,
}

impl Ctx {
    pub(super) fn snapshot(&self) -> CpuSnapshot {
        let pg = container_cpu_secs(&self.pg_id);
        // One S3 server works in a case; the other idles.
        let s3 = container_cpu_secs(&self.s3_id)
            .zip(process_cpu_secs(self.seaweed_pid, self.ticks_per_sec))
            .map(|(a, b)| a + b);
        CpuSnapshot { machine: machine_busy_secs(self.ticks_per_sec), pg, s3 }
    }

    /// Runs `f`, which times its commands and fills in the client figures, and adds the
    /// containers' and the rest of the machine's CPU time over it.
    pub(super) fn metered(&self, f: impl FnOnce() -> Result<Sample>) -> Result<Sample> {
        let before = self.snapshot();
        let mut sample = f()?;
        let machine_after = machine_busy_secs(self.ticks_per_sec);
        let after = CpuSnapshot { machine: machine_after, ..self.snapshot() };
        let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a - b).max(0.0));
        sample.pg_cpu = delta(after.pg, before.pg);
        sample.s3_cpu = delta(after.s3, before.s3);
        sample.rest_cpu = delta(after.machine, before.machine).map(|m| {
            (m - sample.client_cpu.unwrap_or(0.0) - sample.pg_cpu.unwrap_or(0.0) - sample.s3_cpu.unwrap_or(0.0))
                .max(0.0)
        });
        Ok(sample)
    }

    /// Runs `producer > out` or `producer | consumer > out`, each under /usr/bin/time.
    pub(super) fn run_timed(&self, producer: &Command, consumer: Option<&Command>, out: Stdio) -> Result<Sample> {
        let t0 = self.work.join("time-0.txt");
        let t1 = self.work.join("time-1.txt");
        let mut p = under_time(producer, &t0);
        let start = Instant::now();
        match consumer {
            None => run_into(&mut p, out, &self.log)?,
            Some(c) => pipe_into(&mut p, &mut under_time(c, &t1), out, &self.log)?,
        }
        let secs = start.elapsed().as_secs_f64();
        let mut cpu = read_usage(&t0)?.cpu_secs;
        if consumer.is_some() {
            cpu += read_usage(&t1)?.cpu_secs;
        }
        Ok(Sample { secs, client_cpu: Some(cpu), ..Sample::default() })
    }

    /// Runs `opsctl --config CONFIG --json ARGS…` under /usr/bin/time. Its JSON report is kept as
    /// `target/bench/opsctl-NAME.json` (the last run of each case) and returned.
    pub(super) fn run_opsctl(&self, name: &str, config: &Path, args: &[&str]) -> Result<(Sample, String)> {
        let usage = self.work.join("time-opsctl.txt");
        let out = self.keep.join(format!("opsctl-{name}.json"));
        let mut inner = Command::new(&self.opsctl);
        inner.arg("--config").arg(config).arg("--json").args(args);
        for var in OPS_ENV {
            inner.env_remove(var);
        }
        let mut c = under_time(&inner, &usage);
        let start = Instant::now();
        run_into(&mut c, Stdio::from(create(&out)?), &self.log)
            .with_context(|| format!("its stdout: {}", cmd::tail_file(&out, 10)))?;
        let secs = start.elapsed().as_secs_f64();
        let u = read_usage(&usage)?;
        let json = fs::read_to_string(&out).unwrap_or_default();
        let phases = json_phases(&json);
        Ok((
            Sample { secs, rss_kib: Some(u.max_rss_kib), client_cpu: Some(u.cpu_secs), phases, ..Sample::default() },
            json,
        ))
    }

    pub(super) fn write_config(&self, name: &str, db: &str, storage: &str) -> Result<PathBuf> {
        let path = self.work.join(name);
        let text = format!("[databases.main]\nurl = {}\n\n[storage]\n{storage}", toml_str(&self.pg.url(db)));
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    pub(super) fn fs_storage(dir: &Path) -> String {
        format!("url = {}\n", toml_str(&dir.to_string_lossy()))
    }

    pub(super) fn endpoint(&self, server: S3Server) -> String {
        match server {
            S3Server::S3sFs => format!("http://{}", self.s3_addr),
            S3Server::Seaweed => format!("http://127.0.0.1:{}", self.seaweed_port),
        }
    }

    pub(super) fn s3_storage(&self, server: S3Server, prefix: &str) -> String {
        format!(
            "url = {}\nendpoint = {}\naccess-key-id = {}\nsecret-access-key = {}\n",
            toml_str(&format!("s3://{BUCKET}/{prefix}")),
            toml_str(&self.endpoint(server)),
            toml_str(S3_ACCESS_KEY),
            toml_str(S3_SECRET_KEY),
        )
    }

    pub(super) fn s3_clear(&self, server: S3Server, prefix: &str) -> Result<()> {
        match server {
            S3Server::S3sFs => {
                cmd::capture(docker().args(["exec", &self.s3_id, "rm", "-rf", &format!("/data/{BUCKET}/{prefix}")]))?;
            }
            S3Server::Seaweed => {
                let url = format!("s3://{BUCKET}/{prefix}/");
                cmd::capture(aws_cmd(&self.aws, &self.endpoint(server)).args([
                    "s3",
                    "rm",
                    "--recursive",
                    "--only-show-errors",
                    &url,
                ]))?;
            }
        }
        Ok(())
    }

    /// The size of an object, from the server (`aws s3api head-object`).
    pub(super) fn s3_size(&self, server: S3Server, key: &str) -> Result<u64> {
        let out = cmd::capture(aws_cmd(&self.aws, &self.endpoint(server)).args([
            "s3api",
            "head-object",
            "--bucket",
            BUCKET,
            "--key",
            key,
            "--query",
            "ContentLength",
            "--output",
            "text",
        ]))?;
        out.trim().parse().with_context(|| format!("head-object answered {out:?}"))
    }

    /// Runs `a | b | c …`, each under /usr/bin/time, the last one's stdout into `out`.
    pub(super) fn run_timed_chain(&self, cmds: &[Command], out: Stdio) -> Result<Sample> {
        let files: Vec<PathBuf> = (0..cmds.len()).map(|i| self.work.join(format!("time-chain-{i}.txt"))).collect();
        let mut timed: Vec<Command> = cmds.iter().zip(&files).map(|(c, f)| under_time(c, f)).collect();
        let start = Instant::now();
        chain_into(&mut timed, out, &self.log)?;
        let secs = start.elapsed().as_secs_f64();
        let mut cpu = 0.0;
        for f in &files {
            cpu += read_usage(f)?.cpu_secs;
        }
        Ok(Sample { secs, client_cpu: Some(cpu), ..Sample::default() })
    }

    pub(super) fn psql_file(&self, sql: &str, name: &str, vars: &[(&str, u64)]) -> Result<Command> {
        let path = self.work.join(name);
        fs::write(&path, sql).with_context(|| format!("writing {}", path.display()))?;
        let mut c = self.pg.psql(PG_DB);
        for (k, v) in vars {
            c.args(["-v", &format!("{k}={v}")]);
        }
        c.arg("-f").arg(path);
        Ok(c)
    }

    /// Runs the generation jobs on two psql sessions at once (the server has two cores).
    pub(super) fn run_jobs(&self, jobs: Vec<GenJob>, customers: u64) -> Result<()> {
        let queue = Mutex::new(jobs);
        let worker = |n: usize| -> Result<()> {
            loop {
                let Some(job) = queue.lock().map_err(|_| anyhow!("poisoned"))?.pop() else { return Ok(()) };
                let start = Instant::now();
                let mut c = self.psql_file(
                    job.sql,
                    &format!("gen-{n}.sql"),
                    &[("first", job.first), ("last", job.last), ("customers", customers)],
                )?;
                let status = spawn_logged(&mut c, &self.log)?.wait()?;
                if !status.success() {
                    return Err(failed(
                        &format!("generating {} {}..{}", job.what, job.first, job.last),
                        status,
                        &self.log,
                    ));
                }
                println!("bench:   {} {}..{} ({})", job.what, job.first, job.last, cmd::secs(start.elapsed()));
            }
        };
        std::thread::scope(|s| {
            let a = s.spawn(|| worker(0));
            let b = s.spawn(|| worker(1));
            let ra = a.join().map_err(|_| anyhow!("generation thread panicked"))?;
            let rb = b.join().map_err(|_| anyhow!("generation thread panicked"))?;
            ra.and(rb)
        })
    }

    pub(super) fn measure(&self, kind: Kind, round: usize) -> Result<Sample> {
        let w = &self.work;
        match kind {
            Kind::Raw => {
                let out = w.join("raw.sql");
                let mut s = self.metered(|| self.run_timed(&self.pg.pg_dump(), None, Stdio::from(create(&out)?)))?;
                s.size = Some(file_size(&out)?);
                Ok(s)
            }
            Kind::RunbookGzip | Kind::RunbookZstd => {
                let (out, consumer) = if kind == Kind::RunbookGzip {
                    (w.join("runbook.sql.gz"), Command::new("gzip"))
                } else {
                    let mut z = Command::new("zstd");
                    z.args(["-q", "-T2", "-c"]);
                    (w.join("runbook.sql.zst"), z)
                };
                let mut s =
                    self.metered(|| self.run_timed(&self.pg.pg_dump(), Some(&consumer), Stdio::from(create(&out)?)))?;
                s.size = Some(file_size(&out)?);
                Ok(s)
            }
            Kind::OpsGzipFs | Kind::OpsZstdFs => {
                let (name, ext) = if kind == Kind::OpsGzipFs { ("gzip", ".sql.gz") } else { ("zstd", ".sql.zst") };
                let dir = w.join(format!("store-{name}"));
                reset_dir(&dir)?;
                let config = self.write_config(&format!("fs-{name}.toml"), PG_DB, &Self::fs_storage(&dir))?;
                let mut json = String::new();
                let mut s = self.metered(|| {
                    let (s, j) = self.run_opsctl(
                        &format!("backup-{name}-fs"),
                        &config,
                        &["backup", "run", "--compression", name],
                    )?;
                    json = j;
                    Ok(s)
                })?;
                let mut files = Vec::new();
                find_files(&dir, ext, &mut files)?;
                let file =
                    files.first().with_context(|| format!("no {ext} file in {} after the backup", dir.display()))?;
                s.size = Some(file_size(file)?);
                if let Some(reported) = json_u64(&json, "size_bytes")
                    && Some(reported) != s.size
                {
                    bail!("opsctl reported {reported} bytes but {} has {:?}", file.display(), s.size);
                }
                Ok(s)
            }
            Kind::OpsGzipS3(server) => {
                let prefix = format!("runs-{round}");
                let config = self.write_config("s3-gzip.toml", PG_DB, &self.s3_storage(server, &prefix))?;
                let name = format!("backup-gzip-s3-{}", server.label().to_lowercase());
                let mut json = String::new();
                let mut s = self.metered(|| {
                    let (s, j) = self.run_opsctl(&name, &config, &["backup", "run", "--compression", "gzip"])?;
                    json = j;
                    Ok(s)
                })?;
                s.size = json_u64(&json, "size_bytes");
                self.s3_clear(server, &prefix)?;
                Ok(s)
            }
            Kind::SeedsGzipS3(server) => {
                // SE-IR RB-006 and amn.gg: `pg_dump | gzip | aws s3 cp - s3://bucket/…`.
                let prefix = format!("seeds-{round}");
                let key = format!("{prefix}/{PG_DB}.sql.gz");
                let mut upload = aws_cmd(&self.aws, &self.endpoint(server));
                upload.args(["s3", "cp", "--only-show-errors", "-", &format!("s3://{BUCKET}/{key}")]);
                let chain = [self.pg.pg_dump(), Command::new("gzip"), upload];
                let mut s = self.metered(|| self.run_timed_chain(&chain, Stdio::from(log_file(&self.log)?)))?;
                s.size = Some(self.s3_size(server, &key)?);
                self.s3_clear(server, &prefix)?;
                Ok(s)
            }
        }
    }
}
