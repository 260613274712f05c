//! ContainerRuntime contract against the real Docker engine.

use std::collections::BTreeMap;
use std::time::Duration;

use ops_core::ErrorKind;
use ops_core::ports::{
    ContainerFilter, ContainerRuntime, ContainerState, EnginePruneTarget, ExecSpec, HealthStatus, Healthcheck,
    LogOptions, LogStream, RestartPolicy, RunSpec,
};

use crate::harness::{BASE_IMAGE, Cleanup, eventually, require_docker, unique};

fn spec(name: &str, cmd: &[&str]) -> RunSpec {
    RunSpec {
        image: BASE_IMAGE.to_owned(),
        name: Some(name.to_owned()),
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        labels: BTreeMap::from([("ops.it".to_owned(), "docker".to_owned())]),
        ..Default::default()
    }
}

async fn contract(rt: &dyn ContainerRuntime) {
    let info = rt.ping().await.expect("ping");
    assert!(!info.version.is_empty() && info.api_version.starts_with("1."), "{info:?}");

    // A Compose-labelled service with env, a published port and a memory limit.
    let project = unique("opsit");
    let name = unique("opsit-web");
    let mut web = spec(
        &name,
        &[
            "sh",
            "-c",
            "echo started; echo warn >&2; echo $GREETING; exec redis-server --bind 0.0.0.0 --protected-mode no",
        ],
    );
    web.env.insert("GREETING".to_owned(), "hello-from-env".to_owned());
    web.labels.insert("com.docker.compose.project".to_owned(), project.clone());
    web.labels.insert("com.docker.compose.service".to_owned(), "web".to_owned());
    web.publish_port = Some(6379);
    web.memory_limit_bytes = Some(256 * 1024 * 1024);
    let started = rt.run_ephemeral(&web).await.expect("run");
    let _guard = Cleanup(started.id.clone());
    let port = started.host_port.expect("published port");
    eventually("the published port to accept", Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()
    })
    .await;

    let by_project = rt
        .list_containers(&ContainerFilter { compose_project: Some(project.clone()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_project.len(), 1, "{by_project:?}");
    assert_eq!(by_project[0].name, name);
    assert_eq!(by_project[0].compose_service.as_deref(), Some("web"));
    assert_eq!(by_project[0].state, ContainerState::Running);
    let other_service = rt
        .list_containers(&ContainerFilter {
            compose_project: Some(project.clone()),
            compose_service: Some("db".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(other_service.is_empty());

    let d = rt.inspect(&name).await.unwrap();
    assert_eq!(d.state, ContainerState::Running);
    assert_eq!(d.health, HealthStatus::None);
    assert_eq!(d.memory_limit_bytes, Some(256 * 1024 * 1024));
    assert_eq!(d.restart_count, 0);
    assert!(!d.oom_killed);
    assert!(d.started_at.is_some());
    assert_eq!(d.labels.get("ops.ephemeral").map(String::as_str), Some("true"));

    let logs = eventually("logs", Duration::from_secs(10), || async {
        let l = rt.logs(&name, &LogOptions { tail: Some(50), timestamps: true, ..Default::default() }).await.ok()?;
        l.iter().any(|x| x.text.contains("hello-from-env")).then_some(l)
    })
    .await;
    assert!(logs.iter().any(|l| l.stream == LogStream::Stdout && l.text == "started"), "{logs:?}");
    assert!(logs.iter().any(|l| l.stream == LogStream::Stderr && l.text == "warn"), "{logs:?}");
    assert!(logs.iter().all(|l| l.timestamp.is_some()));
    let tail = rt.logs(&name, &LogOptions { tail: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(tail.len(), 1);

    let out = rt
        .exec(
            &name,
            &ExecSpec {
                cmd: vec!["sh".into(), "-c".into(), "echo out; echo err >&2; exit 3".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str(), out.stderr.as_str()), (3, "out\n", "err\n"));
    let ping =
        rt.exec(&name, &ExecSpec { cmd: vec!["redis-cli".into(), "ping".into()], ..Default::default() }).await.unwrap();
    assert_eq!(ping.stdout.trim(), "PONG");

    let stats = rt.stats(&name).await.unwrap();
    assert!(stats.memory_usage_bytes > 0, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, 256 * 1024 * 1024);
    assert!(stats.cpu_percent >= 0.0);

    rt.stop(&name, Duration::from_secs(5)).await.unwrap();
    assert_eq!(rt.inspect(&name).await.unwrap().state, ContainerState::Exited);
    rt.stop(&name, Duration::from_secs(5)).await.expect("stopping a stopped container is a no-op");
    rt.start(&name).await.unwrap();
    let before = rt.inspect(&name).await.unwrap().started_at;
    rt.start(&name).await.expect("starting a running container is a no-op");
    rt.restart(&name, Duration::from_secs(5)).await.unwrap();
    let after = rt.inspect(&name).await.unwrap();
    assert_eq!(after.state, ContainerState::Running);
    assert!(after.started_at > before, "restart moves started_at");

    rt.remove(&name, true).await.unwrap();
    let gone = rt.inspect(&name).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
    assert_eq!(
        rt.exec(&name, &ExecSpec { cmd: vec!["true".into()], ..Default::default() }).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn docker_runtime_contract() {
    let rt = require_docker().await;
    contract(&rt).await;
}

#[tokio::test]
async fn docker_reports_an_oom_killed_container() {
    let rt = require_docker().await;
    let name = unique("opsit-oom");
    let mut s = spec(&name, &["tail", "/dev/zero"]);
    s.memory_limit_bytes = Some(32 * 1024 * 1024);
    let c = rt.run_ephemeral(&s).await.unwrap();
    let _guard = Cleanup(c.id.clone());
    let d = eventually("the OOM kill", Duration::from_secs(60), || async {
        let d = rt.inspect(&name).await.ok()?;
        (d.state == ContainerState::Exited).then_some(d)
    })
    .await;
    assert!(d.oom_killed, "{d:?}");
    assert_eq!(d.exit_code, Some(137));
    assert!(d.finished_at.is_some());
}

#[tokio::test]
async fn docker_reports_a_crash_loop() {
    let rt = require_docker().await;
    let name = unique("opsit-crash");
    let mut s = spec(&name, &["sh", "-c", "echo boom >&2; exit 3"]);
    s.restart = RestartPolicy::Always;
    let c = rt.run_ephemeral(&s).await.unwrap();
    let _guard = Cleanup(c.id.clone());
    let d = eventually("restarts", Duration::from_secs(30), || async {
        let d = rt.inspect(&name).await.ok()?;
        (d.restart_count >= 2).then_some(d)
    })
    .await;
    assert_eq!(d.restart_policy, "always");
    let logs = rt.logs(&name, &LogOptions::default()).await.unwrap();
    assert!(logs.iter().filter(|l| l.text == "boom").count() >= 2, "{logs:?}");
}

#[tokio::test]
async fn docker_reports_a_failing_healthcheck() {
    let rt = require_docker().await;
    let name = unique("opsit-unhealthy");
    let mut s = spec(&name, &["sleep", "300"]);
    s.healthcheck = Some(Healthcheck {
        cmd: vec!["sh".into(), "-c".into(), "echo db not reachable; exit 1".into()],
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        retries: 1,
    });
    let c = rt.run_ephemeral(&s).await.unwrap();
    let _guard = Cleanup(c.id.clone());
    let d = eventually("unhealthy", Duration::from_secs(30), || async {
        let d = rt.inspect(&name).await.ok()?;
        (d.health == HealthStatus::Unhealthy).then_some(d)
    })
    .await;
    assert!(d.health_failing_streak >= 1);
    assert_eq!(d.last_health_output.as_deref(), Some("db not reachable"));
    assert_eq!(d.state, ContainerState::Running, "unhealthy is not stopped");
}

#[tokio::test]
async fn docker_prune_plan_is_separate_from_prune() {
    let rt = require_docker().await;
    let stopped = unique("opsit-stopped");
    let running = unique("opsit-running");
    let s = rt.run_ephemeral(&spec(&stopped, &["sh", "-c", "echo data > /tmp/f"])).await.unwrap();
    let _g1 = Cleanup(s.id.clone());
    let r = rt.run_ephemeral(&spec(&running, &["sleep", "300"])).await.unwrap();
    let _g2 = Cleanup(r.id.clone());
    eventually("the short container to exit", Duration::from_secs(20), || async {
        (rt.inspect(&stopped).await.ok()?.state == ContainerState::Exited).then_some(())
    })
    .await;

    let plan = rt.prune_plan().await.unwrap();
    let ids: Vec<&str> = plan
        .targets
        .iter()
        .filter_map(|t| match t {
            EnginePruneTarget::Container { id, .. } => Some(id.as_str()),
            EnginePruneTarget::Image { .. } => None,
        })
        .collect();
    assert!(ids.contains(&s.id.as_str()), "stopped container planned");
    assert!(!ids.contains(&r.id.as_str()), "running container never planned");
    assert!(rt.inspect(&stopped).await.is_ok(), "planning removed nothing");

    // Prune only our own container (other tests' stopped containers are theirs).
    let mine = ops_core::ports::EnginePrunePlan {
        targets: plan
            .targets
            .into_iter()
            .filter(|t| matches!(t, EnginePruneTarget::Container { id, .. } if *id == s.id))
            .collect(),
    };
    let report = rt.prune(&mine).await.unwrap();
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert_eq!(rt.inspect(&stopped).await.unwrap_err().kind(), ErrorKind::NotFound);

    // A planned container that started again since is skipped, not removed.
    let again = ops_core::ports::EnginePrunePlan {
        targets: vec![EnginePruneTarget::Container { id: r.id.clone(), name: running.clone(), bytes: 0 }],
    };
    let report = rt.prune(&again).await.unwrap();
    assert!(report.removed.is_empty() && report.skipped.len() == 1, "{report:?}");
    assert_eq!(rt.inspect(&running).await.unwrap().state, ContainerState::Running);

    let usage = rt.disk_usage().await.unwrap();
    assert!(usage.images_bytes > 0, "{usage:?}");
}

#[tokio::test]
async fn docker_unreachable_engine_is_unavailable() {
    let rt =
        ops_core::adapters::docker::DockerRuntime::new(Some("unix:///tmp/no-such-docker.sock"), Duration::from_secs(5));
    let e = rt.ping().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
}
