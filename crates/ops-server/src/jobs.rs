//! Long operations as jobs: a POST starts one and answers 202 with its id; `GET
//! /api/v1/jobs/{id}` tells its status and, when done, its report or error.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Still running.
    Running,
    /// Finished with a report.
    Succeeded,
    /// Finished with an error (or a failed check).
    Failed,
}

/// One job.
#[derive(Debug, Clone, Serialize)]
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
}

/// The jobs of this process (the last 500).
#[derive(Debug, Default)]
pub struct Jobs {
    jobs: Mutex<BTreeMap<String, Job>>,
}

impl Jobs {
    /// Registers a running job and returns its id.
    pub fn start(&self, kind: &str) -> String {
        let started_at = Utc::now();
        let id = format!("{kind}-{}", started_at.format("%Y%m%dT%H%M%S%.6fZ"));
        let mut jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while jobs.len() >= 500 {
            let oldest = jobs.iter().filter(|(_, j)| j.status != JobStatus::Running).map(|(k, _)| k.clone()).next();
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
                status: JobStatus::Running,
                started_at,
                finished_at: None,
                report: None,
                error: None,
            },
        );
        id
    }

    /// Records the end of a job.
    pub fn finish(&self, id: &str, status: JobStatus, report: Option<Value>, error: Option<Value>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(j) = jobs.get_mut(id) {
            j.status = status;
            j.finished_at = Some(Utc::now());
            j.report = report;
            j.error = error;
        }
    }

    /// A job by id.
    pub fn get(&self, id: &str) -> Option<Job> {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned()
    }
}
