//! `dr_test`: the monthly restore drill, automated. Restore a backup into a throwaway
//! PostgreSQL of the same major version, prove every table against the manifest, and measure
//! the RTO (time to a verified copy) and the RPO (age of the newest backup) against the
//! targets.
//!
//! The throwaway server is a container started through the [`ContainerRuntime`] port, or,
//! where no container runtime answers, a local cluster (`initdb` + `pg_ctl` in a temporary
//! directory, see [`local_cluster`](ops_core::adapters::local_cluster)). Either is removed whatever happens: success,
//! failure, timeout or cancellation; a local cluster also when the future is dropped.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ops_core::ports::{ContainerRuntime, Database, DumpFormat, Notification, NotificationLevel, Readiness, RunSpec};
use ops_core::{Context, SecretUrl};
use serde::{Deserialize, Serialize};

use crate::check::{RestoreCheck, check_restored};
use crate::notify::{NotificationOutcome, notify_all};
use crate::progress::{Progress, ProgressEvent};
use crate::{Error, Result, catalog, lock, source, target};
use ops_core::adapters::local_cluster::{self as cluster, ClusterInfo, LocalCluster, RunAs, ServerPrograms};

/// Where the throwaway server of a drill runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum DrillBackend {
    /// The container runtime when one is configured and answers `ping`, else a local cluster.
    #[default]
    Auto,
    /// A container of the drill image, through the container runtime.
    Container,
    /// A local cluster: `initdb` + `pg_ctl` of the backup's major version in a temporary
    /// directory, on a free 127.0.0.1 port.
    Local,
}

impl DrillBackend {
    /// `auto`, `container` or `local`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Container => "container",
            Self::Local => "local",
        }
    }
}

impl std::fmt::Display for DrillBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DrillBackend {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "container" => Ok(Self::Container),
            "local" => Ok(Self::Local),
            other => Err(format!("unknown drill backend {other:?}: use auto, container or local")),
        }
    }
}

/// How long `auto` waits for the container runtime's answer before using a local cluster.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of [`dr_test`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DrillOptions {
    /// Config name of the database; the only one, or `main`, when unset.
    pub database: Option<String>,
    /// Backup id, `latest`, `s3://bucket/key`, or (with `allow_host_path`) a local path.
    pub source: String,
    /// PostgreSQL image of the container backend; `drill-image` from the config, else
    /// `postgres:{major}`. Refused with the `local` backend.
    pub image: Option<String>,
    /// Container, local cluster, or `auto` (the container runtime when it answers).
    pub backend: DrillBackend,
    /// Recovery time objective, seconds (the runbooks: 2 h).
    pub rto_target_secs: u64,
    /// Recovery point objective, seconds (the runbooks: 24 h).
    pub rpo_target_secs: u64,
    /// Give up after this many seconds (the drill fails, the server is removed).
    pub timeout_secs: u64,
    /// Drill a backup whose manifest names another database.
    pub allow_other_database: bool,
    /// Accept a path on this host as the source. Never deserialized: an HTTP caller cannot
    /// set it; the command line does.
    #[serde(skip)]
    pub allow_host_path: bool,
}

/// Largest drill timeout a caller may ask for (a week).
pub const MAX_DRILL_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
/// Largest RTO or RPO target a caller may give (a year).
pub const MAX_TARGET_SECS: u64 = 366 * 24 * 3600;

impl DrillOptions {
    /// Checks the numbers a caller gave.
    ///
    /// # Errors
    /// `InvalidInput` naming the field and its limit.
    pub fn validate(&self) -> Result<()> {
        if self.timeout_secs == 0 || self.timeout_secs > MAX_DRILL_TIMEOUT_SECS {
            return Err(Error::invalid_input(format!(
                "timeout-secs must be between 1 and {MAX_DRILL_TIMEOUT_SECS} (a week)"
            )));
        }
        for (name, v) in [("rto-target-secs", self.rto_target_secs), ("rpo-target-secs", self.rpo_target_secs)] {
            if v > MAX_TARGET_SECS {
                return Err(Error::invalid_input(format!("{name} must be at most {MAX_TARGET_SECS} (a year)")));
            }
        }
        Ok(())
    }
}

impl Default for DrillOptions {
    fn default() -> Self {
        Self {
            database: None,
            source: "latest".to_owned(),
            image: None,
            backend: DrillBackend::Auto,
            rto_target_secs: 2 * 3600,
            rpo_target_secs: 24 * 3600,
            timeout_secs: 3600,
            allow_other_database: false,
            allow_host_path: false,
        }
    }
}

/// What a drill proved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrillReport {
    /// Whether the drill passed: restorable, every table matches, RTO and RPO within target.
    pub passed: bool,
    /// What failed, in words.
    pub problems: Vec<String>,
    /// The backup restored.
    pub source: String,
    /// Its id, when it has a manifest.
    pub backup_id: Option<String>,
    /// The image of the throwaway container; for the local backend `local:` and the
    /// directory of the server programs (`local:/usr/lib/postgresql/15/bin`).
    pub image: String,
    /// Id of the throwaway container (removed by the time the report exists).
    pub container: Option<String>,
    /// The backend that ran: `container` or `local` (what `auto` chose).
    #[serde(default)]
    pub backend: DrillBackend,
    /// Why `auto` did not use the container runtime (`no container runtime is configured`,
    /// `the container runtime did not answer (…)`).
    #[serde(default)]
    pub backend_note: Option<String>,
    /// The local cluster: data directory, port, programs (removed by the time the report
    /// exists).
    #[serde(default)]
    pub cluster: Option<ClusterInfo>,
    /// Table-by-table evidence (absent when the restore did not get that far).
    pub check: Option<RestoreCheck>,
    /// Seconds from the start of the drill to a verified copy: the measured RTO.
    pub rto_seconds: f64,
    /// Seconds the restore itself took.
    pub restore_seconds: f64,
    /// psql sessions that loaded the table data at once (the database's `restore-jobs`, or
    /// fewer when the dump has fewer tables); 0 when the restore did not finish.
    #[serde(default)]
    pub data_sessions: usize,
    /// Age of the newest complete backup when the drill ran: the measured RPO.
    pub backup_age_seconds: Option<f64>,
    /// RTO target.
    pub rto_target_secs: u64,
    /// RPO target.
    pub rpo_target_secs: u64,
    /// When the drill started.
    pub started_at: DateTime<Utc>,
    /// Notifications sent.
    pub notifications: Vec<NotificationOutcome>,
}

/// The throwaway server; [`dr_test`] removes it after the run, whatever its outcome.
#[derive(Debug)]
enum Throwaway {
    Container(String),
    Cluster(LocalCluster),
}

/// Where the server will run, decided before anything starts.
enum Server<'a> {
    Container(&'a dyn ContainerRuntime),
    Local(ServerPrograms, Option<RunAs>),
}

/// The superuser password of a throwaway server: random, never shown.
fn password() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness from the OS: {e}")))?;
    Ok(format!("drill{}", hex::encode(bytes)))
}

async fn local_server(major: u32) -> Result<Server<'static>> {
    let programs = cluster::find_server_programs(major).await?;
    Ok(Server::Local(programs, cluster::run_as().await?))
}

/// Picks the backend; for `auto`, also why the container runtime was not used.
async fn choose(ctx: &Context, wanted: DrillBackend, major: u32) -> Result<(Server<'_>, Option<String>)> {
    match wanted {
        DrillBackend::Container => Ok((Server::Container(ops_core::stack::runtime(ctx)?), None)),
        DrillBackend::Local => Ok((local_server(major).await?, None)),
        DrillBackend::Auto => {
            let why = match ctx.containers.as_deref() {
                None => "no container runtime is configured".to_owned(),
                Some(rt) => match tokio::time::timeout(PING_TIMEOUT, rt.ping()).await {
                    Ok(Ok(_)) => return Ok((Server::Container(rt), None)),
                    Ok(Err(e)) => format!("the container runtime did not answer ({e})"),
                    Err(_) => format!("the container runtime did not answer within {} s", PING_TIMEOUT.as_secs()),
                },
            };
            match local_server(major).await {
                Ok(server) => Ok((server, Some(why))),
                Err(e) => Err(Error::new(e.kind(), format!("{why}, and {}", e.message()))),
            }
        }
    }
}

/// Runs a drill; `cancel` resolving (Ctrl-C) stops it early. The container or local cluster
/// is removed in every case, and the report says why a drill failed.
///
/// # Errors
/// Only when the drill cannot start at all: no such database or backup, no container
/// runtime (`container`), no server programs of the backup's major version (`local`, or
/// `auto` without a container runtime), another operation on the database running. A drill
/// that ran and failed is a report with `passed: false`.
pub async fn dr_test(
    ctx: &Context,
    opts: &DrillOptions,
    progress: &dyn Progress,
    cancel: Pin<Box<dyn Future<Output = ()> + Send + '_>>,
) -> Result<DrillReport> {
    let started_at = Utc::now();
    let clock = Instant::now();
    opts.validate()?;
    let (config_name, db_config, db) = target::database(ctx, opts.database.as_deref())?;
    match opts.backend {
        DrillBackend::Container => {
            ops_core::stack::runtime(ctx)?;
        }
        DrillBackend::Local if opts.image.is_some() => {
            return Err(Error::invalid_input(
                "an image is for the container backend: the local backend runs initdb and pg_ctl of the backup's \
                 major version",
            ));
        }
        _ => {}
    }
    let connector = ctx.connector.as_deref().ok_or_else(|| Error::unavailable("no database connector available"))?;
    // The drill restores the way a real restore of this database would: same data sessions.
    let connect = |url: &SecretUrl| connector.connect(url, db_config.restore_jobs);
    // One listing serves both the source and the RPO (the age of this database's newest
    // complete backup).
    let listing = catalog::index(ctx).await.ok();
    #[allow(clippy::cast_precision_loss)]
    let backup_age_seconds = listing
        .as_ref()
        .and_then(|all| all.iter().find(|b| b.complete && b.is_of(config_name)))
        .map(|b| (Utc::now() - b.started_at).num_milliseconds() as f64 / 1000.0);
    let rules = source::SourceRules {
        database: config_name.to_owned(),
        allow_other_database: opts.allow_other_database,
        allow_host_path: opts.allow_host_path,
    };
    let src = source::resolve_with(ctx, &opts.source, &rules, listing).await?;
    let _lock = lock::acquire(db.as_ref(), target::local_dir(ctx).as_deref(), "dr-test").await?;
    let major = match src.manifest.as_ref().and_then(|m| m.server_version.split('.').next()?.parse::<u32>().ok()) {
        Some(m) => m,
        None => db.server_version().await?.major,
    };
    let (server, backend_note) = choose(ctx, opts.backend, major).await?;
    let (backend, image) = match &server {
        Server::Container(_) => (
            DrillBackend::Container,
            opts.image.clone().or_else(|| db_config.drill_image.clone()).unwrap_or_else(|| format!("postgres:{major}")),
        ),
        Server::Local(programs, _) => (DrillBackend::Local, format!("local:{}", programs.location())),
    };

    let mut report = DrillReport {
        passed: false,
        problems: Vec::new(),
        source: src.location.clone(),
        backup_id: src.manifest.as_ref().map(|m| m.id.to_string()),
        image: image.clone(),
        container: None,
        backend,
        backend_note,
        cluster: None,
        check: None,
        rto_seconds: 0.0,
        restore_seconds: 0.0,
        data_sessions: 0,
        backup_age_seconds,
        rto_target_secs: opts.rto_target_secs,
        rpo_target_secs: opts.rpo_target_secs,
        started_at,
        notifications: Vec::new(),
    };

    // A plain dump names the roles that own and are granted its objects; the throwaway server
    // only has `postgres`. The live server's roles are created there first (NOLOGIN), so a
    // database owned by its application role restores. Without the live server (it is down)
    // the drill goes on, and a dump that needs them says so in its restore error.
    let roles = match db.roles().await {
        Ok(r) => r,
        Err(e) => {
            progress.event(ProgressEvent::Note {
                message: format!("could not list the live server's roles ({e}); restoring without them"),
            });
            Vec::new()
        }
    };
    let mut throwaway: Option<Throwaway> = None;
    let body = async {
        let drill = match &server {
            Server::Container(rt) => {
                start_container(*rt, &connect, &image, progress, &mut throwaway, &mut report).await?
            }
            Server::Local(programs, run_as) => {
                start_local(programs, run_as.as_ref(), &connect, progress, &mut throwaway, &mut report).await?
            }
        };
        drill.create_roles(&roles).await?;
        restore_and_check(drill.as_ref(), &src, db_config.min_tables, progress, &mut report).await
    };
    let limit = Duration::from_secs(opts.timeout_secs);
    let outcome = tokio::select! {
        r = tokio::time::timeout(limit, body) => match r {
            Ok(r) => r,
            Err(_) => Err(Error::timeout("dr-test", limit)),
        },
        () = cancel => Err(Error::new(crate::ErrorKind::Conflict, "dr-test interrupted")),
    };
    match (throwaway.take(), &server) {
        (Some(Throwaway::Container(id)), Server::Container(rt)) => {
            if let Err(e) = rt.remove(&id, true).await {
                report.problems.push(format!("could not remove the drill container {id}: {e}"));
            }
        }
        (Some(Throwaway::Cluster(mut c)), _) => report.problems.extend(c.cleanup().await),
        _ => {}
    }
    if let Err(e) = outcome {
        report.problems.push(e.to_string());
    }
    report.rto_seconds = clock.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    if report.check.as_ref().is_some_and(|c| c.ok) && report.rto_seconds > opts.rto_target_secs as f64 {
        report.problems.push(format!("RTO {:.0} s over the {} s target", report.rto_seconds, opts.rto_target_secs));
    }
    #[allow(clippy::cast_precision_loss)]
    match report.backup_age_seconds {
        Some(age) if age > opts.rpo_target_secs as f64 => {
            report
                .problems
                .push(format!("newest backup is {age:.0} s old, over the {} s RPO target", opts.rpo_target_secs));
        }
        None => report.problems.push("no complete backup found to measure the RPO".to_owned()),
        _ => {}
    }
    report.passed = report.problems.is_empty() && report.check.as_ref().is_some_and(|c| c.ok);

    let mut fields = BTreeMap::from([
        ("database".to_owned(), db.name().to_owned()),
        ("source".to_owned(), report.source.clone()),
        ("backend".to_owned(), report.backend.to_string()),
        ("rto_seconds".to_owned(), format!("{:.1}", report.rto_seconds)),
    ]);
    if let Some(age) = report.backup_age_seconds {
        fields.insert("backup_age_seconds".to_owned(), format!("{age:.0}"));
    }
    if !report.problems.is_empty() {
        fields.insert("problems".to_owned(), report.problems.join("; "));
    }
    let (title, level) = if report.passed {
        (format!("DR drill of {} passed", db.name()), NotificationLevel::Info)
    } else {
        (format!("DR drill of {} FAILED", db.name()), NotificationLevel::Critical)
    };
    report.notifications = notify_all(ctx, &Notification { title, text: String::new(), level, fields }).await;
    Ok(report)
}

/// Starts the drill container and waits until it accepts connections.
async fn start_container(
    rt: &dyn ContainerRuntime,
    connect: &(dyn Fn(&SecretUrl) -> Result<Arc<dyn Database>> + Sync),
    image: &str,
    progress: &dyn Progress,
    throwaway: &mut Option<Throwaway>,
    report: &mut DrillReport,
) -> Result<Arc<dyn Database>> {
    progress.event(ProgressEvent::Phase { name: "start-server".to_owned() });
    let pw = password()?;
    let started = rt
        .run_ephemeral(&RunSpec {
            image: image.to_owned(),
            env: BTreeMap::from([
                ("POSTGRES_PASSWORD".to_owned(), pw.clone()),
                ("POSTGRES_DB".to_owned(), "drill".to_owned()),
            ]),
            publish_port: Some(5432),
            labels: BTreeMap::from([("ops.dr-test".to_owned(), "true".to_owned())]),
            ..Default::default()
        })
        .await?;
    *throwaway = Some(Throwaway::Container(started.id.clone()));
    report.container = Some(started.id.clone());
    let port = started.host_port.ok_or_else(|| Error::internal("the drill server's port was not published"))?;
    progress.event(ProgressEvent::Note { message: format!("drill server {} on 127.0.0.1:{port}", started.id) });
    let drill = connect(&SecretUrl::new(format!("postgres://postgres:{pw}@127.0.0.1:{port}/drill")))?;
    // Ready when it accepts connections (the first start initializes the cluster).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if drill.readiness().await == Readiness::Accepting && drill.server_version().await.is_ok() {
            return Ok(drill);
        }
        if !rt.inspect(&started.id).await.is_ok_and(|d| d.state == ops_core::ports::ContainerState::Running) {
            return Err(Error::unavailable(format!("the drill server ({image}) stopped before accepting connections")));
        }
        if Instant::now() > deadline {
            return Err(Error::timeout("waiting for the drill server", Duration::from_secs(120)));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Creates, starts and opens a local cluster with a `drill` database. The cluster is in
/// `throwaway` from the moment its directory exists.
async fn start_local(
    programs: &ServerPrograms,
    run_as: Option<&RunAs>,
    connect: &(dyn Fn(&SecretUrl) -> Result<Arc<dyn Database>> + Sync),
    progress: &dyn Progress,
    throwaway: &mut Option<Throwaway>,
    report: &mut DrillReport,
) -> Result<Arc<dyn Database>> {
    progress.event(ProgressEvent::Phase { name: "start-server".to_owned() });
    let pw = password()?;
    let created = LocalCluster::create(&std::env::temp_dir(), programs.clone(), run_as.cloned())?;
    report.cluster = Some(created.info());
    let Throwaway::Cluster(cluster) = throwaway.insert(Throwaway::Cluster(created)) else {
        return Err(Error::internal("the drill cluster went missing"));
    };
    cluster.init(&pw).await?;
    let port = cluster.start().await?;
    let info = cluster.info();
    progress.event(ProgressEvent::Note { message: format!("drill cluster {} on 127.0.0.1:{port}", info.data_dir) });
    report.cluster = Some(info);
    let drill = connect(&SecretUrl::new(format!("postgres://postgres:{pw}@127.0.0.1:{port}/drill")))?;
    drill.create_database("drill").await?;
    Ok(drill)
}

/// Restores the source into the throwaway server's `drill` database, checking the source in
/// the same pass, and proves every table.
async fn restore_and_check(
    drill: &dyn Database,
    src: &source::Source,
    min_tables: u32,
    progress: &dyn Progress,
    report: &mut DrillReport,
) -> Result<()> {
    progress.event(ProgressEvent::Phase { name: "restore".to_owned() });
    let restore_clock = Instant::now();
    // The source's checksum and trailer are checked in the same pass as the restore: the
    // throwaway server is the only thing a bad dump can touch.
    let (sql, digest) = src.open_sql_digest().await?;
    let restored = drill.restore("drill", DumpFormat::Plain, sql).await;
    let problems = match digest.await {
        Ok(d) => d.problems(src.manifest.as_ref(), src.compression),
        Err(_) => vec!["the source could not be read to the end".to_owned()],
    };
    if !problems.is_empty() {
        report.problems.extend(problems);
        return Ok(());
    }
    report.data_sessions = restored?.data_sessions;
    report.restore_seconds = restore_clock.elapsed().as_secs_f64();
    progress.event(ProgressEvent::Phase { name: "verify-restore".to_owned() });
    let check = check_restored(drill, src.manifest.as_ref(), min_tables).await?;
    report.problems.extend(check.problems.iter().cloned());
    report.check = Some(check);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_deserialize_with_defaults_and_backends() {
        let o: DrillOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(o, DrillOptions::default());
        assert_eq!(o.backend, DrillBackend::Auto);
        for (text, backend) in
            [("auto", DrillBackend::Auto), ("container", DrillBackend::Container), ("local", DrillBackend::Local)]
        {
            let o: DrillOptions = serde_json::from_str(&format!(r#"{{"backend": "{text}"}}"#)).unwrap();
            assert_eq!(o.backend, backend);
            assert_eq!(text.parse::<DrillBackend>().unwrap(), backend);
            assert_eq!(backend.to_string(), text);
        }
        assert!(serde_json::from_str::<DrillOptions>(r#"{"backend": "vm"}"#).is_err());
        assert!("vm".parse::<DrillBackend>().is_err());
    }

    #[test]
    fn passwords_are_random() {
        let (a, b) = (password().unwrap(), password().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), "drill".len() + 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
