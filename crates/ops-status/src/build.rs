//! Building the page from the state store: the checks' last statuses (kept by the incident
//! desk's observations), overrides, maintenance windows, incidents and the daily samples.
//! Reading is bounded: at most `history-days` of samples and 50 incidents, so the cost of a
//! page does not grow with how long the project has run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ops_core::config::{OpsConfig, StatusComponentConfig};
use ops_core::ports::{IncidentQuery, StateStore};
use ops_core::{Error, Result, Severity, Status};
use ops_incident::{CheckState, EventKind, Incident, IncidentStatus, Incidents};
use serde::{Deserialize, Serialize};

use crate::model::{
    Component, ComponentStatus, Day, Indicator, Maintenance, Override, PublicIncident, PublicUpdate, StatusPage,
};

/// The store collection of overrides, by component name.
pub const OVERRIDES: &str = "status-override";
/// The store collection of maintenance windows, by id.
pub const MAINTENANCES: &str = "status-maintenance";

/// Incidents listed at most.
const MAX_INCIDENTS: usize = 50;

/// What the page is built from; the caller gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusOptions {
    /// The page's title.
    pub title: String,
    /// Its public address.
    pub url: Option<String>,
    /// The components.
    pub components: Vec<StatusComponentConfig>,
    /// Days of history (at most 90).
    pub history_days: u32,
}

impl StatusOptions {
    /// The options `config` gives.
    #[must_use]
    pub fn from_config(config: &OpsConfig) -> Self {
        let title = config.status.title.clone().unwrap_or_else(|| {
            if config.project.name.is_empty() { "Status".to_owned() } else { format!("{} status", config.project.name) }
        });
        Self {
            title,
            url: config.status.public_url.clone(),
            components: config.status.components.clone(),
            history_days: config.status.history_days.clamp(1, 90),
        }
    }
}

/// A maintenance window to plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    /// Public title.
    pub title: String,
    /// Public text.
    #[serde(default)]
    pub text: String,
    /// Components under maintenance.
    pub components: Vec<String>,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
}

/// The status page over a state store.
#[derive(Clone)]
pub struct StatusBoard {
    store: Arc<dyn StateStore>,
    options: StatusOptions,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard").field("store", &self.store.location()).finish_non_exhaustive()
    }
}

/// A component's id: its name, lowercase, letters and digits, dashes between.
#[must_use]
pub fn component_id(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    let id = id.trim_end_matches('-').to_owned();
    if id.is_empty() {
        use sha2::Digest as _;
        hex::encode(&sha2::Sha256::digest(name.as_bytes())[..6])
    } else {
        id
    }
}

impl StatusBoard {
    /// A board over `store`.
    #[must_use]
    pub fn new(store: Arc<dyn StateStore>, options: StatusOptions) -> Self {
        Self { store, options }
    }

    /// The board of a wired context (its state store opened).
    ///
    /// # Errors
    /// `Internal` when the state store was not opened.
    pub fn from_context(ctx: &ops_core::Context) -> Result<Self> {
        Ok(Self::new(Arc::clone(ctx.state()?), StatusOptions::from_config(&ctx.config)))
    }

    /// Records what one triage shows: the incidents ([`Incidents::observe`]) and, when that
    /// observation was this process's, one sample of each component for the history.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn record_triage(
        &self,
        incidents: &Incidents,
        report: &ops_probes::TriageReport,
        now: DateTime<Utc>,
    ) -> Result<ops_incident::ObserveReport> {
        let observed = incidents.observe(report, now).await?;
        if observed.skipped.is_none() {
            self.record_samples(now).await?;
        }
        Ok(observed)
    }

    /// The store it reads.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The options.
    #[must_use]
    pub const fn options(&self) -> &StatusOptions {
        &self.options
    }

    /// Each component's status now, with why; from the checks' last states, open incidents
    /// opened by hand, maintenance and overrides.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn current(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(StatusComponentConfig, ComponentStatus, String, DateTime<Utc>)>> {
        let checks = ops_incident::check_states(self.store.as_ref()).await?;
        let overrides = self.overrides().await?;
        let maintenances = self.maintenances().await?;
        let open = self.store.incidents(&IncidentQuery { unresolved: true, limit: 200, ..Default::default() }).await?;
        let open: Vec<Incident> = open.iter().filter_map(|s| serde_json::from_value(s.document.clone()).ok()).collect();
        let mut out = Vec::new();
        for c in &self.options.components {
            let (mut status, mut reason, mut since) = from_checks(c, &checks, now);
            // An incident opened by hand that names the component and no checks sets it by
            // its severity.
            for inc in open.iter().filter(|i| i.checks.is_empty() && i.components.contains(&c.name)) {
                let by_hand = match inc.severity {
                    Severity::P1 => ComponentStatus::MajorOutage,
                    Severity::P2 => ComponentStatus::PartialOutage,
                    Severity::P3 | Severity::P4 => ComponentStatus::DegradedPerformance,
                };
                if by_hand > status {
                    status = by_hand;
                    reason = format!("incident {}", inc.id);
                    since = inc.opened_at;
                }
            }
            if let Some(m) =
                maintenances.iter().find(|m| m.state(now) == "in_progress" && m.components.contains(&c.name))
                && status <= ComponentStatus::UnderMaintenance
            {
                status = ComponentStatus::UnderMaintenance;
                reason = format!("maintenance {}", m.id);
                since = m.starts_at;
            }
            if let Some(o) = overrides.get(&c.name) {
                status = o.status;
                reason = format!("override by {}", o.set_by);
                since = o.set_at;
            }
            out.push((c.clone(), status, reason, since));
        }
        Ok(out)
    }

    /// Counts one sample of each component's current status for today (UTC): the history.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn record_samples(&self, now: DateTime<Utc>) -> Result<usize> {
        let current = self.current(now).await?;
        let samples: Vec<(String, String)> =
            current.iter().map(|(c, s, _, _)| (c.name.clone(), s.as_str().to_owned())).collect();
        if !samples.is_empty() {
            self.store.add_component_samples(now.date_naive(), &samples).await?;
        }
        Ok(samples.len())
    }

    /// The whole page at `now`. It reads at most `history-days` of samples, the open
    /// incidents and the 50 newest of the history (their public updates only), so its cost
    /// does not grow with the store.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn page(&self, now: DateTime<Utc>) -> Result<StatusPage> {
        let days = self.options.history_days.clamp(1, 90);
        let first_day = now.date_naive() - Duration::days(i64::from(days) - 1);
        let samples = self.store.component_days(first_day).await?;
        let current = self.current(now).await?;
        let mut components = Vec::new();
        for (i, (c, status, reason, since)) in current.into_iter().enumerate() {
            let history = history(&c.name, &samples, first_day, days);
            let (up, total) = history.iter().fold((0.0, 0u64), |(up, total), d| {
                #[allow(clippy::cast_precision_loss)]
                let n = d.samples as f64;
                (up + d.uptime.unwrap_or(0.0) / 100.0 * n, total + d.samples)
            });
            #[allow(clippy::cast_precision_loss)]
            let uptime = (total > 0).then(|| round2(up / total as f64 * 100.0));
            components.push(Component {
                id: component_id(&c.name),
                name: c.name.clone(),
                description: c.description.clone(),
                status,
                reason,
                position: i + 1,
                updated_at: since,
                uptime,
                history,
            });
        }
        // Every open incident, however old, and the newest of the history.
        let since = now - Duration::days(i64::from(days));
        let mut stored = self
            .store
            .incidents(&IncidentQuery {
                unresolved: true,
                limit: ops_core::ports::state::MAX_LISTED,
                ..Default::default()
            })
            .await?;
        let recent = self
            .store
            .incidents(&IncidentQuery { since: Some(since), limit: MAX_INCIDENTS, ..Default::default() })
            .await?;
        for r in recent {
            if !stored.iter().any(|s| s.id == r.id) {
                stored.push(r);
            }
        }
        stored.sort_by(|a, b| b.opened_at.cmp(&a.opened_at).then_with(|| b.id.cmp(&a.id)));
        let mut public = Vec::new();
        for inc in &stored {
            // The header as listed, and only its public updates: one query per incident.
            let incident = ops_incident::record::parse_header(inc)?;
            let events = self
                .store
                .incident_events(&inc.id, "update")
                .await?
                .into_iter()
                .map(|e| ops_incident::record::parse_event(&inc.id, e))
                .collect::<Result<Vec<_>>>()?;
            let record = ops_incident::IncidentRecord { durations: incident.durations(), incident, events };
            public.push(public_incident(&record));
        }
        let unresolved: Vec<PublicIncident> = public.iter().filter(|i| i.status != "resolved").cloned().collect();
        let week_ago = now - Duration::days(7);
        let mut maintenances: Vec<Maintenance> =
            self.maintenances().await?.into_iter().filter(|m| m.ends_at >= week_ago).collect();
        maintenances.sort_by_key(|m| m.starts_at);
        let indicator = indicator(&components, &unresolved);
        Ok(StatusPage {
            title: self.options.title.clone(),
            url: self.options.url.clone(),
            updated_at: now,
            indicator,
            components,
            unresolved,
            incidents: public,
            maintenances,
            history_days: days,
        })
    }

    /// The overrides in force, by component.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn overrides(&self) -> Result<BTreeMap<String, Override>> {
        Ok(self
            .store
            .documents(OVERRIDES)
            .await?
            .into_iter()
            .filter_map(|(k, v)| serde_json::from_value(v).ok().map(|o| (k, o)))
            .collect())
    }

    /// Sets (or with `None` clears) a component's override; returns whether one was cleared.
    ///
    /// # Errors
    /// `InvalidInput` for a component not configured; the store's errors.
    pub async fn set_override(
        &self,
        component: &str,
        status: Option<ComponentStatus>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.known(component)?;
        match status {
            Some(status) => {
                let doc = serde_json::to_value(Override { status, set_by: actor.to_owned(), set_at: now })
                    .map_err(|e| Error::internal(format!("override: {e}")))?;
                self.store.put_document(OVERRIDES, component, &doc).await?;
                Ok(false)
            }
            None => self.store.delete_document(OVERRIDES, component).await,
        }
    }

    /// Maintenance windows, by start.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn maintenances(&self) -> Result<Vec<Maintenance>> {
        let mut all: Vec<Maintenance> = self
            .store
            .documents(MAINTENANCES)
            .await?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_value(v).ok())
            .collect();
        all.sort_by_key(|m| m.starts_at);
        Ok(all)
    }

    /// Plans a maintenance window.
    ///
    /// # Errors
    /// `InvalidInput` for an empty title, an end not after the start, a window longer than a
    /// week or further than a year ahead, no or an unknown component.
    pub async fn schedule_maintenance(
        &self,
        request: &MaintenanceRequest,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Maintenance> {
        let MaintenanceRequest { title, text, components, starts_at, ends_at } = request;
        let (starts_at, ends_at) = (*starts_at, *ends_at);
        let title = ops_incident::model::check_text("the title", title)?;
        let text =
            if text.trim().is_empty() { String::new() } else { ops_incident::model::check_text("the text", text)? };
        if ends_at <= starts_at {
            return Err(Error::invalid_input("the maintenance must end after it starts"));
        }
        if ends_at - starts_at > Duration::days(7) || starts_at > now + Duration::days(365) {
            return Err(Error::invalid_input("a maintenance lasts at most 7 days and starts within a year"));
        }
        if components.is_empty() || components.len() > 100 {
            return Err(Error::invalid_input("name 1 to 100 components"));
        }
        for c in components {
            self.known(c)?;
        }
        let id = ops_core::ids::new_id("mnt", now);
        let m = Maintenance {
            id: id.clone(),
            title,
            text,
            components: components.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect(),
            starts_at,
            ends_at,
            created_by: actor.to_owned(),
            created_at: now,
        };
        let doc = serde_json::to_value(&m).map_err(|e| Error::internal(format!("maintenance: {e}")))?;
        self.store.put_document(MAINTENANCES, &id, &doc).await?;
        Ok(m)
    }

    /// Cancels a maintenance window.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; the store's errors.
    pub async fn cancel_maintenance(&self, id: &str) -> Result<()> {
        if !ops_core::ids::valid_id("mnt", id) {
            return Err(Error::not_found(format!(
                "no maintenance {:?}: ids look like mnt-20261202T114500Z-7f3a09bc",
                id.chars().take(80).collect::<String>()
            )));
        }
        if self.store.delete_document(MAINTENANCES, id).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("no maintenance {id}")))
        }
    }

    fn known(&self, component: &str) -> Result<()> {
        if self.options.components.iter().any(|c| c.name == component) {
            Ok(())
        } else {
            Err(Error::invalid_input(format!("no status component {component:?} ([[status.components]])")))
        }
    }
}

/// A component's status from its checks: all failing is a major outage, some a partial one,
/// a warning degraded performance; checks never seen count as operational.
fn from_checks(
    c: &StatusComponentConfig,
    checks: &BTreeMap<String, CheckState>,
    now: DateTime<Utc>,
) -> (ComponentStatus, String, DateTime<Utc>) {
    let states: Vec<(&String, &CheckState)> = c.checks.iter().filter_map(|k| checks.get(k).map(|s| (k, s))).collect();
    let failing: Vec<&(&String, &CheckState)> = states.iter().filter(|(_, s)| s.status == Status::Critical).collect();
    let warning: Vec<&(&String, &CheckState)> =
        states.iter().filter(|(_, s)| matches!(s.status, Status::Warn | Status::Unknown)).collect();
    let since = states.iter().map(|(_, s)| s.since).max().unwrap_or(now);
    let names = |v: &[&(&String, &CheckState)]| {
        v.iter().map(|(k, s)| format!("{k} {}", s.status)).collect::<Vec<_>>().join(", ")
    };
    if !failing.is_empty() && failing.len() == c.checks.len() {
        (ComponentStatus::MajorOutage, names(&failing), since)
    } else if !failing.is_empty() {
        (ComponentStatus::PartialOutage, names(&failing), since)
    } else if !warning.is_empty() {
        (ComponentStatus::DegradedPerformance, names(&warning), since)
    } else {
        (ComponentStatus::Operational, "checks pass".to_owned(), since)
    }
}

fn history(name: &str, samples: &[ops_core::ports::ComponentDay], first: NaiveDate, days: u32) -> Vec<Day> {
    let by_day: BTreeMap<&str, &ops_core::ports::ComponentDay> =
        samples.iter().filter(|d| d.component == name).map(|d| (d.day.as_str(), d)).collect();
    (0..days)
        .map(|i| {
            let day = (first + Duration::days(i64::from(i))).format("%Y-%m-%d").to_string();
            match by_day.get(day.as_str()) {
                Some(d) => {
                    let total: u64 = d.samples.values().sum();
                    let count = |s: ComponentStatus| d.samples.get(s.as_str()).copied().unwrap_or(0);
                    let worst = ComponentStatus::ALL.into_iter().rev().find(|s| count(*s) > 0);
                    let up = count(ComponentStatus::Operational) + count(ComponentStatus::UnderMaintenance);
                    #[allow(clippy::cast_precision_loss)]
                    let uptime = (total > 0).then(|| round2(up as f64 / total as f64 * 100.0));
                    Day { day, worst, uptime, samples: total }
                }
                None => Day { day, worst: None, uptime: None, samples: 0 },
            }
        })
        .collect()
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// An incident as the public sees it.
#[must_use]
pub fn public_incident(record: &ops_incident::IncidentRecord) -> PublicIncident {
    let inc = &record.incident;
    let mut updates: Vec<PublicUpdate> = record
        .updates()
        .map(|(e, status, text)| PublicUpdate {
            id: format!("{}-{}", inc.id, e.seq),
            status: status.as_str().to_owned(),
            body: text.to_owned(),
            created_at: e.time,
        })
        .collect();
    let monitoring_at = record
        .events
        .iter()
        .rev()
        .find(|e| matches!(&e.kind, EventKind::Update { status: ops_incident::PublicStatus::Monitoring, .. }))
        .map(|e| e.time);
    let updated_at = updates.iter().map(|u| u.created_at).max().unwrap_or(inc.opened_at);
    updates.reverse();
    PublicIncident {
        id: inc.id.clone(),
        name: inc.public_title.clone(),
        status: if inc.status == IncidentStatus::Resolved {
            "resolved".to_owned()
        } else {
            inc.public_status.as_str().to_owned()
        },
        impact: match inc.severity {
            Severity::P1 => "critical",
            Severity::P2 => "major",
            Severity::P3 => "minor",
            Severity::P4 => "none",
        }
        .to_owned(),
        started_at: inc.detected_at,
        created_at: inc.opened_at,
        updated_at,
        monitoring_at,
        resolved_at: inc.resolved_at,
        components: inc.components.clone(),
        updates,
    }
}

/// The page's indicator, Statuspage's way: the worst of the components and open incidents.
fn indicator(components: &[Component], unresolved: &[PublicIncident]) -> Indicator {
    let worst = components.iter().map(|c| c.status).max().unwrap_or(ComponentStatus::Operational);
    let incident_worst = unresolved
        .iter()
        .map(|i| match i.impact.as_str() {
            "critical" => 3,
            "major" => 2,
            "minor" => 1,
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    let (indicator, description) = match worst {
        ComponentStatus::MajorOutage => ("critical", "Major System Outage"),
        ComponentStatus::PartialOutage => ("major", "Partial System Outage"),
        ComponentStatus::DegradedPerformance => ("minor", "Minor Service Outage"),
        ComponentStatus::UnderMaintenance => ("maintenance", "Service Under Maintenance"),
        ComponentStatus::Operational => match incident_worst {
            3 => ("critical", "Major System Outage"),
            2 => ("major", "Partial System Outage"),
            1 => ("minor", "Minor Service Outage"),
            _ => ("none", "All Systems Operational"),
        },
    };
    Indicator { indicator: indicator.to_owned(), description: description.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: Status) -> CheckState {
        CheckState { status, since: Utc::now(), message: String::new(), alerts: BTreeSet::new() }
    }

    #[test]
    fn a_component_is_as_bad_as_its_checks_say() {
        let c = StatusComponentConfig {
            name: "API".into(),
            description: None,
            checks: vec!["http:api".into(), "container:api".into()],
        };
        let now = Utc::now();
        let mut checks = BTreeMap::new();
        assert_eq!(from_checks(&c, &checks, now).0, ComponentStatus::Operational);
        checks.insert("http:api".to_owned(), state(Status::Critical));
        assert_eq!(from_checks(&c, &checks, now).0, ComponentStatus::PartialOutage);
        checks.insert("container:api".to_owned(), state(Status::Critical));
        assert_eq!(from_checks(&c, &checks, now).0, ComponentStatus::MajorOutage);
        checks.insert("container:api".to_owned(), state(Status::Ok));
        checks.insert("http:api".to_owned(), state(Status::Warn));
        let (s, reason, _) = from_checks(&c, &checks, now);
        assert_eq!(s, ComponentStatus::DegradedPerformance);
        assert_eq!(reason, "http:api warn");
    }

    #[test]
    fn ids_are_stable_and_plain() {
        assert_eq!(component_id("Payments API"), "payments-api");
        assert_eq!(component_id("  Web / CDN "), "web-cdn");
        assert_eq!(component_id("ß").len(), 12);
    }
}

#[cfg(test)]
mod store_tests {
    use std::sync::Arc;

    use chrono::{DateTime, Duration, Utc};
    use ops_core::SecretUrl;
    use ops_core::adapters::state::SqlStateStore;
    use ops_core::config::{OpsConfig, StatusComponentConfig};
    use ops_core::ports::StateStore;
    use ops_incident::comms::Templates;
    use ops_incident::{IncidentOptions, Incidents, OpenRequest};

    use super::{StatusBoard, StatusOptions};

    /// A SQLite store, one component (API, made of `http:api`) and a desk over them.
    async fn setup() -> (tempfile::TempDir, Arc<dyn StateStore>, Vec<StatusComponentConfig>, Incidents) {
        let dir = tempfile::tempdir().unwrap();
        let url = SecretUrl::new(format!("sqlite://{}/state.db", dir.path().display()));
        let store: Arc<dyn StateStore> = Arc::new(SqlStateStore::open(&url).await.unwrap());
        let components =
            vec![StatusComponentConfig { name: "API".into(), description: None, checks: vec!["http:api".into()] }];
        let mut options = IncidentOptions::from_config(&OpsConfig::default());
        options.components.clone_from(&components);
        options.audit_log = None;
        let desk = Incidents::new(Arc::clone(&store), Vec::new(), options, Arc::new(Templates::built_in()));
        (dir, store, components, desk)
    }

    #[tokio::test]
    async fn an_open_incident_older_than_the_history_is_still_on_the_page() {
        let (_dir, store, components, desk) = setup().await;
        let now: DateTime<Utc> = Utc::now();
        let old = OpenRequest {
            title: "payments down".into(),
            severity: Some(ops_core::Severity::P1),
            components: vec!["API".into()],
            ..Default::default()
        };
        let id = desk.open(&old, "x", now - Duration::days(3)).await.unwrap().incident.id;
        // Many newer resolved ones.
        for i in 0..55 {
            let r = OpenRequest { title: format!("blip {i}"), ..Default::default() };
            let rec = desk.open(&r, "x", now - Duration::hours(1)).await.unwrap();
            desk.resolve(&rec.incident.id, None, "x", now - Duration::minutes(50)).await.unwrap();
        }
        let board = StatusBoard::new(
            Arc::clone(&store),
            StatusOptions { title: "t".into(), url: None, components, history_days: 1 },
        );
        let page = board.page(now).await.unwrap();
        assert_eq!(page.unresolved.len(), 1);
        assert_eq!(page.unresolved[0].id, id);
        assert_eq!(page.indicator.indicator, "critical", "{:?}", page.indicator);
        assert_eq!(page.components[0].status, crate::model::ComponentStatus::MajorOutage, "opened by hand on it");
        assert!(page.incidents.len() <= 51, "at most 50 of the history and the open ones");
    }

    /// A secret that reached an evidence line (a health endpoint that echoes a token, a log
    /// line) is kept in the internal record and shown nowhere public.
    #[tokio::test]
    async fn a_secret_in_an_evidence_line_never_reaches_the_public_page() {
        use ops_probes::{ProbeKind, ProbeReport, Problem};
        const SECRET: &str = "tok_live_5ecret_in_evidence_91f3";
        let (_dir, store, components, desk) = setup().await;
        let mut probe = ProbeReport::new(ProbeKind::Http, "api", "http://api/health");
        let mut problem = Problem::new(ops_core::Runbook::ApiDown, ops_core::Status::Critical, "HTTP 500");
        problem.evidence.push(format!("body: {{\"error\": \"bad token {SECRET}\"}}"));
        probe.problem(problem);
        probe.evidence.push(format!("body: {{\"error\": \"bad token {SECRET}\"}}"));
        let probe = probe.finish(std::time::Duration::from_millis(3));
        let now = Utc::now();
        let report =
            ops_probes::triage::finish(vec![probe], &OpsConfig::default(), now, std::time::Duration::from_millis(3));
        let board = StatusBoard::new(
            Arc::clone(&store),
            StatusOptions {
                title: "t".into(),
                url: Some("https://status.example.com".into()),
                components,
                history_days: 90,
            },
        );
        let r = board.record_triage(&desk, &report, now).await.unwrap();
        let id = r.opened.first().expect("an incident opened").clone();
        let record = desk.load(&id).await.unwrap();
        let internal = serde_json::to_string(&record).unwrap();
        assert!(internal.contains(SECRET), "the internal record keeps its evidence");
        let page = board.page(now).await.unwrap();
        assert_eq!(page.unresolved.len(), 1);
        let links = crate::render::Links { feed: "feed.atom".into(), summary: "summary.json".into() };
        let mut public = vec![crate::render::html(&page, &links), crate::render::atom(&page, "feed.atom")];
        for doc in crate::render::JSON_DOCUMENTS {
            public.push(crate::render::json_document(&page, doc).unwrap().to_string());
        }
        for text in &public {
            assert!(!text.contains(SECRET) && !text.contains("bad token") && !text.contains("http:api"), "{text}");
        }
    }
}
