use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerStatsResponse};

use super::client::{cpu_percent, memory_usage};

fn sample(total: u64, system: u64, pre_total: u64, pre_system: u64, cpus: u32) -> ContainerStatsResponse {
    let cpu = |t, s| ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage { total_usage: Some(t), ..Default::default() }),
        system_cpu_usage: Some(s),
        online_cpus: Some(cpus),
        ..Default::default()
    };
    ContainerStatsResponse {
        cpu_stats: Some(cpu(total, system)),
        precpu_stats: Some(cpu(pre_total, pre_system)),
        ..Default::default()
    }
}

#[test]
fn cpu_percent_like_docker_stats() {
    // Half of the system's CPU time over 2 CPUs: 100 % (one full core).
    let s = sample(1_500, 10_000, 1_000, 9_000, 2);
    assert!((cpu_percent(&s) - 100.0).abs() < 1e-9);
    assert!(cpu_percent(&sample(5, 5, 5, 5, 2)).abs() < f64::EPSILON, "no delta, no cpu");
}

#[test]
fn memory_excludes_inactive_cache() {
    let s = ContainerStatsResponse {
        memory_stats: Some(ContainerMemoryStats {
            usage: Some(100),
            limit: Some(1000),
            stats: Some([("total_inactive_file".to_owned(), 30)].into_iter().collect()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(memory_usage(&s), (70, 1000));
}
