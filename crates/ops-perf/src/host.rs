//! The `host` section: the runbooks' "Disk usage > 70 % warn, > 85 % critical — expand disk or
//! prune volumes", with memory and load, as findings. The measuring and judging is the `host`
//! probe's; this only regroups its observations and problems per filesystem.

use std::path::Path;
use std::time::{Duration, Instant};

use ops_core::config::ProbesConfig;
use ops_core::{Runbook, Status};

use crate::{PerfFinding, Section, SectionReport};
use ops_probes::{Observation, ProbeReport};

/// Analyses this machine (the section's target is `host`) through
/// [`ops_probes::host::probe`] within `probes.timeout-secs`: one `disk` finding per filesystem it
/// measures (space and inodes against `probes.host.disk-*-percent`; the one holding
/// `docker_root` says so), one `memory` and one `load` finding. A filesystem that could not be
/// measured is an `unknown` `disk` finding; a probe that did not finish is a failed section.
pub async fn analyze(probes: &ProbesConfig, docker_root: Option<&Path>) -> SectionReport {
    let started = Instant::now();
    let limit = Duration::from_secs(probes.timeout_secs.max(1));
    let probe = ops_probes::host::probe(&probes.host, docker_root, limit).await;
    if probe.observations.is_empty() {
        let why = probe.problems.first().map_or_else(|| probe.message.clone(), |p| p.message.clone());
        return SectionReport::failed(Section::Host, "host", format!("host probe: {why}")).finish(started.elapsed());
    }
    let mut report = SectionReport::new(Section::Host, "host");
    report.findings = findings(&probe);
    report.finish(started.elapsed())
}

/// The findings of a host probe's report.
fn findings(probe: &ProbeReport) -> Vec<PerfFinding> {
    let mut out = Vec::new();
    let mut mounts: Vec<&str> = Vec::new();
    for o in &probe.observations {
        if let Some(m) = o.labels.get("mount")
            && !mounts.contains(&m.as_str())
        {
            mounts.push(m);
        }
    }
    for mount in mounts {
        let values: Vec<Observation> = probe
            .observations
            .iter()
            .filter(|o| o.labels.get("mount").map(String::as_str) == Some(mount))
            .cloned()
            .collect();
        // The probe's disk messages start with the mount point: `/var: 91 % used, …` or
        // `/ (holds the Docker data root): …`.
        let problem = probe.problems.iter().find(|p| {
            p.runbook == Runbook::DiskFull
                && p.message.strip_prefix(mount).is_some_and(|rest| rest.starts_with(':') || rest.starts_with(" ("))
        });
        let used = values.iter().find(|o| o.name == "disk_used").map_or(0.0, |o| o.value);
        let mut f = match problem {
            Some(p) => PerfFinding::of("disk", mount, p).evidence("expand the disk, or prune images and volumes"),
            None => PerfFinding::new("disk", Status::Ok, mount, format!("{mount}: {used:.0} % used")),
        };
        f.values = values;
        out.push(f);
    }
    let host = probe.target.as_str();
    for (check, runbook, names) in [
        (
            "memory",
            Runbook::MemoryPressure,
            &["memory_used", "memory_used_bytes", "memory_total_bytes", "swap_used_bytes"][..],
        ),
        ("load", Runbook::HighLoad, &["load_1m", "load_5m", "load_15m", "cpu_cores", "load_per_core"][..]),
    ] {
        let values: Vec<Observation> = probe
            .observations
            .iter()
            .filter(|o| o.labels.is_empty() && names.contains(&o.name.as_str()))
            .cloned()
            .collect();
        if values.is_empty() {
            continue;
        }
        let value = |n: &str| values.iter().find(|o| o.name == n).map_or(0.0, |o| o.value);
        let mut f = match probe.problems.iter().find(|p| p.runbook == runbook) {
            Some(p) => PerfFinding::of(check, host, p),
            None if check == "memory" => {
                PerfFinding::new(check, Status::Ok, host, format!("memory {:.0} % used", value("memory_used")))
            }
            None => PerfFinding::new(
                check,
                Status::Ok,
                host,
                format!("5-minute load {:.2} ({:.2} per core)", value("load_5m"), value("load_per_core")),
            ),
        };
        f.values = values;
        out.push(f);
    }
    // Filesystems that could not be measured (a hung network mount).
    for p in probe.problems.iter().filter(|p| p.runbook == Runbook::ProbeFailed) {
        out.push(PerfFinding::of("disk", host, p));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ops_probes::{ProbeKind, Problem, Unit};

    #[test]
    fn problems_land_on_their_filesystem() {
        let mut probe = ProbeReport::new(ProbeKind::Host, "", "web-1");
        for (mount, used) in [("/", 91.0), ("/var", 40.0), ("/var/lib/docker", 75.0)] {
            probe.observe(Observation::new("disk_used", used, Unit::Percent).label("mount", mount));
        }
        probe.observe(Observation::new("memory_used", 50.0, Unit::Percent));
        probe.observe(Observation::new("load_5m", 9.0, Unit::Ratio));
        probe.observe(Observation::new("load_per_core", 4.5, Unit::Ratio));
        probe.problem(Problem::new(Runbook::DiskFull, Status::Critical, "/: 91 % used, 1.0 GiB free of 10.0 GiB"));
        probe.problem(
            Problem::new(Runbook::DiskFull, Status::Warn, "/var/lib/docker (holds the Docker data root): 75 % used")
                .with_evidence(["see what pruning frees first: docker system df".to_owned()]),
        );
        probe.problem(Problem::new(
            Runbook::HighLoad,
            Status::Critical,
            "5-minute load 9.00 on 2 cores (4.50 per core)",
        ));
        let f = findings(&probe);
        let got: Vec<(&str, &str, Status)> =
            f.iter().map(|f| (f.check.as_str(), f.subject.as_str(), f.verdict)).collect();
        assert_eq!(
            got,
            [
                ("disk", "/", Status::Critical),
                ("disk", "/var", Status::Ok),
                ("disk", "/var/lib/docker", Status::Warn),
                ("memory", "web-1", Status::Ok),
                ("load", "web-1", Status::Critical),
            ]
        );
        assert_eq!(f[1].message, "/var: 40 % used");
        assert_eq!(f[2].evidence[0], "see what pruning frees first: docker system df");
        assert_eq!(f[0].values.len(), 1);
    }
}
