//! [`Incidents`]: the incident desk. It keeps each incident's header and append-only log in
//! the state store, and tells people (through the message templates) when one opens,
//! changes, resolves, or when an update is overdue.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ops_core::config::{EscalationConfig, IncidentsConfig, OpsConfig, StatusComponentConfig};
use ops_core::ports::{IncidentQuery, Notifier, StateStore, StoredIncident};
use ops_core::{Error, Result, Severity};
use serde::{Deserialize, Serialize};

use crate::comms::{self, MessageFacts, Templates};
use crate::model::{
    Event, EventKind, Incident, IncidentRecord, IncidentStatus, PublicStatus, check_text, new_id, valid_id,
};

/// What the desk needs to know from the configuration; the caller gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentOptions {
    /// `[incidents]`.
    pub incidents: IncidentsConfig,
    /// `[triage.escalation]`.
    pub escalation: EscalationConfig,
    /// `[[status.components]]`: which public components an incident's checks affect.
    pub components: Vec<StatusComponentConfig>,
    /// The project's name, for messages.
    pub project: String,
    /// The status page's public address, for messages.
    pub status_url: Option<String>,
    /// The audit log mirrored into the store before actions are gathered (`perf.audit-log`).
    pub audit_log: Option<PathBuf>,
}

impl IncidentOptions {
    /// The options `config` gives.
    #[must_use]
    pub fn from_config(config: &OpsConfig) -> Self {
        Self {
            incidents: config.incidents.clone(),
            escalation: config.triage.escalation.clone(),
            components: config.status.components.clone(),
            project: if config.project.name.is_empty() { "ops".to_owned() } else { config.project.name.clone() },
            status_url: config.status.public_url.clone(),
            audit_log: Some(config.perf.audit_log.clone()),
        }
    }

    /// Minutes between updates at `severity`, when it has a deadline.
    #[must_use]
    pub fn update_every(&self, severity: Severity) -> Option<u64> {
        self.incidents.update_every_mins.get(&severity).copied()
    }

    /// The public components whose checks include any of `checks`, in configured order.
    #[must_use]
    pub fn components_of(&self, checks: &BTreeSet<String>) -> Vec<String> {
        self.components.iter().filter(|c| c.checks.iter().any(|k| checks.contains(k))).map(|c| c.name.clone()).collect()
    }
}

/// What a person opening an incident by hand gives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct OpenRequest {
    /// Internal title.
    pub title: String,
    /// Severity (default P2).
    pub severity: Option<Severity>,
    /// Public title (default: from the components).
    pub public_title: Option<String>,
    /// Checks it concerns: it resolves by itself once they pass.
    pub checks: Vec<String>,
    /// Public components it affects, besides those of its checks.
    pub components: Vec<String>,
    /// The first public update (default: "We are investigating …").
    pub update: Option<String>,
}

/// The incident desk over a state store and the webhooks.
#[derive(Clone)]
pub struct Incidents {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) notifiers: Vec<Arc<dyn Notifier>>,
    pub(crate) options: IncidentOptions,
    pub(crate) templates: Arc<Templates>,
}

impl std::fmt::Debug for Incidents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incidents").field("store", &self.store.location()).finish_non_exhaustive()
    }
}

/// The document of one event in the store (its seq and time are columns).
#[derive(Serialize, Deserialize)]
struct EventDoc {
    actor: String,
    #[serde(flatten)]
    kind: EventKind,
}

impl Incidents {
    /// A desk over `store`, telling `notifiers`, with `templates`.
    #[must_use]
    pub fn new(
        store: Arc<dyn StateStore>,
        notifiers: Vec<Arc<dyn Notifier>>,
        options: IncidentOptions,
        templates: Arc<Templates>,
    ) -> Self {
        Self { store, notifiers, options, templates }
    }

    /// The desk of a wired context: its state store (opened), its webhooks, and the options
    /// and templates its configuration gives.
    ///
    /// # Errors
    /// `Internal` when the state store was not opened; `InvalidInput` for a template of
    /// `incidents.templates-dir` that does not compile.
    pub fn from_context(ctx: &ops_core::Context) -> Result<Self> {
        let store = Arc::clone(ctx.state()?);
        let templates = Templates::load(ctx.config.incidents.templates_dir.as_deref())?;
        Ok(Self::new(store, ctx.notifiers.clone(), IncidentOptions::from_config(&ctx.config), Arc::new(templates)))
    }

    /// The options it works with.
    #[must_use]
    pub const fn options(&self) -> &IncidentOptions {
        &self.options
    }

    /// One incident with its log.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed id, `NotFound` for an unknown one, the store's errors.
    pub async fn load(&self, id: &str) -> Result<IncidentRecord> {
        if !valid_id(id) {
            return Err(Error::invalid_input("an incident id looks like inc-20261202T114500Z-7f3a09bc"));
        }
        let stored = self.store.incident(id).await?.ok_or_else(|| Error::not_found(format!("no incident {id}")))?;
        let incident = header_of(&stored)?;
        let events = self
            .store
            .incident_events(id)
            .await?
            .into_iter()
            .map(|e| {
                let doc: EventDoc = serde_json::from_value(e.document)
                    .map_err(|err| Error::integrity(format!("incident {id} event {}: {err}", e.seq)))?;
                Ok(Event { seq: e.seq, time: e.time, actor: doc.actor, kind: doc.kind })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(IncidentRecord { durations: incident.durations(), incident, events })
    }

    /// Incidents, newest first.
    ///
    /// # Errors
    /// The store's errors; `Integrity` for a header that does not parse.
    pub async fn list(&self, query: &IncidentQuery) -> Result<Vec<Incident>> {
        self.store.incidents(query).await?.iter().map(header_of).collect()
    }

    /// Opens an incident by hand, with its first public update, and tells people.
    ///
    /// # Errors
    /// `InvalidInput` for an empty or overlong title or text; the store's errors.
    pub async fn open(&self, request: &OpenRequest, actor: &str, now: DateTime<Utc>) -> Result<IncidentRecord> {
        let title = check_text("the title", &request.title)?;
        let public_title = request.public_title.as_deref().map(|t| check_text("the public title", t)).transpose()?;
        let update = request.update.as_deref().map(|t| check_text("the update", t)).transpose()?;
        if request.checks.len() > 100 || request.components.len() > 100 {
            return Err(Error::invalid_input("at most 100 checks and 100 components"));
        }
        for check in &request.checks {
            check_text("a check name", check)?;
        }
        let checks: BTreeSet<String> = request.checks.iter().cloned().collect();
        let mut components = self.options.components_of(&checks);
        for c in &request.components {
            if !self.options.components.iter().any(|k| &k.name == c) {
                return Err(Error::invalid_input(format!("no status component {c:?} ([[status.components]])")));
            }
            if !components.contains(c) {
                components.push(c.clone());
            }
        }
        let severity = request.severity.unwrap_or(Severity::P2);
        let incident = self.new_incident(
            NewIncident {
                title,
                public_title,
                severity,
                root: None,
                runbook: None,
                cause: request.title.trim().to_owned(),
                checks,
                components,
                detected_at: now,
                opened_by: actor.to_owned(),
            },
            now,
        );
        if !self.store.open_incident(&stored_of(&incident)?).await? {
            return Err(Error::conflict(format!("incident {} exists", incident.id)));
        }
        self.after_open(
            incident,
            EventOpened { message: request.title.trim().to_owned(), ..Default::default() },
            update,
            actor,
            now,
        )
        .await
    }

    pub(crate) fn new_incident(&self, n: NewIncident, now: DateTime<Utc>) -> Incident {
        let public_title = n.public_title.unwrap_or_else(|| public_title(n.severity, &n.components));
        Incident {
            id: new_id(now),
            title: n.title,
            public_title,
            status: IncidentStatus::Open,
            public_status: PublicStatus::Investigating,
            severity: n.severity,
            base_severity: n.severity,
            initial_severity: n.severity,
            root: n.root,
            runbook: n.runbook,
            cause: n.cause,
            checks: n.checks,
            components: n.components,
            detected_at: n.detected_at.min(now),
            opened_at: now,
            acknowledged_at: None,
            mitigated_at: None,
            resolved_at: None,
            clean_since: None,
            last_update_at: now,
            next_update_due: None,
            reminded_for: None,
            opened_by: n.opened_by,
            gathered_until: now,
            runs: BTreeMap::new(),
        }
    }

    /// The events of a new incident (it is already in the store): opened, the first public
    /// update, and the initial message.
    pub(crate) async fn after_open(
        &self,
        mut incident: Incident,
        opened: EventOpened,
        update: Option<String>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<IncidentRecord> {
        self.append(
            &incident,
            now,
            actor,
            EventKind::Opened {
                root: incident.root.clone(),
                runbook: incident.runbook.clone(),
                message: opened.message,
                evidence: opened.evidence,
                consequences: opened.consequences,
            },
        )
        .await?;
        let text = update.unwrap_or_else(|| investigating_text(incident.severity, &incident.components));
        self.append(
            &incident,
            now,
            actor,
            EventKind::Update { status: PublicStatus::Investigating, text: text.clone() },
        )
        .await?;
        self.tell(&mut incident, "initial", Some(&text), now).await?;
        self.save(&incident, now).await?;
        self.load(&incident.id).await
    }

    /// Adds a person's internal note; a user report may raise the severity (the "burst of
    /// reports" rule).
    ///
    /// # Errors
    /// As [`Incidents::load`]; `InvalidInput` for an empty or overlong text.
    pub async fn note(
        &self,
        id: &str,
        text: &str,
        user_report: bool,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Event> {
        let text = check_text("the note", text)?;
        let record = self.load(id).await?;
        let mut incident = record.incident;
        let event = self.append(&incident, now, actor, EventKind::Note { text, user_report }).await?;
        if user_report && incident.status != IncidentStatus::Resolved {
            let mut reports = user_reports(&record.events);
            reports.push(now);
            let to = ops_probes::triage::escalation::escalate(
                incident.base_severity,
                incident.opened_at,
                &reports,
                now,
                &self.options.escalation,
            );
            if to < incident.severity {
                let reason = format!(
                    "more than {} user reports within {} min",
                    self.options.escalation.reports, self.options.escalation.reports_window_minutes
                );
                self.change_severity(&mut incident, to, &reason, now).await?;
                self.tell(&mut incident, "update", None, now).await?;
                self.save(&incident, now).await?;
            }
        }
        Ok(event)
    }

    /// Posts a public status update (the status page, the feed and the webhooks).
    ///
    /// # Errors
    /// As [`Incidents::load`]; `Conflict` for a resolved incident; `InvalidInput` for an
    /// empty or overlong text.
    pub async fn update(
        &self,
        id: &str,
        status: Option<PublicStatus>,
        text: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Event> {
        let text = check_text("the update", text)?;
        if status == Some(PublicStatus::Resolved) {
            return self.resolve(id, Some(&text), actor, now).await;
        }
        let mut incident = self.load(id).await?.incident;
        if incident.status == IncidentStatus::Resolved {
            return Err(Error::conflict(format!("incident {id} is resolved")));
        }
        let status = status.unwrap_or(incident.public_status);
        incident.public_status = status;
        let event = self.append(&incident, now, actor, EventKind::Update { status, text: text.clone() }).await?;
        self.tell(&mut incident, "update", Some(&text), now).await?;
        self.save(&incident, now).await?;
        Ok(event)
    }

    /// A person takes the incident.
    ///
    /// # Errors
    /// As [`Incidents::load`]; `Conflict` when it is already acknowledged or resolved.
    pub async fn acknowledge(&self, id: &str, actor: &str, now: DateTime<Utc>) -> Result<Event> {
        let mut incident = self.load(id).await?.incident;
        if let Some(at) = incident.acknowledged_at {
            return Err(Error::conflict(format!("incident {id} was acknowledged at {}", comms::utc_minute(at))));
        }
        if incident.status == IncidentStatus::Resolved {
            return Err(Error::conflict(format!("incident {id} is resolved")));
        }
        incident.acknowledged_at = Some(now);
        if incident.status == IncidentStatus::Open {
            incident.status = IncidentStatus::Acknowledged;
        }
        let event = self.append(&incident, now, actor, EventKind::Acknowledged).await?;
        self.save(&incident, now).await?;
        Ok(event)
    }

    /// Resolves the incident by hand, with a public update, and tells people.
    ///
    /// # Errors
    /// As [`Incidents::load`]; `Conflict` when it is already resolved.
    pub async fn resolve(&self, id: &str, text: Option<&str>, actor: &str, now: DateTime<Utc>) -> Result<Event> {
        let text = text.map(|t| check_text("the update", t)).transpose()?;
        let mut incident = self.load(id).await?.incident;
        if incident.status == IncidentStatus::Resolved {
            return Err(Error::conflict(format!("incident {id} is already resolved")));
        }
        self.close(&mut incident, "resolved by hand", text, actor, now).await
    }

    /// Marks `incident` resolved: the public update, the event, the message, the header.
    pub(crate) async fn close(
        &self,
        incident: &mut Incident,
        reason: &str,
        text: Option<String>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Event> {
        let text = text.unwrap_or_else(|| resolved_text(&incident.components));
        incident.status = IncidentStatus::Resolved;
        incident.public_status = PublicStatus::Resolved;
        incident.resolved_at = Some(now);
        incident.mitigated_at.get_or_insert(now);
        incident.next_update_due = None;
        self.append(incident, now, actor, EventKind::Update { status: PublicStatus::Resolved, text: text.clone() })
            .await?;
        let event = self.append(incident, now, actor, EventKind::Resolved { reason: reason.to_owned() }).await?;
        self.tell(incident, "resolved", Some(&text), now).await?;
        self.save(incident, now).await?;
        Ok(event)
    }

    /// Sets a new severity, with its event.
    pub(crate) async fn change_severity(
        &self,
        incident: &mut Incident,
        to: Severity,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let from = incident.severity;
        incident.severity = to;
        self.append(incident, now, "triage", EventKind::Severity { from, to, reason: reason.to_owned() }).await?;
        Ok(())
    }

    /// Renders and sends one message, records it, and moves the update deadline.
    pub(crate) async fn tell(
        &self,
        incident: &mut Incident,
        message: &str,
        latest_update: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if message != "reminder" {
            incident.last_update_at = now;
            incident.reminded_for = None;
            incident.next_update_due = if incident.status == IncidentStatus::Resolved {
                None
            } else {
                self.options.update_every(incident.severity).and_then(|m| {
                    now.checked_add_signed(Duration::minutes(i64::try_from(m).unwrap_or(i64::MAX / 60_000)))
                })
            };
        }
        let latest = match latest_update {
            Some(t) => Some(t.to_owned()),
            None => self.latest_update(&incident.id).await?,
        };
        let facts = MessageFacts::of(
            incident,
            &incident.cause,
            latest.as_deref(),
            &self.options.project,
            self.options.status_url.as_deref(),
            self.options.update_every(incident.severity),
            now,
        );
        let (delivered, failed) = match self.templates.render(message, &facts) {
            Ok(rendered) => {
                if self.notifiers.is_empty() {
                    (0, Vec::new())
                } else {
                    let fields = BTreeMap::from([
                        ("incident".to_owned(), incident.id.clone()),
                        ("severity".to_owned(), incident.severity.to_string()),
                        ("status".to_owned(), incident.public_status.as_str().to_owned()),
                        ("message".to_owned(), message.to_owned()),
                    ]);
                    let sent = comms::send(&self.notifiers, &rendered, comms::level(message, incident), fields).await;
                    (sent.delivered, sent.failed)
                }
            }
            // A broken team template must not stop the record: say so on the incident.
            Err(e) => (0, vec![format!("template: {}", e.message())]),
        };
        if !failed.is_empty() {
            tracing::warn!(incident = %incident.id, message, failed = ?failed, "incident message not delivered everywhere");
        }
        self.append(incident, now, "ops", EventKind::Notified { message: message.to_owned(), delivered, failed })
            .await?;
        Ok(())
    }

    async fn latest_update(&self, id: &str) -> Result<Option<String>> {
        let events = self.store.incident_events(id).await?;
        Ok(events.iter().rev().find_map(|e| {
            (e.kind == "update").then(|| e.document.get("text").and_then(|t| t.as_str()).map(str::to_owned)).flatten()
        }))
    }

    /// Appends one event.
    pub(crate) async fn append(
        &self,
        incident: &Incident,
        time: DateTime<Utc>,
        actor: &str,
        kind: EventKind,
    ) -> Result<Event> {
        let doc = serde_json::to_value(EventDoc { actor: actor.to_owned(), kind: kind.clone() })
            .map_err(|e| Error::internal(format!("incident event: {e}")))?;
        let seq = self.store.append_incident_event(&incident.id, time, kind.name(), &doc).await?;
        Ok(Event { seq, time, actor: actor.to_owned(), kind })
    }

    /// Saves the header.
    pub(crate) async fn save(&self, incident: &Incident, now: DateTime<Utc>) -> Result<()> {
        let mut stored = stored_of(incident)?;
        stored.updated_at = now;
        self.store.save_incident(&stored).await
    }
}

/// What a new incident starts from.
#[derive(Debug, Clone)]
pub(crate) struct NewIncident {
    pub title: String,
    pub public_title: Option<String>,
    pub severity: Severity,
    pub root: Option<String>,
    pub runbook: Option<String>,
    pub cause: String,
    pub checks: BTreeSet<String>,
    pub components: Vec<String>,
    pub detected_at: DateTime<Utc>,
    pub opened_by: String,
}

/// The `opened` event's details.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventOpened {
    pub message: String,
    pub evidence: Vec<String>,
    pub consequences: Vec<crate::model::Consequence>,
}

fn header_of(stored: &StoredIncident) -> Result<Incident> {
    serde_json::from_value(stored.document.clone())
        .map_err(|e| Error::integrity(format!("incident {}: its record does not parse: {e}", stored.id)))
}

pub(crate) fn stored_of(incident: &Incident) -> Result<StoredIncident> {
    Ok(StoredIncident {
        id: incident.id.clone(),
        status: incident.status.to_string(),
        severity: incident.severity.to_string(),
        opened_at: incident.opened_at,
        updated_at: incident.opened_at,
        resolved_at: incident.resolved_at,
        // While open, the root makes it unique: two observers cannot open it twice.
        open_key: match (&incident.root, incident.status) {
            (Some(root), s) if s != IncidentStatus::Resolved => format!("root:{root}"),
            _ => incident.id.clone(),
        },
        document: serde_json::to_value(incident).map_err(|e| Error::internal(format!("incident: {e}")))?,
    })
}

/// The times users reported the incident.
pub(crate) fn user_reports(events: &[Event]) -> Vec<DateTime<Utc>> {
    events.iter().filter(|e| matches!(e.kind, EventKind::Note { user_report: true, .. })).map(|e| e.time).collect()
}

fn list_names(components: &[String]) -> String {
    match components {
        [] => "some of our services".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `Outage: API, Database` for a P1, `Degraded service: API` otherwise.
pub(crate) fn public_title(severity: Severity, components: &[String]) -> String {
    let what = if components.is_empty() { "our services".to_owned() } else { components.join(", ") };
    if severity == Severity::P1 { format!("Outage: {what}") } else { format!("Degraded service: {what}") }
}

pub(crate) fn investigating_text(severity: Severity, components: &[String]) -> String {
    let problem = if severity == Severity::P1 { "an outage" } else { "a problem" };
    format!("We are investigating {problem} affecting {}.", list_names(components))
}

pub(crate) fn identified_text() -> String {
    "The cause has been identified and a fix is being applied.".to_owned()
}

pub(crate) fn monitoring_text(components: &[String]) -> String {
    format!(
        "A fix has been applied and {} working again. We are monitoring the results.",
        verb(components, "is", "are")
    )
}

pub(crate) fn relapsed_text(components: &[String]) -> String {
    format!("{} failing again. We are investigating.", capitalised(&verb(components, "is", "are")))
}

pub(crate) fn resolved_text(components: &[String]) -> String {
    format!("This incident has been resolved: {} working normally.", verb(components, "is", "are"))
}

fn verb(components: &[String], one: &str, many: &str) -> String {
    format!("{} {}", list_names(components), if components.len() > 1 { many } else { one })
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}
