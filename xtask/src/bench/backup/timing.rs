//! Measurements: the cases, their timed samples, and where the CPU went.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The two S3 servers the tests use: s3s-fs (a container, like the rest) and SeaweedFS (on
/// the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum S3Server {
    S3sFs,
    Seaweed,
}

impl S3Server {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::S3sFs => "s3s-fs",
            Self::Seaweed => "SeaweedFS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Raw,
    RunbookGzip,
    RunbookZstd,
    OpsGzipFs,
    OpsZstdFs,
    OpsGzipS3(S3Server),
    /// The seeds' own: `pg_dump | gzip | aws s3 cp - s3://…`.
    SeedsGzipS3(S3Server),
}

impl Kind {
    pub(super) const ALL: [Self; 9] = [
        Self::Raw,
        Self::RunbookGzip,
        Self::RunbookZstd,
        Self::OpsGzipFs,
        Self::OpsZstdFs,
        Self::OpsGzipS3(S3Server::S3sFs),
        Self::SeedsGzipS3(S3Server::S3sFs),
        Self::OpsGzipS3(S3Server::Seaweed),
        Self::SeedsGzipS3(S3Server::Seaweed),
    ];

    pub(super) fn label(self) -> String {
        match self {
            Self::Raw => "`pg_dump > file`".to_owned(),
            Self::RunbookGzip => "`pg_dump | gzip > file`".to_owned(),
            Self::RunbookZstd => "`pg_dump | zstd -T2 > file`".to_owned(),
            Self::OpsGzipFs => "`opsctl backup run` gzip → dir".to_owned(),
            Self::OpsZstdFs => "`opsctl backup run` zstd → dir".to_owned(),
            Self::OpsGzipS3(s) => format!("`opsctl backup run` gzip → S3 ({})", s.label()),
            Self::SeedsGzipS3(s) => format!("`pg_dump | gzip | aws s3 cp -` ({})", s.label()),
        }
    }
}

/// One timed run. CPU figures are seconds of CPU time over the run: the client programs
/// (`/usr/bin/time`: the process and the children it waited for, so `opsctl` includes its
/// `pg_dump` or `psql`), the PostgreSQL and S3 containers (their cgroup), and the rest of the
/// machine (`/proc/stat` minus those: docker-proxy forwarding the ports, and anything else
/// running, which is noise).
#[derive(Debug, Clone, Default)]
pub(super) struct Sample {
    pub(super) secs: f64,
    /// Output size in bytes.
    pub(super) size: Option<u64>,
    /// Peak RSS in KiB (opsctl only).
    pub(super) rss_kib: Option<u64>,
    pub(super) client_cpu: Option<f64>,
    pub(super) pg_cpu: Option<f64>,
    pub(super) s3_cpu: Option<f64>,
    pub(super) rest_cpu: Option<f64>,
    /// opsctl's own phases and their seconds (its JSON report's `phases`).
    pub(super) phases: Vec<(String, f64)>,
}

impl Sample {
    pub(super) fn note(&self) -> String {
        let mut note = format!("{:.1} s", self.secs);
        if let Some(size) = self.size {
            let _ = write!(note, ", {}", mb(size));
        }
        let cpu = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.1}"));
        let _ = write!(
            note,
            ", CPU s client {} / PostgreSQL {} / S3 {} / rest {}",
            cpu(self.client_cpu),
            cpu(self.pg_cpu),
            cpu(self.s3_cpu),
            cpu(self.rest_cpu)
        );
        if let Some(kib) = self.rss_kib {
            let _ = write!(note, ", peak RSS {} MiB", kib / 1024);
        }
        if !self.phases.is_empty() {
            let phases: Vec<String> = self.phases.iter().map(|(n, s)| format!("{n} {s:.2}")).collect();
            let _ = write!(note, "; phases (s): {}", phases.join(", "));
        }
        note
    }
}

#[derive(Debug)]
pub(super) struct Case {
    pub(super) label: String,
    pub(super) samples: Vec<Sample>,
}

impl Case {
    pub(super) fn new(label: &str) -> Self {
        Self { label: label.to_owned(), samples: Vec::new() }
    }

    pub(super) fn median(&self) -> Option<f64> {
        median(self.samples.iter().map(|s| s.secs).collect())
    }

    pub(super) fn median_of(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        median(self.samples.iter().filter_map(f).collect())
    }

    pub(super) fn size(&self) -> Option<u64> {
        self.samples.iter().rev().find_map(|s| s.size)
    }

    /// Each phase opsctl reported, with its median seconds over the runs, in order.
    pub(super) fn phase_medians(&self) -> Vec<(String, f64)> {
        let mut names: Vec<&str> = Vec::new();
        for s in &self.samples {
            for (n, _) in &s.phases {
                if !names.contains(&n.as_str()) {
                    names.push(n);
                }
            }
        }
        names
            .into_iter()
            .filter_map(|n| {
                let v = self.samples.iter().filter_map(|s| s.phases.iter().find(|(m, _)| m == n).map(|(_, v)| *v));
                median(v.collect()).map(|m| (n.to_owned(), m))
            })
            .collect()
    }

    pub(super) fn max_rss_mib(&self) -> Option<f64> {
        self.samples.iter().filter_map(|s| s.rss_kib).max().map(|k| k as f64 / 1024.0)
    }
}

pub(super) fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// What `/usr/bin/time` reported about one process and the children it waited for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Usage {
    pub(super) max_rss_kib: u64,
    pub(super) cpu_secs: f64,
}

/// `/usr/bin/time -f "%M %U %S" -o OUT` in front of `inner`: same program, arguments,
/// environment and directory.
pub(super) fn under_time(inner: &Command, out: &Path) -> Command {
    let mut c = Command::new(TIME);
    c.args(["-f", "%M %U %S", "-o"]).arg(out).arg(inner.get_program()).args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => c.env(key, v),
            None => c.env_remove(key),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

/// The last line `/usr/bin/time` wrote (a failed command gets a status line before it).
pub(super) fn read_usage(out: &Path) -> Result<Usage> {
    let text = fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let parsed = match fields.as_slice() {
        [m, u, s] => m.parse::<u64>().ok().zip(u.parse::<f64>().ok()).zip(s.parse::<f64>().ok()),
        _ => None,
    };
    let ((max_rss_kib, user), sys) = parsed.with_context(|| format!("{TIME} wrote {text:?}"))?;
    Ok(Usage { max_rss_kib, cpu_secs: user + sys })
}

/// CPU seconds used by the whole machine since boot (`/proc/stat`, all but idle and iowait).
pub(super) fn machine_busy_secs(ticks_per_sec: f64) -> Option<f64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).copied().unwrap_or(0.0);
    Some(busy / ticks_per_sec)
}

/// CPU seconds a host process has used (`/proc/PID/stat`: utime + stime, its threads
/// included).
pub(super) fn process_cpu_secs(pid: u32, ticks_per_sec: f64) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_sec)
}

/// CPU seconds a container has used (cgroup v2 `cpu.stat`, else v1 `cpuacct.usage`).
pub(super) fn container_cpu_secs(id: &str) -> Option<f64> {
    if let Ok(text) = cmd::capture(docker().args(["exec", id, "cat", "/sys/fs/cgroup/cpu.stat"])) {
        let usec = text.lines().find_map(|l| l.strip_prefix("usage_usec "))?.trim().parse::<f64>().ok()?;
        return Some(usec / 1e6);
    }
    let text = cmd::capture(docker().args(["exec", id, "cat", "/sys/fs/cgroup/cpuacct/cpuacct.usage"])).ok()?;
    Some(text.trim().parse::<f64>().ok()? / 1e9)
}

#[derive(Debug, Clone, Copy)]
pub(super) struct CpuSnapshot {
    pub(super) machine: Option<f64>,
    pub(super) pg: Option<f64>,
    pub(super) s3: Option<f64>,
}
