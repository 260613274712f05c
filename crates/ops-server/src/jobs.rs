//! Long operations as jobs: a POST starts one and answers 202 with its id; `GET
//! /api/v1/jobs/{id}` tells its status and, when done, its report or error.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = JobState)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Accepted, waiting for a slot of its kind.
    Queued,
    /// Still running.
    Running,
    /// Finished with a report.
    Succeeded,
    /// Finished with an error (or a failed check).
    Failed,
}

/// One job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    /// Id.
    pub id: String,
    /// What it does (`backup`, `verify`, `restore`, `dr-test`).
    pub kind: String,
    /// Status.
    pub status: JobStatus,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// The report, when there is one.
    pub report: Option<Value>,
    /// The error: kind and message.
    pub error: Option<Value>,
    /// Where a long job is (a runbook run: its step), while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
}

/// Jobs not finished (queued or running) the server holds at once.
pub const MAX_ACTIVE: usize = 32;
/// Verifications queued or running at once; two run at a time.
pub const MAX_VERIFY: usize = 8;
/// Verifications that run at the same time (each reads every copy of a backup).
const VERIFY_CONCURRENCY: usize = 2;

/// The jobs of this process (the last 500), and the slots they run in.
#[derive(Debug)]
pub struct Jobs {
    jobs: Mutex<BTreeMap<String, Job>>,
    /// What each active job holds exclusively (`database:main` for a backup, restore or drill).
    exclusive: Mutex<BTreeMap<String, String>>,
    verify_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self {
            jobs: Mutex::default(),
            exclusive: Mutex::default(),
            verify_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(VERIFY_CONCURRENCY)),
        }
    }
}

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another job holds the same thing (a backup, restore or drill of the database).
    Busy(String),
    /// Too many jobs of this kind, or in all, are waiting or running.
    Full(String),
}

impl Jobs {
    /// Accepts a job of `kind` (queued until [`Self::run_slot`] lets it run), unless the
    /// server is full of jobs or another active job holds `exclusive`.
    ///
    /// # Errors
    /// The [`Refusal`]; nothing was started, so nothing is notified.
    pub fn admit(&self, kind: &str, exclusive: Option<&str>) -> Result<String, Refusal> {
        let started_at = Utc::now();
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{kind}-{}-{n}", started_at.format("%Y%m%dT%H%M%S%.6fZ"));
        let mut jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let active = |k: Option<&str>| {
            jobs.values()
                .filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running))
                .filter(|j| k.is_none_or(|k| j.kind == k))
                .count()
        };
        if active(None) >= MAX_ACTIVE {
            return Err(Refusal::Full(format!("{MAX_ACTIVE} jobs are already queued or running")));
        }
        if kind == "verify" && active(Some("verify")) >= MAX_VERIFY {
            return Err(Refusal::Full(format!("{MAX_VERIFY} verifications are already queued or running")));
        }
        if let Some(what) = exclusive {
            let mut held = self.exclusive.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(holder) = held.get(what) {
                return Err(Refusal::Busy(format!("job {holder} is already working on {what}")));
            }
            held.insert(what.to_owned(), id.clone());
        }
        while jobs.len() >= 500 {
            let oldest = jobs
                .iter()
                .filter(|(_, j)| !matches!(j.status, JobStatus::Queued | JobStatus::Running))
                .map(|(k, _)| k.clone())
                .next();
            match oldest {
                Some(k) => jobs.remove(&k),
                None => break,
            };
        }
        jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                kind: kind.to_owned(),
                status: JobStatus::Queued,
                started_at,
                finished_at: None,
                report: None,
                error: None,
                progress: None,
            },
        );
        Ok(id)
    }

    /// Waits for a slot of the job's kind, then marks it running; the slot is freed when the
    /// returned guard drops.
    pub async fn run_slot(&self, id: &str, kind: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit =
            if kind == "verify" { std::sync::Arc::clone(&self.verify_slots).acquire_owned().await.ok() } else { None };
        let mut jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(j) = jobs.get_mut(id) {
            j.status = JobStatus::Running;
        }
        permit
    }

    /// Kinds and ids of the jobs not finished.
    pub fn active_kinds(&self) -> Vec<(String, String)> {
        let jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.values()
            .filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running))
            .map(|j| (j.kind.clone(), j.id.clone()))
            .collect()
    }

    /// Records the end of a job and frees what it held.
    pub fn finish(&self, id: &str, status: JobStatus, report: Option<Value>, error: Option<Value>) {
        self.exclusive.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|_, holder| holder != id);
        let mut jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(j) = jobs.get_mut(id) {
            j.status = status;
            j.finished_at = Some(Utc::now());
            j.report = report;
            j.error = error;
        }
    }

    /// Records how far a running job is.
    pub fn set_progress(&self, id: &str, progress: Value) {
        let mut jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(j) = jobs.get_mut(id) {
            j.progress = Some(progress);
        }
    }

    /// A job by id.
    pub fn get(&self, id: &str) -> Option<Job> {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned()
    }
}
