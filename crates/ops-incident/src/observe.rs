//! [`Incidents::observe`]: one triage report turned into incident evidence. It opens an
//! incident when triage first sees a finding at `incidents.open-at` or worse, records what
//! changed on the open ones (checks changing status, severity, alerts, runbook runs, actions
//! from the audit log), marks them mitigated when their checks pass, resolves them once the
//! checks have passed for `incidents.resolve-after-secs`, and sends the reminders of overdue
//! updates.
//!
//! One observer at a time: it holds a lease in the state store while it reads and commits
//! (store work only, renewed between incidents), so the server's background triage and an
//! `opsctl triage` (or several replicas) never record the same change twice. Messages go out
//! after the lease is given back.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use ops_core::audit::AuditEntry;
use ops_core::ports::{IncidentQuery, RunQuery, StoredRun};
use ops_core::{Result, Severity, Status};
use ops_probes::{ProbeKind, TriageReport};
use serde::{Deserialize, Serialize};

use crate::model::{Consequence, Event, EventKind, Incident, IncidentStatus, PublicStatus};
use crate::record::{
    Change, EventOpened, Incidents, NewIncident, close, escalate_to, identified_text, is_stale, last_seq,
    load_versioned, monitoring_text, relapsed_text, user_reports,
};

/// The store collection of each check's last status.
pub const CHECK_STATUS: &str = "check-status";

/// The lease one observer holds.
const LEASE: &str = "incidents-observe";

/// How long the lease lasts unless renewed.
const LEASE_SECS: i64 = 120;

/// Audit entries read per observation (the newest).
const AUDIT_READ: usize = 500;

/// Audit entries an incident remembers having recorded.
const ACTIONS_REMEMBERED: usize = 2000;

/// What one observation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Each check's last state, as the newest observation recorded it.
///
/// # Errors
/// The store's errors.
pub async fn check_states(store: &dyn ops_core::ports::StateStore) -> Result<BTreeMap<String, CheckState>> {
    Ok(store
        .documents(CHECK_STATUS)
        .await?
        .into_iter()
        .filter_map(|(k, v)| serde_json::from_value(v).ok().map(|s| (k, s)))
        .collect())
}

/// Each check's state before and after one observation.
#[derive(Debug, Clone, Default)]
struct States {
    before: BTreeMap<String, CheckState>,
    after: BTreeMap<String, CheckState>,
}

/// What every incident of one observation is compared with, read once.
struct Seen<'a> {
    report: &'a TriageReport,
    states: States,
    /// Every name of a check (its name and aliases) to all of them.
    aliases: BTreeMap<String, BTreeSet<String>>,
    runs: Vec<StoredRun>,
    audit: Vec<AuditEntry>,
    /// The incident that gets the alerts (the most urgent open one).
    alerts_to: Option<String>,
    /// Open incidents per root runbook.
    by_runbook: BTreeMap<String, usize>,
    /// Runs already on an open incident, to its id.
    taken: BTreeMap<String, String>,
}

/// Whether an incident is clean now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clean {
    Yes,
    No,
    /// Its checks were not all seen: nothing changes.
    Unknown,
}

/// What triage says about one open incident this time.
#[derive(Debug, Clone, Default)]
struct Matched {
    base: Option<Severity>,
    checks: BTreeSet<String>,
}

impl Incidents {
    /// Records what `report` shows, at `now`, then sends the messages it calls for.
    ///
    /// # Errors
    /// The store's errors on the lease, the check states or the open incidents; one
    /// incident's trouble is logged and the others go on.
    pub async fn observe(&self, report: &TriageReport, now: DateTime<Utc>) -> Result<ObserveReport> {
        let mut out = ObserveReport::default();
        if !self.options.incidents.record {
            out.skipped = Some("incidents.record is off".into());
            return Ok(out);
        }
        let holder = ops_core::ids::new_id("observer", now);
        if !self.store.try_lease(LEASE, &holder, now, now + Duration::seconds(LEASE_SECS)).await? {
            out.skipped = Some("another observer is recording incidents".into());
            return Ok(out);
        }
        let mut sending = Vec::new();
        let result = self.observe_held(report, now, &holder, &mut out, &mut sending).await;
        if let Err(e) = self.store.release_lease(LEASE, &holder).await {
            tracing::warn!(error = %e, "could not release the incidents lease");
        }
        // Messages left as soon as their change was committed (a dropped caller loses none);
        // wait for them here, out of the lease.
        for task in sending {
            let _ = task.await;
        }
        result.map(|()| out)
    }

    async fn observe_held(
        &self,
        report: &TriageReport,
        now: DateTime<Utc>,
        holder: &str,
        out: &mut ObserveReport,
        sending: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> Result<()> {
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
        let mut open = self.list(&IncidentQuery { unresolved: true, limit: 1000, ..Default::default() }).await?;

        // Each finding belongs to the open incident of its root, or of which it is a part;
        // the others may open one.
        let mut matched: BTreeMap<String, Matched> = BTreeMap::new();
        let mut opened: Vec<Incident> = Vec::new();
        for finding in &report.incidents {
            let mut checks: BTreeSet<String> = BTreeSet::from([finding.check.clone()]);
            checks.extend(finding.consequences.iter().map(|c| c.check.clone()));
            let owner = open
                .iter()
                .chain(&opened)
                .find(|i| i.root.as_deref() == Some(finding.check.as_str()))
                .or_else(|| open.iter().chain(&opened).find(|i| i.checks.contains(&finding.check)))
                .map(|i| i.id.clone());
            if let Some(id) = owner {
                let m = matched.entry(id).or_default();
                m.base = Some(m.base.map_or(finding.severity, |b| b.min(finding.severity)));
                m.checks.extend(checks);
                continue;
            }
            if finding.severity > self.options.incidents.open_at {
                continue;
            }
            match self.open_from(finding, report, &states, now).await {
                Ok(Some((incident, messages, logged))) => {
                    out.opened.push(incident.id.clone());
                    sending.extend(self.spawn_delivery(&incident, &messages, logged, now));
                    opened.push(incident);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, check = %finding.check, "incident not opened"),
            }
        }
        let mut complete = true;
        if !open.is_empty() {
            // A run not linked to an incident goes by its runbook, to the one open incident of
            // that runbook only; a run already on another incident is not taken again.
            let mut by_runbook: BTreeMap<String, usize> = BTreeMap::new();
            for i in &open {
                if let Some(r) = &i.runbook {
                    *by_runbook.entry(r.clone()).or_default() += 1;
                }
            }
            let taken: BTreeMap<String, String> =
                open.iter().flat_map(|i| i.runs.keys().map(move |r| (r.clone(), i.id.clone()))).collect();
            let seen = Seen {
                report,
                aliases: aliases(report),
                runs: self.store.runs(&RunQuery { limit: 100, ..Default::default() }).await?,
                audit: self.store.audit(AUDIT_READ).await?,
                alerts_to: {
                    open.sort_by_key(|i| (i.severity, i.opened_at));
                    open.first().map(|i| i.id.clone())
                },
                states: states.clone(),
                by_runbook,
                taken,
            };
            for incident in open {
                // Still ours? Another observer may have taken over a lease that ran out.
                let wall = Utc::now().max(now);
                if !self.store.try_lease(LEASE, holder, wall, wall + Duration::seconds(LEASE_SECS)).await? {
                    tracing::warn!("the incidents lease was lost: another observer goes on");
                    complete = false;
                    break;
                }
                let id = incident.id.clone();
                let m = matched.remove(&id).unwrap_or_default();
                match self.follow(&id, &seen, &m, now).await {
                    Ok(Some((incident, messages, resolved, logged))) => {
                        if resolved {
                            out.resolved.push(id.clone());
                        }
                        out.updated.push(id);
                        sending.extend(self.spawn_delivery(&incident, &messages, logged, now));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, incident = %id, "incident not updated");
                        complete = false;
                    }
                }
            }
        }
        // The checks' new states are kept once every incident has taken its events from them;
        // otherwise the next observation finds the same changes again.
        if complete {
            self.save_states(&states).await?;
        }
        Ok(())
    }

    /// Compares each check with its last status, and returns the states before and after
    /// this observation (kept by [`Self::save_states`] once it is recorded).
    async fn check_transitions(
        &self,
        report: &TriageReport,
        now: DateTime<Utc>,
        out: &mut ObserveReport,
    ) -> Result<States> {
        let before = check_states(self.store.as_ref()).await?;
        let mut after = before.clone();
        for probe in &report.probes {
            let alerts = firing(probe);
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
            after.insert(probe.name.clone(), state);
        }
        Ok(States { before, after })
    }

    /// Keeps the states that changed.
    async fn save_states(&self, states: &States) -> Result<()> {
        for (name, state) in &states.after {
            if states.before.get(name) == Some(state) {
                continue;
            }
            let doc =
                serde_json::to_value(state).map_err(|e| ops_core::Error::internal(format!("check state: {e}")))?;
            self.store.put_document(CHECK_STATUS, name, &doc).await?;
        }
        Ok(())
    }

    /// Opens an incident for a triage finding; `None` when another observer opened it first.
    async fn open_from(
        &self,
        finding: &ops_probes::Incident,
        report: &TriageReport,
        states: &States,
        now: DateTime<Utc>,
    ) -> Result<Option<(Incident, Vec<&'static str>, u64)>> {
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
        let mut incident = incident;
        incident.failing_seen = true;
        let (incident, mut change) = self.opening(incident, opened, None, "triage", now);
        // Alerts already firing when it opens are part of its evidence.
        for probe in report.probes.iter().filter(|p| p.kind == ProbeKind::Alertmanager) {
            for alert in firing(probe) {
                change.push(now, "triage", alert_event(&alert, "firing"));
            }
        }
        let messages = std::mem::take(&mut change.messages);
        let logged = change.events.len() as u64;
        Ok(self.insert_new(&incident, &change, now).await?.map(|stored| (stored, messages, logged)))
    }

    /// Records what changed on one open incident, committing again from a fresh read when
    /// somebody saved it meanwhile. `Some((header, messages, resolved, last seq))` when it
    /// changed.
    async fn follow(
        &self,
        id: &str,
        seen: &Seen<'_>,
        m: &Matched,
        now: DateTime<Utc>,
    ) -> Result<Option<(Incident, Vec<&'static str>, bool, u64)>> {
        let mut last = None;
        for _ in 0..6 {
            let loaded = load_versioned(self.store.as_ref(), id, "").await?;
            if loaded.incident.status == IncidentStatus::Resolved {
                return Ok(None);
            }
            let mut incident = loaded.incident.clone();
            let mut change = Change::default();
            self.follow_change(&mut incident, &loaded.events, seen, m, now, &mut change);
            if change.is_empty() && incident == loaded.incident {
                return Ok(None);
            }
            let resolved = incident.status == IncidentStatus::Resolved;
            match self.commit(&incident, &loaded, &change, now).await {
                Ok(events) => {
                    let seq = events.last().map_or(last_seq(&loaded.events), |e| e.seq);
                    return Ok(Some((incident, change.messages, resolved, seq)));
                }
                Err(e) if is_stale(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ops_core::Error::conflict(format!("incident {id} keeps changing"))))
    }

    /// The change one observation makes to one incident: pure, from what was read.
    fn follow_change(
        &self,
        incident: &mut Incident,
        events: &[Event],
        seen: &Seen<'_>,
        m: &Matched,
        now: DateTime<Utc>,
        change: &mut Change,
    ) {
        // Its checks grow with the consequences triage files under it.
        let grown: BTreeSet<String> = m.checks.difference(&incident.checks).cloned().collect();
        if !grown.is_empty() {
            incident.checks.extend(grown);
            for c in self.options.components_of(&incident.checks) {
                if !incident.components.contains(&c) {
                    incident.components.push(c);
                }
            }
        }
        let names = expand(&incident.checks, &seen.aliases);
        if !incident.failing_seen
            && seen.report.probes.iter().any(|p| names.contains(&p.name) && p.status != Status::Ok)
        {
            incident.failing_seen = true;
        }

        // Its checks that changed status; alerts fired or resolved (on the most urgent one).
        for probe in &seen.report.probes {
            let Some(before) = seen.states.before.get(&probe.name) else { continue };
            if probe.kind == ProbeKind::Alertmanager {
                if seen.alerts_to.as_deref() != Some(incident.id.as_str()) {
                    continue;
                }
                let now_firing = firing(probe);
                for fired in now_firing.difference(&before.alerts) {
                    change.push(now, "triage", alert_event(fired, "firing"));
                }
                for gone in before.alerts.difference(&now_firing) {
                    change.push(now, "triage", alert_event(gone, "resolved"));
                }
            } else if names.contains(&probe.name) && before.status != probe.status {
                change.push(
                    now,
                    "triage",
                    EventKind::Probe {
                        check: probe.name.clone(),
                        from: before.status,
                        to: probe.status,
                        message: probe.message.clone(),
                    },
                );
            }
        }

        let ours = self.gather_runs(incident, seen, &names, now, change);
        self.gather_actions(incident, seen, &names, &ours, now, change);
        self.severity(incident, events, m, now, change);

        if !incident.checks.is_empty() {
            let clean = self.clean(incident, seen);
            self.settle(incident, clean, seen, now, change);
        }

        // An overdue update gets one reminder per deadline.
        if let Some(due) = incident.next_update_due
            && incident.status != IncidentStatus::Resolved
            && now > due
            && incident.reminded_for != Some(due)
        {
            incident.reminded_for = Some(due);
            change.tell(incident, "reminder", now, &self.options);
        }
    }

    /// Triage's severity, raised by the escalation rules; never below the floor (the highest
    /// an escalation reached, or what a person chose).
    fn severity(
        &self,
        incident: &mut Incident,
        events: &[Event],
        m: &Matched,
        now: DateTime<Utc>,
        change: &mut Change,
    ) {
        if incident.status == IncidentStatus::Mitigated {
            return;
        }
        let base_changed = m.base.is_some_and(|b| b != incident.base_severity);
        if let Some(base) = m.base {
            incident.base_severity = base;
        }
        let cfg = &self.options.escalation;
        let by_age = ops_probes::triage::escalation::by_age(incident.base_severity, incident.opened_at, now, cfg);
        let by_rules = ops_probes::triage::escalation::by_reports(by_age, &user_reports(events), now, cfg).min(by_age);
        let to = incident.floor.map_or(by_rules, |f| by_rules.min(f));
        if to == incident.severity {
            return;
        }
        if to < incident.base_severity && to == by_rules {
            let reason = if by_age < incident.base_severity {
                format!("{} open longer than its escalation window", incident.base_severity)
            } else {
                format!("more than {} user reports within {} min", cfg.reports, cfg.reports_window_minutes)
            };
            escalate_to(incident, change, to, &reason, now);
        } else {
            let from = incident.severity;
            incident.severity = to;
            let reason = if base_changed {
                format!("triage: {}", seen_summary(incident.base_severity))
            } else {
                "kept by an earlier escalation".to_owned()
            };
            change.push(now, "triage", EventKind::Severity { from, to, reason });
        }
        change.tell(incident, "update", now, &self.options);
    }

    /// Clean when its root (or, opened by hand, every one of its checks) is seen passing and
    /// nothing triage files under it is incident-worthy; unknown when a check it needs was
    /// not seen at all, or none of its checks has failed since it opened (checks that always
    /// passed say nothing about a problem a person reported).
    fn clean(&self, incident: &Incident, seen: &Seen<'_>) -> Clean {
        let status_of = |name: &str| -> Option<Status> {
            let names = expand(&BTreeSet::from([name.to_owned()]), &seen.aliases);
            seen.report.probes.iter().find(|p| names.contains(&p.name)).map(|p| p.status)
        };
        let worthy = seen.report.incidents.iter().any(|f| {
            let touches =
                incident.checks.contains(&f.check) || f.consequences.iter().any(|c| incident.checks.contains(&c.check));
            touches && f.severity <= self.options.incidents.open_at
        });
        let needed: Vec<&String> = match &incident.root {
            Some(root) => vec![root],
            None => incident.checks.iter().collect(),
        };
        let statuses: Vec<Option<Status>> = needed.iter().map(|c| status_of(c)).collect();
        if worthy || statuses.iter().any(|s| s.is_some_and(|s| s != Status::Ok)) {
            Clean::No
        } else if statuses.iter().all(Option::is_some) && incident.failing_seen {
            Clean::Yes
        } else {
            Clean::Unknown
        }
    }

    /// Mitigated, relapsed, resolved: the incident's life from whether it is clean now.
    fn settle(&self, incident: &mut Incident, clean: Clean, seen: &Seen<'_>, now: DateTime<Utc>, change: &mut Change) {
        match clean {
            Clean::Unknown => {}
            Clean::Yes => {
                let since = *incident.clean_since.get_or_insert(now);
                if incident.status != IncidentStatus::Mitigated {
                    incident.status = IncidentStatus::Mitigated;
                    incident.mitigated_at = Some(now);
                    let reason = match &incident.root {
                        Some(root) => format!("{root} passes and nothing filed under it is failing"),
                        None => format!("all {} checks pass", incident.checks.len()),
                    };
                    change.push(now, "triage", EventKind::Mitigated { reason });
                    let text = monitoring_text(&incident.components);
                    change.update(incident, now, "triage", PublicStatus::Monitoring, &text);
                    change.tell(incident, "update", now, &self.options);
                }
                let after = Duration::seconds(i64::try_from(self.options.incidents.resolve_after_secs).unwrap_or(300));
                if now - since >= after {
                    let reason = format!("its checks passed for {}", crate::comms::human_secs(after.num_seconds()));
                    close(incident, change, &reason, None, "triage", now, &self.options);
                }
            }
            Clean::No => {
                if incident.status == IncidentStatus::Mitigated {
                    let failing = seen
                        .report
                        .incidents
                        .iter()
                        .find(|f| incident.checks.contains(&f.check))
                        .map_or_else(|| incident.root.clone().unwrap_or_default(), |f| f.check.clone());
                    incident.status = if incident.acknowledged_at.is_some() {
                        IncidentStatus::Acknowledged
                    } else {
                        IncidentStatus::Open
                    };
                    incident.mitigated_at = None;
                    change.push(now, "triage", EventKind::Relapsed { check: failing });
                    let text = relapsed_text(&incident.components);
                    change.update(incident, now, "triage", PublicStatus::Investigating, &text);
                    change.tell(incident, "update", now, &self.options);
                }
                incident.clean_since = None;
            }
        }
    }

    /// Runs about this incident, new or changed since last time: linked to one of its checks,
    /// or (not linked) of its runbook when it is the one open incident of that runbook. A run
    /// that started before it opened counts only if it was still going then, and never says
    /// the cause is identified. The first such run of its own runbook tells the public the
    /// cause is identified.
    fn gather_runs<'s>(
        &self,
        incident: &mut Incident,
        seen: &'s Seen<'_>,
        names: &BTreeSet<String>,
        now: DateTime<Utc>,
        change: &mut Change,
    ) -> Vec<&'s StoredRun> {
        let since = incident.opened_at - Duration::minutes(5);
        let mut ours: Vec<&StoredRun> = seen
            .runs
            .iter()
            .filter(|r| r.started_at >= since && r.status != "planned")
            .filter(|r| r.started_at >= incident.opened_at || r.updated_at >= incident.opened_at)
            .filter(|r| seen.taken.get(&r.id).is_none_or(|owner| owner == &incident.id))
            .filter(|r| match r.document["incident"]["check"].as_str() {
                Some(check) => names.contains(check),
                None => {
                    incident.runbook.as_deref() == Some(r.runbook.as_str())
                        && seen.by_runbook.get(&r.runbook).copied().unwrap_or(0) <= 1
                }
            })
            .collect();
        ours.sort_by_key(|r| r.updated_at);
        for run in &ours {
            if incident.runs.get(&run.id) == Some(&run.status) {
                continue;
            }
            incident.runs.insert(run.id.clone(), run.status.clone());
            change.push(
                run.updated_at.min(now),
                "runbook",
                EventKind::Run { id: run.id.clone(), runbook: run.runbook.clone(), status: run.status.clone() },
            );
            let fixing = incident.runbook.as_deref() == Some(run.runbook.as_str())
                && run.started_at >= incident.opened_at
                && matches!(run.status.as_str(), "running" | "waiting" | "succeeded");
            if fixing
                && incident.public_status == PublicStatus::Investigating
                && incident.status != IncidentStatus::Mitigated
            {
                change.update(incident, now, "triage", PublicStatus::Identified, &identified_text());
                change.tell(incident, "update", now, &self.options);
            }
        }
        ours
    }

    /// Audit entries (actions, restores, prunes, renewals) about this incident: on one of its
    /// checks' targets, or taken while one of its runs ran. Each is recorded once.
    fn gather_actions(
        &self,
        incident: &mut Incident,
        seen: &Seen<'_>,
        names: &BTreeSet<String>,
        runs: &[&StoredRun],
        now: DateTime<Utc>,
        change: &mut Change,
    ) {
        let from = incident.opened_at - Duration::minutes(5);
        let slack = Duration::seconds(1);
        for entry in seen.audit.iter().filter(|e| e.time >= from && e.time <= now) {
            let digest = digest(entry);
            if incident.actions_seen.contains(&digest) {
                continue;
            }
            let on_target = names.contains(&entry.target);
            let in_run = runs.iter().any(|r| entry.time >= r.started_at - slack && entry.time <= r.updated_at + slack);
            if !(on_target || in_run) || entry.action == "runbook" {
                continue;
            }
            if incident.actions_seen.len() >= ACTIONS_REMEMBERED {
                break;
            }
            incident.actions_seen.insert(digest);
            change.push(
                entry.time,
                &entry.actor,
                EventKind::Action {
                    action: entry.action.clone(),
                    target: entry.target.clone(),
                    result: entry.result.clone(),
                },
            );
        }
    }
}

/// The firing alerts of an Alertmanager probe report (`alertname: summary`).
fn firing(probe: &ops_probes::ProbeReport) -> BTreeSet<String> {
    if probe.kind == ProbeKind::Alertmanager {
        probe.problems.iter().map(|p| p.message.clone()).collect()
    } else {
        BTreeSet::new()
    }
}

fn alert_event(alert: &str, state: &str) -> EventKind {
    let (name, summary) = alert.split_once(": ").unwrap_or((alert, ""));
    EventKind::Alert { name: name.into(), state: state.into(), summary: summary.into() }
}

/// Every probe's names (its name and aliases), each to all of them.
fn aliases(report: &TriageReport) -> BTreeMap<String, BTreeSet<String>> {
    let mut map = BTreeMap::new();
    for p in &report.probes {
        let all: BTreeSet<String> = std::iter::once(&p.name).chain(&p.aliases).cloned().collect();
        for n in &all {
            map.entry(n.clone()).or_insert_with(BTreeSet::new).extend(all.iter().cloned());
        }
    }
    map
}

/// `checks` with every alias of each.
fn expand(checks: &BTreeSet<String>, aliases: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut out = checks.clone();
    for c in checks {
        if let Some(all) = aliases.get(c) {
            out.extend(all.iter().cloned());
        }
    }
    out
}

/// One audit entry's identity.
fn digest(entry: &AuditEntry) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        entry.time.timestamp_nanos_opt().unwrap_or_default(),
        entry.actor,
        entry.action,
        entry.target,
        entry.result
    )
}

fn seen_summary(severity: Severity) -> String {
    format!("its findings are {severity} now")
}
