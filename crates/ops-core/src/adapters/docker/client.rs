//! The bollard-backed container runtime.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerStatsResponse, HealthConfig, HealthStatusEnum, HostConfig, PortBinding,
    RestartPolicy as BollardRestart, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, RestartContainerOptionsBuilder, StatsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::ports::container::{
    COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, ContainerDetails, ContainerFilter, ContainerRuntime, ContainerState,
    ContainerStats, ContainerSummary, DiskUsage, EngineDisk, EnginePrunePlan, EnginePruneReport, EnginePruneTarget,
    ExecOutput, ExecSpec, HealthStatus, ImageInfo, LogLine, LogOptions, LogStream, RestartPolicy, RunSpec,
    RunningContainer, RuntimeInfo,
};
use crate::{Error, ErrorKind, Result};

/// Label Docker Compose puts on a container with the id of the image it was created from.
const COMPOSE_IMAGE_LABEL: &str = "com.docker.compose.image";

/// Label put on every container started by [`DockerRuntime::run_ephemeral`].
pub const EPHEMERAL_LABEL: &str = "ops.ephemeral";

/// Docker through its Engine API. The API version is negotiated on first use, so creating
/// the adapter never fails because the engine is down.
#[derive(Debug)]
pub struct DockerRuntime {
    host: String,
    timeout: Duration,
    docker: OnceCell<Docker>,
}

impl DockerRuntime {
    /// An adapter for `host` (`unix:///var/run/docker.sock`, `tcp://host:2375`, or `None` for
    /// the local socket); `timeout` bounds every engine call.
    pub fn new(host: Option<&str>, timeout: Duration) -> Self {
        Self { host: host.unwrap_or(DEFAULT_HOST).to_owned(), timeout, docker: OnceCell::new() }
    }

    /// Connects and negotiates the API version with the engine (20.10 speaks 1.41).
    async fn client(&self) -> Result<&Docker> {
        self.docker
            .get_or_try_init(|| async {
                let host = &self.host;
                let docker = Docker::connect_with_host(host)
                    .map_err(|e| match e {
                        bollard::errors::Error::SocketNotFoundError(_) => {
                            Error::unavailable(format!("docker engine at {host}: no such socket (is dockerd running?)"))
                        }
                        e => Error::invalid_input(format!("docker host {host:?} cannot be used: {e}")),
                    })?
                    // Our own per-call limits apply (a stop may legitimately take its grace
                    // period plus the call's limit); bollard's must never cut in first.
                    .with_timeout(Duration::from_secs(3600));
                tokio::time::timeout(self.timeout, docker.negotiate_version())
                    .await
                    .map_err(|_| Error::timeout(format!("connecting to the docker engine at {host}"), self.timeout))?
                    .map_err(|e| map_err(e, &format!("docker engine at {host}")))
            })
            .await
    }

    async fn bounded<T>(&self, what: &str, fut: impl Future<Output = Result<T, bollard::errors::Error>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| map_err(e, what)),
            Err(_) => Err(Error::timeout(what, self.timeout)),
        }
    }
}

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Translates a bollard error: the engine's status code decides the kind.
fn map_err(e: bollard::errors::Error, what: &str) -> Error {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError { status_code, message } => {
            let kind = match status_code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                400 => ErrorKind::InvalidInput,
                401 | 403 => ErrorKind::Auth,
                501 => ErrorKind::Unsupported,
                503 => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            };
            Error::new(kind, format!("{what}: {}", message.trim()))
        }
        B::RequestTimeoutError => Error::new(ErrorKind::Timeout, format!("{what}: docker engine timed out")),
        B::HyperResponseError { .. } | B::IOError { .. } | B::HyperLegacyError { .. } | B::SocketNotFoundError(_) => {
            Error::unavailable(format!("{what}: docker engine unreachable: {e}"))
        }
        other => Error::internal(format!("{what}: {other}")),
    }
}

/// The create body of a container like the one `inspect` describes (the engine's own JSON),
/// on `image`: its `Config` with the image replaced, its `HostConfig`, and an endpoint per
/// network with the same aliases, links and addresses asked for. What the engine made up for
/// the old container is left out: its hostname when that was its id, and the aliases that
/// are its id.
fn create_body_like(
    inspect: &serde_json::Value,
    image_config: Option<&serde_json::Value>,
    image: &str,
) -> Option<serde_json::Value> {
    use serde_json::Value;
    let id = inspect.get("Id")?.as_str()?;
    let short = &id[..id.len().min(12)];
    let mut body = inspect.get("Config")?.clone();
    let config = body.as_object_mut()?;
    // What came from the old image is left to the new one's defaults.
    if let Some(own) = image_config.and_then(Value::as_object) {
        for key in ["Cmd", "Entrypoint", "WorkingDir", "User", "Healthcheck", "StopSignal", "Shell"] {
            if own.get(key).is_some_and(|v| Some(v) == config.get(key)) {
                config.remove(key);
            }
        }
        if let (Some(Value::Array(env)), Some(Value::Array(theirs))) = (config.get_mut("Env"), own.get("Env")) {
            env.retain(|e| !theirs.contains(e));
        }
        for key in ["Labels", "ExposedPorts", "Volumes"] {
            if let (Some(Value::Object(map)), Some(Value::Object(theirs))) = (config.get_mut(key), own.get(key)) {
                map.retain(|k, v| theirs.get(k) != Some(v));
            }
        }
    }
    config.insert("Image".to_owned(), Value::String(image.to_owned()));
    if config.get("Hostname").and_then(Value::as_str) == Some(short) {
        config.remove("Hostname");
    }
    config.remove("MacAddress");
    let mut host = inspect.get("HostConfig")?.clone();
    // In another container's network namespace, the engine gave it that container's names
    // and refuses them (and published ports) at create.
    if host.get("NetworkMode").and_then(Value::as_str).is_some_and(|m| m.starts_with("container:")) {
        for key in ["Hostname", "Domainname", "ExposedPorts"] {
            config.remove(key);
        }
    }
    // Its anonymous volumes (an image's VOLUME, Compose's `- /data`) are taken over by name,
    // as Compose does on a recreate: a new container would get new, empty ones.
    let binds: Vec<String> = host
        .get("Binds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b.as_str()?.split(':').nth(1).map(str::to_owned))
        .collect();
    let targets: Vec<String> = host
        .get("Mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("Target")?.as_str().map(str::to_owned))
        .collect();
    let mut taken = Vec::new();
    for m in inspect.get("Mounts").and_then(Value::as_array).into_iter().flatten() {
        let (Some("volume"), Some(name), Some(dest)) = (
            m.get("Type").and_then(Value::as_str),
            m.get("Name").and_then(Value::as_str),
            m.get("Destination").and_then(Value::as_str),
        ) else {
            continue;
        };
        if binds.iter().any(|b| b == dest) || targets.iter().any(|t| t == dest) {
            continue;
        }
        let read_only = m.get("RW").and_then(Value::as_bool) == Some(false);
        taken.push(serde_json::json!({ "Type": "volume", "Source": name, "Target": dest, "ReadOnly": read_only }));
    }
    if !taken.is_empty() {
        let host = host.as_object_mut()?;
        let mounts = host.entry("Mounts").or_insert_with(|| Value::Array(Vec::new()));
        if !mounts.is_array() {
            *mounts = Value::Array(Vec::new());
        }
        mounts.as_array_mut()?.extend(taken);
    }
    config.insert("HostConfig".to_owned(), host);
    let mut endpoints = serde_json::Map::new();
    let networks = inspect.pointer("/NetworkSettings/Networks").and_then(serde_json::Value::as_object);
    for (net, ep) in networks.into_iter().flatten() {
        let aliases: Vec<serde_json::Value> = ep
            .get("Aliases")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.as_str().is_some_and(|a| a != short && a != id))
            .cloned()
            .collect();
        let mut e = serde_json::Map::new();
        e.insert("Aliases".to_owned(), serde_json::Value::Array(aliases));
        for key in ["Links", "IPAMConfig", "DriverOpts"] {
            if let Some(v) = ep.get(key).filter(|v| !v.is_null()) {
                e.insert(key.to_owned(), v.clone());
            }
        }
        endpoints.insert(net.clone(), serde_json::Value::Object(e));
    }
    config.insert("NetworkingConfig".to_owned(), serde_json::json!({ "EndpointsConfig": endpoints }));
    Some(body)
}

/// Leaves in a create body only the network its `NetworkMode` names (else the first), and
/// returns the others with their endpoint settings, to connect once it exists.
pub(super) fn split_networks(body: &mut serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mode = body.pointer("/HostConfig/NetworkMode").and_then(serde_json::Value::as_str).map(str::to_owned);
    let Some(endpoints) =
        body.pointer_mut("/NetworkingConfig/EndpointsConfig").and_then(serde_json::Value::as_object_mut)
    else {
        return Vec::new();
    };
    if endpoints.len() <= 1 {
        return Vec::new();
    }
    let primary =
        mode.filter(|m| endpoints.contains_key(m)).or_else(|| endpoints.keys().next().cloned()).unwrap_or_default();
    let others: Vec<String> = endpoints.keys().filter(|k| **k != primary).cloned().collect();
    others.into_iter().filter_map(|k| endpoints.remove(&k).map(|e| (k, e))).collect()
}

/// The time at `key` of a bollard answer, which has it as a string, or as a date when its
/// `time` feature is on (another crate of the build may turn it on): read from the answer's
/// serialized form, where the field's own serializer writes RFC 3339 either way.
fn time_field<T: serde::Serialize>(answer: &T, key: &str) -> Option<DateTime<Utc>> {
    let v = serde_json::to_value(answer).ok()?;
    parse_time(v.get(key)?.as_str())
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    let s = s?;
    // The engine reports the zero time for "never".
    if s.starts_with("0001-") {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn to_u64(v: Option<i64>) -> u64 {
    v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

fn label_filters(filter: &ContainerFilter) -> HashMap<String, Vec<String>> {
    let mut labels = Vec::new();
    if let Some(p) = &filter.compose_project {
        labels.push(format!("{COMPOSE_PROJECT_LABEL}={p}"));
    }
    if let Some(s) = &filter.compose_service {
        labels.push(format!("{COMPOSE_SERVICE_LABEL}={s}"));
    }
    for (k, v) in &filter.labels {
        labels.push(v.as_ref().map_or_else(|| k.clone(), |v| format!("{k}={v}")));
    }
    let mut filters = HashMap::new();
    if !labels.is_empty() {
        filters.insert("label".to_owned(), labels);
    }
    filters
}

/// CPU percent the way `docker stats` computes it: container CPU delta over system CPU
/// delta, times the number of CPUs, times 100.
#[allow(clippy::cast_precision_loss)] // nanosecond counters, ratio only
pub(crate) fn cpu_percent(s: &ContainerStatsResponse) -> f64 {
    let (Some(cpu), Some(pre)) = (s.cpu_stats.as_ref(), s.precpu_stats.as_ref()) else { return 0.0 };
    let total = |c: &bollard::models::ContainerCpuStats| c.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0);
    let cpu_delta = total(cpu).saturating_sub(total(pre));
    let sys_delta = cpu.system_cpu_usage.unwrap_or(0).saturating_sub(pre.system_cpu_usage.unwrap_or(0));
    let cpus = cpu.online_cpus.filter(|n| *n > 0).map(u64::from).unwrap_or_else(|| {
        cpu.cpu_usage.as_ref().and_then(|u| u.percpu_usage.as_ref()).map_or(1, |v| v.len().max(1) as u64)
    });
    if sys_delta == 0 || cpu_delta == 0 {
        return 0.0;
    }
    cpu_delta as f64 / sys_delta as f64 * cpus as f64 * 100.0
}

/// Bytes of an exec's stdout and of its stderr kept.
const EXEC_OUTPUT_KEPT: usize = 1 << 20;

fn keep_bounded(into: &mut Vec<u8>, more: &[u8]) {
    let room = EXEC_OUTPUT_KEPT.saturating_sub(into.len());
    into.extend_from_slice(&more[..more.len().min(room)]);
}

/// Memory in use the way `docker stats` shows it: usage minus inactive page cache.
pub(crate) fn memory_usage(s: &ContainerStatsResponse) -> (u64, u64) {
    let Some(m) = s.memory_stats.as_ref() else { return (0, 0) };
    let usage = m.usage.unwrap_or(0);
    let cache = m.stats.as_ref().map_or(0, |st| {
        // cgroup v1 reports total_inactive_file, v2 inactive_file.
        st.get("total_inactive_file").or_else(|| st.get("inactive_file")).copied().unwrap_or(0)
    });
    (usage.saturating_sub(cache), m.limit.unwrap_or(0))
}

/// The hash of what makes a container's service what it is, apart from its image: the
/// environment's variable names (never their values: secrets), command, entrypoint, user,
/// working directory, mounts, restart policy and limits; sha256 of their canonical JSON.
fn config_hash(
    config: &bollard::models::ContainerConfig,
    host: &bollard::models::HostConfig,
    mounts: &[bollard::models::MountPoint],
) -> String {
    use sha2::Digest as _;
    let mut env: Vec<&str> =
        config.env.iter().flatten().map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k)).collect();
    env.sort_unstable();
    // An anonymous volume is new with every container: its place counts, not its name.
    let anonymous = |n: &str| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit());
    let mut mounts: Vec<String> = mounts
        .iter()
        .map(|m| {
            let source = m.name.as_deref().or(m.source.as_deref()).unwrap_or_default();
            format!(
                "{}:{}:{}:{}",
                m.typ.as_ref().map(ToString::to_string).unwrap_or_default(),
                if anonymous(source) { "(anonymous)" } else { source },
                m.destination.as_deref().unwrap_or_default(),
                if m.rw.unwrap_or(true) { "rw" } else { "ro" }
            )
        })
        .collect();
    mounts.sort_unstable();
    // What engines and API versions write differently for "unset" is one value here.
    let text = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let list = |l: &Option<Vec<String>>| l.clone().filter(|l| !l.is_empty());
    let limit = |n: Option<i64>| n.filter(|n| *n > 0);
    let restart = host
        .restart_policy
        .as_ref()
        .and_then(|p| p.name.as_ref())
        .map(ToString::to_string)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "no".to_owned());
    let canonical = serde_json::json!({
        "env": env,
        "cmd": list(&config.cmd),
        "entrypoint": list(&config.entrypoint),
        "user": text(&config.user),
        "working_dir": text(&config.working_dir),
        "mounts": mounts,
        "restart": restart,
        "memory": limit(host.memory),
        "nano_cpus": limit(host.nano_cpus),
        "cpu_shares": limit(host.cpu_shares),
        "pids_limit": limit(host.pids_limit),
    });
    let digest = sha2::Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn ping(&self) -> Result<RuntimeInfo> {
        let d = self.client().await?;
        let v = self.bounded("docker version", d.version()).await?;
        let info = self.bounded("docker info", d.info()).await?;
        Ok(RuntimeInfo {
            version: v.version.unwrap_or_default(),
            api_version: d.client_version().to_string(),
            root_dir: info.docker_root_dir,
        })
    }

    async fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<ContainerSummary>> {
        let d = self.client().await?;
        let opts = ListContainersOptionsBuilder::new().all(filter.all).filters(&label_filters(filter)).build();
        let list = self.bounded("list containers", d.list_containers(Some(opts))).await?;
        let mut out: Vec<ContainerSummary> = list
            .into_iter()
            .map(|c| {
                let labels: BTreeMap<String, String> = c.labels.unwrap_or_default().into_iter().collect();
                ContainerSummary {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    state: c.state.map_or(ContainerState::Unknown, |s| ContainerState::parse(s.as_ref())),
                    status: c.status.unwrap_or_default(),
                    compose_project: labels.get(COMPOSE_PROJECT_LABEL).cloned(),
                    compose_service: labels.get(COMPOSE_SERVICE_LABEL).cloned(),
                    labels,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn inspect(&self, container: &str) -> Result<ContainerDetails> {
        let d = self.client().await?;
        let c = self.bounded(&format!("inspect {container}"), d.inspect_container(container, None)).await?;
        let created_at = time_field(&c, "Created");
        let state = c.state.unwrap_or_default();
        let health = state.health.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let host = c.host_config.unwrap_or_default();
        let labels: BTreeMap<String, String> = config.labels.clone().unwrap_or_default().into_iter().collect();
        let config_hash = config_hash(&config, &host, c.mounts.as_deref().unwrap_or_default());
        // Names only: a value is dropped here and never leaves the adapter.
        let mut env_names: Vec<String> =
            config.env.iter().flatten().map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_owned()).collect();
        env_names.sort_unstable();
        env_names.dedup();
        let mut published_ports: Vec<u16> = host
            .port_bindings
            .iter()
            .flatten()
            .filter(|(port, _)| port.ends_with("/tcp"))
            .flat_map(|(_, bindings)| bindings.iter().flatten())
            .filter_map(|b| b.host_port.as_deref().and_then(|p| p.parse().ok()))
            .collect();
        published_ports.sort_unstable();
        published_ports.dedup();
        Ok(ContainerDetails {
            id: c.id.unwrap_or_default(),
            name: c.name.unwrap_or_default().trim_start_matches('/').to_owned(),
            image: config.image.clone().unwrap_or_default(),
            image_id: c.image.unwrap_or_default(),
            created_at,
            config_hash,
            state: state.status.map_or(ContainerState::Unknown, |s| ContainerState::parse(s.as_ref())),
            health: match health.status {
                Some(HealthStatusEnum::STARTING) => HealthStatus::Starting,
                Some(HealthStatusEnum::HEALTHY) => HealthStatus::Healthy,
                Some(HealthStatusEnum::UNHEALTHY) => HealthStatus::Unhealthy,
                _ => HealthStatus::None,
            },
            health_failing_streak: u32::try_from(health.failing_streak.unwrap_or(0)).unwrap_or(0),
            last_health_output: health
                .log
                .and_then(|l| l.into_iter().last())
                .and_then(|r| r.output)
                .map(|o| o.trim().to_owned()),
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            restart_count: u32::try_from(c.restart_count.unwrap_or(0)).unwrap_or(0),
            restart_policy: host
                .restart_policy
                .and_then(|p| p.name)
                .map(|n| n.to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "no".to_owned()),
            started_at: parse_time(state.started_at.as_deref()),
            finished_at: parse_time(state.finished_at.as_deref()),
            memory_limit_bytes: host.memory.and_then(|m| u64::try_from(m).ok()).filter(|m| *m > 0),
            error: state.error.filter(|e| !e.is_empty()),
            compose_service: labels.get(COMPOSE_SERVICE_LABEL).cloned(),
            labels,
            env_names,
            published_ports,
        })
    }

    async fn logs(&self, container: &str, options: &LogOptions) -> Result<Vec<LogLine>> {
        let d = self.client().await?;
        let mut b = LogsOptionsBuilder::new().stdout(true).stderr(true).timestamps(options.timestamps);
        let tail = options.tail.map(|t| t.to_string());
        if let Some(t) = &tail {
            b = b.tail(t);
        }
        if let Some(since) = options.since {
            b = b.since(i32::try_from(since.timestamp()).unwrap_or(i32::MAX));
        }
        let what = format!("logs of {container}");
        let collect = async {
            let mut stream = d.logs(container, Some(b.build()));
            let mut lines = Vec::new();
            while let Some(item) = stream.next().await {
                let (stream, bytes) = match item? {
                    LogOutput::StdErr { message } => (LogStream::Stderr, message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => (LogStream::Stdout, message),
                    LogOutput::StdIn { .. } => continue,
                };
                for raw in String::from_utf8_lossy(&bytes).lines() {
                    let (timestamp, text) = match raw.split_once(' ') {
                        Some((ts, rest)) if options.timestamps => (parse_time(Some(ts)), rest),
                        _ => (None, raw),
                    };
                    lines.push(LogLine { stream, timestamp, text: text.to_owned() });
                }
            }
            Ok(lines)
        };
        self.bounded(&what, collect).await
    }

    async fn start(&self, container: &str) -> Result<()> {
        let d = self.client().await?;
        let what = format!("start {container}");
        match self.bounded(&what, d.start_container(container, None)).await {
            // 304: already started.
            Err(e) if e.message().contains("already started") => Ok(()),
            r => r,
        }
    }

    async fn stop(&self, container: &str, timeout: Duration) -> Result<()> {
        let d = self.client().await?;
        let opts = StopContainerOptionsBuilder::new().t(secs(timeout)).build();
        let fut = d.stop_container(container, Some(opts));
        match tokio::time::timeout(self.timeout + timeout, fut).await {
            Ok(r) => r.map_err(|e| map_err(e, &format!("stop {container}"))),
            Err(_) => Err(Error::timeout(format!("stop {container}"), self.timeout + timeout)),
        }
    }

    async fn restart(&self, container: &str, timeout: Duration) -> Result<()> {
        let d = self.client().await?;
        let opts = RestartContainerOptionsBuilder::new().t(secs(timeout)).build();
        let fut = d.restart_container(container, Some(opts));
        match tokio::time::timeout(self.timeout + timeout, fut).await {
            Ok(r) => r.map_err(|e| map_err(e, &format!("restart {container}"))),
            Err(_) => Err(Error::timeout(format!("restart {container}"), self.timeout + timeout)),
        }
    }

    async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        let d = self.client().await?;
        if spec.cmd.is_empty() {
            return Err(Error::invalid_input("exec needs a command"));
        }
        let what = format!("exec in {container}");
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let create = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(spec.cmd.clone()),
            env: (!env.is_empty()).then_some(env),
            user: spec.user.clone(),
            working_dir: spec.workdir.clone(),
            ..Default::default()
        };
        let exec = self.bounded(&what, d.create_exec(container, create)).await?;
        let run = async {
            let started = d.start_exec(&exec.id, Some(StartExecOptions::default())).await?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            if let StartExecResults::Attached { mut output, .. } = started {
                while let Some(item) = output.next().await {
                    match item? {
                        // Kept up to a bound each, the rest read and dropped.
                        LogOutput::StdErr { message } => keep_bounded(&mut stderr, &message),
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            keep_bounded(&mut stdout, &message);
                        }
                        LogOutput::StdIn { .. } => {}
                    }
                }
            }
            // The exit code is set a moment after the output stream closes.
            let mut inspect = d.inspect_exec(&exec.id).await?;
            for _ in 0..50 {
                if inspect.running != Some(true) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                inspect = d.inspect_exec(&exec.id).await?;
            }
            Ok::<_, bollard::errors::Error>(ExecOutput {
                exit_code: inspect.exit_code.unwrap_or(-1),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            })
        };
        let limit = spec.timeout.unwrap_or(self.timeout);
        match tokio::time::timeout(limit, run).await {
            Ok(r) => r.map_err(|e| map_err(e, &what)),
            Err(_) => Err(Error::timeout(what, limit)),
        }
    }

    async fn stats(&self, container: &str) -> Result<ContainerStats> {
        let d = self.client().await?;
        let what = format!("stats of {container}");
        // `one_shot` skips the pre-sample on new engines, which leaves precpu empty; a single
        // non-streaming sample carries both, like `docker stats --no-stream`.
        let opts = StatsOptionsBuilder::new().stream(false).build();
        let fut = async {
            let mut s = d.stats(container, Some(opts));
            s.next().await.transpose()
        };
        let sample = self
            .bounded(&what, fut)
            .await?
            .ok_or_else(|| Error::internal(format!("{what}: the engine returned no sample")))?;
        if sample.read.is_none() && sample.memory_stats.as_ref().and_then(|m| m.usage).is_none() {
            return Err(Error::conflict(format!("{what}: container is not running")));
        }
        let (memory_usage_bytes, memory_limit_bytes) = memory_usage(&sample);
        Ok(ContainerStats { cpu_percent: cpu_percent(&sample), memory_usage_bytes, memory_limit_bytes })
    }

    async fn run_ephemeral(&self, spec: &RunSpec) -> Result<RunningContainer> {
        let d = self.client().await?;
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(EPHEMERAL_LABEL.to_owned(), "true".to_owned());
        let port_key = spec.publish_port.map(|p| format!("{p}/tcp"));
        let port_bindings = port_key.as_ref().map(|k| {
            HashMap::from([(
                k.clone(),
                Some(vec![PortBinding { host_ip: Some("127.0.0.1".to_owned()), host_port: Some(String::new()) }]),
            )])
        });
        let restart_policy = match spec.restart {
            RestartPolicy::No => None,
            RestartPolicy::Always => {
                Some(BollardRestart { name: Some(RestartPolicyNameEnum::ALWAYS), maximum_retry_count: None })
            }
            RestartPolicy::OnFailure(n) => Some(BollardRestart {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: Some(i64::from(n)),
            }),
        };
        let memory = spec.memory_limit_bytes.and_then(|m| i64::try_from(m).ok());
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
            labels: Some(labels),
            exposed_ports: port_key.as_ref().map(|k| vec![k.clone()]),
            healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
                test: Some(std::iter::once("CMD".to_owned()).chain(h.cmd.iter().cloned()).collect()),
                interval: Some(nanos(h.interval)),
                timeout: Some(nanos(h.timeout)),
                retries: Some(i64::from(h.retries)),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                port_bindings,
                restart_policy,
                memory,
                memory_swap: memory,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut opts = CreateContainerOptionsBuilder::new();
        if let Some(name) = &spec.name {
            opts = opts.name(name);
        }
        let what = format!("create container from {}", spec.image);
        let created = self.bounded(&what, d.create_container(Some(opts.build()), body)).await?;
        if let Err(e) = self.bounded(&what, d.start_container(&created.id, None)).await {
            // Leave nothing behind when the start fails.
            let _ = self.remove(&created.id, true).await;
            return Err(e);
        }
        let details = self.bounded(&what, d.inspect_container(&created.id, None)).await?;
        let host_port = port_key.as_ref().and_then(|k| {
            details
                .network_settings
                .as_ref()?
                .ports
                .as_ref()?
                .get(k)?
                .as_ref()?
                .iter()
                .find_map(|b| b.host_port.as_deref()?.parse::<u16>().ok())
        });
        if spec.publish_port.is_some() && host_port.is_none() {
            let _ = self.remove(&created.id, true).await;
            return Err(Error::internal(format!("{what}: the engine did not publish the port")));
        }
        Ok(RunningContainer {
            id: created.id,
            name: details.name.unwrap_or_default().trim_start_matches('/').to_owned(),
            host_port,
        })
    }

    async fn remove(&self, container: &str, force: bool) -> Result<()> {
        let d = self.client().await?;
        let opts = RemoveContainerOptionsBuilder::new().force(force).v(true).build();
        self.bounded(&format!("remove {container}"), d.remove_container(container, Some(opts))).await
    }

    async fn remove_keeping_volumes(&self, container: &str, force: bool) -> Result<()> {
        let d = self.client().await?;
        let opts = RemoveContainerOptionsBuilder::new().force(force).v(false).build();
        self.bounded(&format!("remove {container}"), d.remove_container(container, Some(opts))).await
    }

    async fn create_like(&self, like: &str, image: &str, name: &str) -> Result<String> {
        let d = self.client().await?;
        let what = format!("create {name} like {like}");
        let old = self.bounded(&what, d.inspect_container(like, None)).await?;
        // The old image's own configuration: what the container only had from it.
        let old_image = match old.image.as_deref() {
            Some(id) => self.bounded(&what, d.inspect_image(id)).await.ok(),
            None => None,
        };
        let image_config = old_image.and_then(|i| serde_json::to_value(&i).ok()).and_then(|v| v.get("Config").cloned());
        let mut body = create_body_like(&serde_json::to_value(&old).unwrap_or_default(), image_config.as_ref(), image)
            .ok_or_else(|| Error::internal(format!("{what}: the engine's description of {like} is incomplete")))?;
        // Compose's record of the image its container runs: the older one's id now.
        if let Some(Some(label)) = body
            .pointer_mut("/Labels")
            .and_then(serde_json::Value::as_object_mut)
            .map(|l| l.get_mut(COMPOSE_IMAGE_LABEL))
            && let Ok(Some(id)) = self.bounded(&what, d.inspect_image(image)).await.map(|i| i.id)
        {
            *label = serde_json::Value::String(id);
        }
        // Before API 1.44 a create takes one network: the others are connected afterwards.
        let v = d.client_version();
        let later = if (v.major_version, v.minor_version) < (1, 44) { split_networks(&mut body) } else { Vec::new() };
        let body: ContainerCreateBody = serde_json::from_value(body)
            .map_err(|e| Error::internal(format!("{what}: its configuration does not carry over ({e})")))?;
        let opts = CreateContainerOptionsBuilder::new().name(name).build();
        let id = self.bounded(&what, d.create_container(Some(opts), body)).await?.id;
        for (net, endpoint) in later {
            let endpoint_config = serde_json::from_value(endpoint).ok();
            let req = bollard::models::NetworkConnectRequest { container: id.clone(), endpoint_config };
            if let Err(e) = self.bounded(&format!("connect {name} to {net}"), d.connect_network(&net, req)).await {
                // Half made is not made: the caller puts the old one back.
                let _ = self.remove(&id, true).await;
                return Err(e);
            }
        }
        Ok(id)
    }

    async fn pause(&self, container: &str) -> Result<()> {
        let d = self.client().await?;
        self.bounded(&format!("pause {container}"), d.pause_container(container)).await
    }

    async fn unpause(&self, container: &str) -> Result<()> {
        let d = self.client().await?;
        self.bounded(&format!("unpause {container}"), d.unpause_container(container)).await
    }

    async fn rename(&self, container: &str, new_name: &str) -> Result<()> {
        let d = self.client().await?;
        let opts = bollard::query_parameters::RenameContainerOptionsBuilder::new().name(new_name).build();
        self.bounded(&format!("rename {container} to {new_name}"), d.rename_container(container, opts)).await
    }

    async fn image(&self, image: &str) -> Result<ImageInfo> {
        let d = self.client().await?;
        let i = self.bounded(&format!("inspect image {image}"), d.inspect_image(image)).await?;
        let created_at = time_field(&i, "Created");
        Ok(ImageInfo {
            id: i.id.unwrap_or_default(),
            repo_tags: i.repo_tags.unwrap_or_default(),
            repo_digests: i.repo_digests.unwrap_or_default(),
            created_at,
            size_bytes: i.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        })
    }

    async fn disk_usage(&self) -> Result<DiskUsage> {
        let d = self.client().await?;
        // Summed from the list endpoints, which every API version answers the same way (the
        // shape of /system/df changed between API 1.41 and 1.52).
        let containers = self
            .bounded(
                "list containers",
                d.list_containers(Some(ListContainersOptionsBuilder::new().all(true).size(true).build())),
            )
            .await?;
        let images = self
            .bounded("list images", d.list_images(Some(ListImagesOptionsBuilder::new().all(false).build())))
            .await?;
        let plan = self.prune_plan().await?;
        Ok(DiskUsage {
            images_bytes: images.iter().map(|i| u64::try_from(i.size).unwrap_or(0)).sum(),
            containers_bytes: containers.iter().map(|c| to_u64(c.size_rw)).sum(),
            reclaimable_bytes: plan.total_bytes(),
        })
    }

    async fn disk_report(&self) -> Result<EngineDisk> {
        let d = self.client().await?;
        let path = format!("/v{}/system/df?verbose=1", d.client_version());
        // The engine measures every writable layer and volume for this answer: slow on a big
        // host, so it gets a minute at least.
        let limit = self.timeout.max(Duration::from_secs(60));
        let answer = tokio::time::timeout(limit, super::df::get_json(&self.host, &path))
            .await
            .map_err(|_| Error::timeout("docker system df", limit))??;
        Ok(super::df::parse(&answer))
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        let d = self.client().await?;
        let info = self.bounded(&format!("inspect image {image}"), d.inspect_image(image)).await?;
        let id = info.id.unwrap_or_else(|| image.to_owned());
        let opts = || RemoveImageOptionsBuilder::new().force(false).build();
        // Untagging a tag of an image with several never asks whether a container uses it:
        // asked here first, so that an image in use keeps every tag.
        let ancestor = HashMap::from([("ancestor".to_owned(), vec![id.clone()])]);
        let users = self
            .bounded(
                &format!("list the containers of image {image}"),
                d.list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&ancestor).build())),
            )
            .await?;
        if let Some(c) = users.iter().find(|c| c.image_id.as_deref() == Some(id.as_str())) {
            let name = c.names.as_ref().and_then(|n| n.first()).map_or("a container", |n| n.trim_start_matches('/'));
            return Err(Error::conflict(format!("image {image} is used by container {name}")));
        }
        // Untagging the last tag removes the image; an image with several tags can only be
        // removed by id with --force, which would also remove one a container uses. A tag moved
        // to another image since is left alone, and the image stays.
        for tag in info.repo_tags.unwrap_or_default().iter().filter(|t| *t != "<none>:<none>") {
            let now = self.bounded(&format!("inspect image {tag}"), d.inspect_image(tag)).await?;
            if now.id.as_deref() != Some(id.as_str()) {
                return Err(Error::conflict(format!("tag {tag} names another image now")));
            }
            self.bounded(&format!("untag {tag}"), d.remove_image(tag, Some(opts()), None)).await?;
        }
        match self.bounded(&format!("remove image {id}"), d.remove_image(&id, Some(opts()), None)).await {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other.map(drop),
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let d = self.client().await?;
        let opts = bollard::query_parameters::RemoveVolumeOptionsBuilder::new().force(false).build();
        self.bounded(&format!("remove volume {name}"), d.remove_volume(name, Some(opts))).await
    }

    async fn prune_build_cache(&self, last_used_before: DateTime<Utc>) -> Result<u64> {
        let d = self.client().await?;
        // As a duration: what Docker 20.10 takes (later engines take a timestamp too). Rounded
        // up, so that nothing used after `last_used_before` goes.
        let ago = (Utc::now() - last_used_before).num_milliseconds().max(0);
        let secs = (ago + 999) / 1000;
        // Without `all`, BuildKit keeps the records an image still holds (removing them frees
        // nothing) and its internal and frontend ones: what `reclaimable_build_cache` counts.
        let filters = HashMap::from([("until".to_owned(), vec![format!("{}s", secs.max(1))])]);
        let opts = bollard::query_parameters::PruneBuildOptionsBuilder::new().all(false).filters(&filters).build();
        // Removing gigabytes of cache takes a while.
        let limit = self.timeout.max(Duration::from_secs(300));
        let answer = tokio::time::timeout(limit, d.prune_build(Some(opts)))
            .await
            .map_err(|_| Error::timeout("docker builder prune", limit))?
            .map_err(|e| map_err(e, "docker builder prune"))?;
        Ok(to_u64(answer.space_reclaimed))
    }

    async fn log_file(&self, container: &str) -> Result<Option<String>> {
        let d = self.client().await?;
        let c = self.bounded(&format!("inspect {container}"), d.inspect_container(container, None)).await?;
        Ok(c.log_path.filter(|p| !p.is_empty()))
    }

    async fn prune_plan(&self) -> Result<EnginePrunePlan> {
        let d = self.client().await?;
        let stopped =
            HashMap::from([("status".to_owned(), vec!["exited".to_owned(), "created".to_owned(), "dead".to_owned()])]);
        let containers = self
            .bounded(
                "list stopped containers",
                d.list_containers(Some(
                    ListContainersOptionsBuilder::new().all(true).size(true).filters(&stopped).build(),
                )),
            )
            .await?;
        let dangling = HashMap::from([("dangling".to_owned(), vec!["true".to_owned()])]);
        let images = self
            .bounded(
                "list dangling images",
                d.list_images(Some(ListImagesOptionsBuilder::new().filters(&dangling).build())),
            )
            .await?;
        let mut targets: Vec<EnginePruneTarget> = containers
            .into_iter()
            .map(|c| EnginePruneTarget::Container {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                bytes: to_u64(c.size_rw),
            })
            .collect();
        targets.extend(
            images
                .into_iter()
                .map(|i| EnginePruneTarget::Image { id: i.id, bytes: u64::try_from(i.size).unwrap_or(0) }),
        );
        Ok(EnginePrunePlan { targets })
    }

    async fn prune(&self, plan: &EnginePrunePlan) -> Result<EnginePruneReport> {
        let d = self.client().await?;
        let mut report = EnginePruneReport::default();
        // Containers first: removing them can make their images dangling-and-unused.
        for target in &plan.targets {
            let result = match target {
                EnginePruneTarget::Container { id, .. } => {
                    // Only a container that is still stopped: never force-remove a running one.
                    match self.inspect(id).await {
                        Ok(d)
                            if matches!(
                                d.state,
                                ContainerState::Exited | ContainerState::Created | ContainerState::Dead
                            ) =>
                        {
                            // Like `docker container prune`: its volumes, anonymous ones too, stay.
                            self.remove_keeping_volumes(id, false).await
                        }
                        Ok(d) => Err(Error::conflict(format!("container {} is {:?} now", d.name, d.state))),
                        Err(e) => Err(e),
                    }
                }
                EnginePruneTarget::Image { id, .. } => {
                    let opts = RemoveImageOptionsBuilder::new().force(false).build();
                    self.bounded(&format!("remove image {id}"), d.remove_image(id, Some(opts), None)).await.map(|_| ())
                }
            };
            match result {
                Ok(()) => {
                    report.freed_bytes += target.bytes();
                    report.removed.push(target.clone());
                }
                Err(e) if e.kind() == ErrorKind::Unavailable => return Err(e),
                Err(e) => report.skipped.push((target.clone(), e.to_string())),
            }
        }
        Ok(report)
    }
}
