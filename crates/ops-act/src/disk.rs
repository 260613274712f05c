//! Freeing disk space, item by item, with an estimate first: the disk-full runbooks' cleanup
//! (Orion 6: images and build cache, logs, backups beyond retention, journald, apt).
//!
//! [`plan`] lists every item it would free and how much: stopped containers outside the stack
//! (their writable layer and log), dangling images (every unused one with `all-images`) that no
//! container uses and the release ledger does not keep for a rollback, the build cache no
//! image shares, unused anonymous volumes (only when asked, never one the stack's Compose
//! project owns), container logs over a size (truncated, the container keeps running), the
//! backups the retention plan deletes, archived journald files older than a number of days,
//! and the apt cache. [`apply`] re-checks each item against the live state, frees it, and
//! measures what it freed on its filesystem (`statvfs` before and after), one audit record per
//! item.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ops_core::audit::Audit;
use ops_core::diskspace;
use ops_core::ports::{ContainerRuntime, EngineDisk, EnginePruneTarget};
use ops_core::stack;
use ops_core::units::human_bytes;
use ops_core::{Context, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Action, ActionPlan, Outcome, Target};

/// What a cleanup frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum DiskItem {
    /// Stopped containers outside the stack (`docker container prune`).
    Containers,
    /// Dangling images, or with `all-images` every unused one (`docker image prune [-a]`).
    Images,
    /// BuildKit cache no image shares (`docker builder prune -a`).
    BuildCache,
    /// Unused anonymous volumes (`docker volume prune`): only when asked by name.
    Volumes,
    /// Container logs over a size, truncated (`truncate -s 0 <LogPath>`).
    Logs,
    /// Backups the retention plan deletes (`opsctl backup prune`).
    Backups,
    /// Archived journald files older than some days (`journalctl --vacuum-time`).
    Journal,
    /// Downloaded packages (`apt-get clean`).
    Apt,
}

impl DiskItem {
    /// Every item, in the order a cleanup frees them.
    pub const ALL: [Self; 8] = [
        Self::Containers,
        Self::Images,
        Self::BuildCache,
        Self::Volumes,
        Self::Logs,
        Self::Backups,
        Self::Journal,
        Self::Apt,
    ];

    /// The stable name (`build-cache`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::Images => "images",
            Self::BuildCache => "build-cache",
            Self::Volumes => "volumes",
            Self::Logs => "logs",
            Self::Backups => "backups",
            Self::Journal => "journal",
            Self::Apt => "apt",
        }
    }
}

impl std::str::FromStr for DiskItem {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| format!("unknown item {s:?}: one of {}", Self::ALL.map(Self::name).join(", ")))
    }
}

/// Container logs larger than this are truncated unless another size is asked for.
pub const DEFAULT_LOGS_OVER_BYTES: u64 = 100 * 1024 * 1024;
/// journald keeps this many days unless asked otherwise (Orion: `--vacuum-time=3d`).
pub const DEFAULT_JOURNAL_KEEP_DAYS: u64 = 3;
/// Where journald keeps its files (persistent, then volatile).
const JOURNAL_DIRS: [&str; 2] = ["/var/log/journal", "/run/log/journal"];
/// apt's download cache.
const APT_CACHE: &str = "/var/cache/apt";
/// How long `journalctl --vacuum-time` or `apt-get clean` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// The arguments of [`Action::DiskClean`], checked.
struct Spec<'a> {
    items: BTreeSet<DiskItem>,
    all_images: bool,
    label: Option<(&'a str, Option<&'a str>)>,
    logs_over: u64,
    journal_keep_days: u64,
}

fn spec(action: &Action) -> Result<Spec<'_>> {
    let Action::DiskClean { only, volumes, all_images, label, logs_over_bytes, journal_keep_days } = action else {
        return Err(Error::internal(format!("{} is not disk-clean", action.name())));
    };
    if only.contains(&DiskItem::Volumes) && !volumes {
        return Err(Error::invalid_input(
            "volumes are removed only when asked for explicitly: volumes: true (opsctl disk … --volumes)",
        ));
    }
    let mut items: BTreeSet<DiskItem> = if only.is_empty() {
        DiskItem::ALL.into_iter().filter(|i| *i != DiskItem::Volumes).collect()
    } else {
        only.iter().copied().collect()
    };
    if *volumes {
        items.insert(DiskItem::Volumes);
    }
    let label =
        label.as_deref().filter(|l| !l.is_empty()).map(|l| l.split_once('=').map_or((l, None), |(k, v)| (k, Some(v))));
    Ok(Spec {
        items,
        all_images: *all_images,
        label,
        logs_over: logs_over_bytes.unwrap_or(DEFAULT_LOGS_OVER_BYTES),
        journal_keep_days: journal_keep_days.unwrap_or(DEFAULT_JOURNAL_KEEP_DAYS),
    })
}

fn labelled(spec: &Spec<'_>, labels: &BTreeMap<String, String>) -> bool {
    spec.label.is_none_or(|(k, v)| labels.get(k).is_some_and(|have| v.is_none_or(|v| have == v)))
}

/// The Docker data root when the engine's files are on this machine (a local socket and the
/// directory here): what lets logs be truncated and space be measured.
async fn local_root(ctx: &Context, rt: &dyn ContainerRuntime) -> Option<PathBuf> {
    let host = ctx.config.docker.host.as_deref().unwrap_or("unix://");
    if !host.starts_with("unix://") {
        return None;
    }
    let root = PathBuf::from(rt.ping().await.ok()?.root_dir?);
    root.is_dir().then_some(root)
}

/// Whether an executable named `name` is on `PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .any(|d| std::fs::metadata(d.join(name)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    })
}

fn target(id: String, bytes: u64, filesystem: Option<&Path>, extra: &[(&str, String)]) -> Target {
    let mut details = BTreeMap::from([("bytes".to_owned(), bytes.to_string())]);
    if let Some(fs) = filesystem {
        details.insert("filesystem".to_owned(), fs.display().to_string());
    }
    for (k, v) in extra {
        details.insert((*k).to_owned(), v.clone());
    }
    Target { id, details }
}

/// Whether a volume is anonymous (Docker labels it so since 23; before, its name is 64 hex).
fn anonymous(name: &str, labels: &BTreeMap<String, String>) -> bool {
    labels.contains_key("com.docker.volume.anonymous")
        || (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a volume may go: anonymous, no container mounts it, not the stack's.
fn removable_volume(ctx: &Context, df: &EngineDisk, v: &ops_core::ports::DiskVolume) -> bool {
    let project = ctx.config.project.compose_project.as_deref();
    let stacks =
        project.is_some_and(|p| v.labels.get(ops_core::ports::COMPOSE_PROJECT_LABEL).map(String::as_str) == Some(p));
    anonymous(&v.name, &v.labels)
        && v.ref_count == Some(0)
        && !df.containers.iter().any(|c| c.volumes.contains(&v.name))
        && !stacks
}

/// The images a cleanup may remove now: no container uses them (but those in `leaving`), no
/// other image is built on them, the ledger does not keep them; dangling only unless
/// `all_images`.
fn removable_images<'d>(
    df: &'d EngineDisk,
    released: &BTreeSet<String>,
    leaving: &BTreeSet<String>,
    spec: &Spec<'_>,
) -> Vec<&'d ops_core::ports::DiskImage> {
    df.images
        .iter()
        .filter(|i| spec.all_images || i.tags.is_empty())
        .filter(|i| labelled(spec, &i.labels))
        .filter(|i| !released.contains(&i.id))
        .filter(|i| !df.containers.iter().any(|c| c.image_id == i.id && !leaving.contains(&c.id)))
        .filter(|i| !df.images.iter().any(|child| child.parent_id == i.id))
        .collect()
}

/// The archived journal files older than `keep_days` (what `--vacuum-time` deletes; the
/// active file of each journal stays): their bytes.
fn journal_estimate(roots: &[&Path], keep_days: u64, now: std::time::SystemTime) -> std::result::Result<u64, String> {
    let cutoff = now.checked_sub(Duration::from_secs(keep_days.saturating_mul(86_400)));
    let mut bytes = 0u64;
    for root in roots {
        let Some(machines) = read_dir(root)? else { continue };
        for dir in machines.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
            let Some(files) = read_dir(&dir)? else { continue };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let archived = name.ends_with(".journal~") || (name.ends_with(".journal") && name.contains('@'));
                let old = f.metadata().ok().and_then(|m| m.modified().ok()).zip(cutoff).is_some_and(|(m, c)| m < c);
                if archived && old {
                    bytes = bytes.saturating_add(diskspace::file_bytes(&f.path()).unwrap_or(0));
                }
            }
        }
    }
    Ok(bytes)
}

/// A directory's entries; `None` when it does not exist, the reason when it cannot be read.
fn read_dir(dir: &Path) -> std::result::Result<Option<std::fs::ReadDir>, String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{} cannot be read: {e}", dir.display())),
    }
}

/// What `apt-get clean` deletes: downloaded packages (complete and partial) and the package
/// cache files.
fn apt_estimate(root: &Path) -> std::result::Result<u64, String> {
    let mut bytes = 0u64;
    for dir in [root.join("archives"), root.join("archives/partial"), root.to_path_buf()] {
        let Some(files) = read_dir(&dir)? else { continue };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let cleaned = if dir == root { name.ends_with(".bin") } else { name != "lock" };
            if cleaned && f.file_type().is_ok_and(|t| t.is_file()) {
                bytes = bytes.saturating_add(diskspace::file_bytes(&f.path()).unwrap_or(0));
            }
        }
    }
    Ok(bytes)
}

/// What `action` (disk-clean) would free, item by item, without changing anything.
///
/// # Errors
/// `InvalidInput` for volumes not asked for explicitly; `Unavailable` when the engine or the
/// backup storage cannot be read.
pub(crate) async fn plan(ctx: &Context, action: &Action) -> Result<ActionPlan> {
    let spec = spec(action)?;
    let now = Utc::now();
    let mut plan =
        ActionPlan { action: action.clone(), targets: Vec::new(), summary: String::new(), notes: Vec::new() };
    let engine_items =
        [DiskItem::Containers, DiskItem::Images, DiskItem::BuildCache, DiskItem::Volumes, DiskItem::Logs];
    // A part that cannot be read is a note, and the others are still planned; with nothing
    // to plan at all, its error.
    let mut failed: Option<Error> = None;
    if engine_items.iter().any(|i| spec.items.contains(i))
        && let Err(e) = plan_engine(ctx, &spec, now, &mut plan).await
    {
        plan.notes.push(format!("engine: not looked at: {e}"));
        failed.get_or_insert(e);
    }
    if spec.items.contains(&DiskItem::Backups)
        && let Err(e) = plan_backups(ctx, now, &mut plan).await
    {
        plan.notes.push(format!("backups: not looked at: {e}"));
        failed.get_or_insert(e);
    }
    if spec.items.contains(&DiskItem::Journal) {
        if on_path("journalctl") {
            let roots = JOURNAL_DIRS.map(Path::new);
            let fs = JOURNAL_DIRS.iter().map(Path::new).find(|p| p.is_dir());
            match journal_estimate(&roots, spec.journal_keep_days, std::time::SystemTime::now()) {
                Ok(0) => {
                    plan.notes.push(format!("journal: no archived file older than {} days", spec.journal_keep_days));
                }
                Ok(bytes) => {
                    let keep = spec.journal_keep_days.to_string();
                    plan.targets.push(target("journal".to_owned(), bytes, fs, &[("keep-days", keep)]));
                }
                Err(e) => plan.notes.push(format!("journal: not looked at: {e}")),
            }
        } else {
            plan.notes.push("journal: no journalctl on this machine".to_owned());
        }
    }
    if spec.items.contains(&DiskItem::Apt) {
        if on_path("apt-get") {
            match apt_estimate(Path::new(APT_CACHE)) {
                Ok(0) => plan.notes.push("apt: the cache is empty".to_owned()),
                Ok(bytes) => {
                    plan.targets.push(target("apt-cache".to_owned(), bytes, Some(Path::new(APT_CACHE)), &[]));
                }
                Err(e) => plan.notes.push(format!("apt: not looked at: {e}")),
            }
        } else {
            plan.notes.push("apt: no apt-get on this machine".to_owned());
        }
    }
    if plan.targets.is_empty()
        && let Some(e) = failed
    {
        return Err(e);
    }
    let total: u64 = plan.targets.iter().map(estimate).sum();
    plan.summary = match plan.targets.len() {
        0 => format!(
            "nothing to free ({} looked at)",
            spec.items.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
        ),
        n => format!("free about {} in {n} item{}", human_bytes(total), if n == 1 { "" } else { "s" }),
    };
    Ok(plan)
}

/// A target's estimate in bytes.
#[must_use]
pub fn estimate(t: &Target) -> u64 {
    t.details.get("bytes").and_then(|b| b.parse().ok()).unwrap_or(0)
}

async fn plan_engine(ctx: &Context, spec: &Spec<'_>, now: DateTime<Utc>, plan: &mut ActionPlan) -> Result<()> {
    let rt = stack::runtime(ctx)?;
    let root = local_root(ctx, rt).await;
    let df = rt.disk_report().await?;
    let fs = root.as_deref();
    let mut leaving = BTreeSet::new();
    if spec.items.contains(&DiskItem::Containers) {
        let (candidates, _) = crate::services::prune_candidates(ctx, None).await?;
        let listed: BTreeSet<&str> = candidates
            .iter()
            .filter_map(|t| match t {
                EnginePruneTarget::Container { id, .. } => Some(id.as_str()),
                EnginePruneTarget::Image { .. } => None,
            })
            .collect();
        for c in df.containers.iter().filter(|c| labelled(spec, &c.labels)) {
            if matches!(c.state.as_str(), "exited" | "created" | "dead") && !listed.contains(c.id.as_str()) {
                plan.notes.push(format!("containers: {} is a stopped container of the stack: kept", c.name));
            }
        }
        for t in candidates {
            let EnginePruneTarget::Container { id, name, bytes } = t else { continue };
            let Some(c) = df.containers.iter().find(|c| c.id == id) else { continue };
            if !labelled(spec, &c.labels) {
                continue;
            }
            // Its log goes with it.
            let log = match (fs, rt.log_file(&id).await) {
                (Some(_), Ok(Some(path))) => diskspace::file_bytes(Path::new(&path)).unwrap_or(0),
                _ => 0,
            };
            leaving.insert(id.clone());
            let extra = [("id", id.clone()), ("image-id", c.image_id.clone()), ("log-bytes", log.to_string())];
            plan.targets.push(target(format!("container:{name}"), bytes.saturating_add(log), fs, &extra));
        }
    }
    if spec.items.contains(&DiskItem::Images) {
        match crate::services::released_images(ctx).await {
            None => plan.notes.push(
                "images: all kept, the release ledger (state.url) cannot be read to tell which a rollback needs"
                    .to_owned(),
            ),
            Some(released) => {
                let kept = removable_images(&df, &BTreeSet::new(), &leaving, spec).len()
                    - removable_images(&df, &released, &leaving, spec).len();
                if kept > 0 {
                    plan.notes.push(format!("images: {kept} kept as versions in the release ledger (rollback)"));
                }
                for i in removable_images(&df, &released, &leaving, spec) {
                    // Layers other images share stay; what only it holds goes.
                    let bytes = i.size_bytes.saturating_sub(i.shared_bytes);
                    let tags = if i.tags.is_empty() { "<none>".to_owned() } else { i.tags.join(",") };
                    let extra = [("id", i.id.clone()), ("tags", tags)];
                    plan.targets.push(target(format!("image:{}", crate::services::short_id(&i.id)), bytes, fs, &extra));
                }
            }
        }
    }
    if spec.items.contains(&DiskItem::BuildCache) {
        let free: Vec<_> = df.build_cache.iter().filter(|b| b.reclaimable()).collect();
        let bytes: u64 = free.iter().map(|b| b.size_bytes).sum();
        if bytes > 0 {
            let extra = [("records", free.len().to_string()), ("last-used-before", now.to_rfc3339())];
            plan.targets.push(target("build-cache".to_owned(), bytes, fs, &extra));
        } else {
            plan.notes.push("build-cache: nothing that no image shares".to_owned());
        }
        if spec.items.contains(&DiskItem::Images) && df.build_cache.iter().any(|b| b.shared) {
            plan.notes.push(
                "images: layers the build cache holds too are freed with the build cache, not with the image"
                    .to_owned(),
            );
        }
    }
    if spec.items.contains(&DiskItem::Volumes) {
        let mut named = 0usize;
        for v in df.volumes.iter().filter(|v| labelled(spec, &v.labels)) {
            if removable_volume(ctx, &df, v) {
                let extra = [("size-known", v.size_bytes.is_some().to_string())];
                plan.targets.push(target(format!("volume:{}", v.name), v.size_bytes.unwrap_or(0), fs, &extra));
            } else if v.ref_count == Some(0) && !anonymous(&v.name, &v.labels) {
                named += 1;
            }
        }
        if named > 0 {
            plan.notes.push(format!(
                "volumes: {named} named volume{} no container uses kept (a stopped stack's data looks the same): \
                 remove one by name when you know it is not needed",
                if named == 1 { "" } else { "s" }
            ));
        }
    }
    if spec.items.contains(&DiskItem::Logs) {
        if fs.is_none() {
            plan.notes.push("logs: the engine's files are not on this machine".to_owned());
        } else {
            let before = plan.targets.len();
            for c in df.containers.iter().filter(|c| !leaving.contains(&c.id) && labelled(spec, &c.labels)) {
                let Ok(Some(path)) = rt.log_file(&c.id).await else { continue };
                let bytes = diskspace::file_bytes(Path::new(&path)).unwrap_or(0);
                if bytes > spec.logs_over {
                    let extra = [("id", c.id.clone()), ("path", path.clone()), ("over", spec.logs_over.to_string())];
                    let dir = Path::new(&path).parent().map(Path::to_path_buf);
                    plan.targets.push(target(format!("log:{}", c.name), bytes, dir.as_deref(), &extra));
                }
            }
            if plan.targets.len() == before {
                plan.notes.push(format!("logs: no container log over {}", human_bytes(spec.logs_over)));
            }
        }
    }
    Ok(())
}

async fn plan_backups(ctx: &Context, now: DateTime<Utc>, plan: &mut ActionPlan) -> Result<()> {
    if ctx.config.storage.is_none() {
        plan.notes.push("backups: no backup storage configured".to_owned());
        return Ok(());
    }
    let opts = ops_backup::PruneOptions { dry_run: true, ..Default::default() };
    let report = ops_backup::prune(ctx, &opts, now).await?;
    let catalog = ops_backup::list(ctx).await?;
    let local = ops_backup::target::local_dir(ctx);
    for dest in &report.destinations {
        for d in dest.decisions.iter().filter(|d| d.action == ops_backup::retention::Verdict::Delete) {
            let bytes = catalog
                .iter()
                .find(|b| b.id == d.id)
                .and_then(|b| b.copies.iter().find(|c| c.location == dest.location))
                .and_then(|c| c.size_bytes)
                .unwrap_or(0);
            let fs = local.as_deref().filter(|l| dest.location == format!("file://{}", l.display()));
            let extra = [
                ("location", dest.location.clone()),
                ("backup", d.id.to_string()),
                ("database", d.database.clone().unwrap_or_default()),
                ("rule", d.rule.clone()),
            ];
            plan.targets.push(target(format!("backup:{}@{}", d.id, dest.location), bytes, fs, &extra));
        }
    }
    Ok(())
}

/// Space used on the filesystem holding `path`, when it can be measured here.
async fn used(path: Option<&str>) -> Option<u64> {
    let path = PathBuf::from(path?);
    tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(move || diskspace::stats(&path)))
        .await
        .ok()?
        .ok()?
        .ok()
        .map(|s| s.used_bytes)
}

/// Runs an argv (never a shell) to its end within [`COMMAND_TIMEOUT`]: its error, if any.
async fn run(argv: &[&str]) -> std::result::Result<(), String> {
    let mut cmd = tokio::process::Command::new(argv[0]);
    cmd.args(&argv[1..]).stdin(std::process::Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
        Err(_) => Err(format!(
            "{} did not finish within {}",
            argv.join(" "),
            ops_core::units::human_duration(COMMAND_TIMEOUT)
        )),
        Ok(Err(e)) => Err(format!("{}: {e}", argv[0])),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            Err(format!("{} exited with {}: {last}", argv.join(" "), out.status))
        }
    }
}

/// The live state an item is re-checked against: read once per apply (`/system/df` takes
/// a while on a large engine), and kept up to date with what the apply removed.
struct Live {
    df: Option<EngineDisk>,
    released: Option<Option<BTreeSet<String>>>,
    prune: Option<Vec<EnginePruneTarget>>,
}

/// Frees what `plan` lists, item by item in its order, each re-checked first; one audit
/// record per item with its estimate and what its filesystem gained.
///
/// # Errors
/// Those of [`plan`] for a bad action; `Unavailable` when the audit log cannot be written or
/// the engine stops answering (what was done up to then stays done).
pub(crate) async fn apply(ctx: &Context, plan: &ActionPlan, audit: &Audit) -> Result<Vec<Outcome>> {
    let spec = spec(&plan.action)?;
    let mut live = Live { df: None, released: None, prune: None };
    let mut outcomes = Vec::new();
    let backups: Vec<&Target> = plan.targets.iter().filter(|t| t.id.starts_with("backup:")).collect();
    let mut backups_done = false;
    for t in &plan.targets {
        if t.id.starts_with("backup:") {
            if !backups_done {
                backups_done = true;
                for o in apply_backups(ctx, &backups).await? {
                    audit.record(plan.action.name(), &o.target, o.before.clone(), o.after.clone(), &o.result)?;
                    outcomes.push(o);
                }
            }
            continue;
        }
        let fs = t.details.get("filesystem").map(String::as_str);
        let before_used = used(fs).await;
        let result = apply_one(ctx, &spec, t, &mut live).await;
        let after_used = used(fs).await;
        let measured = before_used.zip(after_used).map(|(b, a)| b.saturating_sub(a));
        let (ok, result, reported) = match result {
            Ok(reported) => (true, "ok".to_owned(), reported),
            Err(Skip(why)) => (false, format!("skipped: {why}"), None),
            Err(Failed(e)) if e.kind() == ops_core::ErrorKind::Unavailable => return Err(e),
            Err(Failed(e)) => (false, format!("failed: {e}"), None),
        };
        let freed = if ok { measured.or(reported) } else { None };
        let how = if !ok {
            "none"
        } else if measured.is_some() {
            "df"
        } else if reported.is_some() {
            "engine"
        } else {
            "unmeasured"
        };
        let outcome = Outcome {
            target: t.id.clone(),
            ok,
            result,
            before: json!({ "estimate_bytes": estimate(t) }),
            after: json!({ "freed_bytes": freed, "measured_by": how }),
        };
        audit.record(
            plan.action.name(),
            &outcome.target,
            outcome.before.clone(),
            outcome.after.clone(),
            &outcome.result,
        )?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Why an item was not freed.
enum Refusal {
    /// It changed since the plan.
    Skip(String),
    /// Freeing it failed.
    Failed(Error),
}
use Refusal::{Failed, Skip};

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Failed(e)
    }
}

async fn fresh_df<'l>(rt: &dyn ContainerRuntime, live: &'l mut Live) -> Result<&'l EngineDisk> {
    if live.df.is_none() {
        live.df = Some(rt.disk_report().await?);
    }
    Ok(live.df.as_ref().unwrap_or_else(|| unreachable!()))
}

/// Frees one item: the bytes the engine says it freed, when it says.
async fn apply_one(
    ctx: &Context,
    spec: &Spec<'_>,
    t: &Target,
    live: &mut Live,
) -> std::result::Result<Option<u64>, Refusal> {
    let rt = stack::runtime(ctx)?;
    let detail = |k: &str| t.details.get(k).cloned().unwrap_or_default();
    let (kind, _) = t.id.split_once(':').unwrap_or((t.id.as_str(), ""));
    match kind {
        "container" => {
            if live.prune.is_none() {
                live.prune = Some(crate::services::prune_candidates(ctx, None).await?.0);
            }
            let id = detail("id");
            let Some(item) = live.prune.as_ref().and_then(|p| {
                p.iter().find(|c| matches!(c, EnginePruneTarget::Container { id: i, .. } if *i == id)).cloned()
            }) else {
                return Err(Skip("no longer a stopped container outside the stack".to_owned()));
            };
            let report = rt.prune(&ops_core::ports::EnginePrunePlan { targets: vec![item] }).await?;
            if let Some(df) = live.df.as_mut() {
                df.containers.retain(|c| c.id != id);
            }
            match report.skipped.first() {
                Some((_, why)) => Err(Skip(why.clone())),
                None => Ok(None),
            }
        }
        "image" => {
            if live.released.is_none() {
                live.released = Some(crate::services::released_images(ctx).await);
            }
            let Some(Some(released)) = live.released.clone() else {
                return Err(Skip("the release ledger cannot be read to tell whether a rollback needs it".to_owned()));
            };
            let id = detail("id");
            let df = fresh_df(rt, live).await?;
            if !removable_images(df, &released, &BTreeSet::new(), spec).iter().any(|i| i.id == id) {
                return Err(Skip("in use, kept by the release ledger, or tagged since the plan".to_owned()));
            }
            // The engine re-checks the containers at the moment of removing (see `remove_image`).
            rt.remove_image(&id).await?;
            if let Some(df) = live.df.as_mut() {
                df.images.retain(|i| i.id != id);
            }
            Ok(None)
        }
        "build-cache" => {
            let before = DateTime::parse_from_rfc3339(&detail("last-used-before"))
                .map_err(|e| Failed(Error::invalid_input(format!("build-cache: last-used-before: {e}"))))?
                .with_timezone(&Utc);
            let freed = rt.prune_build_cache(before).await?;
            if let Some(df) = live.df.as_mut() {
                df.build_cache.retain(|b| !b.reclaimable());
            }
            Ok(Some(freed))
        }
        "volume" => {
            let name = t.id.trim_start_matches("volume:").to_owned();
            let df = fresh_df(rt, live).await?;
            let Some(v) = df.volumes.iter().find(|v| v.name == name) else {
                return Err(Skip("gone already".to_owned()));
            };
            if !removable_volume(ctx, df, v) {
                return Err(Skip("a container uses it now".to_owned()));
            }
            rt.remove_volume(&name).await?;
            if let Some(df) = live.df.as_mut() {
                df.volumes.retain(|v| v.name != name);
            }
            Ok(None)
        }
        "log" => {
            let path = detail("path");
            match rt.log_file(&detail("id")).await {
                Ok(Some(p)) if p == path => {}
                Ok(_) => return Err(Skip("the container logs elsewhere now".to_owned())),
                Err(e) if e.kind() == ops_core::ErrorKind::NotFound => {
                    return Err(Skip("the container is gone".to_owned()));
                }
                Err(e) => return Err(Failed(e)),
            }
            let bytes = diskspace::file_bytes(Path::new(&path))
                .map_err(|e| Skip(format!("its log file cannot be measured now: {e}")))?;
            if bytes <= spec.logs_over {
                return Err(Skip(format!("{} now, not over {}", human_bytes(bytes), human_bytes(spec.logs_over))));
            }
            // The engine appends (O_APPEND), so the next line lands at the start of the emptied file.
            let truncate = || std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(0));
            truncate().map_err(|e| Failed(Error::internal(format!("truncating the log of {}: {e}", t.id))))?;
            Ok(None)
        }
        "journal" => {
            let days = format!("--vacuum-time={}d", spec.journal_keep_days);
            run(&["journalctl", &days]).await.map_err(|e| Failed(Error::internal(e)))?;
            Ok(None)
        }
        "apt-cache" => {
            run(&["apt-get", "clean"]).await.map_err(|e| Failed(Error::internal(e)))?;
            Ok(None)
        }
        other => Err(Failed(Error::invalid_input(format!("disk-clean cannot free {other:?} items")))),
    }
}

/// Deletes the planned backups the retention plan still deletes, through the retention prune
/// (which keeps its own audit records): one outcome per planned backup.
async fn apply_backups(ctx: &Context, targets: &[&Target]) -> Result<Vec<Outcome>> {
    let only: BTreeSet<(String, String)> = targets
        .iter()
        .map(|t| {
            let d = |k: &str| t.details.get(k).cloned().unwrap_or_default();
            (d("location"), d("backup"))
        })
        .collect();
    let local = ops_backup::target::local_dir(ctx);
    let fs = local.as_ref().map(|l| l.display().to_string());
    let before_used = used(fs.as_deref()).await;
    let opts = ops_backup::PruneOptions { dry_run: false, only: Some(only), ..Default::default() };
    let report = ops_backup::prune(ctx, &opts, Utc::now()).await?;
    let after_used = used(fs.as_deref()).await;
    let local_freed = before_used.zip(after_used).map(|(b, a)| b.saturating_sub(a));
    let local_planned: u64 = targets.iter().filter(|t| t.details.contains_key("filesystem")).map(|t| estimate(t)).sum();
    let mut outcomes = Vec::new();
    for t in targets {
        let d = |k: &str| t.details.get(k).cloned().unwrap_or_default();
        let (location, backup) = (d("location"), d("backup"));
        let dest = report.destinations.iter().find(|x| x.location == location);
        let deleted = dest.is_some_and(|x| x.deleted.iter().any(|id| id.to_string() == backup));
        let failed = dest.and_then(|x| x.failed.iter().find(|(id, _)| id.to_string() == backup));
        let (ok, result) = match (deleted, failed) {
            (true, _) => (true, "ok".to_owned()),
            (false, Some((_, why))) => (false, format!("failed: {why}")),
            (false, None) => (false, "skipped: the retention plan keeps it now".to_owned()),
        };
        // A local directory's gain is shared out in proportion to the estimates; an object
        // store's is what the objects weighed.
        let (freed, how) = match (ok, t.details.contains_key("filesystem"), local_freed) {
            (false, ..) => (None, "none"),
            (true, true, Some(f)) if local_planned > 0 => (
                Some(u64::try_from(u128::from(f) * u128::from(estimate(t)) / u128::from(local_planned)).unwrap_or(0)),
                "df",
            ),
            (true, ..) => (Some(estimate(t)), "size"),
        };
        outcomes.push(Outcome {
            target: t.id.clone(),
            ok,
            result,
            before: json!({ "estimate_bytes": estimate(t) }),
            after: json!({ "freed_bytes": freed, "measured_by": how }),
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(only: &[DiskItem], volumes: bool) -> Action {
        labelled_action(only, volumes, false, "ops.it=1")
    }

    fn labelled_action(only: &[DiskItem], volumes: bool, all_images: bool, label: &str) -> Action {
        Action::DiskClean {
            only: only.to_vec(),
            volumes,
            all_images,
            label: Some(label.into()),
            logs_over_bytes: None,
            journal_keep_days: None,
        }
    }

    #[test]
    fn volumes_only_when_asked_for_and_everything_else_by_default() {
        let a = action(&[], false);
        let s = spec(&a).unwrap();
        assert!(!s.items.contains(&DiskItem::Volumes) && s.items.len() == 7);
        assert!(spec(&action(&[], true)).unwrap().items.contains(&DiskItem::Volumes));
        let refused = spec(&action(&[DiskItem::Volumes], false)).err().unwrap();
        assert!(refused.to_string().contains("volumes: true"), "{refused}");
        let a = action(&[DiskItem::Logs], false);
        let s = spec(&a).unwrap();
        assert_eq!(s.items.into_iter().collect::<Vec<_>>(), [DiskItem::Logs]);
        assert_eq!(
            (s.logs_over, s.journal_keep_days, s.label),
            (DEFAULT_LOGS_OVER_BYTES, 3, Some(("ops.it", Some("1"))))
        );
        assert_eq!("build-cache".parse::<DiskItem>(), Ok(DiskItem::BuildCache));
        assert!("tmp".parse::<DiskItem>().unwrap_err().contains("build-cache"));
    }

    fn image(id: &str, tags: &[&str], parent: &str) -> ops_core::ports::DiskImage {
        ops_core::ports::DiskImage {
            id: id.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            size_bytes: 100,
            shared_bytes: 10,
            containers: 0,
            parent_id: parent.into(),
            labels: BTreeMap::from([("ops.it".to_owned(), "1".to_owned())]),
        }
    }

    #[test]
    fn images_in_use_released_parents_or_tagged_stay() {
        let df = EngineDisk {
            images: vec![
                image("dangling", &[], ""),
                image("tagged", &["app:2"], ""),
                image("released", &[], ""),
                image("used", &[], ""),
                image("leaving", &[], ""),
                image("parent", &[], ""),
                image("child", &["child:1"], "parent"),
            ],
            containers: vec![
                ops_core::ports::DiskContainer { id: "c1".into(), image_id: "used".into(), ..Default::default() },
                ops_core::ports::DiskContainer { id: "c2".into(), image_id: "leaving".into(), ..Default::default() },
            ],
            ..Default::default()
        };
        let released = BTreeSet::from(["released".to_owned()]);
        let leaving = BTreeSet::from(["c2".to_owned()]);
        let a = action(&[DiskItem::Images], false);
        let s = spec(&a).unwrap();
        let ids = |s: &Spec<'_>| -> Vec<String> {
            removable_images(&df, &released, &leaving, s).iter().map(|i| i.id.clone()).collect()
        };
        assert_eq!(ids(&s), ["dangling", "leaving"]);
        let all = labelled_action(&[DiskItem::Images], false, true, "ops.it=1");
        assert_eq!(ids(&spec(&all).unwrap()), ["dangling", "tagged", "leaving", "child"]);
        let other_label = labelled_action(&[DiskItem::Images], false, false, "ops.it=2");
        assert!(ids(&spec(&other_label).unwrap()).is_empty());
    }

    #[test]
    fn only_unused_anonymous_volumes_outside_the_stack_go() {
        let mut config = ops_core::config::OpsConfig::default();
        config.project.compose_project = Some("shop".into());
        let ctx = Context::empty(config);
        let vol = |name: &str, refs: Option<u64>, labels: &[(&str, &str)]| ops_core::ports::DiskVolume {
            name: name.into(),
            driver: "local".into(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            size_bytes: Some(1),
            ref_count: refs,
        };
        let hex = "a".repeat(64);
        let df = EngineDisk {
            containers: vec![ops_core::ports::DiskContainer { volumes: vec!["mounted".into()], ..Default::default() }],
            ..Default::default()
        };
        assert!(removable_volume(&ctx, &df, &vol(&hex, Some(0), &[])));
        assert!(removable_volume(&ctx, &df, &vol("x", Some(0), &[("com.docker.volume.anonymous", "")])));
        assert!(!removable_volume(&ctx, &df, &vol("pgdata", Some(0), &[])), "named");
        assert!(!removable_volume(&ctx, &df, &vol(&hex, Some(1), &[])), "in use");
        assert!(!removable_volume(&ctx, &df, &vol(&hex, None, &[])), "not counted");
        let mounted = vol("mounted", Some(0), &[("com.docker.volume.anonymous", "")]);
        assert!(!removable_volume(&ctx, &df, &mounted), "a container mounts it");
        let stack = vol(&hex, Some(0), &[("com.docker.compose.project", "shop")]);
        assert!(!removable_volume(&ctx, &df, &stack), "the stack's");
    }

    fn file(path: &Path, bytes: usize, age_days: u64) {
        std::fs::write(path, vec![7u8; bytes]).unwrap();
        let when = std::time::SystemTime::now() - Duration::from_secs(age_days * 86_400);
        std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
    }

    #[test]
    fn journal_files_archived_and_old_count() {
        let root = tempfile::tempdir().unwrap();
        let m = root.path().join("0123abcd");
        std::fs::create_dir(&m).unwrap();
        file(&m.join("system@0005f-0001.journal"), 40_960, 10);
        file(&m.join("user-1000@0005f-0002.journal~"), 8_192, 10);
        file(&m.join("system@0005f-0003.journal"), 4_096, 1);
        file(&m.join("system.journal"), 16_384, 10);
        let now = std::time::SystemTime::now();
        let bytes = journal_estimate(&[root.path(), Path::new("/nonexistent")], 3, now).unwrap();
        assert_eq!(bytes, 40_960 + 8_192, "archived and older than 3 days; never the active file");
        assert_eq!(journal_estimate(&[root.path()], 30, now).unwrap(), 0);
        // A directory that cannot be read is said, not taken for an empty one.
        let not_a_dir = root.path().join("plain");
        file(&not_a_dir, 10, 0);
        let err = journal_estimate(&[&not_a_dir], 3, now).unwrap_err();
        assert!(err.contains("plain") && err.contains("cannot be read"), "{err}");
    }

    #[test]
    fn apt_cache_is_packages_and_cache_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("archives/partial")).unwrap();
        file(&root.path().join("archives/curl.deb"), 8_192, 0);
        file(&root.path().join("archives/partial/wget.deb"), 4_096, 0);
        file(&root.path().join("archives/lock"), 4_096, 0);
        file(&root.path().join("pkgcache.bin"), 12_288, 0);
        file(&root.path().join("keep.txt"), 4_096, 0);
        assert_eq!(apt_estimate(root.path()).unwrap(), 8_192 + 4_096 + 12_288);
        assert!(apt_estimate(&root.path().join("keep.txt")).is_err(), "a cache that cannot be read");
    }
}
