//! Disk cleanup on a real engine: `opsctl disk plan` estimates every item, `opsctl disk clean
//! --apply` frees it, and what each item freed (the filesystem's used space before and after
//! it) is within 10 % of its estimate; what a rollback needs and what a container uses stay.
//!
//! The test runs alone (`.config/nextest.toml`): what another test writes meanwhile would
//! count as space this cleanup did not free.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use crate::harness;
use crate::triage::{Leftovers, docker};

/// Volumes removed when the test ends, even when it fails.
struct Volumes(Vec<String>);

impl Drop for Volumes {
    fn drop(&mut self) {
        for v in &self.0 {
            let _ = std::process::Command::new("docker").args(["volume", "rm", "-f", v]).output();
        }
    }
}

/// Builds `dockerfile` with BuildKit (`POST /build?version=2`, no session: the context is the
/// request body), the way `docker buildx build` fills the build cache; the engine's answer.
fn buildkit_build(dockerfile: &str, tag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let context = std::process::Command::new("tar")
        .args(["-C", &dir.path().display().to_string(), "-cf", "-", "."])
        .output()
        .expect("tar runs")
        .stdout;
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
    let mut s = std::os::unix::net::UnixStream::connect(&socket).expect("the engine's socket");
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    write!(
        s,
        "POST /v1.41/build?version=2&t={tag}&rm=1 HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        context.len()
    )
    .unwrap();
    s.write_all(&context).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && !answer.contains("errorDetail"), "build failed: {answer}");
    answer
}

fn within_ten_percent(estimate: u64, freed: u64) -> bool {
    let (e, f) = (estimate as f64, freed as f64);
    (f - e).abs() <= 0.10 * e
}

/// Dangling images, build cache, a stopped container and a large container log, each tens of
/// MiB: `disk plan` lists them with estimates, and leaves out an image the release ledger keeps,
/// a volume a container uses and one the stack owns; `disk clean --apply` frees each within
/// 10 % of its estimate (the filesystem's used space, measured around each item), truncates the
/// log of a container that keeps running, and reports `df` before and after. One audit record
/// per item.
#[tokio::test]
#[allow(clippy::print_stderr)] // estimate against freed per item, for `--no-capture` and BENCHMARKS.md
async fn disk_clean_frees_what_the_plan_estimates_and_keeps_what_is_protected() {
    harness::require_docker().await;
    let run = harness::unique("disk").to_lowercase();
    let label = format!("ops.it.disk={run}");
    let base = "ops-test/base:bookworm";
    let mut leftovers = Leftovers(run.clone(), Vec::new());
    let mut volumes = Volumes(Vec::new());

    // A dangling image with a 24 MB layer of its own, and another the ledger keeps.
    let commit = |name: &str, bytes: u32| -> String {
        let maker = format!("{run}-{name}");
        let cmd = format!("head -c {bytes} /dev/urandom > /blob");
        docker(&["run", "--name", &maker, base, "sh", "-c", &cmd]);
        let id = docker(&["commit", "--change", &format!("LABEL {label}"), &maker]);
        docker(&["rm", &maker]);
        id
    };
    let dangling = commit("dangling", 24_000_000);
    let released = commit("released", 1_000_000);
    leftovers.1.extend([dangling.clone(), released.clone()]);

    // Build cache no image shares: the first stage's 32 MB layer (only a digest of it reaches
    // the image).
    let built = format!("opsit/{run}:built");
    buildkit_build(
        &format!(
            "FROM {base} AS build\nRUN head -c 32000000 /dev/urandom > /blob && sha256sum /blob > /sum\n\
             FROM {base}\nLABEL {label}\nCOPY --from=build /sum /sum\n"
        ),
        &built,
    );
    leftovers.1.push(built.clone());

    // A stopped container with a 20 MB writable layer.
    let stopped = format!("{run}-stopped");
    docker(&["run", "--name", &stopped, "--label", &label, base, "sh", "-c", "head -c 20000000 /dev/urandom > /blob"]);
    // A running container that logged about 30 MB, with an anonymous-looking volume mounted.
    let in_use = format!("{run}-in-use");
    let unused = format!("{run}-unused");
    let stack_volume = format!("{run}-stack");
    for (v, project) in [(&in_use, "other"), (&unused, "other"), (&stack_volume, run.as_str())] {
        docker(&[
            "volume",
            "create",
            "--label",
            &label,
            "--label",
            "com.docker.volume.anonymous=",
            "--label",
            &format!("com.docker.compose.project={project}"),
            v,
        ]);
        volumes.0.push(v.clone());
    }
    // The unused volume holds 16 MB.
    let fill = format!("{run}-fill");
    docker(&[
        "run",
        "--name",
        &fill,
        "-v",
        &format!("{unused}:/data"),
        base,
        "sh",
        "-c",
        "head -c 16000000 /dev/urandom > /data/blob",
    ]);
    docker(&["rm", &fill]);
    let chatty = format!("{run}-chatty");
    docker(&[
        "run",
        "-d",
        "--name",
        &chatty,
        "--label",
        &label,
        "-v",
        &format!("{in_use}:/data"),
        base,
        "sh",
        "-c",
        "head -c 22000000 /dev/urandom | base64 -w 1000; echo logged-all; exec sleep 600",
    ]);
    harness::eventually("the chatty container logged everything", Duration::from_secs(60), || async {
        docker(&["logs", "--tail", "1", &chatty]).contains("logged-all").then_some(())
    })
    .await;

    // The ledger keeps `released` (a version a rollback goes back to).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ops.toml");
    std::fs::write(
        &config,
        format!(
            "[project]\ncompose-project = \"{run}\"\n[state]\nurl = \"sqlite://{d}/state.db\"\n[perf]\n\
             audit-log = \"{d}/audit.jsonl\"\n",
            d = dir.path().display(),
        ),
    )
    .unwrap();
    {
        let cfg = ops_core::config::load(Some(&config), &BTreeMap::new()).unwrap().config;
        let mut ctx = ops_core::Context::from_config(cfg).unwrap();
        ctx.open_state().await.unwrap();
        let now = chrono::Utc::now();
        let version = |id: &str| ops_core::releases::Version {
            image: format!("opsit/{run}:web"),
            image_id: id.to_owned(),
            repo_digest: None,
            config_hash: "0".repeat(64),
            container: format!("{run}-web-1"),
            created_at: Some(now),
            first_seen: now,
            last_seen: now,
            rolled_back_from: false,
            by_rollback: false,
        };
        let ledger = ops_core::releases::ServiceReleases {
            service: "web".into(),
            current: version("sha256:0000000000000000000000000000000000000000000000000000000000000000"),
            previous: vec![version(&released)],
        };
        let store = ctx.state().unwrap();
        let doc = serde_json::to_value(&ledger).unwrap();
        store.put_document(ops_core::releases::COLLECTION, &format!("{run}/web"), &doc).await.unwrap();
    }

    let cfg = config.display().to_string();
    let args = |verb: &str, apply: bool| -> Vec<String> {
        let mut a = vec!["--config", &cfg, "--json", "disk", verb];
        a.extend([
            "--only",
            "containers,images,build-cache,logs",
            "--volumes",
            "--label",
            &label,
            "--logs-over",
            "10MiB",
        ]);
        if apply {
            a.push("--apply");
        }
        a.into_iter().map(str::to_owned).collect()
    };
    let opsctl = |argv: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let env = BTreeMap::from([("USER".to_owned(), "oncall".to_owned())]);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut full = vec!["opsctl".to_owned()];
            full.extend(argv);
            let code = ops_cli::run(full, &env, &mut out, &mut err);
            let text = String::from_utf8_lossy(&out).into_owned();
            let json: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("not JSON: {text} {}", String::from_utf8_lossy(&err)));
            (code, json)
        })
        .await
        .unwrap()
    };

    // The plan: every item with its estimate; nothing protected.
    let (code, planned) = opsctl(args("plan", false)).await;
    assert_eq!(code, 0, "{planned:#}");
    let targets = planned["plan"]["targets"].as_array().unwrap().clone();
    let ids: Vec<&str> = targets.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let short = |id: &str| id.trim_start_matches("sha256:")[..12].to_owned();
    for want in [
        format!("container:{stopped}"),
        format!("image:{}", short(&dangling)),
        "build-cache".to_owned(),
        format!("log:{chatty}"),
        format!("volume:{unused}"),
    ] {
        assert!(ids.contains(&want.as_str()), "{want} planned: {planned:#}");
    }
    for never in [format!("image:{}", short(&released)), format!("volume:{in_use}"), format!("volume:{stack_volume}")] {
        assert!(!ids.contains(&never.as_str()), "{never} is protected: {planned:#}");
    }
    assert!(!ids.iter().any(|i| i.starts_with("container:") && i.contains("chatty")), "a running container stays");
    assert_eq!(docker(&["inspect", "-f", "{{.State.Status}}", &stopped]), "exited", "a plan changes nothing");

    // Clean: each item within 10 % of its estimate.
    let (code, cleaned) = opsctl(args("clean", true)).await;
    let outcomes = cleaned["report"]["outcomes"].as_array().cloned().unwrap_or_default();
    eprintln!("{:<40} {:>12} {:>12}  measured by", "item", "estimate", "freed");
    for o in &outcomes {
        eprintln!(
            "{:<40} {:>12} {:>12}  {}",
            o["target"].as_str().unwrap_or_default(),
            o["before"]["estimate_bytes"],
            o["after"]["freed_bytes"],
            o["after"]["measured_by"]
        );
    }
    assert_eq!(code, 0, "{cleaned:#}");
    assert_eq!(outcomes.len(), ids.len(), "{cleaned:#}");
    for o in &outcomes {
        let id = o["target"].as_str().unwrap();
        let estimate = o["before"]["estimate_bytes"].as_u64().unwrap();
        let freed = o["after"]["freed_bytes"].as_u64().unwrap_or(0);
        assert_eq!(o["after"]["measured_by"], "df", "{o:#}");
        // The items this test made are tens of MiB; another's (an earlier build's cache)
        // may be too small to measure against the filesystem's own bookkeeping.
        if estimate >= 8_000_000 {
            assert!(within_ten_percent(estimate, freed), "{id}: estimated {estimate}, freed {freed}");
        }
    }
    let df = cleaned["df"].as_array().unwrap();
    assert!(
        !df.is_empty() && df.iter().all(|d| d["before"]["used_bytes"].as_u64() > d["after"]["used_bytes"].as_u64()),
        "{df:#?}"
    );

    // What went, what stayed.
    let exists = |kind: &str, what: &str| {
        std::process::Command::new("docker").args([kind, "inspect", what]).output().unwrap().status.success()
    };
    assert!(!exists("container", &stopped) && !exists("image", &dangling) && !exists("volume", &unused));
    assert!(exists("image", &released), "the ledger's image stays");
    assert!(exists("volume", &in_use) && exists("volume", &stack_volume), "volumes in use or the stack's stay");
    assert!(exists("image", &built), "an image is not build cache");
    assert_eq!(docker(&["inspect", "-f", "{{.State.Status}}", &chatty]), "running", "its log was truncated, not it");
    let log = docker(&["inspect", "-f", "{{.LogPath}}", &chatty]);
    assert!(std::fs::metadata(&log).unwrap().len() < 1_000_000, "the log was truncated");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(audit.lines().filter(|l| l.contains("\"disk-clean\"")).count(), outcomes.len(), "{audit}");

    // A second plan finds nothing of this test's left but the ledger's image and the used volume.
    let (_, again) = opsctl(args("plan", false)).await;
    let left: Vec<&str> =
        again["plan"]["targets"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert!(!left.iter().any(|i| i.contains(&run)), "{again:#}");
    drop((leftovers, volumes));
}

/// Re-checked at the moment of acting: a dangling image a container took between the plan and
/// the apply is skipped and stays, and the engine port does not untag an image a container
/// uses (an image with two tags would otherwise lose them to `docker rmi TAG` one by one).
#[tokio::test]
async fn disk_clean_skips_an_image_a_container_took_since_the_plan() {
    harness::require_docker().await;
    let run = harness::unique("disk-recheck").to_lowercase();
    let label = format!("ops.it.disk={run}");
    let base = "ops-test/base:bookworm";
    let mut leftovers = Leftovers(run.clone(), Vec::new());
    let maker = format!("{run}-maker");
    docker(&["run", "--name", &maker, base, "sh", "-c", "head -c 1000000 /dev/urandom > /blob"]);
    let taken = docker(&["commit", "--change", &format!("LABEL {label}"), &maker]);
    let tagged = docker(&["commit", "--change", &format!("LABEL {label}-tagged"), &maker]);
    docker(&["rm", &maker]);
    leftovers.1.extend([taken.clone(), tagged.clone()]);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ops.toml");
    std::fs::write(
        &config,
        format!(
            "[project]\ncompose-project = \"{run}\"\n[state]\nurl = \"sqlite://{d}/state.db\"\n[perf]\n\
             audit-log = \"{d}/audit.jsonl\"\n",
            d = dir.path().display(),
        ),
    )
    .unwrap();
    let cfg = ops_core::config::load(Some(&config), &BTreeMap::new()).unwrap().config;
    let mut ctx = ops_core::Context::from_config(cfg).unwrap();
    ctx.open_state().await.unwrap();
    let action = ops_act::Action::DiskClean {
        only: vec![ops_act::DiskItem::Images],
        volumes: false,
        all_images: false,
        label: Some(label.clone()),
        logs_over_bytes: None,
        journal_keep_days: None,
    };
    let plan = ops_act::plan(&ctx, &action).await.unwrap();
    let short = taken.trim_start_matches("sha256:")[..12].to_owned();
    assert_eq!(plan.targets.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), vec![format!("image:{short}")]);

    // A container takes the image after the plan was shown.
    let late = format!("{run}-late");
    docker(&["create", "--name", &late, &taken, "true"]);
    let report = ops_act::apply(&ctx, &plan, "oncall").await.unwrap();
    assert!(!report.ok(), "{report:#?}");
    let o = &report.outcomes[0];
    assert!(o.result.starts_with("skipped:"), "{o:#?}");
    let exists = |what: &str| {
        std::process::Command::new("docker").args(["image", "inspect", what]).output().unwrap().status.success()
    };
    assert!(exists(&taken), "the image a container took stays");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"disk-clean\"") && l.contains("skipped")), "{audit}");

    // The port: an image with two tags that a container uses keeps both.
    let (one, two) = (format!("opsit/{run}:one"), format!("opsit/{run}:two"));
    docker(&["tag", &tagged, &one]);
    docker(&["tag", &tagged, &two]);
    let user = format!("{run}-user");
    docker(&["create", "--name", &user, &one, "true"]);
    let rt = ops_core::stack::runtime(&ctx).unwrap();
    let err = rt.remove_image(&tagged).await.unwrap_err();
    assert_eq!(err.kind(), ops_core::ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains(&user), "names the container: {err}");
    assert!(exists(&one) && exists(&two), "no tag was taken off an image in use");
    // With the container gone, both tags and the image go.
    docker(&["rm", &user]);
    rt.remove_image(&tagged).await.unwrap();
    assert!(!exists(&one) && !exists(&two) && !exists(&tagged));
    docker(&["rm", &late]);
    drop(leftovers);
}
