//! The machine the probes run on: the runbooks' `df -h` (and `df -h /var/lib/docker`),
//! `free -h` and `uptime`.
//!
//! Disks come from `/proc/self/mounts` (pseudo filesystems, container layers and bind mounts of
//! a device already listed are skipped) and `statvfs(2)`; memory from `/proc/meminfo`
//! (`MemTotal − MemAvailable`, what `free` calls used); load from `/proc/loadavg` over the
//! online cores. The parsers are pure functions.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ops_core::config::HostThresholds;
use ops_core::{Runbook, Status};

use crate::report::{Observation, ProbeKind, ProbeReport, Problem, Unit};
use crate::support::within;
pub use ops_core::diskspace::DiskStats;
use ops_core::units::{human_bytes, human_duration, percent};

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What is mounted (`/dev/sda1`, `server:/export`, `tmpfs`).
    pub source: String,
    /// Where (`/`, `/var/lib/docker`).
    pub path: PathBuf,
    /// Filesystem type (`ext4`, `nfs4`, `tmpfs`).
    pub fs_type: String,
}

/// Parses `/proc/mounts` (`source path type options dump pass`), decoding the octal escapes
/// the kernel writes for spaces, tabs, newlines and backslashes (`\040`). Malformed lines are
/// skipped.
#[must_use]
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (source, path, fs_type) = (fields.next()?, fields.next()?, fields.next()?);
            Some(Mount { source: unescape(source), path: PathBuf::from(unescape(path)), fs_type: fs_type.to_owned() })
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 4]).ok().and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(b);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Filesystem types that hold no user data on a disk, or are read-only images that always
/// look full.
const PSEUDO: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "fuse.snapfuse",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nfsd",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// Mount points of container layers, network namespaces and snaps.
const CONTAINER_DIRS: &[&str] = &[
    "/var/lib/docker/",
    "/run/docker/",
    "/var/run/docker/",
    "/var/lib/containerd/",
    "/run/containerd/",
    "/var/lib/kubelet/",
    "/run/netns/",
    "/snap/",
    "/proc/",
    "/sys/",
    "/dev/",
];

/// Whether a filesystem type is a pseudo filesystem (`proc`, `tmpfs`, `cgroup2`, `squashfs`…).
#[must_use]
pub fn is_pseudo(fs_type: &str) -> bool {
    PSEUDO.contains(&fs_type)
}

/// Whether a mount holds user data worth watching: not a pseudo filesystem, not a container's
/// layer, shm or namespace (anything below the Docker data root or `/var/lib/docker/`).
#[must_use]
pub fn is_real(mount: &Mount, docker_root: Option<&Path>) -> bool {
    let path = mount.path.to_string_lossy();
    let under = |dir: &str| path.starts_with(dir);
    let under_root = docker_root.is_some_and(|r| mount.path.starts_with(r) && mount.path != r);
    !is_pseudo(&mount.fs_type) && !CONTAINER_DIRS.iter().any(|d| under(d)) && !under_root
}

/// A path whose filesystem the host probe measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskTarget {
    /// The mount point (or configured path).
    pub path: PathBuf,
    /// Whether the Docker data root lives on this filesystem.
    pub docker_root: bool,
    /// Configured in `probes.host.mounts` or the data root (not discovered): failing to
    /// measure it is a problem, not a footnote.
    pub required: bool,
}

/// The filesystems to measure: `wanted` when given, else every real mount (see [`is_real`]),
/// one per device (`/` rather than a bind mount of the same disk at `/var/lib/docker`); plus
/// the filesystem of `docker_root` when none of those holds it.
#[must_use]
pub fn disk_targets(mounts: &[Mount], wanted: &[PathBuf], docker_root: Option<&Path>) -> Vec<DiskTarget> {
    let mut targets: Vec<DiskTarget> = if wanted.is_empty() {
        let mut real: Vec<&Mount> = mounts.iter().filter(|m| is_real(m, docker_root)).collect();
        real.sort_by(|a, b| a.path.components().count().cmp(&b.path.components().count()).then(a.path.cmp(&b.path)));
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for m in real {
            let key = device_key(m);
            if !seen.contains(&key) {
                seen.push(key);
                out.push(DiskTarget { path: m.path.clone(), docker_root: false, required: false });
            }
        }
        out
    } else {
        wanted.iter().map(|p| DiskTarget { path: p.clone(), docker_root: false, required: true }).collect()
    };
    if let Some(root) = docker_root {
        let holder = holding(mounts, root).map(device_key);
        let found = targets
            .iter_mut()
            .find(|t| t.path == root || (holder.is_some() && holding(mounts, &t.path).map(device_key) == holder));
        match found {
            Some(t) => t.docker_root = true,
            None => targets.push(DiskTarget { path: root.to_path_buf(), docker_root: true, required: true }),
        }
    }
    targets
}

/// The mount holding `path`: the one with the longest mount point above it (the last one
/// mounted when several share it).
fn holding<'m>(mounts: &'m [Mount], path: &Path) -> Option<&'m Mount> {
    mounts.iter().filter(|m| path.starts_with(&m.path)).max_by_key(|m| m.path.components().count())
}

/// Mounts of the same block device are the same filesystem; anything else is told apart by
/// its mount point.
fn device_key(m: &Mount) -> String {
    if m.source.starts_with('/') { m.source.clone() } else { format!("{}@{}", m.source, m.path.display()) }
}

/// Observations of one filesystem (labelled `mount`) and its `disk-full` problem: space or
/// inodes over `t.disk_warn_percent` / `t.disk_critical_percent`. Read-only filesystems are
/// never full.
#[must_use]
pub fn assess_disk(target: &DiskTarget, s: &DiskStats, t: &HostThresholds) -> (Vec<Observation>, Option<Problem>) {
    let mount = target.path.display().to_string();
    let used = s.used_percent();
    #[allow(clippy::cast_precision_loss)]
    let mut observations = vec![
        Observation::new("disk_used", used, Unit::Percent).label("mount", mount.clone()),
        Observation::new("disk_used_bytes", s.used_bytes as f64, Unit::Bytes).label("mount", mount.clone()),
        Observation::new("disk_available_bytes", s.available_bytes as f64, Unit::Bytes).label("mount", mount.clone()),
        Observation::new("disk_size_bytes", s.total_bytes as f64, Unit::Bytes).label("mount", mount.clone()),
    ];
    let inodes = s.inodes_used_percent();
    observations
        .extend(inodes.map(|i| Observation::new("inodes_used", i, Unit::Percent).label("mount", mount.clone())));
    if s.read_only {
        return (observations, None);
    }
    let worst = used.max(inodes.unwrap_or(0.0));
    let status = if worst > t.disk_critical_percent {
        Status::Critical
    } else if worst > t.disk_warn_percent {
        Status::Warn
    } else {
        return (observations, None);
    };
    let holds = if target.docker_root { " (holds the Docker data root)" } else { "" };
    let message = if inodes.is_some_and(|i| i > used) {
        format!("{mount}{holds}: {:.0} % of inodes used; files cannot be created", inodes.unwrap_or(0.0))
    } else {
        format!(
            "{mount}{holds}: {used:.0} % used, {} free of {}",
            human_bytes(s.available_bytes),
            human_bytes(s.total_bytes)
        )
    };
    let mut problem = Problem::new(Runbook::DiskFull, status, message);
    if target.docker_root {
        problem = problem.with_evidence(["see what pruning frees first: docker system df".to_owned()]);
    }
    (observations, Some(problem))
}

/// What `/proc/meminfo` says about memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable` (estimated from `MemFree + Buffers + Cached` on kernels before 3.14).
    pub available_bytes: u64,
    /// `SwapTotal`.
    pub swap_total_bytes: u64,
    /// `SwapFree`.
    pub swap_free_bytes: u64,
}

impl Memory {
    /// Used, as `free` shows it: total minus available.
    #[must_use]
    pub const fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

/// Parses `/proc/meminfo` (`MemTotal:  16318812 kB`); `None` without `MemTotal`.
#[must_use]
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (key, rest) = l.split_once(':')?;
            if key.trim() != name {
                return None;
            }
            let mut parts = rest.split_whitespace();
            let value: u64 = parts.next()?.parse().ok()?;
            Some(if parts.next() == Some("kB") { value.saturating_mul(1024) } else { value })
        })
    };
    let total_bytes = field("MemTotal")?;
    let available_bytes = field("MemAvailable").unwrap_or_else(|| {
        field("MemFree").unwrap_or(0) + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0)
    });
    Some(Memory {
        total_bytes,
        available_bytes: available_bytes.min(total_bytes),
        swap_total_bytes: field("SwapTotal").unwrap_or(0),
        swap_free_bytes: field("SwapFree").unwrap_or(0),
    })
}

/// Memory observations and the `memory-pressure` problem over `t.memory_warn_percent` /
/// `t.memory_critical_percent`.
#[must_use]
pub fn assess_memory(m: &Memory, t: &HostThresholds) -> (Vec<Observation>, Option<Problem>) {
    let used = percent(m.used_bytes(), m.total_bytes);
    let swap_used = m.swap_total_bytes.saturating_sub(m.swap_free_bytes);
    #[allow(clippy::cast_precision_loss)]
    let observations = vec![
        Observation::new("memory_used", used, Unit::Percent),
        Observation::new("memory_used_bytes", m.used_bytes() as f64, Unit::Bytes),
        Observation::new("memory_total_bytes", m.total_bytes as f64, Unit::Bytes),
        Observation::new("swap_used_bytes", swap_used as f64, Unit::Bytes),
    ];
    let status = if used > t.memory_critical_percent {
        Status::Critical
    } else if used > t.memory_warn_percent {
        Status::Warn
    } else {
        return (observations, None);
    };
    let message = format!(
        "memory {} of {} in use ({used:.0} %), {} available",
        human_bytes(m.used_bytes()),
        human_bytes(m.total_bytes),
        human_bytes(m.available_bytes)
    );
    let evidence = (m.swap_total_bytes > 0)
        .then(|| format!("swap {} of {} in use", human_bytes(swap_used), human_bytes(m.swap_total_bytes)));
    (observations, Some(Problem::new(Runbook::MemoryPressure, status, message).with_evidence(evidence)))
}

/// Load averages from `/proc/loadavg`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// 1-minute average.
    pub one: f64,
    /// 5-minute average.
    pub five: f64,
    /// 15-minute average.
    pub fifteen: f64,
}

/// Parses `/proc/loadavg` (`0.52 0.58 0.59 1/467 12345`).
#[must_use]
pub fn parse_loadavg(text: &str) -> Option<Load> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some(Load { one: fields.next()?.ok()?, five: fields.next()?.ok()?, fifteen: fields.next()?.ok()? })
}

/// Counts the CPUs of a kernel CPU list (`/sys/devices/system/cpu/online`: `0-3,6,8-9`).
#[must_use]
pub fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut count = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        count += match part.split_once('-') {
            Some((a, b)) => b.trim().parse::<usize>().ok()?.checked_sub(a.trim().parse::<usize>().ok()?)? + 1,
            None => {
                part.trim().parse::<usize>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

/// Load observations and the `high-load` problem: the 5-minute load per core over
/// `t.load_warn_per_core` / `t.load_critical_per_core`.
#[must_use]
pub fn assess_load(l: &Load, cores: usize, t: &HostThresholds) -> (Vec<Observation>, Option<Problem>) {
    #[allow(clippy::cast_precision_loss)]
    let cores_f = cores.max(1) as f64;
    let per_core = l.five / cores_f;
    let observations = vec![
        Observation::new("load_1m", l.one, Unit::Ratio),
        Observation::new("load_5m", l.five, Unit::Ratio),
        Observation::new("load_15m", l.fifteen, Unit::Ratio),
        Observation::new("cpu_cores", cores_f, Unit::Count),
        Observation::new("load_per_core", per_core, Unit::Ratio),
    ];
    let status = if per_core > t.load_critical_per_core {
        Status::Critical
    } else if per_core > t.load_warn_per_core {
        Status::Warn
    } else {
        return (observations, None);
    };
    let message = format!("5-minute load {:.2} on {cores} cores ({per_core:.2} per core)", l.five);
    let evidence = format!("load average {:.2} {:.2} {:.2}", l.one, l.five, l.fifteen);
    (observations, Some(Problem::new(Runbook::HighLoad, status, message).with_evidence([evidence])))
}

/// What the probe reads from `/proc` and `/sys` in one go.
struct ProcFiles {
    mounts: Option<String>,
    meminfo: Option<String>,
    loadavg: Option<String>,
    cpus: Option<String>,
    hostname: Option<String>,
}

fn read_proc() -> ProcFiles {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    ProcFiles {
        mounts: read("/proc/self/mounts"),
        meminfo: read("/proc/meminfo"),
        loadavg: read("/proc/loadavg"),
        cpus: read("/sys/devices/system/cpu/online"),
        hostname: read("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()),
    }
}

/// Probes this machine within `timeout`: every real filesystem (or `t.mounts`) and the one
/// holding `docker_root` (see [`RuntimeInfo::root_dir`](ops_core::ports::RuntimeInfo)) against
/// `t.disk_warn_percent` / `t.disk_critical_percent` (`disk-full`), memory
/// (`memory-pressure`) and the 5-minute load per core (`high-load`). The report is `host`, its
/// target the host name. A filesystem whose `statvfs` hangs (a dead NFS server) is reported
/// `unknown` without holding up the rest.
pub async fn probe(t: &HostThresholds, docker_root: Option<&Path>, timeout: Duration) -> ProbeReport {
    let started = Instant::now();
    let files = match tokio::time::timeout(timeout, tokio::task::spawn_blocking(read_proc)).await {
        Ok(Ok(files)) => files,
        _ => {
            return ProbeReport::timed_out(ProbeKind::Host, "", "localhost", timeout);
        }
    };
    let base = ProbeReport::new(ProbeKind::Host, "", files.hostname.clone().unwrap_or_else(|| "localhost".to_owned()));
    let remaining = timeout.saturating_sub(started.elapsed());
    within(base, remaining, |report| check(report, files, t, docker_root, remaining)).await
}

async fn check(
    mut report: ProbeReport,
    files: ProcFiles,
    t: &HostThresholds,
    docker_root: Option<&Path>,
    limit: Duration,
) -> ProbeReport {
    let mounts = files.mounts.as_deref().map(parse_mounts).unwrap_or_default();
    if files.mounts.is_none() {
        report.evidence.push("could not read /proc/self/mounts".to_owned());
    }
    // Leave a little of the limit to report which filesystem did not answer.
    let deadline = tokio::time::Instant::now() + limit.mul_f64(0.8);
    let targets = disk_targets(&mounts, &t.mounts, docker_root);
    let pending: Vec<_> = targets
        .iter()
        .map(|target| {
            let path = target.path.clone();
            tokio::task::spawn_blocking(move || ops_core::diskspace::stats(&path))
        })
        .collect();
    let mut disks = Vec::new();
    for (target, task) in targets.iter().zip(pending) {
        let shown = target.path.display();
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(stats))) => {
                let (observations, problem) = assess_disk(target, &stats, t);
                observations.into_iter().for_each(|o| report.observe(o));
                problem.into_iter().for_each(|p| report.problem(p));
                disks.push(format!("{shown} {:.0} %", stats.used_percent()));
            }
            Ok(Ok(Err(e))) if target.docker_root && e.kind() == std::io::ErrorKind::NotFound => {
                report.evidence.push(format!(
                    "the Docker data root {shown} is not visible here (the engine runs elsewhere, or ops runs in a \
                     container without it mounted)"
                ));
            }
            Ok(Ok(Err(e))) if target.required => report.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!("cannot measure {shown}: {e}"),
            )),
            Ok(Ok(Err(e))) => report.evidence.push(format!("cannot measure {shown}: {e}")),
            Ok(Err(e)) => report.evidence.push(format!("measuring {shown} failed: {e}")),
            Err(_) => report.problem(Problem::new(
                Runbook::ProbeFailed,
                Status::Unknown,
                format!(
                    "statfs of {shown} did not return within {} (a hung network filesystem?)",
                    human_duration(limit.mul_f64(0.8))
                ),
            )),
        }
    }
    match files.meminfo.as_deref().and_then(parse_meminfo) {
        Some(memory) => {
            let (observations, problem) = assess_memory(&memory, t);
            observations.into_iter().for_each(|o| report.observe(o));
            problem.into_iter().for_each(|p| report.problem(p));
        }
        None => report.evidence.push("could not read /proc/meminfo".to_owned()),
    }
    let cores = files
        .cpus
        .as_deref()
        .and_then(parse_cpu_list)
        .or_else(|| std::thread::available_parallelism().ok().map(std::num::NonZero::get))
        .unwrap_or(1);
    match files.loadavg.as_deref().and_then(parse_loadavg) {
        Some(load) => {
            let (observations, problem) = assess_load(&load, cores, t);
            observations.into_iter().for_each(|o| report.observe(o));
            problem.into_iter().for_each(|p| report.problem(p));
        }
        None => report.evidence.push("could not read /proc/loadavg".to_owned()),
    }
    if report.problems.is_empty() {
        let memory = report.observation("memory_used").map(|m| format!("; memory {m:.0} %")).unwrap_or_default();
        let load = report.observation("load_per_core").map(|l| format!("; load {l:.2} per core")).unwrap_or_default();
        report.message = format!("disks {}{memory}{load}", disks.join(", "));
    }
    report
}

#[cfg(test)]
mod tests;
