//! The runbook engine's own cost per step, measured against the same checks called directly,
//! in one process: `cargo xtask bench runbook` runs it in release mode.
//!
//! A runbook of `N` `check = "tcp:local"` steps (a real TCP connect to a loopback listener:
//! cheap, real work) is planned and run; the baseline is the same `N` checks through
//! `ops_probes::named::probe_named`, one after the other. A second runbook has `N` steps whose
//! `when` does not hold: the engine alone. The run mode also saves the run to the SQLite state
//! store after every step (fsynced) and writes the audit log: that is part of its cost.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ops_core::Context;
use ops_core::config::{ConfigSource, resolve};

const STEPS: usize = 50;
const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn runbook(name: &str, step: &str) -> String {
    let mut text = format!("# {name}\n\n```runbook\nname = \"{name}\"\ntitle = \"bench\"\n```\n");
    text.push_str("\n```step\nid = \"first\"\ncheck = \"tcp:local\"\n```\n");
    for i in 1..STEPS {
        write!(text, "\n```step\nid = \"s{i}\"\n{step}\n```\n").unwrap();
    }
    text
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            if let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let rb_dir = dir.path().join("runbooks");
    std::fs::create_dir_all(&rb_dir).unwrap();
    std::fs::write(rb_dir.join("checks.md"), runbook("checks", "check = \"tcp:local\"")).unwrap();
    std::fs::write(
        rb_dir.join("skips.md"),
        runbook("skips", "when = \"first.status == 'critical'\"\ncheck = \"tcp:local\""),
    )
    .unwrap();
    let text = format!(
        "[[tcp]]\nname = \"local\"\naddress = \"{addr}\"\n\n[state]\nurl = \"sqlite://{d}/state.db\"\n\n\
         [perf]\naudit-log = \"{d}/audit.jsonl\"\n\n[runbooks]\ndir = \"{r}\"\n",
        d = dir.path().display(),
        r = rb_dir.display()
    );
    let env = BTreeMap::new();
    let config = resolve(ConfigSource { file_name: "bench.toml", text: Some(&text), env: &env }).unwrap();
    let catalog = ops_runbook::Catalog::load(config.runbooks.dir.as_deref()).unwrap();
    let mut ctx = Context::from_config(config).unwrap();
    ctx.open_state().await.unwrap();
    let timeout = Duration::from_secs(5);
    let opts = ops_runbook::RunOptions { actor: "bench".into(), ..Default::default() };
    let checks = catalog.get("checks").unwrap();
    let skips = catalog.get("skips").unwrap();

    let (mut direct, mut plan, mut run, mut skipped) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..STEPS {
            let r = ops_probes::named::probe_named(&ctx, "tcp:local", timeout, &Default::default()).await.unwrap();
            assert_eq!(r[0].status, ops_core::Status::Ok);
        }
        direct.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let p = ops_runbook::plan(&ctx, checks, &opts).await.unwrap();
        plan.push(t.elapsed().as_secs_f64());
        assert!(p.ok());
        let t = Instant::now();
        let r = ops_runbook::run(&ctx, checks, &opts, &ops_runbook::Unattended, &ops_runbook::Quiet).await.unwrap();
        run.push(t.elapsed().as_secs_f64());
        assert_eq!(r.status, ops_runbook::RunStatus::Succeeded);
        let t = Instant::now();
        let s = ops_runbook::plan(&ctx, skips, &opts).await.unwrap();
        skipped.push(t.elapsed().as_secs_f64());
        assert_eq!(s.steps.iter().filter(|s| s.outcome == ops_runbook::StepOutcome::Skipped).count(), STEPS - 1);
    }
    let (direct, plan, run, skipped) = (median(direct), median(plan), median(run), median(skipped));
    #[allow(clippy::cast_precision_loss)]
    let per = |total: f64, base: f64| (total - base) / STEPS as f64 * 1000.0;
    let mut out = String::new();
    writeln!(out, "| measurement ({STEPS} steps, median of {ROUNDS}) | total | per step | engine overhead per step |")
        .unwrap();
    writeln!(out, "|---|---|---|---|").unwrap();
    #[allow(clippy::cast_precision_loss)]
    let row = |name: &str, total: f64, overhead: Option<f64>| {
        format!(
            "| {name} | {:.1} ms | {:.3} ms | {} |",
            total * 1000.0,
            total * 1000.0 / STEPS as f64,
            overhead.map_or_else(|| "(baseline)".to_owned(), |o| format!("{o:.3} ms"))
        )
    };
    writeln!(out, "{}", row("`probe_named(\"tcp:local\")` × N, direct", direct, None)).unwrap();
    writeln!(out, "{}", row("`plan` of N check steps", plan, Some(per(plan, direct)))).unwrap();
    writeln!(
        out,
        "{}",
        row("`run` of N check steps (run saved after each step, fsynced)", run, Some(per(run, direct)))
    )
    .unwrap();
    writeln!(
        out,
        "{}",
        row(
            "`plan` of 1 check + N−1 steps whose `when` does not hold",
            skipped,
            Some(per(skipped, direct / STEPS as f64))
        )
    )
    .unwrap();
    print!("{out}");
}
