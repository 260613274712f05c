//! [`Incidents`]: the incident desk. It keeps each incident's header and append-only log in
//! the state store, and tells people (through the message templates) when one opens,
//! changes, resolves, or when an update is overdue.
//!
//! Every change is computed from what was read (header, version and log), then committed in
//! one transaction (the header, only if nobody saved it meanwhile, and the new events), and
//! computed again from a fresh read when somebody did: a person's acknowledgement is never
//! overwritten by an observer that read the header before it. Messages go out after the
//! commit, each in a task of its own, so neither a slow webhook nor a dropped request leaves
//! the log ahead of the header.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ops_core::config::{EscalationConfig, IncidentsConfig, OpsConfig, StatusComponentConfig};
use ops_core::ports::{IncidentQuery, MAX_EVENTS, NewEvent, Notifier, StateStore, StoredEvent, StoredIncident};
use ops_core::{Error, ErrorKind, Result, Severity};
use serde::{Deserialize, Serialize};

use crate::comms::{self, MessageFacts, Templates};
use crate::model::{
    Event, EventKind, Incident, IncidentRecord, IncidentStatus, PublicStatus, check_text, new_id, valid_id,
};

/// Events kept for the lifecycle at the end of a log: past `MAX_EVENTS - RESERVE`, evidence
/// (checks, alerts, runs, actions) is no longer recorded, so an incident can always resolve.
const RESERVE: u64 = 100;

/// Times a change is computed again when the header was saved meanwhile.
const ATTEMPTS: usize = 6;

/// What the desk needs to know from the configuration; the caller gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct OpenRequest {
    /// Internal title.
    pub title: String,
    /// Severity (default P2); triage never lowers it.
    pub severity: Option<Severity>,
    /// Public title (default: from the components).
    pub public_title: Option<String>,
    /// Checks it concerns, as triage names them: it resolves by itself once every one passes.
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct EventDoc {
    actor: String,
    #[serde(flatten)]
    kind: EventKind,
}

/// An incident as read for a change: its header, the version it was read at, its log.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub incident: Incident,
    pub version: u64,
    pub events: Vec<Event>,
}

/// What one change does: events to append and messages to send once it is committed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Change {
    pub events: Vec<(DateTime<Utc>, String, EventKind)>,
    pub messages: Vec<&'static str>,
}

impl Change {
    pub fn push(&mut self, time: DateTime<Utc>, actor: &str, kind: EventKind) {
        self.events.push((time, actor.to_owned(), kind));
    }

    /// A public update: the event, and the header's public status and text.
    pub fn update(
        &mut self,
        incident: &mut Incident,
        time: DateTime<Utc>,
        actor: &str,
        status: PublicStatus,
        text: &str,
    ) {
        incident.public_status = status;
        incident.latest_update = Some(text.to_owned());
        self.push(time, actor, EventKind::Update { status, text: text.to_owned() });
    }

    /// A message to send after the commit; all but a reminder move the update deadline.
    pub fn tell(
        &mut self,
        incident: &mut Incident,
        message: &'static str,
        now: DateTime<Utc>,
        options: &IncidentOptions,
    ) {
        if message != "reminder" {
            incident.last_update_at = now;
            incident.reminded_for = None;
            incident.next_update_due = if incident.status == IncidentStatus::Resolved {
                None
            } else {
                options.update_every(incident.severity).and_then(|m| {
                    now.checked_add_signed(Duration::minutes(i64::try_from(m).unwrap_or(i64::MAX / 60_000)))
                })
            };
        }
        if !self.messages.contains(&message) {
            self.messages.push(message);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.messages.is_empty()
    }
}

/// Reads an incident's header.
///
/// # Errors
/// `Integrity` when it does not parse.
pub fn parse_header(stored: &StoredIncident) -> Result<Incident> {
    serde_json::from_value(stored.document.clone())
        .map_err(|e| Error::integrity(format!("incident {}: its record does not parse: {e}", stored.id)))
}

/// Reads one event of an incident's log.
///
/// # Errors
/// `Integrity` when it does not parse.
pub fn parse_event(incident_id: &str, stored: StoredEvent) -> Result<Event> {
    let doc: EventDoc = serde_json::from_value(stored.document)
        .map_err(|err| Error::integrity(format!("incident {incident_id} event {}: {err}", stored.seq)))?;
    Ok(Event { seq: stored.seq, time: stored.time, actor: doc.actor, kind: doc.kind })
}

/// One incident with its log (only the events of `kind` unless it is empty), from a store.
///
/// # Errors
/// `NotFound` for an unknown or malformed id (a malformed one never reaches the store); the
/// store's errors.
pub async fn load(store: &dyn StateStore, id: &str, kind: &str) -> Result<IncidentRecord> {
    let loaded = load_versioned(store, id, kind).await?;
    Ok(IncidentRecord { durations: loaded.incident.durations(), incident: loaded.incident, events: loaded.events })
}

pub(crate) async fn load_versioned(store: &dyn StateStore, id: &str, kind: &str) -> Result<Loaded> {
    if !valid_id(id) {
        return Err(Error::not_found(format!(
            "no incident {:?}: ids look like inc-20261202T114500Z-7f3a09bc",
            id.chars().take(80).collect::<String>()
        )));
    }
    let stored = store.incident(id).await?.ok_or_else(|| Error::not_found(format!("no incident {id}")))?;
    let incident = parse_header(&stored)?;
    let events =
        store.incident_events(id, kind).await?.into_iter().map(|e| parse_event(id, e)).collect::<Result<Vec<_>>>()?;
    Ok(Loaded { incident, version: stored.version, events })
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

    /// The store it keeps incidents in.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// One incident with its log.
    ///
    /// # Errors
    /// `NotFound` for an unknown or malformed id; the store's errors.
    pub async fn load(&self, id: &str) -> Result<IncidentRecord> {
        load(self.store.as_ref(), id, "").await
    }

    /// Incidents, newest first.
    ///
    /// # Errors
    /// The store's errors; `Integrity` for a header that does not parse.
    pub async fn list(&self, query: &IncidentQuery) -> Result<Vec<Incident>> {
        self.store.incidents(query).await?.iter().map(parse_header).collect()
    }

    /// Opens an incident by hand, with its first public update, and tells people.
    ///
    /// # Errors
    /// `InvalidInput` for an empty or overlong title or text, a component that is not
    /// configured, or a check triage has never seen; the store's errors.
    pub async fn open(&self, request: &OpenRequest, actor: &str, now: DateTime<Utc>) -> Result<IncidentRecord> {
        let title = check_text("the title", &request.title)?;
        let public_title = request.public_title.as_deref().map(|t| check_text("the public title", t)).transpose()?;
        let update = request.update.as_deref().map(|t| check_text("the update", t)).transpose()?;
        if request.checks.len() > 100 || request.components.len() > 100 {
            return Err(Error::invalid_input("at most 100 checks and 100 components"));
        }
        // A check that does not exist would never pass: only those triage has seen.
        if !request.checks.is_empty() {
            let seen: BTreeSet<String> =
                self.store.documents(crate::observe::CHECK_STATUS).await?.into_iter().map(|(k, _)| k).collect();
            if let Some(unknown) = request.checks.iter().find(|c| !seen.contains(*c)) {
                return Err(Error::invalid_input(format!(
                    "no check {:?} has been seen by triage (names look like http:api; `opsctl triage -v` lists them)",
                    unknown.chars().take(80).collect::<String>()
                )));
            }
        }
        let checks: BTreeSet<String> = request.checks.iter().cloned().collect();
        let mut components = self.options.components_of(&checks);
        for c in &request.components {
            if !self.options.components.iter().any(|k| &k.name == c) {
                return Err(Error::invalid_input(format!(
                    "no status component {:?} ([[status.components]])",
                    c.chars().take(80).collect::<String>()
                )));
            }
            if !components.contains(c) {
                components.push(c.clone());
            }
        }
        let severity = request.severity.unwrap_or(Severity::P2);
        let mut incident = self.new_incident(
            NewIncident {
                title: title.clone(),
                public_title,
                severity,
                root: None,
                runbook: None,
                cause: title.clone(),
                checks,
                components,
                detected_at: now,
                opened_by: actor.to_owned(),
            },
            now,
        );
        // A person chose the severity: triage never lowers it.
        incident.floor = Some(severity);
        let opened = EventOpened { message: title, ..Default::default() };
        let (incident, change) = self.opening(incident, opened, update, actor, now);
        if !self.open_with(&incident, &change, now).await? {
            return Err(Error::conflict(format!("incident {} exists", incident.id)));
        }
        self.load(&incident.id).await
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
            runs: BTreeMap::new(),
            latest_update: None,
            floor: None,
            actions_seen: BTreeSet::new(),
            failing_seen: false,
        }
    }

    /// The first events of a new incident: opened, the first public update, the initial
    /// message.
    pub(crate) fn opening(
        &self,
        mut incident: Incident,
        opened: EventOpened,
        update: Option<String>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> (Incident, Change) {
        let mut change = Change::default();
        change.push(
            now,
            actor,
            EventKind::Opened {
                root: incident.root.clone(),
                runbook: incident.runbook.clone(),
                message: opened.message,
                evidence: opened.evidence,
                consequences: opened.consequences,
            },
        );
        let text = update.unwrap_or_else(|| investigating_text(incident.severity, &incident.components));
        change.update(&mut incident, now, actor, PublicStatus::Investigating, &text);
        change.tell(&mut incident, "initial", now, &self.options);
        (incident, change)
    }

    /// Inserts a new incident with its first events; `false` when an open incident already
    /// holds its root. Then tells people.
    pub(crate) async fn open_with(&self, incident: &Incident, change: &Change, now: DateTime<Utc>) -> Result<bool> {
        match self.insert_new(incident, change, now).await? {
            Some(incident) => {
                self.deliver(&incident, &change.messages, change.events.len() as u64, now).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Inserts a new incident with its first events; `None` when an open incident already
    /// holds its root, else the header as stored.
    pub(crate) async fn insert_new(
        &self,
        incident: &Incident,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<Option<Incident>> {
        let stored = stored_of(incident, 0, now)?;
        let events = new_events(&change.events)?;
        Ok(self.store.open_incident(&stored, &events).await?.map(|_| incident.clone()))
    }

    /// Reads the incident, lets `f` compute a change on the header and log, commits it
    /// (again from a fresh read when the header was saved meanwhile), then tells people.
    /// Returns the committed events.
    pub(crate) async fn change<F>(&self, id: &str, now: DateTime<Utc>, mut f: F) -> Result<Vec<Event>>
    where
        F: FnMut(&mut Incident, &[Event], &mut Change) -> Result<()>,
    {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let loaded = load_versioned(self.store.as_ref(), id, "").await?;
            let mut incident = loaded.incident.clone();
            let mut change = Change::default();
            f(&mut incident, &loaded.events, &mut change)?;
            if change.is_empty() && incident == loaded.incident {
                return Ok(Vec::new());
            }
            match self.commit(&incident, &loaded, &change, now).await {
                Ok(events) => {
                    let last_seq = events.last().map_or(last_seq(&loaded.events), |e| e.seq);
                    for task in self.spawn_delivery(&incident, &change.messages, last_seq, now) {
                        let _ = task.await;
                    }
                    return Ok(events);
                }
                Err(e) if is_stale(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::conflict(format!("incident {id} keeps changing"))))
    }

    /// Commits a change: the header (if still at the version read) and the events, in one
    /// transaction. Near the end of the log, evidence is left out, so the lifecycle always
    /// fits.
    pub(crate) async fn commit(
        &self,
        incident: &Incident,
        loaded: &Loaded,
        change: &Change,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>> {
        let full = last_seq(&loaded.events) >= MAX_EVENTS - RESERVE;
        let kept: Vec<(DateTime<Utc>, String, EventKind)> = change
            .events
            .iter()
            .filter(|(_, _, k)| {
                !full
                    || !matches!(
                        k,
                        EventKind::Probe { .. }
                            | EventKind::Alert { .. }
                            | EventKind::Run { .. }
                            | EventKind::Action { .. }
                    )
            })
            .cloned()
            .collect();
        if kept.len() < change.events.len() {
            tracing::warn!(incident = %incident.id, "incident log nearly full: evidence no longer recorded");
        }
        let stored = stored_of(incident, loaded.version, now)?;
        let seqs = self.store.commit_incident(&stored, &new_events(&kept)?).await?;
        Ok(kept.into_iter().zip(seqs).map(|((time, actor, kind), seq)| Event { seq, time, actor, kind }).collect())
    }

    /// Sends each message in a task of its own, at once: a caller dropped after its commit
    /// (a request timing out) does not lose them. The tasks record what was delivered.
    pub(crate) fn spawn_delivery(
        &self,
        incident: &Incident,
        messages: &[&'static str],
        last_seq: u64,
        now: DateTime<Utc>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        // Near the end of the log, deliveries are no longer recorded (the lifecycle needs the
        // room).
        let record = last_seq + (messages.len() as u64) < MAX_EVENTS - RESERVE / 2;
        messages
            .iter()
            .map(|message| {
                let desk = self.clone();
                let incident = incident.clone();
                let message = *message;
                tokio::spawn(async move { desk.send_one(&incident, message, record, now).await })
            })
            .collect()
    }

    /// Sends and waits.
    pub(crate) async fn deliver(
        &self,
        incident: &Incident,
        messages: &[&'static str],
        last_seq: u64,
        now: DateTime<Utc>,
    ) {
        for task in self.spawn_delivery(incident, messages, last_seq, now) {
            let _ = task.await;
        }
    }

    async fn send_one(&self, incident: &Incident, message: &'static str, record: bool, now: DateTime<Utc>) {
        let facts = MessageFacts::of(
            incident,
            &incident.cause,
            incident.latest_update.as_deref(),
            &self.options.project,
            self.options.status_url.as_deref(),
            self.options.update_every(incident.severity),
            now,
        );
        let (delivered, failed) = match self.templates.render(message, &facts) {
            Ok(rendered) if !self.notifiers.is_empty() => {
                let fields = BTreeMap::from([
                    ("incident".to_owned(), incident.id.clone()),
                    ("severity".to_owned(), incident.severity.to_string()),
                    ("status".to_owned(), incident.public_status.as_str().to_owned()),
                    ("message".to_owned(), message.to_owned()),
                ]);
                let sent = comms::send(&self.notifiers, &rendered, comms::level(message, incident), fields).await;
                (sent.delivered, sent.failed)
            }
            Ok(_) => (0, Vec::new()),
            // A broken team template must not stop the record: say so on the incident.
            Err(e) => (0, vec![format!("template: {}", e.message())]),
        };
        if !failed.is_empty() {
            tracing::warn!(incident = %incident.id, message, failed = ?failed, "incident message not delivered everywhere");
        }
        if !record {
            return;
        }
        let kind = EventKind::Notified { message: message.to_owned(), delivered, failed };
        let doc = serde_json::to_value(EventDoc { actor: "ops".to_owned(), kind: kind.clone() });
        match doc {
            Ok(doc) => {
                if let Err(e) = self.store.append_incident_event(&incident.id, now, kind.name(), &doc).await {
                    tracing::warn!(incident = %incident.id, error = %e, "message not recorded on the incident");
                }
            }
            Err(e) => tracing::warn!(error = %e, "message not recorded"),
        }
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
        let escalation = self.options.escalation.clone();
        let options = self.options.clone();
        let events = self
            .change(id, now, |incident, events, change| {
                change.push(now, actor, EventKind::Note { text: text.clone(), user_report });
                if user_report && incident.status != IncidentStatus::Resolved {
                    let mut reports = user_reports(events);
                    reports.push(now);
                    let by_reports =
                        ops_probes::triage::escalation::by_reports(incident.severity, &reports, now, &escalation);
                    if by_reports < incident.severity {
                        let reason = format!(
                            "more than {} user reports within {} min",
                            escalation.reports, escalation.reports_window_minutes
                        );
                        escalate_to(incident, change, by_reports, &reason, now);
                        change.tell(incident, "update", now, &options);
                    }
                }
                Ok(())
            })
            .await?;
        events.into_iter().next().ok_or_else(|| Error::internal("the note was not recorded"))
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
        let options = self.options.clone();
        let events = self
            .change(id, now, |incident, _, change| {
                if incident.status == IncidentStatus::Resolved {
                    return Err(Error::conflict(format!("incident {id} is resolved")));
                }
                let status = status.unwrap_or(incident.public_status);
                change.update(incident, now, actor, status, &text);
                change.tell(incident, "update", now, &options);
                Ok(())
            })
            .await?;
        events.into_iter().next().ok_or_else(|| Error::internal("the update was not recorded"))
    }

    /// A person takes the incident.
    ///
    /// # Errors
    /// As [`Incidents::load`]; `Conflict` when it is already acknowledged or resolved.
    pub async fn acknowledge(&self, id: &str, actor: &str, now: DateTime<Utc>) -> Result<Event> {
        let events = self
            .change(id, now, |incident, _, change| {
                if let Some(at) = incident.acknowledged_at {
                    return Err(Error::conflict(format!(
                        "incident {id} was acknowledged at {}",
                        comms::utc_minute(at)
                    )));
                }
                if incident.status == IncidentStatus::Resolved {
                    return Err(Error::conflict(format!("incident {id} is resolved")));
                }
                incident.acknowledged_at = Some(now);
                if incident.status == IncidentStatus::Open {
                    incident.status = IncidentStatus::Acknowledged;
                }
                change.push(now, actor, EventKind::Acknowledged);
                Ok(())
            })
            .await?;
        events.into_iter().next().ok_or_else(|| Error::internal("the acknowledgement was not recorded"))
    }

    /// Resolves the incident by hand, with a public update, and tells people.
    ///
    /// # Errors
    /// As [`Incidents::load`]; `Conflict` when it is already resolved.
    pub async fn resolve(&self, id: &str, text: Option<&str>, actor: &str, now: DateTime<Utc>) -> Result<Event> {
        self.resolve_because(id, "resolved by hand", text, actor, now).await
    }

    /// Resolves the incident for `reason` (on its log: "resolved by hand", "every alert of
    /// its group resolved"), with a public update, and tells people.
    ///
    /// # Errors
    /// As [`Incidents::resolve`].
    pub async fn resolve_because(
        &self,
        id: &str,
        reason: &str,
        text: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Event> {
        let text = text.map(|t| check_text("the update", t)).transpose()?;
        let options = self.options.clone();
        let events = self
            .change(id, now, |incident, _, change| {
                if incident.status == IncidentStatus::Resolved {
                    return Err(Error::conflict(format!("incident {id} is already resolved")));
                }
                close(incident, change, reason, text.clone(), actor, now, &options);
                Ok(())
            })
            .await?;
        events.into_iter().find(|e| e.kind.name() == "resolved").ok_or_else(|| Error::internal("not resolved"))
    }
}

/// Marks `incident` resolved: the public update, the event, the message.
pub(crate) fn close(
    incident: &mut Incident,
    change: &mut Change,
    reason: &str,
    text: Option<String>,
    actor: &str,
    now: DateTime<Utc>,
    options: &IncidentOptions,
) {
    let text = text.unwrap_or_else(|| resolved_text(&incident.components));
    incident.status = IncidentStatus::Resolved;
    incident.resolved_at = Some(now);
    incident.mitigated_at.get_or_insert(now);
    change.update(incident, now, actor, PublicStatus::Resolved, &text);
    change.push(now, actor, EventKind::Resolved { reason: reason.to_owned() });
    change.tell(incident, "resolved", now, options);
}

/// Raises the severity by an escalation rule: it stays at least that high from now on.
pub(crate) fn escalate_to(
    incident: &mut Incident,
    change: &mut Change,
    to: Severity,
    reason: &str,
    now: DateTime<Utc>,
) {
    let from = incident.severity;
    incident.severity = to;
    incident.floor = Some(incident.floor.map_or(to, |f| f.min(to)));
    change.push(now, "triage", EventKind::Severity { from, to, reason: reason.to_owned() });
}

/// The newest sequence number of a log read whole.
pub(crate) fn last_seq(events: &[Event]) -> u64 {
    events.iter().map(|e| e.seq).max().unwrap_or(0)
}

/// A commit refused because the header was saved since it was read: compute it again. (A
/// full log is a conflict too, but trying again cannot help it.)
pub(crate) fn is_stale(e: &Error) -> bool {
    e.kind() == ErrorKind::Conflict && e.message().ends_with("was changed meanwhile")
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

fn new_events(events: &[(DateTime<Utc>, String, EventKind)]) -> Result<Vec<NewEvent>> {
    events
        .iter()
        .map(|(time, actor, kind)| {
            let document = serde_json::to_value(EventDoc { actor: actor.clone(), kind: kind.clone() })
                .map_err(|e| Error::internal(format!("incident event: {e}")))?;
            Ok(NewEvent { time: *time, kind: kind.name().to_owned(), document })
        })
        .collect()
}

pub(crate) fn stored_of(incident: &Incident, version: u64, now: DateTime<Utc>) -> Result<StoredIncident> {
    Ok(StoredIncident {
        id: incident.id.clone(),
        status: incident.status.to_string(),
        severity: incident.severity.to_string(),
        opened_at: incident.opened_at,
        updated_at: now,
        resolved_at: incident.resolved_at,
        // While open, the root makes it unique: two observers cannot open it twice.
        open_key: match (&incident.root, incident.status) {
            (Some(root), s) if s != IncidentStatus::Resolved => format!("root:{root}"),
            _ => incident.id.clone(),
        },
        document: serde_json::to_value(incident).map_err(|e| Error::internal(format!("incident: {e}")))?,
        version,
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
    format!("A fix has been applied and {} working again. We are monitoring the results.", verb(components))
}

pub(crate) fn relapsed_text(components: &[String]) -> String {
    format!("{} failing again. We are investigating.", capitalised(&verb(components)))
}

pub(crate) fn resolved_text(components: &[String]) -> String {
    format!("This incident has been resolved: {} working normally.", verb(components))
}

/// "API is", "API and Database are", "some of our services are".
fn verb(components: &[String]) -> String {
    format!("{} {}", list_names(components), if components.len() == 1 { "is" } else { "are" })
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}
