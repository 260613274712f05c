//! [`ContainerRuntime`]: the container engine (Docker).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Label Docker Compose puts on every container of a project.
pub const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
/// Label Docker Compose puts on every container of a service.
pub const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";

/// The engine answering, and the API version both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuntimeInfo {
    /// Engine version (`20.10.24`).
    pub version: String,
    /// Negotiated API version (`1.41`).
    pub api_version: String,
    /// Docker data root (`/var/lib/docker`), when the engine reports it.
    pub root_dir: Option<String>,
}

/// Which containers to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerFilter {
    /// Include stopped containers.
    pub all: bool,
    /// Only containers of this Compose project.
    pub compose_project: Option<String>,
    /// Only containers of this Compose service.
    pub compose_service: Option<String>,
    /// Only containers carrying all these labels (value `None` matches any value).
    pub labels: BTreeMap<String, Option<String>>,
}

/// Coarse container state, as `docker ps` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Stopped.
    Exited,
    /// Could not be stopped or removed.
    Dead,
    /// A state this version does not know.
    #[default]
    Unknown,
}

impl ContainerState {
    /// Parses Docker's state string.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "restarting" => Self::Restarting,
            "removing" => Self::Removing,
            "exited" => Self::Exited,
            "dead" => Self::Dead,
            _ => Self::Unknown,
        }
    }
}

/// Healthcheck result of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The image defines no healthcheck.
    #[default]
    None,
    /// Within the start period.
    Starting,
    /// Last checks passed.
    Healthy,
    /// Retries exhausted.
    Unhealthy,
}

/// One line of `docker ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerSummary {
    /// Full container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image as given at creation.
    pub image: String,
    /// State.
    pub state: ContainerState,
    /// Docker's human status (`Up 3 minutes (healthy)`).
    pub status: String,
    /// Compose project label, if any.
    pub compose_project: Option<String>,
    /// Compose service label, if any.
    pub compose_service: Option<String>,
    /// All labels.
    pub labels: BTreeMap<String, String>,
}

/// What `docker image inspect` tells about an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageInfo {
    /// `sha256:…`.
    pub id: String,
    /// Its tags (`shop/api:1.4`).
    pub repo_tags: Vec<String>,
    /// Its registry digests (`shop/api@sha256:…`); none for an image built or imported here.
    pub repo_digests: Vec<String>,
    /// When it was built.
    pub created_at: Option<DateTime<Utc>>,
    /// Bytes.
    pub size_bytes: u64,
}

/// What `docker inspect` tells about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerDetails {
    /// Full container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image as given at creation.
    pub image: String,
    /// The image's id (`sha256:…`): what runs, whatever its tag now points at.
    #[serde(default)]
    pub image_id: String,
    /// When the container was created (a deploy recreates it).
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// A hash of the configuration that makes the service what it is: environment variable
    /// names (never values), command, entrypoint, user, working directory, mounts, restart
    /// policy and limits. Two containers with the same image and hash run the same version.
    #[serde(default)]
    pub config_hash: String,
    /// State.
    pub state: ContainerState,
    /// Healthcheck status.
    pub health: HealthStatus,
    /// Consecutive failed healthchecks.
    pub health_failing_streak: u32,
    /// Output of the last healthcheck, trimmed.
    pub last_health_output: Option<String>,
    /// Exit code of the last run (0 while running for the first time).
    pub exit_code: Option<i64>,
    /// Whether the kernel OOM killer ended the last run.
    pub oom_killed: bool,
    /// Restarts done by the restart policy.
    pub restart_count: u32,
    /// Restart policy name (`no`, `always`, `unless-stopped`, `on-failure`).
    pub restart_policy: String,
    /// Start of the current or last run.
    pub started_at: Option<DateTime<Utc>>,
    /// End of the last run.
    pub finished_at: Option<DateTime<Utc>>,
    /// Memory limit in bytes (`None`: unlimited).
    pub memory_limit_bytes: Option<u64>,
    /// Engine error message for the last start, if any.
    pub error: Option<String>,
    /// Compose service label, if any.
    pub compose_service: Option<String>,
    /// All labels.
    pub labels: BTreeMap<String, String>,
    /// The names of its environment variables, sorted (values are never kept: secrets).
    #[serde(default)]
    pub env_names: Vec<String>,
    /// Host ports it publishes or asks to publish (its port bindings, also when it could not
    /// start), TCP only, sorted.
    #[serde(default)]
    pub published_ports: Vec<u16>,
}

/// Which logs to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogOptions {
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Only lines after this moment.
    pub since: Option<DateTime<Utc>>,
    /// Ask the engine for timestamps.
    pub timestamps: bool,
}

/// Stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// Its stream.
    pub stream: LogStream,
    /// When the engine recorded it (with `timestamps`).
    pub timestamp: Option<DateTime<Utc>>,
    /// The text, without the trailing newline.
    pub text: String,
}

/// A command to run inside a running container. Arguments are passed as an array, never
/// through a shell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecSpec {
    /// Program and arguments.
    pub cmd: Vec<String>,
    /// Extra environment (`KEY=value` pairs by name).
    pub env: BTreeMap<String, String>,
    /// User to run as.
    pub user: Option<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Give up after this long (the command keeps running in the container).
    pub timeout: Option<Duration>,
}

/// What an exec printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecOutput {
    /// Exit code.
    pub exit_code: i64,
    /// Captured standard output.
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
}

/// One-shot resource usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerStats {
    /// CPU use in percent of one core (200 % = two cores busy), like `docker stats`.
    pub cpu_percent: f64,
    /// Memory in use, page cache excluded, like `docker stats`.
    pub memory_usage_bytes: u64,
    /// Memory limit (the host's memory when the container has none).
    pub memory_limit_bytes: u64,
}

/// Restart policy of a container started with [`ContainerRuntime::run_ephemeral`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Always restart.
    Always,
    /// Restart on a non-zero exit, at most N times (0: no limit).
    OnFailure(u32),
}

/// A healthcheck for a container started with [`ContainerRuntime::run_ephemeral`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Healthcheck {
    /// Command, run without a shell (`["pg_isready", "-U", "postgres"]`).
    pub cmd: Vec<String>,
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// Failures before `unhealthy`.
    pub retries: u32,
}

/// A container to start for a while (a drill database, a helper) and remove afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSpec {
    /// Image, which must exist locally or be pullable.
    pub image: String,
    /// Container name; the engine picks one when unset.
    pub name: Option<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Command (the image's default when empty).
    pub cmd: Vec<String>,
    /// Container port to publish on a random port of 127.0.0.1 (TCP).
    pub publish_port: Option<u16>,
    /// Labels (every container gets `ops.ephemeral=true` too).
    pub labels: BTreeMap<String, String>,
    /// Memory limit in bytes (swap is limited to the same value).
    pub memory_limit_bytes: Option<u64>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Healthcheck.
    pub healthcheck: Option<Healthcheck>,
}

/// A container started by [`ContainerRuntime::run_ephemeral`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunningContainer {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// The 127.0.0.1 port the requested container port is published on.
    pub host_port: Option<u16>,
}

/// Disk used by the engine, like the totals of `docker system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskUsage {
    /// Bytes used by images.
    pub images_bytes: u64,
    /// Bytes written by containers (their writable layers).
    pub containers_bytes: u64,
    /// Bytes a prune of stopped containers and dangling images would free.
    pub reclaimable_bytes: u64,
}

/// What the engine stores, item by item (`docker system df -v`), read from `/system/df` in
/// the shape of the engine's API version: arrays up to API 1.51 (Docker 20.10 to 28), per-kind
/// usage objects with `Items` from 1.52 on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngineDisk {
    /// Bytes of every image layer, each counted once.
    pub layers_bytes: u64,
    /// Images.
    pub images: Vec<DiskImage>,
    /// Containers, running or not.
    pub containers: Vec<DiskContainer>,
    /// Volumes.
    pub volumes: Vec<DiskVolume>,
    /// Build cache records (BuildKit).
    pub build_cache: Vec<BuildCacheRecord>,
}

/// One image in [`EngineDisk`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskImage {
    /// Image id (`sha256:…`).
    pub id: String,
    /// Its tags (none: dangling).
    pub tags: Vec<String>,
    /// Bytes of all its layers.
    pub size_bytes: u64,
    /// Bytes of its layers other images share too (removing it frees the rest).
    pub shared_bytes: u64,
    /// Containers (running or not) created from it.
    pub containers: u64,
    /// The image it was built on locally (legacy builder), empty for a pulled one.
    pub parent_id: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// One container in [`EngineDisk`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskContainer {
    /// Id.
    pub id: String,
    /// Name (without the leading `/`).
    pub name: String,
    /// The id of its image.
    pub image_id: String,
    /// `running`, `exited`, `created`, ….
    pub state: String,
    /// Bytes of its writable layer.
    pub size_rw: u64,
    /// Names of the volumes it mounts.
    pub volumes: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// One volume in [`EngineDisk`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskVolume {
    /// Name.
    pub name: String,
    /// Driver (`local`).
    pub driver: String,
    /// Labels (`com.docker.compose.project`, `com.docker.volume.anonymous`).
    pub labels: BTreeMap<String, String>,
    /// Bytes, when the engine measured it (`local` volumes).
    pub size_bytes: Option<u64>,
    /// Containers (running or not) that mount it, when the engine counted them.
    pub ref_count: Option<u64>,
}

/// One BuildKit cache record in [`EngineDisk`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuildCacheRecord {
    /// Id.
    pub id: String,
    /// `regular`, `internal`, `frontend`, `source.local`, ….
    pub kind: String,
    /// Used by a build running now.
    pub in_use: bool,
    /// Shared with an image (removing the record frees nothing the image still holds).
    pub shared: bool,
    /// Bytes.
    pub size_bytes: u64,
    /// When a build last used it.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl BuildCacheRecord {
    /// Whether a prune without `--all` removes it: no build uses it, no image shares it, and
    /// it is not one of BuildKit's internal or frontend records.
    #[must_use]
    pub fn reclaimable(&self) -> bool {
        !self.in_use && !self.shared && !matches!(self.kind.as_str(), "internal" | "frontend")
    }
}

/// What a prune would remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EnginePruneTarget {
    /// A stopped container.
    Container {
        /// Id.
        id: String,
        /// Name.
        name: String,
        /// Bytes of its writable layer.
        bytes: u64,
    },
    /// A dangling (untagged, unused) image.
    Image {
        /// Id.
        id: String,
        /// Bytes.
        bytes: u64,
    },
}

impl EnginePruneTarget {
    /// Bytes this item frees.
    #[must_use]
    pub const fn bytes(&self) -> u64 {
        match self {
            Self::Container { bytes, .. } | Self::Image { bytes, .. } => *bytes,
        }
    }
}

/// The plan of a prune, computed without removing anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnginePrunePlan {
    /// Items to remove.
    pub targets: Vec<EnginePruneTarget>,
}

impl EnginePrunePlan {
    /// Bytes the whole plan frees.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.targets.iter().map(EnginePruneTarget::bytes).sum()
    }
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnginePruneReport {
    /// Items removed.
    pub removed: Vec<EnginePruneTarget>,
    /// Items that could not be removed, with the reason (for example: in use again).
    pub skipped: Vec<(EnginePruneTarget, String)>,
    /// Bytes freed.
    pub freed_bytes: u64,
}

/// A container engine.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Checks the engine answers and reports its version.
    ///
    /// # Errors
    /// `Unavailable` when the engine cannot be reached.
    async fn ping(&self) -> Result<RuntimeInfo>;

    /// Lists containers, optionally only a Compose project's or service's.
    ///
    /// # Errors
    /// `Unavailable` when the engine cannot be reached.
    async fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<ContainerSummary>>;

    /// Inspects one container by id or name.
    ///
    /// # Errors
    /// `NotFound` when no such container exists.
    async fn inspect(&self, container: &str) -> Result<ContainerDetails>;

    /// Fetches log lines.
    ///
    /// # Errors
    /// `NotFound` when no such container exists.
    async fn logs(&self, container: &str, options: &LogOptions) -> Result<Vec<LogLine>>;

    /// Starts a stopped container (no-op when running).
    ///
    /// # Errors
    /// `NotFound`, or `Conflict`/`Internal` when the engine refuses.
    async fn start(&self, container: &str) -> Result<()>;

    /// Stops a container, killing it after `timeout` (no-op when stopped).
    ///
    /// # Errors
    /// `NotFound` when no such container exists.
    async fn stop(&self, container: &str, timeout: Duration) -> Result<()>;

    /// Restarts a container, killing it after `timeout` if it does not stop.
    ///
    /// # Errors
    /// `NotFound` when no such container exists.
    async fn restart(&self, container: &str, timeout: Duration) -> Result<()>;

    /// Runs a command in a running container and collects its output (the first MiB of each
    /// stream).
    ///
    /// # Errors
    /// `NotFound`, `Conflict` (container not running), `Timeout`.
    async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<ExecOutput>;

    /// One-shot CPU and memory statistics.
    ///
    /// # Errors
    /// `NotFound`, `Conflict` (container not running).
    async fn stats(&self, container: &str) -> Result<ContainerStats>;

    /// Creates and starts a container; the caller removes it with [`remove`](Self::remove).
    ///
    /// # Errors
    /// `NotFound` (image missing), `Conflict` (name taken), `Unavailable`.
    async fn run_ephemeral(&self, spec: &RunSpec) -> Result<RunningContainer>;

    /// Removes a container (with `force`, also a running one) and its anonymous volumes.
    ///
    /// # Errors
    /// `NotFound` when no such container exists.
    async fn remove(&self, container: &str, force: bool) -> Result<()>;

    /// Removes a container (with `force`, also a running one) and keeps its volumes, anonymous
    /// ones included: what a replacement created with [`create_like`](Self::create_like) took
    /// over.
    ///
    /// # Errors
    /// `NotFound` when no such container exists.
    async fn remove_keeping_volumes(&self, container: &str, force: bool) -> Result<()>;

    /// Creates (not starts) a container named `name` with the configuration of `like` (labels,
    /// environment, command, mounts and its anonymous volumes, networks and their aliases,
    /// ports, restart policy, limits) on `image` instead of its own: what a rollback or a
    /// redeploy runs. What `like` only had from its own image (its environment defaults,
    /// command, entrypoint, healthcheck, labels) is left to `image`'s. `like` must no longer
    /// hold `name` (rename it first). The new container's id.
    ///
    /// # Errors
    /// `NotFound` (no such container or image), `Conflict` (name taken), `Unavailable`.
    async fn create_like(&self, like: &str, image: &str, name: &str) -> Result<String>;

    /// Freezes a running container's processes (`docker pause`).
    ///
    /// # Errors
    /// `NotFound`, `Conflict` (not running), `Unavailable`.
    async fn pause(&self, container: &str) -> Result<()>;

    /// Thaws a paused container (`docker unpause`).
    ///
    /// # Errors
    /// `NotFound`, `Conflict` (not paused), `Unavailable`.
    async fn unpause(&self, container: &str) -> Result<()>;

    /// Renames a container.
    ///
    /// # Errors
    /// `NotFound`, `Conflict` (name taken), `Unavailable`.
    async fn rename(&self, container: &str, new_name: &str) -> Result<()>;

    /// An image the engine holds, by id or reference.
    ///
    /// # Errors
    /// `NotFound` when the engine does not hold it, `Unavailable`.
    async fn image(&self, image: &str) -> Result<ImageInfo>;

    /// Disk used by images, containers, volumes and build cache.
    ///
    /// # Errors
    /// `Unavailable` when the engine cannot be reached.
    async fn disk_usage(&self) -> Result<DiskUsage>;

    /// Everything the engine stores, item by item, with sizes (`docker system df -v`).
    ///
    /// # Errors
    /// `Unavailable` when the engine cannot be reached, `Unsupported` over a transport this
    /// call does not speak (only `unix://` and `tcp://`/`http://`).
    async fn disk_report(&self) -> Result<EngineDisk>;

    /// Removes an image that no container (running or not) uses: each of its tags, then the
    /// image (`docker rmi` without `--force`). Nothing is untagged when a container uses it;
    /// it stops at a tag that names another image by then.
    ///
    /// # Errors
    /// `NotFound`, `Conflict` (a container uses it, a child image, a tag moved), `Unavailable`.
    async fn remove_image(&self, image: &str) -> Result<()>;

    /// Removes a volume no container uses (`docker volume rm` without `--force`).
    ///
    /// # Errors
    /// `NotFound`, `Conflict` (in use), `Unavailable`.
    async fn remove_volume(&self, name: &str) -> Result<()>;

    /// Removes the build cache no build uses and no image shares, but for BuildKit's internal
    /// and frontend records ([`BuildCacheRecord::reclaimable`]), last used before
    /// `last_used_before` (`docker builder prune --filter until=…`, without `--all`): the
    /// bytes the engine says it freed.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn prune_build_cache(&self, last_used_before: DateTime<Utc>) -> Result<u64>;

    /// The file a container's log is written to on the engine's host (the `json-file`
    /// driver; `None` with another, such as `local`, whose files the engine does not name).
    ///
    /// # Errors
    /// `NotFound` when no such container exists.
    async fn log_file(&self, container: &str) -> Result<Option<String>>;

    /// What a prune would remove (stopped containers and dangling images, like
    /// `docker system prune` without volumes), without removing anything.
    ///
    /// # Errors
    /// `Unavailable` when the engine cannot be reached.
    async fn prune_plan(&self) -> Result<EnginePrunePlan>;

    /// Removes exactly the items of `plan`, skipping those that are no longer removable.
    ///
    /// # Errors
    /// `Unavailable` when the engine cannot be reached.
    async fn prune(&self, plan: &EnginePrunePlan) -> Result<EnginePruneReport>;
}
