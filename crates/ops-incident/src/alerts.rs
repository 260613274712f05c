//! Alertmanager's alerts as incidents: one incident per alert group (Alertmanager's
//! `groupKey`), not one per Alertmanager. A group's first alert at `incidents.open-at` or
//! worse opens it; every alert firing or resolving afterwards is on its log, a more urgent
//! one raises its severity, and it resolves when Alertmanager says the whole group resolved.
//! What ops-server does about an alert (a runbook run, a silence) goes on the same log.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use ops_core::ports::IncidentQuery;
use ops_core::{Result, Severity};

use crate::model::{EventKind, IncidentStatus};
use crate::record::{EventOpened, Incidents, NewIncident, escalate_to, parse_header};

/// Why an incident of an alert group resolved, on its log.
const RESOLVED_BY_GROUP: &str = "Alertmanager resolved every alert of its group";

/// One alert of a notification, as the incident sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertNotice {
    /// Its `alertname`.
    pub name: String,
    /// Firing (else resolved).
    pub firing: bool,
    /// Its summary.
    pub summary: String,
    /// The severity its `severity` label stands for.
    pub severity: Severity,
}

/// Where a group's notification went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// The group's incident.
    pub incident: String,
    /// It was opened by this notification.
    pub opened: bool,
    /// It was resolved by this notification.
    pub resolved: bool,
    /// Its root check (`alert-group:…`), what runs started for it are linked to.
    pub root: String,
}

/// The root check of a group's incident: `alert-group:` and a hash of the group key (a group
/// key holds label values, which stay internal).
#[must_use]
pub fn group_root(group_key: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(group_key.as_bytes());
    format!("alert-group:{}", hex::encode(&digest[..6]))
}

fn alert_event(a: &AlertNotice) -> EventKind {
    EventKind::Alert {
        name: a.name.clone(),
        state: if a.firing { "firing" } else { "resolved" }.to_owned(),
        summary: a.summary.clone(),
    }
}

impl Incidents {
    /// The open incident whose root is `root`, if any.
    async fn open_with_root(&self, root: &str) -> Result<Option<String>> {
        let open = self.store().incidents(&IncidentQuery { unresolved: true, since: None, limit: 1000 }).await?;
        for stored in &open {
            if parse_header(stored)?.root.as_deref() == Some(root) {
                return Ok(Some(stored.id.clone()));
            }
        }
        Ok(None)
    }

    /// Records a notification of one alert group: opens the group's incident (for an alert at
    /// `incidents.open-at` or worse), or adds the alerts to its log and raises its severity;
    /// resolves it when `group_resolved`. `None` when there is no incident to record on (only
    /// alerts below `open-at`, or a resolved group whose incident is closed).
    ///
    /// # Errors
    /// The store's errors.
    pub async fn record_alert_group(
        &self,
        group_key: &str,
        group_resolved: bool,
        alerts: &[AlertNotice],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<GroupRecord>> {
        let root = group_root(group_key);
        for _ in 0..3 {
            if let Some(id) = self.open_with_root(&root).await? {
                let urgent = alerts.iter().filter(|a| a.firing).map(|a| a.severity).min();
                let kinds: Vec<EventKind> = alerts.iter().map(alert_event).collect();
                self.change(&id, now, |incident, _, change| {
                    for kind in &kinds {
                        change.push(now, actor, kind.clone());
                    }
                    if let Some(s) = urgent
                        && s < incident.severity
                        && incident.status != IncidentStatus::Resolved
                    {
                        escalate_to(incident, change, s, "a more urgent alert of its group fired", now);
                    }
                    Ok(())
                })
                .await?;
                // Already resolved (by hand) is fine; a store that failed is an error, so
                // the delivery is not taken and Alertmanager's retry resolves it.
                let resolved = if group_resolved {
                    match self.resolve_because(&id, RESOLVED_BY_GROUP, None, actor, now).await {
                        Ok(_) => true,
                        Err(e) if e.kind() == ops_core::ErrorKind::Conflict => false,
                        Err(e) => return Err(e),
                    }
                } else {
                    false
                };
                return Ok(Some(GroupRecord { incident: id, opened: false, resolved, root }));
            }
            let firing: Vec<&AlertNotice> = alerts.iter().filter(|a| a.firing).collect();
            let Some(severity) = firing.iter().map(|a| a.severity).min() else { return Ok(None) };
            if group_resolved || severity > self.options().incidents.open_at {
                return Ok(None);
            }
            let mut names: Vec<&str> = Vec::new();
            for a in &firing {
                if !names.contains(&a.name.as_str()) {
                    names.push(&a.name);
                }
            }
            let summary = firing.iter().map(|a| a.summary.as_str()).find(|s| !s.is_empty()).unwrap_or_default();
            let title = if summary.is_empty() {
                format!("Alert {}", names.join(", "))
            } else {
                format!("Alert {}: {summary}", names.join(", "))
            };
            let title: String = title.chars().take(200).collect();
            let incident = self.new_incident(
                NewIncident {
                    title: title.clone(),
                    public_title: None,
                    severity,
                    root: Some(root.clone()),
                    runbook: None,
                    cause: title.clone(),
                    checks: BTreeSet::from([root.clone()]),
                    components: Vec::new(),
                    detected_at: now,
                    opened_by: actor.to_owned(),
                },
                now,
            );
            let opened = EventOpened {
                message: title,
                evidence: firing.iter().map(|a| format!("{}: {}", a.name, a.summary)).collect(),
                consequences: Vec::new(),
            };
            let (incident, mut change) = self.opening(incident, opened, None, actor, now);
            for a in alerts {
                change.push(now, actor, alert_event(a));
            }
            if self.open_with(&incident, &change, now).await? {
                return Ok(Some(GroupRecord { incident: incident.id, opened: true, resolved: false, root }));
            }
            // Another replica opened it meanwhile: record on that one.
        }
        Err(ops_core::Error::conflict("the alert group's incident keeps changing"))
    }

    /// Appends events (a run started for an alert, a silence) to an incident's log.
    ///
    /// # Errors
    /// `NotFound` for an unknown incident; the store's errors.
    pub async fn record_events(&self, id: &str, kinds: &[EventKind], actor: &str, now: DateTime<Utc>) -> Result<()> {
        self.change(id, now, |_, _, change| {
            for kind in kinds {
                change.push(now, actor, kind.clone());
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }
}
