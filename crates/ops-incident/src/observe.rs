//! [`Incidents::observe`]: one triage report turned into incident evidence. It opens an
//! incident when triage first sees a finding at `incidents.open-at` or worse, records what
//! changed on the open ones (checks changing status, severity, alerts, runbook runs, actions
//! from the audit log), marks them mitigated when their checks pass, resolves them once the
//! checks have passed for `incidents.resolve-after-secs`, and sends the reminders of overdue
//! updates.
//!
//! One observer at a time: it holds a lease in the state store, so the server's background
//! triage and an `opsctl triage` (or several replicas) never record the same change twice.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use ops_core::ports::{IncidentQuery, RunQuery};
use ops_core::{Result, Severity, Status};
use ops_probes::{ProbeKind, TriageReport};
use serde::{Deserialize, Serialize};

use crate::model::{Consequence, EventKind, Incident, IncidentStatus, PublicStatus};
use crate::record::{
    EventOpened, Incidents, NewIncident, identified_text, monitoring_text, relapsed_text, user_reports,
};

/// The store collection of each check's last status.
pub const CHECK_STATUS: &str = "check-status";

/// The lease one observer holds.
const LEASE: &str = "incidents-observe";

/// What one observation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveReport {
    /// Incidents opened.
    pub opened: Vec<String>,
    /// Incidents that got new events.
    pub updated: Vec<String>,
    /// Incidents resolved.
    pub resolved: Vec<String>,
    /// Checks that changed status: `postgres:main ok → critical`.
    pub transitions: Vec<String>,
    /// Why nothing was recorded (recording off, another observer at work).
    pub skipped: Option<String>,
}

/// A check's last status, kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    /// The status.
    pub status: Status,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Its message then.
    pub message: String,
    /// Firing alerts (for the Alertmanager check).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub alerts: BTreeSet<String>,
}

impl Incidents {
    /// Records what `report` shows, at `now`. Never fails on one incident's trouble: what
    /// could not be recorded is logged and the rest goes on.
    ///
    /// # Errors
    /// The store's errors on the lease or the check states.
    pub async fn observe(&self, report: &TriageReport, now: DateTime<Utc>) -> Result<ObserveReport> {
        let mut out = ObserveReport::default();
        if !self.options.incidents.record {
            out.skipped = Some("incidents.record is off".into());
            return Ok(out);
        }
        let holder = crate::model::new_id(now);
        if !self.store.try_lease(LEASE, &holder, now, now + Duration::seconds(120)).await? {
            out.skipped = Some("another observer is recording incidents".into());
            return Ok(out);
        }
        let result = self.observe_held(report, now, &mut out).await;
        if let Err(e) = self.store.release_lease(LEASE, &holder).await {
            tracing::warn!(error = %e, "could not release the incidents lease");
        }
        result.map(|()| out)
    }

    async fn observe_held(&self, report: &TriageReport, now: DateTime<Utc>, out: &mut ObserveReport) -> Result<()> {
        if let Some(path) = &self.options.audit_log
            && path.exists()
        {
            match ops_core::audit::AuditLog::open(path) {
                Ok(log) => {
                    if let Err(e) = ops_core::audit::mirror(&log, self.store.as_ref()).await {
                        tracing::warn!(error = %e, "audit log not mirrored");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "audit log not mirrored"),
            }
        }
        let states = self.check_transitions(report, now, out).await?;
        let mut open: Vec<Incident> =
            self.list(&IncidentQuery { unresolved: true, limit: 1000, ..Default::default() }).await?;

        // Which triage finding belongs to which open incident; the others may open one.
        let mut matched: BTreeMap<String, Severity> = BTreeMap::new();
        for finding in &report.incidents {
            let mut checks: BTreeSet<String> = BTreeSet::from([finding.check.clone()]);
            checks.extend(finding.consequences.iter().map(|c| c.check.clone()));
            if let Some(incident) = open.iter_mut().find(|i| !i.checks.is_disjoint(&checks)) {
                let base = matched.entry(incident.id.clone()).or_insert(finding.severity);
                *base = (*base).min(finding.severity);
                incident.checks.extend(checks);
                continue;
            }
            if finding.severity > self.options.incidents.open_at {
                continue;
            }
            match self.open_from(finding, report, &states, now).await {
                Ok(Some(incident)) => {
                    out.opened.push(incident.id.clone());
                    matched.insert(incident.id.clone(), finding.severity);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, check = %finding.check, "incident not opened"),
            }
        }
        for mut incident in open {
            let id = incident.id.clone();
            match self.follow(&mut incident, report, &states, matched.get(&id).copied(), now, out).await {
                Ok(changed) => {
                    if changed && !out.updated.contains(&id) {
                        out.updated.push(id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, incident = %id, "incident not updated"),
            }
        }
        Ok(())
    }

    /// Compares each check with its last status; records the changes, and returns the states
    /// before and after this observation.
    async fn check_transitions(
        &self,
        report: &TriageReport,
        now: DateTime<Utc>,
        out: &mut ObserveReport,
    ) -> Result<States> {
        let before: BTreeMap<String, CheckState> = self
            .store
            .documents(CHECK_STATUS)
            .await?
            .into_iter()
            .filter_map(|(k, v)| serde_json::from_value(v).ok().map(|s| (k, s)))
            .collect();
        let mut after = before.clone();
        for probe in &report.probes {
            let alerts: BTreeSet<String> = if probe.kind == ProbeKind::Alertmanager {
                probe.problems.iter().map(|p| p.message.clone()).collect()
            } else {
                BTreeSet::new()
            };
            let previous = before.get(&probe.name);
            if previous.is_some_and(|p| p.status == probe.status && p.alerts == alerts) {
                continue;
            }
            let since = match previous {
                Some(p) if p.status == probe.status => p.since,
                _ => {
                    // A probe that knows how long its target has been down dates the change.
                    let down = probe.observation("down_for").filter(|s| s.is_finite() && *s > 0.0);
                    #[allow(clippy::cast_possible_truncation)]
                    down.map_or(now, |s| now - Duration::milliseconds((s * 1000.0).min(1e12) as i64))
                }
            };
            if let Some(p) = previous
                && p.status != probe.status
            {
                out.transitions.push(format!("{} {} → {}", probe.name, p.status, probe.status));
            }
            let state = CheckState { status: probe.status, since, message: probe.message.clone(), alerts };
            let doc =
                serde_json::to_value(&state).map_err(|e| ops_core::Error::internal(format!("check state: {e}")))?;
            self.store.put_document(CHECK_STATUS, &probe.name, &doc).await?;
            after.insert(probe.name.clone(), state);
        }
        Ok(States { before, after })
    }

    /// Opens an incident for a triage finding.
    async fn open_from(
        &self,
        finding: &ops_probes::Incident,
        report: &TriageReport,
        states: &States,
        now: DateTime<Utc>,
    ) -> Result<Option<Incident>> {
        let mut checks: BTreeSet<String> = BTreeSet::from([finding.check.clone()]);
        checks.extend(finding.consequences.iter().map(|c| c.check.clone()));
        // The first evidence: when any of its checks began failing (a container's exit time
        // included), never later than now.
        let detected_at = checks
            .iter()
            .filter_map(|c| states.after.get(c))
            .filter(|s| s.status != Status::Ok)
            .map(|s| s.since)
            .chain(std::iter::once(report.started_at.min(now)))
            .min()
            .unwrap_or(now);
        let components = self.options.components_of(&checks);
        let runbook = finding.runbook.as_str().to_owned();
        let incident = self.new_incident(
            NewIncident {
                title: format!("{runbook} on {}", finding.check),
                public_title: None,
                severity: finding.severity,
                root: Some(finding.check.clone()),
                runbook: Some(runbook.clone()),
                cause: finding.message.clone(),
                checks,
                components,
                detected_at,
                opened_by: "triage".to_owned(),
            },
            now,
        );
        if !self.store.open_incident(&crate::record::stored_of(&incident)?).await? {
            // Another observer opened it first (the lease expired under a slow run).
            return Ok(None);
        }
        let opened = EventOpened {
            message: finding.message.clone(),
            evidence: finding.evidence.clone(),
            consequences: finding
                .consequences
                .iter()
                .map(|c| Consequence {
                    check: c.check.clone(),
                    runbook: c.runbook.as_str().to_owned(),
                    status: c.status,
                    message: c.message.clone(),
                })
                .collect(),
        };
        let record = self.after_open(incident, opened, None, "triage", now).await?;
        Ok(Some(record.incident))
    }

    /// Records what changed on one open incident; `base` is the severity triage gives it now
    /// (none when no finding is about it).
    async fn follow(
        &self,
        incident: &mut Incident,
        report: &TriageReport,
        states: &States,
        base: Option<Severity>,
        now: DateTime<Utc>,
        out: &mut ObserveReport,
    ) -> Result<bool> {
        let record = self.load(&incident.id).await?;
        let events = record.events;
        let before = incident.clone();
        // The checks grew in `observe_held`; the stored header is older.
        let checks = incident.checks.clone();
        *incident = record.incident;
        incident.checks = checks;
        let mut changed = incident.checks != before.checks;
        // Checks of the incident that changed status; alerts that fired or resolved.
        for probe in &report.probes {
            let Some(CheckState { status: from, alerts: alerts_before, .. }) = states.before.get(&probe.name) else {
                continue;
            };
            if probe.kind == ProbeKind::Alertmanager {
                let now_firing: BTreeSet<String> = probe.problems.iter().map(|p| p.message.clone()).collect();
                for fired in now_firing.difference(alerts_before) {
                    let (name, summary) = fired.split_once(": ").unwrap_or((fired.as_str(), ""));
                    let kind = EventKind::Alert { name: name.into(), state: "firing".into(), summary: summary.into() };
                    self.append(incident, now, "triage", kind).await?;
                    changed = true;
                }
                for gone in alerts_before.difference(&now_firing) {
                    let (name, summary) = gone.split_once(": ").unwrap_or((gone.as_str(), ""));
                    let kind =
                        EventKind::Alert { name: name.into(), state: "resolved".into(), summary: summary.into() };
                    self.append(incident, now, "triage", kind).await?;
                    changed = true;
                }
            } else if incident.checks.contains(&probe.name) && *from != probe.status {
                let kind = EventKind::Probe {
                    check: probe.name.clone(),
                    from: *from,
                    to: probe.status,
                    message: probe.message.clone(),
                };
                self.append(incident, now, "triage", kind).await?;
                changed = true;
            }
        }

        changed |= self.gather_runs(incident, &events, now).await?;
        changed |= self.gather_actions(incident, now).await?;

        // Severity: what triage says now, raised by the escalation rules.
        if let Some(base) = base {
            incident.base_severity = base;
        }
        if incident.status != IncidentStatus::Mitigated {
            let reports = user_reports(&events);
            let to = ops_probes::triage::escalation::escalate(
                incident.base_severity,
                incident.opened_at,
                &reports,
                now,
                &self.options.escalation,
            );
            if to != incident.severity {
                let reason = if to == incident.base_severity {
                    format!("triage: {}", report.summary)
                } else if to
                    == ops_probes::triage::escalation::by_age(
                        incident.base_severity,
                        incident.opened_at,
                        now,
                        &self.options.escalation,
                    )
                {
                    format!("{} open longer than its escalation window", incident.base_severity)
                } else {
                    format!(
                        "more than {} user reports within {} min",
                        self.options.escalation.reports, self.options.escalation.reports_window_minutes
                    )
                };
                self.change_severity(incident, to, &reason, now).await?;
                self.tell(incident, "update", None, now).await?;
                changed = true;
            }
        }

        // Clean: nothing about it is incident-worthy any more, and its root passes.
        if !incident.checks.is_empty() {
            let clean = self.is_clean(incident, report);
            changed |= self.settle(incident, clean, report, now, out).await?;
        }

        // An overdue update gets one reminder per deadline.
        if let Some(due) = incident.next_update_due
            && incident.status != IncidentStatus::Resolved
            && now > due
            && incident.reminded_for != Some(due)
        {
            incident.reminded_for = Some(due);
            self.tell(incident, "reminder", None, now).await?;
            changed = true;
        }
        if changed {
            self.save(incident, now).await?;
        }
        Ok(changed)
    }

    fn is_clean(&self, incident: &Incident, report: &TriageReport) -> bool {
        let about_it = report.incidents.iter().any(|f| {
            let touches =
                incident.checks.contains(&f.check) || f.consequences.iter().any(|c| incident.checks.contains(&c.check));
            touches && f.severity <= self.options.incidents.open_at
        });
        let root_ok = incident
            .root
            .as_ref()
            .is_none_or(|root| report.probes.iter().find(|p| &p.name == root).is_none_or(|p| p.status == Status::Ok));
        !about_it && root_ok
    }

    /// Mitigated, relapsed, resolved: the incident's life from whether it is clean now.
    async fn settle(
        &self,
        incident: &mut Incident,
        clean: bool,
        report: &TriageReport,
        now: DateTime<Utc>,
        out: &mut ObserveReport,
    ) -> Result<bool> {
        if clean {
            let since = *incident.clean_since.get_or_insert(now);
            if incident.status != IncidentStatus::Mitigated {
                incident.status = IncidentStatus::Mitigated;
                incident.mitigated_at = Some(now);
                let reason = format!("all {} checks pass", incident.checks.len());
                self.append(incident, now, "triage", EventKind::Mitigated { reason }).await?;
                let text = monitoring_text(&incident.components);
                incident.public_status = PublicStatus::Monitoring;
                self.append(
                    incident,
                    now,
                    "triage",
                    EventKind::Update { status: PublicStatus::Monitoring, text: text.clone() },
                )
                .await?;
                self.tell(incident, "update", Some(&text), now).await?;
            }
            let after = Duration::seconds(i64::try_from(self.options.incidents.resolve_after_secs).unwrap_or(300));
            if now - since >= after {
                let reason = format!("its checks passed for {}", crate::comms::human_secs(after.num_seconds()));
                self.close(incident, &reason, None, "triage", now).await?;
                out.resolved.push(incident.id.clone());
            }
            return Ok(true);
        }
        let mut changed = false;
        if incident.status == IncidentStatus::Mitigated {
            let failing = report
                .incidents
                .iter()
                .find(|f| incident.checks.contains(&f.check))
                .map_or_else(|| incident.root.clone().unwrap_or_default(), |f| f.check.clone());
            incident.status =
                if incident.acknowledged_at.is_some() { IncidentStatus::Acknowledged } else { IncidentStatus::Open };
            incident.mitigated_at = None;
            self.append(incident, now, "triage", EventKind::Relapsed { check: failing }).await?;
            let text = relapsed_text(&incident.components);
            incident.public_status = PublicStatus::Investigating;
            self.append(
                incident,
                now,
                "triage",
                EventKind::Update { status: PublicStatus::Investigating, text: text.clone() },
            )
            .await?;
            self.tell(incident, "update", Some(&text), now).await?;
            changed = true;
        }
        if incident.clean_since.take().is_some() {
            changed = true;
        }
        Ok(changed)
    }

    /// Runbook runs about this incident, new or changed since last time.
    async fn gather_runs(
        &self,
        incident: &mut Incident,
        events: &[crate::model::Event],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let runs = self.store.runs(&RunQuery { limit: 100, ..Default::default() }).await?;
        let since = incident.opened_at - Duration::minutes(5);
        let mut runbooks: BTreeSet<String> = incident.runbook.iter().cloned().collect();
        for e in events {
            if let EventKind::Opened { consequences, .. } = &e.kind {
                runbooks.extend(consequences.iter().map(|c| c.runbook.clone()));
            }
        }
        let only_open =
            self.list(&IncidentQuery { unresolved: true, limit: 2, ..Default::default() }).await?.len() <= 1;
        let mut changed = false;
        let mut runs: Vec<_> = runs.into_iter().filter(|r| r.started_at >= since).collect();
        runs.sort_by_key(|r| r.updated_at);
        for run in runs {
            if !(only_open || runbooks.contains(&run.runbook)) {
                continue;
            }
            if incident.runs.get(&run.id) == Some(&run.status) {
                continue;
            }
            let first_run = incident.runs.is_empty();
            incident.runs.insert(run.id.clone(), run.status.clone());
            let kind = EventKind::Run { id: run.id.clone(), runbook: run.runbook.clone(), status: run.status.clone() };
            self.append(incident, run.updated_at.min(now), "runbook", kind).await?;
            if first_run && incident.public_status == PublicStatus::Investigating {
                let text = identified_text();
                incident.public_status = PublicStatus::Identified;
                self.append(
                    incident,
                    now,
                    "triage",
                    EventKind::Update { status: PublicStatus::Identified, text: text.clone() },
                )
                .await?;
                self.tell(incident, "update", Some(&text), now).await?;
            }
            changed = true;
        }
        Ok(changed)
    }

    /// Audit entries (actions, restores, prunes, renewals) since the last gathering.
    async fn gather_actions(&self, incident: &mut Incident, now: DateTime<Utc>) -> Result<bool> {
        let entries = self.store.audit(500).await?;
        let from = incident.gathered_until.max(incident.opened_at - Duration::minutes(5));
        let only_open =
            self.list(&IncidentQuery { unresolved: true, limit: 2, ..Default::default() }).await?.len() <= 1;
        let mut changed = false;
        let mut newest = incident.gathered_until;
        for entry in entries.iter().filter(|e| e.time > from && e.time <= now) {
            newest = newest.max(entry.time);
            // An action is this incident's when it touched one of its checks' targets, or when
            // it is the only incident open.
            let about = incident
                .checks
                .iter()
                .any(|c| c == &entry.target || c.ends_with(&format!(":{}", target_name(&entry.target))));
            if !(only_open || about) {
                continue;
            }
            let kind = EventKind::Action {
                action: entry.action.clone(),
                target: entry.target.clone(),
                result: entry.result.clone(),
            };
            self.append(incident, entry.time, &entry.actor, kind).await?;
            changed = true;
        }
        if newest > incident.gathered_until {
            incident.gathered_until = newest;
            changed = true;
        }
        Ok(changed)
    }
}

fn target_name(target: &str) -> &str {
    target.split_once(':').map_or(target, |(_, n)| n)
}

/// Each check's state before and after one observation.
#[derive(Debug, Clone, Default)]
struct States {
    before: BTreeMap<String, CheckState>,
    after: BTreeMap<String, CheckState>,
}
