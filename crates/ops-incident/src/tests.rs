//! The incident desk against a real SQLite state store, with triage reports built by hand and
//! a notifier that keeps what it is told. Times are given, so the escalation and reminder
//! rules are tested without waiting.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use ops_core::adapters::state::SqlStateStore;
use ops_core::config::{OpsConfig, StatusComponentConfig};
use ops_core::ports::{Delivery, IncidentQuery, Notification, Notifier, StateStore};
use ops_core::{ErrorKind, Runbook, SecretUrl, Severity, Status};
use ops_probes::{ProbeKind, ProbeReport, Problem, TriageReport};

use crate::comms::Templates;
use crate::{EventKind, IncidentOptions, IncidentStatus, Incidents, OpenRequest, PublicStatus};

#[derive(Default)]
struct Told(Mutex<Vec<Notification>>);

#[async_trait]
impl Notifier for Told {
    fn target(&self) -> String {
        "test".into()
    }
    async fn notify(&self, n: &Notification) -> ops_core::Result<Delivery> {
        self.0.lock().unwrap().push(n.clone());
        Ok(Delivery { target: "test".into(), attempts: 1, status: 200 })
    }
}

impl Told {
    fn titles(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|n| n.title.clone()).collect()
    }
}

struct Desk {
    _dir: tempfile::TempDir,
    store: Arc<dyn StateStore>,
    told: Arc<Told>,
    desk: Incidents,
}

async fn desk() -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let url = SecretUrl::new(format!("sqlite://{}/state.db", dir.path().display()));
    let store: Arc<dyn StateStore> = Arc::new(SqlStateStore::open(&url).await.unwrap());
    let told = Arc::new(Told::default());
    let mut options = IncidentOptions::from_config(&OpsConfig::default());
    options.audit_log = None;
    options.incidents.resolve_after_secs = 60;
    options.project = "shop".into();
    options.components =
        vec![StatusComponentConfig { name: "API".into(), description: None, checks: vec!["http:api".into()] }];
    let desk = Incidents::new(
        Arc::clone(&store),
        vec![Arc::clone(&told) as Arc<dyn Notifier>],
        options,
        Arc::new(Templates::built_in()),
    );
    Desk { _dir: dir, store, told, desk }
}

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
}

fn probe(kind: ProbeKind, name: &str, problem: Option<(Runbook, Status, &str)>, deps: &[&str]) -> ProbeReport {
    let mut r = ProbeReport::new(kind, name.split_once(':').map_or(name, |(_, n)| n), "target");
    r.name = name.to_owned();
    r.depends_on = deps.iter().map(|d| (*d).to_owned()).collect();
    if let Some((runbook, status, message)) = problem {
        r.problem(Problem::new(runbook, status, message));
    }
    r.finish(std::time::Duration::from_millis(5))
}

fn triage(probes: Vec<ProbeReport>, now: DateTime<Utc>) -> TriageReport {
    ops_probes::triage::finish(probes, &OpsConfig::default(), now, std::time::Duration::from_millis(5))
}

/// The API down alone: a P2 (`api-down`).
fn api_down(now: DateTime<Utc>) -> TriageReport {
    triage(vec![probe(ProbeKind::Http, "http:api", Some((Runbook::ApiDown, Status::Critical, "HTTP 503")), &[])], now)
}

fn healthy(now: DateTime<Utc>) -> TriageReport {
    triage(vec![probe(ProbeKind::Http, "http:api", None, &[])], now)
}

fn kinds(events: &[crate::Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

#[tokio::test]
async fn triage_opens_reminds_escalates_mitigates_and_resolves() {
    let d = desk().await;
    // Healthy first: nothing opens.
    assert!(d.desk.observe(&healthy(at(0)), at(0)).await.unwrap().opened.is_empty());

    let r = d.desk.observe(&api_down(at(1)), at(1)).await.unwrap();
    assert_eq!(r.transitions, ["http:api ok → critical"]);
    let id = r.opened[0].clone();
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.severity, Severity::P2);
    assert_eq!(rec.incident.components, ["API"]);
    assert_eq!(rec.incident.public_title, "Degraded service: API");
    assert_eq!(rec.incident.next_update_due, Some(at(31)), "P2: an update every 30 minutes");
    assert_eq!(kinds(&rec.events), ["opened", "update", "notified"]);
    assert!(d.told.titles()[0].starts_with("🚨 [SEV-2] Degraded service: API (shop)"), "{:?}", d.told.titles());

    // Still down, the same finding: nothing new, nothing opened twice.
    let r = d.desk.observe(&api_down(at(10)), at(10)).await.unwrap();
    assert!(r.opened.is_empty() && r.updated.is_empty(), "{r:?}");

    // The update is overdue: one reminder per deadline.
    d.desk.observe(&api_down(at(32)), at(32)).await.unwrap();
    d.desk.observe(&api_down(at(33)), at(33)).await.unwrap();
    let reminders = d.told.titles().iter().filter(|t| t.starts_with("⏰")).count();
    assert_eq!(reminders, 1, "{:?}", d.told.titles());

    // A P2 open over two hours is a P1.
    d.desk.observe(&api_down(at(122)), at(122)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.severity, Severity::P1);
    let severity = rec.events.iter().find_map(|e| match &e.kind {
        EventKind::Severity { from, to, reason } => Some((*from, *to, reason.clone())),
        _ => None,
    });
    assert_eq!(severity.unwrap().0, Severity::P2);

    // Checks pass: mitigated (monitoring), then resolved once clean for resolve-after.
    let r = d.desk.observe(&healthy(at(123)), at(123)).await.unwrap();
    assert_eq!(r.transitions, ["http:api critical → ok"]);
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.status, IncidentStatus::Mitigated);
    assert_eq!(rec.incident.public_status, PublicStatus::Monitoring);
    assert_eq!(rec.incident.mitigated_at, Some(at(123)));
    let r = d.desk.observe(&healthy(at(124)), at(124)).await.unwrap();
    assert_eq!(r.resolved, std::slice::from_ref(&id));
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.status, IncidentStatus::Resolved);
    assert_eq!(rec.durations.to_resolve_secs, Some(123 * 60));
    assert_eq!(rec.durations.to_mitigate_secs, Some(122 * 60));
    assert!(d.told.titles().last().unwrap().starts_with("✅ [SEV-1] Resolved"), "{:?}", d.told.titles());
    assert!(
        d.store
            .incidents(&IncidentQuery { unresolved: true, limit: 5, ..Default::default() })
            .await
            .unwrap()
            .is_empty()
    );
    // It stays resolved: a later failure opens a new incident.
    let r = d.desk.observe(&api_down(at(200)), at(200)).await.unwrap();
    assert_eq!(r.opened.len(), 1);
    assert_ne!(r.opened[0], id);
}

#[tokio::test]
async fn a_consequence_is_filed_under_its_cause_and_the_detection_gap_is_measured() {
    let d = desk().await;
    let mut container = probe(
        ProbeKind::Container,
        "container:db",
        Some((Runbook::ContainerDown, Status::Critical, "exited with code 0")),
        &[],
    );
    container.observe(ops_probes::Observation::new("down_for", 180.0, ops_probes::Unit::Seconds));
    let db = probe(
        ProbeKind::Postgres,
        "postgres:main",
        Some((Runbook::DatabaseDown, Status::Critical, "connection refused")),
        &["container:db"],
    );
    let api =
        probe(ProbeKind::Http, "http:api", Some((Runbook::ApiDown, Status::Critical, "HTTP 503")), &["postgres:main"]);
    let r = d.desk.observe(&triage(vec![container, db, api], at(10)), at(10)).await.unwrap();
    assert_eq!(r.opened.len(), 1, "one incident for the cause: {r:?}");
    let rec = d.desk.load(&r.opened[0]).await.unwrap();
    assert_eq!(rec.incident.root.as_deref(), Some("container:db"));
    assert!(rec.incident.checks.contains("http:api"));
    assert_eq!(rec.incident.detected_at, at(7), "the container exited 3 minutes before");
    assert_eq!(rec.durations.detection_gap_secs, 180);
    let report = crate::report::build(&rec, at(20));
    assert_eq!(report.timeline[0].kind, "detected");
    assert!(report.action_items.iter().any(|a| a.action.starts_with("Detect container:db failing sooner")));
}

#[tokio::test]
async fn a_burst_of_user_reports_raises_the_severity_one_level() {
    let d = desk().await;
    let request = OpenRequest {
        title: "checkout slow".into(),
        severity: Some(Severity::P3),
        components: vec!["API".into()],
        ..Default::default()
    };
    let rec = d.desk.open(&request, "opsctl:oncall", at(0)).await.unwrap();
    let id = rec.incident.id;
    for i in 0..10 {
        d.desk.note(&id, &format!("user {i} says it is slow"), true, "opsctl:oncall", at(1)).await.unwrap();
    }
    assert_eq!(d.desk.load(&id).await.unwrap().incident.severity, Severity::P3, "10 is not more than 10");
    d.desk.note(&id, "one more", true, "opsctl:oncall", at(2)).await.unwrap();
    assert_eq!(d.desk.load(&id).await.unwrap().incident.severity, Severity::P2);
    // Internal notes are never sent.
    assert!(d.told.0.lock().unwrap().iter().all(|n| !n.text.contains("says it is slow")));
}

#[tokio::test]
async fn an_incident_that_fails_again_after_mitigation_relapses() {
    let d = desk().await;
    let id = d.desk.observe(&api_down(at(0)), at(0)).await.unwrap().opened[0].clone();
    d.desk.observe(&healthy(at(1)), at(1)).await.unwrap();
    assert_eq!(d.desk.load(&id).await.unwrap().incident.status, IncidentStatus::Mitigated);
    d.desk.observe(&api_down(at(1) + Duration::seconds(30)), at(1) + Duration::seconds(30)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.status, IncidentStatus::Open);
    assert_eq!(rec.incident.public_status, PublicStatus::Investigating);
    assert!(rec.incident.mitigated_at.is_none() && rec.incident.clean_since.is_none());
    assert!(kinds(&rec.events).contains(&"relapsed"));
    // Clean again, long enough: resolved, with one relapse in the report.
    d.desk.observe(&healthy(at(3)), at(3)).await.unwrap();
    d.desk.observe(&healthy(at(5)), at(5)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.status, IncidentStatus::Resolved);
    assert_eq!(crate::report::build(&rec, at(6)).impact.relapses, 1);
}

#[tokio::test]
async fn one_observer_at_a_time() {
    let d = desk().await;
    assert!(d.store.try_lease("incidents-observe", "another", at(0), Utc::now() + Duration::minutes(1)).await.unwrap());
    let r = d.desk.observe(&api_down(Utc::now()), Utc::now()).await.unwrap();
    assert_eq!(r.skipped.as_deref(), Some("another observer is recording incidents"));
    assert!(r.opened.is_empty());
}

#[tokio::test]
async fn by_hand_open_update_acknowledge_resolve_and_bad_input() {
    let d = desk().await;
    let request = OpenRequest { title: "payments failing".into(), severity: Some(Severity::P1), ..Default::default() };
    let rec = d.desk.open(&request, "api:abc", at(0)).await.unwrap();
    let id = rec.incident.id.clone();
    assert_eq!(rec.incident.public_title, "Outage: our services");
    // Triage never resolves an incident without checks.
    d.desk.observe(&healthy(at(10)), at(10)).await.unwrap();
    assert_eq!(d.desk.load(&id).await.unwrap().incident.status, IncidentStatus::Open);

    d.desk.acknowledge(&id, "api:abc", at(3)).await.unwrap();
    assert_eq!(d.desk.acknowledge(&id, "api:abc", at(4)).await.unwrap_err().kind(), ErrorKind::Conflict);
    d.desk.update(&id, Some(PublicStatus::Identified), "The provider is down.", "api:abc", at(5)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.public_status, PublicStatus::Identified);
    assert_eq!(rec.durations.to_acknowledge_secs, Some(180));
    assert_eq!(rec.incident.next_update_due, Some(at(20)), "an update moves the deadline");
    // An update saying resolved resolves it.
    d.desk.update(&id, Some(PublicStatus::Resolved), "Payments work again.", "api:abc", at(30)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.status, IncidentStatus::Resolved);
    assert_eq!(rec.updates().last().unwrap().2, "Payments work again.");
    assert_eq!(d.desk.resolve(&id, None, "api:abc", at(31)).await.unwrap_err().kind(), ErrorKind::Conflict);

    assert_eq!(d.desk.load("inc-20260101T000000Z-00000000").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(d.desk.load("../etc/passwd").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(d.desk.note(&id, "   ", false, "x", at(32)).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(
        d.desk.note(&id, &"x".repeat(5000), false, "x", at(32)).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(d.desk.note(&id, "bell\u{7}", false, "x", at(32)).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    let unknown = OpenRequest { title: "x".into(), components: vec!["Nope".into()], ..Default::default() };
    assert_eq!(d.desk.open(&unknown, "x", at(0)).await.unwrap_err().kind(), ErrorKind::InvalidInput);
}

/// A store that lets a person acknowledge the incident between an observer's read and its
/// commit, once: the observer's commit must then be refused and computed again.
struct Racing {
    inner: Arc<dyn StateStore>,
    person: tokio::sync::Mutex<Option<Incidents>>,
}

#[async_trait]
impl StateStore for Racing {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn migrate(&self) -> ops_core::Result<u32> {
        self.inner.migrate().await
    }
    async fn save_run(&self, run: &ops_core::ports::StoredRun) -> ops_core::Result<()> {
        self.inner.save_run(run).await
    }
    async fn run(&self, id: &str) -> ops_core::Result<Option<ops_core::ports::StoredRun>> {
        self.inner.run(id).await
    }
    async fn runs(&self, q: &ops_core::ports::RunQuery) -> ops_core::Result<Vec<ops_core::ports::StoredRun>> {
        self.inner.runs(q).await
    }
    async fn take_budget(
        &self,
        r: &ops_core::ports::BudgetRequest,
    ) -> ops_core::Result<ops_core::ports::BudgetDecision> {
        self.inner.take_budget(r).await
    }
    async fn budget_uses(&self, key: &str, since: DateTime<Utc>) -> ops_core::Result<Vec<DateTime<Utc>>> {
        self.inner.budget_uses(key, since).await
    }
    async fn approve(&self, a: &ops_core::ports::Approval) -> ops_core::Result<()> {
        self.inner.approve(a).await
    }
    async fn approval(&self, run_id: &str, step: u32) -> ops_core::Result<Option<ops_core::ports::Approval>> {
        self.inner.approval(run_id, step).await
    }
    async fn mirror_audit(
        &self,
        source: &str,
        entries: &[ops_core::audit::AuditEntry],
        offset: u64,
        head: &str,
    ) -> ops_core::Result<()> {
        self.inner.mirror_audit(source, entries, offset, head).await
    }
    async fn audit_mirror_position(&self, source: &str) -> ops_core::Result<Option<(u64, String)>> {
        self.inner.audit_mirror_position(source).await
    }
    async fn audit(&self, limit: usize) -> ops_core::Result<Vec<ops_core::audit::AuditEntry>> {
        self.inner.audit(limit).await
    }
    async fn open_incident(
        &self,
        i: &ops_core::ports::StoredIncident,
        e: &[ops_core::ports::NewEvent],
    ) -> ops_core::Result<Option<Vec<u64>>> {
        self.inner.open_incident(i, e).await
    }
    async fn commit_incident(
        &self,
        i: &ops_core::ports::StoredIncident,
        e: &[ops_core::ports::NewEvent],
    ) -> ops_core::Result<Vec<u64>> {
        // The person acts between the observer's read and its commit.
        if let Some(person) = self.person.lock().await.take() {
            person.acknowledge(&i.id, "opsctl:oncall", at(2)).await.unwrap();
        }
        self.inner.commit_incident(i, e).await
    }
    async fn incident(&self, id: &str) -> ops_core::Result<Option<ops_core::ports::StoredIncident>> {
        self.inner.incident(id).await
    }
    async fn incidents(&self, q: &IncidentQuery) -> ops_core::Result<Vec<ops_core::ports::StoredIncident>> {
        self.inner.incidents(q).await
    }
    async fn append_incident_event(
        &self,
        id: &str,
        time: DateTime<Utc>,
        kind: &str,
        doc: &serde_json::Value,
    ) -> ops_core::Result<u64> {
        self.inner.append_incident_event(id, time, kind, doc).await
    }
    async fn incident_events(&self, id: &str, kind: &str) -> ops_core::Result<Vec<ops_core::ports::StoredEvent>> {
        self.inner.incident_events(id, kind).await
    }
    async fn put_document(&self, c: &str, k: &str, d: &serde_json::Value) -> ops_core::Result<()> {
        self.inner.put_document(c, k, d).await
    }
    async fn delete_document(&self, c: &str, k: &str) -> ops_core::Result<bool> {
        self.inner.delete_document(c, k).await
    }
    async fn documents(&self, c: &str) -> ops_core::Result<Vec<(String, serde_json::Value)>> {
        self.inner.documents(c).await
    }
    async fn add_component_samples(&self, day: chrono::NaiveDate, s: &[(String, String)]) -> ops_core::Result<()> {
        self.inner.add_component_samples(day, s).await
    }
    async fn component_days(&self, since: chrono::NaiveDate) -> ops_core::Result<Vec<ops_core::ports::ComponentDay>> {
        self.inner.component_days(since).await
    }
    async fn try_lease(&self, n: &str, h: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> ops_core::Result<bool> {
        self.inner.try_lease(n, h, now, until).await
    }
    async fn release_lease(&self, n: &str, h: &str) -> ops_core::Result<()> {
        self.inner.release_lease(n, h).await
    }
    async fn prune_leases(&self, p: &str, now: DateTime<Utc>) -> ops_core::Result<u64> {
        self.inner.prune_leases(p, now).await
    }
    async fn claim_scheduled_run(&self, r: &ops_core::ports::ScheduledRun) -> ops_core::Result<bool> {
        self.inner.claim_scheduled_run(r).await
    }
    async fn finish_scheduled_run(&self, r: &ops_core::ports::ScheduledRun) -> ops_core::Result<bool> {
        self.inner.finish_scheduled_run(r).await
    }
    async fn heartbeat_scheduled_runs(&self, h: &str, now: DateTime<Utc>) -> ops_core::Result<()> {
        self.inner.heartbeat_scheduled_runs(h, now).await
    }
    async fn abandon_scheduled_runs(
        &self,
        stale: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> ops_core::Result<Vec<ops_core::ports::ScheduledRun>> {
        self.inner.abandon_scheduled_runs(stale, now).await
    }
    async fn scheduled_runs(
        &self,
        q: &ops_core::ports::ScheduleQuery,
    ) -> ops_core::Result<Vec<ops_core::ports::ScheduledRun>> {
        self.inner.scheduled_runs(q).await
    }
}

#[tokio::test]
async fn a_person_acting_between_the_observers_read_and_commit_is_not_overwritten() {
    let d = desk().await;
    let id = d.desk.observe(&api_down(at(0)), at(0)).await.unwrap().opened[0].clone();
    let racing: Arc<dyn StateStore> =
        Arc::new(Racing { inner: Arc::clone(&d.store), person: tokio::sync::Mutex::new(Some(d.desk.clone())) });
    let observer = Incidents::new(racing, Vec::new(), d.desk.options().clone(), Arc::new(Templates::built_in()));
    // The observer reads the open incident, the person acknowledges it, the observer commits
    // its mitigation: refused (the header changed), computed again, committed.
    let r = observer.observe(&healthy(at(1)), at(1)).await.unwrap();
    assert_eq!(r.updated, std::slice::from_ref(&id));
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.acknowledged_at, Some(at(2)), "the acknowledgement stays");
    assert_eq!(rec.incident.status, IncidentStatus::Mitigated, "and so does the mitigation");
    let kinds = kinds(&rec.events);
    assert_eq!(kinds.iter().filter(|k| **k == "mitigated").count(), 1, "recorded once: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "acknowledged").count(), 1, "{kinds:?}");
}

#[tokio::test]
async fn an_incident_opened_on_passing_checks_waits_for_them_to_fail_first() {
    let d = desk().await;
    d.desk.observe(&healthy(at(0)), at(0)).await.unwrap();
    let request = OpenRequest {
        title: "checkout broken for EU customers".into(),
        checks: vec!["http:api".into()],
        ..Default::default()
    };
    let id = d.desk.open(&request, "x", at(1)).await.unwrap().incident.id;
    d.desk.observe(&healthy(at(2)), at(2)).await.unwrap();
    d.desk.observe(&healthy(at(10)), at(10)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.status, IncidentStatus::Open, "passing checks fixed nothing a person reported");
    // Once its check has failed and passes again, it is mitigated.
    d.desk.observe(&api_down(at(11)), at(11)).await.unwrap();
    d.desk.observe(&healthy(at(12)), at(12)).await.unwrap();
    assert_eq!(d.desk.load(&id).await.unwrap().incident.status, IncidentStatus::Mitigated);
}

#[tokio::test]
async fn a_full_log_still_lets_the_incident_resolve() {
    let d = desk().await;
    let id = d.desk.observe(&api_down(at(0)), at(0)).await.unwrap().opened[0].clone();
    let filler = ops_core::ports::NewEvent {
        time: at(0),
        kind: "note".into(),
        document: serde_json::json!({ "actor": "x", "kind": "note", "text": "x", "user_report": false }),
    };
    let have = d.store.incident_events(&id, "").await.unwrap().len() as u64;
    let fill = vec![filler; usize::try_from(ops_core::ports::MAX_EVENTS - 60 - have).unwrap()];
    let stored = d.store.incident(&id).await.unwrap().unwrap();
    d.store.commit_incident(&stored, &fill).await.unwrap();
    // Evidence is no longer recorded, the lifecycle is.
    d.desk.observe(&healthy(at(1)), at(1)).await.unwrap();
    d.desk.observe(&healthy(at(3)), at(3)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.status, IncidentStatus::Resolved);
    assert!(rec.events.len() as u64 <= ops_core::ports::MAX_EVENTS);
    assert!(!kinds(&rec.events[rec.events.len() - 10..]).contains(&"probe"), "evidence left out near the end");
}

#[tokio::test]
async fn escalations_hold_and_a_chosen_severity_is_never_lowered() {
    let d = desk().await;
    d.desk.observe(&healthy(at(0)), at(0)).await.unwrap();
    // Opened by hand as a P1 with a check triage sees as a P2: it stays a P1.
    let request = OpenRequest {
        title: "checkout down".into(),
        severity: Some(Severity::P1),
        checks: vec!["http:api".into()],
        ..Default::default()
    };
    let id = d.desk.open(&request, "opsctl:oncall", at(1)).await.unwrap().incident.id;
    d.desk.observe(&api_down(at(2)), at(2)).await.unwrap();
    assert_eq!(d.desk.load(&id).await.unwrap().incident.severity, Severity::P1);
    d.desk.resolve(&id, None, "x", at(3)).await.unwrap();

    // Opened by triage as a P2; a burst of reports makes it a P1, and it stays one after the
    // reports' window has passed.
    let id = d.desk.observe(&api_down(at(10)), at(10)).await.unwrap().opened[0].clone();
    for i in 0..11 {
        d.desk.note(&id, &format!("report {i}"), true, "api:k", at(11)).await.unwrap();
    }
    assert_eq!(d.desk.load(&id).await.unwrap().incident.severity, Severity::P1);
    let r = d.desk.observe(&api_down(at(30)), at(30)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    assert_eq!(rec.incident.severity, Severity::P1, "{r:?} {:?}", kinds(&rec.events));
}

#[tokio::test]
async fn an_incident_whose_checks_were_not_seen_is_left_as_it_is() {
    let d = desk().await;
    let id = d.desk.observe(&api_down(at(0)), at(0)).await.unwrap().opened[0].clone();
    // A triage without its root (a probe left out, `--no-logs`): nothing is known.
    let r = d.desk.observe(&triage(Vec::new(), at(1)), at(1)).await.unwrap();
    assert!(r.updated.is_empty(), "{r:?}");
    assert_eq!(d.desk.load(&id).await.unwrap().incident.status, IncidentStatus::Open);
    // A check triage never saw cannot be named.
    let request = OpenRequest { title: "x".into(), checks: vec!["http:typo".into()], ..Default::default() };
    assert_eq!(d.desk.open(&request, "x", at(2)).await.unwrap_err().kind(), ErrorKind::InvalidInput);
    // Mitigated and waiting to resolve: a quiet observation changes nothing.
    d.desk.observe(&healthy(at(3)), at(3)).await.unwrap();
    let r = d.desk.observe(&healthy(at(3) + Duration::seconds(10)), at(3) + Duration::seconds(10)).await.unwrap();
    assert!(r.updated.is_empty(), "{r:?}");
}

#[tokio::test]
async fn a_new_root_opens_its_own_incident() {
    let d = desk().await;
    let api_id = d.desk.observe(&api_down(at(0)), at(0)).await.unwrap().opened[0].clone();
    // Now the API fails because the web tier it depends on does.
    let web = probe(ProbeKind::Http, "http:web", Some((Runbook::ApiDown, Status::Critical, "HTTP 502")), &[]);
    let api = probe(ProbeKind::Http, "http:api", Some((Runbook::ApiDown, Status::Critical, "HTTP 503")), &["http:web"]);
    let r = d.desk.observe(&triage(vec![web, api], at(1)), at(1)).await.unwrap();
    assert_eq!(r.opened.len(), 1, "{r:?}");
    assert_ne!(r.opened[0], api_id);
    assert_eq!(d.desk.load(&r.opened[0]).await.unwrap().incident.root.as_deref(), Some("http:web"));
    assert_eq!(d.desk.load(&api_id).await.unwrap().incident.status, IncidentStatus::Open, "its root still fails");
}

#[tokio::test]
async fn runs_belong_to_the_incident_of_their_runbook_or_check() {
    let d = desk().await;
    let id = d.desk.observe(&api_down(at(0)), at(0)).await.unwrap().opened[0].clone();
    let run = |id: &str, runbook: &str, status: &str, doc: serde_json::Value| ops_core::ports::StoredRun {
        id: id.into(),
        runbook: runbook.into(),
        status: status.into(),
        started_at: at(1),
        updated_at: at(1),
        document: doc,
    };
    d.store.save_run(&run("run-1", "backup-verify", "failed", serde_json::json!({}))).await.unwrap();
    d.desk.observe(&api_down(at(2)), at(2)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    assert!(!kinds(&rec.events).contains(&"run"), "another runbook's run is not this incident's");
    assert_eq!(rec.incident.public_status, PublicStatus::Investigating);
    d.store.save_run(&run("run-2", "api-down", "running", serde_json::json!({}))).await.unwrap();
    d.store
        .save_run(&run("run-3", "crash-loop", "succeeded", serde_json::json!({ "incident": { "check": "http:api" } })))
        .await
        .unwrap();
    d.desk.observe(&api_down(at(3)), at(3)).await.unwrap();
    let rec = d.desk.load(&id).await.unwrap();
    let runs: Vec<String> = rec
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Run { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.contains(&"run-2".to_owned()) && runs.contains(&"run-3".to_owned()));
    assert_eq!(rec.incident.public_status, PublicStatus::Identified, "its own runbook is being applied");
}
