//! `[[schedule]]`: what `ops-server` runs unattended, and when. The seeds' crontab as the
//! example (`ops.example.toml`): backup daily at 02:00 UTC, DR drill on the 1st at 04:00,
//! certificates at 00:00 and 12:00, performance analysis on Sundays at 03:00.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a scheduled entry runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// A backup of `database` (`opsctl backup run`).
    Backup,
    /// A restore drill of `database` (`opsctl backup dr-test`).
    DrTest,
    /// A verification of the newest backup of `database` (`opsctl backup verify latest`).
    Verify,
    /// The retention policy applied to every database's backups (`opsctl backup prune`).
    Prune,
    /// The `[[tls-renew]]` commands for certificates due (`opsctl tls renew`).
    TlsRenew,
    /// A performance analysis, its report sent to the webhooks or written to `output`.
    Perf,
    /// A triage run (probes, incidents, metrics).
    Triage,
    /// A runbook by name (`runbook`, with `params`).
    Runbook,
    /// A reminder to the webhooks that the API keys are due for rotation.
    KeyRotationReminder,
}

impl JobKind {
    /// The name in config and metrics (`dr-test`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::DrTest => "dr-test",
            Self::Verify => "verify",
            Self::Prune => "prune",
            Self::TlsRenew => "tls-renew",
            Self::Perf => "perf",
            Self::Triage => "triage",
            Self::Runbook => "runbook",
            Self::KeyRotationReminder => "key-rotation-reminder",
        }
    }

    /// Whether the job works on one database (and takes its lock).
    #[must_use]
    pub fn on_database(self) -> bool {
        matches!(self, Self::Backup | Self::DrTest | Self::Verify)
    }
}

/// What happens when a run is due while the same job, or one sharing a lock, still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum OverlapPolicy {
    /// The run is recorded as skipped (the default).
    #[default]
    Skip,
    /// The run waits for the lock until its job is due again, then is skipped.
    Wait,
}

/// What happens to runs that fell due while no `ops-server` was running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum CatchUpPolicy {
    /// The latest missed run runs once at start; earlier ones are counted as missed (the
    /// default: a backup missed overnight is taken in the morning).
    #[default]
    RunOnce,
    /// Missed runs are counted and recorded as missed, none runs.
    Skip,
}

/// One `[[schedule]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScheduleConfig {
    /// Names the entry in the ledger, metrics and `opsctl schedule` (`backup-main`):
    /// lowercase letters, digits and `-`.
    pub name: String,
    /// What runs.
    pub job: JobKind,
    /// When, as cron: five fields (`0 2 * * *`), names (`0 3 * * SUN`) and shortcuts
    /// (`@daily`); a sixth leading field of seconds is accepted.
    pub cron: String,
    /// The IANA time zone the expression is read in (default `UTC`); daylight-saving changes
    /// neither skip nor double a run.
    #[serde(default = "utc")]
    pub timezone: String,
    /// A delay of up to this many seconds, the same on every replica, so jobs of several
    /// hosts do not all start at :00 (default 0; less than the time between two runs).
    #[serde(default)]
    pub jitter_secs: u64,
    /// `skip` (default) or `wait`.
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// `run-once` (default) or `skip`.
    #[serde(default)]
    pub catch_up: CatchUpPolicy,
    /// Locks shared with other entries: two entries naming the same lock never run at once.
    /// Jobs on a database take `database:NAME` by themselves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<String>,
    /// Seconds a run may take before it is stopped and recorded as failed (default: 6 hours
    /// for backups and drills, 1 hour for the others).
    pub timeout_secs: Option<u64>,
    /// The database (`[databases.NAME]`) of a backup, drill or verify (default: the only
    /// one, or `main`).
    pub database: Option<String>,
    /// The runbook a `runbook` job runs.
    pub runbook: Option<String>,
    /// The runbook's parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Where a `perf` job writes its report (a file, replaced at each run); without it the
    /// report goes to the webhooks.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub output: Option<PathBuf>,
    /// The text of a `key-rotation-reminder`.
    pub message: Option<String>,
}

fn utc() -> String {
    "UTC".to_owned()
}

impl ScheduleConfig {
    /// The seconds a run may take.
    #[must_use]
    pub fn timeout(&self) -> u64 {
        self.timeout_secs.unwrap_or(match self.job {
            JobKind::Backup | JobKind::DrTest | JobKind::Verify => 6 * 3600,
            _ => 3600,
        })
    }
}

/// The most `[[schedule]]` entries.
pub const MAX_SCHEDULES: usize = 200;

/// Checks the entries: returns the key path and message of the first problem.
pub(crate) fn validate(cfg: &super::OpsConfig) -> Result<(), (Vec<String>, String)> {
    let at = |i: usize, key: &str| vec!["schedule".to_owned(), i.to_string(), key.to_owned()];
    if cfg.schedule.len() > MAX_SCHEDULES {
        return Err((vec!["schedule".to_owned()], format!("at most {MAX_SCHEDULES} entries")));
    }
    let mut names = std::collections::BTreeSet::new();
    let now = chrono::Utc::now();
    for (i, s) in cfg.schedule.iter().enumerate() {
        let good_name = !s.name.is_empty()
            && s.name.len() <= 63
            && s.name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !good_name {
            return Err((at(i, "name"), "use 1 to 63 lowercase letters, digits and -, like backup-main".into()));
        }
        if !names.insert(s.name.as_str()) {
            return Err((at(i, "name"), "another [[schedule]] entry has this name".into()));
        }
        let parsed = crate::schedule::CronSchedule::parse(&s.cron, "UTC").map_err(|m| (at(i, "cron"), m))?;
        crate::schedule::CronSchedule::parse(&s.cron, &s.timezone).map_err(|m| (at(i, "timezone"), m))?;
        if s.jitter_secs > 0 {
            let gap = parsed.shortest_gap_secs(now);
            if s.jitter_secs > 3600 || i64::try_from(s.jitter_secs).unwrap_or(i64::MAX) >= gap {
                return Err((
                    at(i, "jitter-secs"),
                    format!("must be less than the time between two runs ({gap} s) and at most 3600"),
                ));
            }
        }
        if let Some(t) = s.timeout_secs
            && !(1..=7 * 24 * 3600).contains(&t)
        {
            return Err((at(i, "timeout-secs"), format!("must be between 1 and {}", 7 * 24 * 3600)));
        }
        for lock in &s.locks {
            if lock.is_empty()
                || lock.len() > 100
                || !lock.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
            {
                return Err((at(i, "locks"), "a lock is 1 to 100 letters, digits, -, _, : or .".into()));
            }
        }
        match (s.job.on_database(), &s.database) {
            (true, Some(db)) if !cfg.databases.contains_key(db) => {
                return Err((at(i, "database"), "names no [databases.NAME] entry".into()));
            }
            (false, Some(_)) => {
                return Err((at(i, "database"), format!("a {} job works on no database", s.job.as_str())));
            }
            _ => {}
        }
        match (s.job, &s.runbook) {
            (JobKind::Runbook, None) => {
                return Err((at(i, "runbook"), "a runbook job names its runbook (runbook = \"disk-full\")".into()));
            }
            (JobKind::Runbook, Some(name)) if name.is_empty() || name.len() > 100 => {
                return Err((at(i, "runbook"), "needs a runbook name".into()));
            }
            (JobKind::Runbook, Some(_)) => {}
            (_, Some(_)) => return Err((at(i, "runbook"), "only a runbook job names a runbook".into())),
            (_, None) => {}
        }
        if s.job != JobKind::Runbook && !s.params.is_empty() {
            return Err((at(i, "params"), "only a runbook job takes params".into()));
        }
        if s.output.is_some() && s.job != JobKind::Perf {
            return Err((at(i, "output"), "only a perf job writes a report file".into()));
        }
        if let Some(out) = &s.output
            && (!out.is_absolute() || out.components().any(|c| matches!(c, std::path::Component::ParentDir)))
        {
            return Err((at(i, "output"), "must be an absolute path without ..".into()));
        }
        if let Some(m) = &s.message {
            if s.job != JobKind::KeyRotationReminder {
                return Err((at(i, "message"), "only a key-rotation-reminder has a message".into()));
            }
            if m.trim().is_empty() || m.len() > 2000 {
                return Err((at(i, "message"), "must be 1 to 2000 characters".into()));
            }
        }
    }
    Ok(())
}
