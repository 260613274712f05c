//! The cost of building the public status page, against the length of the history stored:
//! `cargo xtask bench status` runs it in release mode.
//!
//! Two SQLite state stores are seeded the way a running project fills them: 4 components of 2
//! checks each (their last states), daily component samples (`add_component_samples`, a few
//! per day: the count does not change the cost) and resolved incidents opened, updated and
//! resolved through the incident desk at past times:
//! - 90 days of history with 30 incidents;
//! - 730 days (2 years) with 240 incidents: the same rate of incidents over a longer time.
//!
//! The page keeps 90 days, so both pages show the same: one build (`StatusBoard::page`, the
//! HTML and `summary.json`, as `GET /status` and `GET /api/v2/summary.json` do) must cost the
//! same. Each round builds both pages back to back (which goes first alternates); the ratio
//! is the median of the rounds' ratios, so a drift or a burst of load on the machine affects
//! both sides of each ratio alike. The Markdown table goes to stdout; the exit status is 1
//! when the 2-year build costs more than [`MAX_RATIO`]× the 90-day one.
//!
//! `bench_page --keep-store DIR` seeds the 90-day store at `DIR/state.db` (instead of a
//! temporary directory) and writes the matching `[[status.components]]` to
//! `DIR/components.toml`, for an `ops-server` to serve.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ops_core::config::StatusComponentConfig;
use ops_core::ports::StateStore;
use ops_core::{SecretUrl, Severity, Status};
use ops_incident::comms::Templates;
use ops_incident::{CHECK_STATUS, CheckState, IncidentOptions, Incidents, OpenRequest, PublicStatus};
use ops_status::render::{self, Links};
use ops_status::{StatusBoard, StatusOptions};

/// Timed builds of each page.
const ROUNDS: usize = 41;
/// Untimed builds first (page cache, the pool's connections).
const WARMUP: usize = 3;
/// Samples of each component per day.
const SAMPLES_PER_DAY: usize = 4;
/// The most the 2-year build may cost against the 90-day one.
const MAX_RATIO: f64 = 1.5;

/// The components and their checks.
const COMPONENTS: [(&str, &str, [&str; 2]); 4] = [
    ("API", "The public REST API", ["http:api", "container:api"]),
    ("Website", "www and the dashboard", ["http:web", "container:web"]),
    ("Database", "PostgreSQL", ["postgres:main", "container:postgres"]),
    ("Background jobs", "Queue and workers", ["redis:main", "container:worker"]),
];

fn components() -> Vec<StatusComponentConfig> {
    COMPONENTS
        .iter()
        .map(|(name, description, checks)| StatusComponentConfig {
            name: (*name).to_owned(),
            description: Some((*description).to_owned()),
            checks: checks.iter().map(|c| (*c).to_owned()).collect(),
        })
        .collect()
}

/// `[[status.components]]` of [`COMPONENTS`], for the server's config.
fn components_toml() -> String {
    let mut out = String::new();
    for (name, description, checks) in COMPONENTS {
        let checks: Vec<String> = checks.iter().map(|c| format!("{c:?}")).collect();
        writeln!(
            out,
            "\n[[status.components]]\nname = {name:?}\ndescription = {description:?}\nchecks = [{}]",
            checks.join(", ")
        )
        .unwrap();
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { f64::midpoint(v[n / 2 - 1], v[n / 2]) }
}

/// One seeded store with its board.
struct Seeded {
    days: u32,
    incidents: usize,
    board: StatusBoard,
    seed_secs: f64,
}

/// Seeds a store at `path` with `days` of history and `incidents` resolved incidents before `now`.
async fn seed(path: &Path, days: u32, incidents: usize, now: DateTime<Utc>) -> Seeded {
    let started = Instant::now();
    let url = SecretUrl::new(format!("sqlite://{}", path.display()));
    let store: Arc<dyn StateStore> = Arc::new(ops_core::adapters::state::SqlStateStore::open(&url).await.unwrap());
    let components = components();
    let options = IncidentOptions { components: components.clone(), project: "bench".into(), ..Default::default() };
    let desk = Incidents::new(Arc::clone(&store), vec![], options, Arc::new(Templates::built_in()));
    let board = StatusBoard::new(
        Arc::clone(&store),
        StatusOptions {
            title: "Bench status".into(),
            url: Some("https://status.example.com".into()),
            components: components.clone(),
            history_days: 90,
        },
    );

    // The checks' last states: all pass but one warning (a degraded component).
    for (_, _, checks) in COMPONENTS {
        for check in checks {
            let status = if check == "container:worker" { Status::Warn } else { Status::Ok };
            let state = CheckState {
                status,
                since: now - Duration::hours(30),
                message: format!("{check}: {status}"),
                alerts: BTreeSet::new(),
            };
            store.put_document(CHECK_STATUS, check, &serde_json::to_value(&state).unwrap()).await.unwrap();
        }
    }

    // Incidents at a steady rate over the history, each 1–3 h long with two public updates.
    let span = Duration::days(i64::from(days));
    let mut bad: BTreeMap<(NaiveDate, &str), &str> = BTreeMap::new();
    let n = i32::try_from(incidents).unwrap();
    for i in 0..n {
        let opened = now - span + span * (2 * i + 1) / (2 * n) - Duration::minutes(i64::from(i % 7) * 37);
        let (first, _, _) = COMPONENTS[usize::try_from(i).unwrap() % COMPONENTS.len()];
        let mut affected = vec![first.to_owned()];
        if i % 5 == 0 {
            affected.push(COMPONENTS[(usize::try_from(i).unwrap() + 1) % COMPONENTS.len()].0.to_owned());
        }
        let severity = [Severity::P2, Severity::P3, Severity::P1, Severity::P2][usize::try_from(i).unwrap() % 4];
        let request = OpenRequest {
            title: format!("bench incident {i}: errors on {}", affected.join(", ")),
            severity: Some(severity),
            public_title: None,
            checks: vec![],
            components: affected.clone(),
            update: Some(format!(
                "We are investigating elevated error rates on {}. Some requests fail or are slow.",
                affected.join(" and ")
            )),
        };
        let record = desk.open(&request, "bench", opened).await.unwrap();
        let id = record.incident.id;
        let t = opened + Duration::minutes(20);
        let text = "The cause has been identified: a configuration change. It is being rolled back.";
        desk.update(&id, Some(PublicStatus::Identified), text, "bench", t).await.unwrap();
        desk.note(&id, "rollback started by the on-call", false, "bench", t + Duration::minutes(1)).await.unwrap();
        let t = t + Duration::minutes(30 + 30 * i64::from(i % 4));
        let text = "The rollback is complete and error rates are back to normal. We are monitoring.";
        desk.update(&id, Some(PublicStatus::Monitoring), text, "bench", t).await.unwrap();
        desk.resolve(&id, None, "bench", t + Duration::minutes(30)).await.unwrap();
        let status = match severity {
            Severity::P1 => "major_outage",
            Severity::P2 => "partial_outage",
            _ => "degraded_performance",
        };
        for c in &COMPONENTS {
            if affected.iter().any(|a| a == c.0) {
                bad.insert((opened.date_naive(), c.0), status);
            }
        }
    }

    // Daily samples: one of each day's samples has that day's worst status.
    let today = now.date_naive();
    for d in (0..days).rev() {
        let day = today - Duration::days(i64::from(d));
        for s in 0..SAMPLES_PER_DAY {
            let samples: Vec<(String, String)> = COMPONENTS
                .iter()
                .map(|(name, _, _)| {
                    let status = match bad.get(&(day, *name)) {
                        Some(status) if s == 0 => status,
                        _ => "operational",
                    };
                    ((*name).to_owned(), status.to_owned())
                })
                .collect();
            store.add_component_samples(day, &samples).await.unwrap();
        }
    }
    Seeded { days, incidents, board, seed_secs: started.elapsed().as_secs_f64() }
}

/// What one build gives: the page's incidents, the sizes of the HTML and summary.json.
struct Built {
    listed: usize,
    html: usize,
    json: usize,
    page_secs: f64,
}

/// One build as the server does it for `GET /status` and `GET /api/v2/summary.json`.
async fn build(s: &Seeded, now: DateTime<Utc>) -> Built {
    let t = Instant::now();
    let page = s.board.page(now).await.unwrap();
    let page_secs = t.elapsed().as_secs_f64();
    let links = Links { feed: "/status/feed.atom".to_owned(), summary: "/api/v2/summary.json".to_owned() };
    let html = render::html(&page, &links);
    let json = serde_json::to_vec(&render::json_document(&page, "summary.json").unwrap()).unwrap();
    assert_eq!(page.components.len(), COMPONENTS.len());
    assert!(page.components.iter().all(|c| c.history.len() == 90));
    Built { listed: page.incidents.len(), html: html.len(), json: json.len(), page_secs }
}

fn keep_store_arg() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    let mut keep = None;
    while let Some(a) = args.next() {
        if a == "--keep-store" {
            keep = Some(PathBuf::from(args.next().expect("--keep-store needs a directory")));
        } else {
            panic!("unknown argument {a:?}; usage: bench_page [--keep-store DIR]");
        }
    }
    keep
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let keep = keep_store_arg();
    let now = Utc::now();
    let tmp = tempfile::tempdir().unwrap();
    let short_path = match &keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).unwrap();
            let db = dir.join("state.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            std::fs::write(dir.join("components.toml"), components_toml()).unwrap();
            db
        }
        None => tmp.path().join("short/state.db"),
    };
    eprintln!("bench_page: seeding 90 days with 30 incidents");
    let short = seed(&short_path, 90, 30, now).await;
    eprintln!("bench_page: seeded in {:.1} s; seeding 730 days with 240 incidents", short.seed_secs);
    let long = seed(&tmp.path().join("long/state.db"), 730, 240, now).await;
    eprintln!("bench_page: seeded in {:.1} s; timing {ROUNDS} builds of each", long.seed_secs);

    let mut out: Vec<(Vec<f64>, Vec<f64>, Option<Built>)> = vec![(vec![], vec![], None), (vec![], vec![], None)];
    let mut ratios = Vec::new();
    for round in 0..WARMUP + ROUNDS {
        // Both builds back to back, which goes first alternating.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut took = [0.0; 2];
        for i in order {
            let s = if i == 0 { &short } else { &long };
            let t = Instant::now();
            let built = build(s, now).await;
            took[i] = t.elapsed().as_secs_f64();
            if round >= WARMUP {
                out[i].0.push(took[i]);
                out[i].1.push(built.page_secs);
            }
            out[i].2 = Some(built);
        }
        if round >= WARMUP {
            ratios.push(took[1] / took[0]);
        }
    }

    let mut table = String::new();
    writeln!(
        table,
        "| history stored | incidents stored | incidents on the page | build (page + HTML + summary.json), median of {ROUNDS} | of which `StatusBoard::page` | HTML | summary.json |"
    )
    .unwrap();
    writeln!(table, "|---|---|---|---|---|---|---|").unwrap();
    let mut medians = Vec::new();
    for (s, (all, page, built)) in [&short, &long].into_iter().zip(out) {
        let built = built.unwrap();
        let (all, page) = (median(all) * 1000.0, median(page) * 1000.0);
        medians.push(all);
        writeln!(
            table,
            "| {} days | {} | {} | {all:.2} ms | {page:.2} ms | {} bytes | {} bytes |",
            s.days, s.incidents, built.listed, built.html, built.json
        )
        .unwrap();
    }
    let ratio = median(ratios);
    let verdict = if ratio <= MAX_RATIO { "PASS" } else { "MISS" };
    writeln!(
        table,
        "\nRatio 730 days / 90 days (median of the {ROUNDS} rounds' ratios): **{ratio:.2}×** (target ≤ \
         {MAX_RATIO}×): {verdict}."
    )
    .unwrap();
    print!("{table}");
    if ratio > MAX_RATIO {
        eprintln!(
            "bench_page: the 2-year build costs {ratio:.2}× the 90-day one ({:.2} ms against {:.2} ms), more than \
             {MAX_RATIO}×: the page's cost grows with the history stored beyond the 90 days it shows",
            medians[1], medians[0]
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
