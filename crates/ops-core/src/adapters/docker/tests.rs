use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerStatsResponse};

use super::client::{cpu_percent, memory_usage, split_networks};

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

#[test]
fn one_network_at_create_the_others_after() {
    let mut body = serde_json::json!({
        "HostConfig": {"NetworkMode": "shop_back"},
        "NetworkingConfig": {"EndpointsConfig": {
            "shop_front": {"Aliases": ["web"]},
            "shop_back": {"Aliases": ["api"]},
            "monitoring": {"Aliases": []}
        }}
    });
    let later = split_networks(&mut body);
    let kept: Vec<&String> = body["NetworkingConfig"]["EndpointsConfig"].as_object().unwrap().keys().collect();
    assert_eq!(kept, ["shop_back"], "the one NetworkMode names");
    let mut later: Vec<(String, serde_json::Value)> = later;
    later.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = later.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["monitoring", "shop_front"]);
    assert_eq!(later[1].1["Aliases"][0], "web", "each keeps its aliases");
    let mut single = serde_json::json!({"NetworkingConfig": {"EndpointsConfig": {"bridge": {}}}});
    assert!(split_networks(&mut single).is_empty());
}
