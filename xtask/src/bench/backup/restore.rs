//! The restore cases: `gunzip -c | psql` against `opsctl restore` (in place and safe swap), the
//! drill and `backup verify`.

#[allow(clippy::wildcard_imports)]
use super::*;

#[derive(Debug)]
pub(super) enum RestoreOutcome {
    Measured(Box<Restores>),
    Unavailable,
    Failed { psql: Case, error: String },
}

/// The restore cases of every round.
#[derive(Debug)]
pub(super) struct Restores {
    pub(super) psql: Case,
    pub(super) in_place: Case,
    pub(super) safe_swap: Case,
    pub(super) drill: Case,
    pub(super) verify: Case,
    /// `restore_seconds` and `rto_seconds` of each drill's own report.
    pub(super) drill_restore: Vec<f64>,
    pub(super) drill_rto: Vec<f64>,
    /// Restores from each S3 server: the seeds' pipeline and ours.
    pub(super) s3: Vec<S3Restores>,
}

/// `aws s3 cp s3://… - | gunzip | psql` against `opsctl restore latest` from the same object.
#[derive(Debug)]
pub(super) struct S3Restores {
    pub(super) server: S3Server,
    pub(super) seeds: Case,
    pub(super) ours: Case,
}

/// Where the S3 restores read from: one gzip backup per server, written by opsctl.
const RESTORE_PREFIX: &str = "restore-src";

/// `gunzip -c BACKUP | psql` versus `opsctl restore latest` (in place and safe swap) into fresh
/// databases, `opsctl dr-test latest --backend local` and `opsctl backup verify latest`, each
/// once per round.
pub(super) fn measure_restore(ctx: &Ctx, runs: usize, expected: &str) -> Result<RestoreOutcome> {
    let help = ctx.work.join("restore-help.txt");
    let available =
        run_into(Command::new(&ctx.opsctl).args(["restore", "--help"]), Stdio::from(create(&help)?), &ctx.log).is_ok();
    if !available {
        println!("bench: restore: not measured (opsctl restore not available)");
        return Ok(RestoreOutcome::Unavailable);
    }
    // The gzip backup opsctl wrote in the last round: every restore reads the same file.
    let store = ctx.work.join("store-gzip");
    let mut files = Vec::new();
    find_files(&store, ".sql.gz", &mut files)?;
    let dump = files.first().context("no gzip backup left to restore")?.clone();
    let mut r = Restores {
        psql: Case::new("`gunzip -c | psql`"),
        in_place: Case::new("`opsctl restore latest --in-place`"),
        safe_swap: Case::new("`opsctl restore latest` (safe swap)"),
        drill: Case::new("`opsctl dr-test latest --backend local`"),
        // What an in-place restore does first, before touching the database: read the backup
        // through once (checksum, full decompression, trailer). Timed alone to show its share.
        verify: Case::new("`opsctl backup verify latest` (in-place restore's first pass)"),
        drill_restore: Vec::new(),
        drill_rto: Vec::new(),
        s3: Vec::new(),
    };
    // The nightly `backup verify` a team runs (untimed here; its own case below is timed): an
    // in-place restore of a copy whose last verification passed checks its SHA-256 alone.
    step("verify the backup once (as a schedule would)", || {
        let config = ctx.write_config("verify.toml", PG_DB, &Ctx::fs_storage(&store))?;
        ctx.run_opsctl("verify", &config, &["backup", "verify", "latest"])?;
        Ok(((), "recorded".to_owned()))
    })?;
    // One gzip backup on each S3 server: both pipelines restore that object.
    let mut s3_keys = Vec::new();
    for server in [S3Server::S3sFs, S3Server::Seaweed] {
        let key = step(&format!("restore source on S3 ({})", server.label()), || {
            let config = ctx.write_config("s3-restore-src.toml", PG_DB, &ctx.s3_storage(server, RESTORE_PREFIX))?;
            let (_, json) = ctx.run_opsctl("restore-src", &config, &["backup", "run", "--compression", "gzip"])?;
            let key = json_str(&json, "dump_key").context("no dump_key in opsctl's JSON report")?;
            let note = format!("s3://{BUCKET}/{RESTORE_PREFIX}/{key}");
            Ok((key, note))
        })?;
        s3_keys.push((server, key));
        r.s3.push(S3Restores {
            server,
            seeds: Case::new(&format!("`aws s3 cp - | gunzip | psql` ({})", server.label())),
            ours: Case::new(&format!("`opsctl restore latest` from S3 ({})", server.label())),
        });
    }
    let check = |db: &str| -> Result<()> {
        let got = ctx.pg.query(db, COUNT_SQL)?;
        if got != expected {
            bail!("database {db} has customers/orders/events {got} after the restore, expected {expected}");
        }
        Ok(())
    };
    // Every database of a case: the restored one and what a safe swap keeps beside it.
    let drop_all = |prefix: &str| -> Result<()> {
        let names = ctx.pg.query(
            PG_DB,
            &format!("SELECT string_agg(datname, ' ') FROM pg_database WHERE starts_with(datname, '{prefix}')"),
        )?;
        for name in names.split_whitespace() {
            ctx.pg.query(PG_DB, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
        }
        Ok(())
    };
    let failed = |psql: &Case, what: &str, e: &anyhow::Error| RestoreOutcome::Failed {
        psql: Case { label: psql.label.clone(), samples: psql.samples.clone() },
        error: format!("{what}: {e:#}"),
    };
    for round in 1..=runs {
        let db = format!("restore_psql_{round}");
        ctx.pg.query(PG_DB, &format!("CREATE DATABASE {db}"))?;
        let sample = step(&format!("restore {round}/{runs}: gunzip -c | psql"), || {
            let mut gunzip = Command::new("gunzip");
            gunzip.arg("-c").arg(&dump);
            let s =
                ctx.metered(|| ctx.run_timed(&gunzip, Some(&ctx.pg.psql(&db)), Stdio::from(log_file(&ctx.log)?)))?;
            check(&db)?;
            let note = format!("{}, row counts ok", s.note());
            Ok((s, note))
        })?;
        r.psql.samples.push(sample);
        drop_all(&db)?;

        for (in_place, case) in [(true, &mut r.in_place), (false, &mut r.safe_swap)] {
            let (name, flag) = if in_place { ("inplace", Some("--in-place")) } else { ("swap", None) };
            let db = format!("restore_{name}_{round}");
            ctx.pg.query(PG_DB, &format!("CREATE DATABASE {db}"))?;
            let result = step(&format!("restore {round}/{runs}: {}", case.label), || {
                let config = ctx.write_config(&format!("restore-{name}.toml"), &db, &Ctx::fs_storage(&store))?;
                let s = ctx.metered(|| {
                    let mut args = vec!["restore", "latest", "--yes", "--database", "main"];
                    args.extend(flag);
                    Ok(ctx.run_opsctl(&format!("restore-{name}"), &config, &args)?.0)
                })?;
                check(&db)?;
                let note = format!("{}, row counts ok", s.note());
                Ok((s, note))
            });
            let dropped = drop_all(&db);
            match result {
                Ok(s) => case.samples.push(s),
                Err(e) => return Ok(failed(&r.psql, &case.label, &e)),
            }
            dropped?;
        }

        let result = step(&format!("restore {round}/{runs}: {}", r.drill.label), || {
            let config = ctx.write_config("drill.toml", PG_DB, &Ctx::fs_storage(&store))?;
            let mut json = String::new();
            let s = ctx.metered(|| {
                let args = ["dr-test", "latest", "--backend", "local"];
                let (s, j) = ctx.run_opsctl("dr-test", &config, &args)?;
                json = j;
                Ok(s)
            })?;
            let restore = json_f64(&json, "restore_seconds").context("no restore_seconds in the drill's report")?;
            let rto = json_f64(&json, "rto_seconds").context("no rto_seconds in the drill's report")?;
            let note = format!("{}; the drill's restore {restore:.1} s, RTO {rto:.1} s", s.note());
            Ok(((s, restore, rto), note))
        });
        match result {
            Ok((s, restore, rto)) => {
                r.drill.samples.push(s);
                r.drill_restore.push(restore);
                r.drill_rto.push(rto);
            }
            Err(e) => return Ok(failed(&r.psql, &r.drill.label, &e)),
        }

        let sample = step(&format!("restore {round}/{runs}: opsctl backup verify latest"), || {
            let config = ctx.write_config("verify.toml", PG_DB, &Ctx::fs_storage(&store))?;
            let s = ctx.metered(|| Ok(ctx.run_opsctl("verify", &config, &["backup", "verify", "latest"])?.0))?;
            let note = s.note();
            Ok((s, note))
        })?;
        r.verify.samples.push(sample);

        for (i, (server, key)) in s3_keys.iter().enumerate() {
            let db = format!("restore_s3seeds_{round}");
            ctx.pg.query(PG_DB, &format!("CREATE DATABASE {db}"))?;
            let label = r.s3[i].seeds.label.clone();
            let sample = step(&format!("restore {round}/{runs}: {label}"), || {
                // The seeds' restore: `aws s3 cp s3://bucket/key - | gunzip | psql`.
                let mut download = aws_cmd(&ctx.aws, &ctx.endpoint(*server));
                download.args([
                    "s3",
                    "cp",
                    "--only-show-errors",
                    &format!("s3://{BUCKET}/{RESTORE_PREFIX}/{key}"),
                    "-",
                ]);
                let chain = [download, Command::new("gunzip"), ctx.pg.psql(&db)];
                let s = ctx.metered(|| ctx.run_timed_chain(&chain, Stdio::from(log_file(&ctx.log)?)))?;
                check(&db)?;
                let note = format!("{}, row counts ok", s.note());
                Ok((s, note))
            })?;
            r.s3[i].seeds.samples.push(sample);
            drop_all(&db)?;

            let db = format!("restore_s3ops_{round}");
            ctx.pg.query(PG_DB, &format!("CREATE DATABASE {db}"))?;
            let label = r.s3[i].ours.label.clone();
            let result = step(&format!("restore {round}/{runs}: {label}"), || {
                let config = ctx.write_config("restore-s3.toml", &db, &ctx.s3_storage(*server, RESTORE_PREFIX))?;
                let name = format!("restore-s3-{}", server.label().to_lowercase());
                let s = ctx.metered(|| {
                    Ok(ctx.run_opsctl(&name, &config, &["restore", "latest", "--yes", "--database", "main"])?.0)
                })?;
                check(&db)?;
                let note = format!("{}, row counts ok", s.note());
                Ok((s, note))
            });
            let dropped = drop_all(&db);
            match result {
                Ok(s) => r.s3[i].ours.samples.push(s),
                Err(e) => return Ok(failed(&r.psql, &label, &e)),
            }
            dropped?;
        }
    }
    for (server, _) in &s3_keys {
        ctx.s3_clear(*server, RESTORE_PREFIX)?;
    }
    Ok(RestoreOutcome::Measured(Box::new(r)))
}
