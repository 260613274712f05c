//! Telling people: the seeds' messages (initial notification, update, resolved, and a reminder
//! when the next update is overdue) as MiniJinja templates a team can replace, filled from the
//! incident and sent to every configured webhook.
//!
//! Every value put into a message is escaped for Slack-style text (`&`, `<`, `>`), so a note
//! cannot ping `<!channel>` or disguise a link; a template is limited in the work it may do.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use ops_core::ports::{Notification, NotificationLevel, Notifier};
use ops_core::{Error, Result, Severity};
use serde::Serialize;

use crate::model::{Incident, IncidentStatus};

/// The messages, by name.
pub const MESSAGES: [&str; 4] = ["initial", "update", "resolved", "reminder"];

/// The most steps one message may take to render (a loop in a user's template ends).
const FUEL: u64 = 50_000;

/// The most characters a rendered message keeps.
const MAX_MESSAGE: usize = 8000;

const BUILT_IN: [(&str, &str); 4] = [
    ("initial", include_str!("../templates/initial.txt")),
    ("update", include_str!("../templates/update.txt")),
    ("resolved", include_str!("../templates/resolved.txt")),
    ("reminder", include_str!("../templates/reminder.txt")),
];

/// The message templates: built in, or from `incidents.templates-dir` (`initial.txt`, …).
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Where each came from (`built-in` or a path), for `opsctl incident templates`.
    pub sources: BTreeMap<String, String>,
}

impl Templates {
    /// The built-in templates.
    ///
    /// # Panics
    /// Never: the built-in templates are checked by this crate's tests.
    #[must_use]
    pub fn built_in() -> Self {
        Self::load(None).unwrap_or_else(|e| unreachable!("built-in templates: {e}"))
    }

    /// The built-in templates, each replaced by a file of the same name in `dir` when there is
    /// one. A template that does not compile is an error naming its file and line.
    ///
    /// # Errors
    /// `InvalidInput` for a template that does not compile or a file that cannot be read.
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        env.set_auto_escape_callback(|_| AutoEscape::Custom("slack".into()));
        env.set_formatter(|out, _state, value| {
            if value.is_none() || value.is_undefined() {
                return Ok(());
            }
            let text = value.to_string();
            let shown = if value.is_safe() { text } else { escape_text(&text) };
            out.write_str(&shown).map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write"))
        });
        let mut sources = BTreeMap::new();
        for (name, body) in BUILT_IN {
            let own = dir.map(|d| d.join(format!("{name}.txt"))).filter(|p| p.is_file());
            let (source, shown) = match &own {
                Some(path) => {
                    let meta = std::fs::metadata(path)
                        .map_err(|e| Error::invalid_input(format!("template {}: {e}", path.display())))?;
                    if meta.len() > 64 * 1024 {
                        return Err(Error::invalid_input(format!("template {}: larger than 64 KiB", path.display())));
                    }
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| Error::invalid_input(format!("template {}: {e}", path.display())))?;
                    (text, path.display().to_string())
                }
                None => (body.to_owned(), "built-in".to_owned()),
            };
            env.add_template_owned(name.to_owned(), source).map_err(|e| {
                Error::invalid_input(format!(
                    "template {shown}{}: {}",
                    e.line().map(|l| format!(" line {l}")).unwrap_or_default(),
                    e.detail().unwrap_or("does not compile")
                ))
            })?;
            sources.insert(name.to_owned(), shown);
        }
        Ok(Self { env, sources })
    }

    /// Renders one message for an incident.
    ///
    /// # Errors
    /// `InvalidInput` naming the template when it fails (an unknown filter, out of fuel).
    pub fn render(&self, message: &str, facts: &MessageFacts) -> Result<Rendered> {
        let template = self
            .env
            .get_template(message)
            .map_err(|_| Error::invalid_input(format!("no message template {message:?}")))?;
        let text = template.render(Value::from(minijinja::value::Serde(facts))).map_err(|e| {
            Error::invalid_input(format!(
                "template {}{}: {}",
                self.sources.get(message).map_or("?", String::as_str),
                e.line().map(|l| format!(" line {l}")).unwrap_or_default(),
                e.detail().unwrap_or("cannot be rendered")
            ))
        })?;
        let text: String = text.trim().chars().take(MAX_MESSAGE).collect();
        let (title, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        Ok(Rendered { title: title.trim().to_owned(), text: body.trim().to_owned() })
    }
}

/// A rendered message: its first line and the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rendered {
    /// The first line.
    pub title: String,
    /// The rest.
    pub text: String,
}

/// Escapes text for Slack-style messages: `&`, `<` and `>` (links, mentions) become entities.
#[must_use]
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// What a message template can say: the incident's public facts and its cause.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageFacts {
    /// The project's name.
    pub project: String,
    /// The status page's address, when configured.
    pub status_url: Option<String>,
    /// Incident id.
    pub id: String,
    /// Internal title.
    pub title: String,
    /// Public title.
    pub public_title: String,
    /// `P1` …
    pub severity: String,
    /// `SEV-1` … (the seeds' spelling).
    pub sev: String,
    /// The runbooks' response time for the severity.
    pub response_time: String,
    /// `open`, `acknowledged`, `mitigated`, `resolved`.
    pub status: String,
    /// `Investigating`, `Identified`, `Monitoring`, `Resolved`.
    pub public_status: String,
    /// Components affected.
    pub components: Vec<String>,
    /// The failing check at the root.
    pub root: Option<String>,
    /// Its runbook.
    pub runbook: Option<String>,
    /// The cause in one line.
    pub cause: String,
    /// The newest public update's text.
    pub latest_update: Option<String>,
    /// `2026-12-02 11:45 UTC`.
    pub started: String,
    /// When it resolved, same format.
    pub resolved: Option<String>,
    /// How long it has lasted (`1h 05m`).
    pub duration: String,
    /// When the next update is due, same format.
    pub next_update_due: Option<String>,
    /// Minutes until the next update (for "We will provide updates every N minutes").
    pub update_every_mins: Option<u64>,
}

impl MessageFacts {
    /// The facts of `incident` now.
    #[must_use]
    pub fn of(
        incident: &Incident,
        cause: &str,
        latest_update: Option<&str>,
        project: &str,
        status_url: Option<&str>,
        update_every_mins: Option<u64>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            project: project.to_owned(),
            status_url: status_url.map(str::to_owned),
            id: incident.id.clone(),
            title: incident.title.clone(),
            public_title: incident.public_title.clone(),
            severity: incident.severity.to_string(),
            sev: sev(incident.severity),
            response_time: incident.severity.response_time().to_owned(),
            status: incident.status.to_string(),
            public_status: incident.public_status.label().to_owned(),
            components: incident.components.clone(),
            root: incident.root.clone(),
            runbook: incident.runbook.clone(),
            cause: cause.to_owned(),
            latest_update: latest_update.map(str::to_owned),
            started: utc_minute(incident.detected_at.min(incident.opened_at)),
            resolved: incident.resolved_at.map(utc_minute),
            duration: human_secs(incident.duration_secs(now)),
            next_update_due: incident.next_update_due.map(utc_minute),
            update_every_mins,
        }
    }
}

/// `SEV-1` for `P1`.
#[must_use]
pub fn sev(severity: Severity) -> String {
    format!("SEV-{}", &severity.to_string()[1..])
}

/// `2026-12-02 11:45 UTC`.
#[must_use]
pub fn utc_minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A duration in seconds as people read it (`45 s`, `12 min`, `1 h 5 min`): the project's
/// one formatter, `ops_core::units::human_duration`.
#[must_use]
pub fn human_secs(secs: i64) -> String {
    ops_core::units::human_duration(std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// The level of a message about `incident`.
#[must_use]
pub fn level(message: &str, incident: &Incident) -> NotificationLevel {
    match (message, incident.status) {
        ("resolved", _) | (_, IncidentStatus::Resolved) => NotificationLevel::Info,
        (_, IncidentStatus::Mitigated) => NotificationLevel::Warning,
        _ if incident.severity <= Severity::P2 => NotificationLevel::Critical,
        _ => NotificationLevel::Warning,
    }
}

/// What sending one message did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sent {
    /// Deliveries that succeeded.
    pub delivered: u32,
    /// Targets that failed, with why.
    pub failed: Vec<String>,
}

/// Sends a rendered message to every notifier, concurrently; failures are collected, never
/// raised: a webhook that is down must not stop the incident's record.
pub async fn send(
    notifiers: &[Arc<dyn Notifier>],
    rendered: &Rendered,
    level: NotificationLevel,
    fields: BTreeMap<String, String>,
) -> Sent {
    let notification = Notification { title: rendered.title.clone(), text: rendered.text.clone(), level, fields };
    let results = futures_join(notifiers, &notification).await;
    let mut sent = Sent::default();
    for (target, result) in results {
        match result {
            Ok(_) => sent.delivered += 1,
            Err(e) => sent.failed.push(format!("{target}: {}", e.message())),
        }
    }
    sent
}

async fn futures_join(
    notifiers: &[Arc<dyn Notifier>],
    notification: &Notification,
) -> Vec<(String, Result<ops_core::ports::Delivery>)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, n) in notifiers.iter().enumerate() {
        let n = Arc::clone(n);
        let notification = notification.clone();
        set.spawn(async move { (i, n.target(), n.notify(&notification).await) });
    }
    let mut out = Vec::with_capacity(notifiers.len());
    while let Some(joined) = set.join_next().await {
        if let Ok(r) = joined {
            out.push(r);
        }
    }
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, t, r)| (t, r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> MessageFacts {
        MessageFacts {
            project: "shop".into(),
            status_url: Some("https://status.example.com".into()),
            id: "inc-1".into(),
            title: "database-down on container:db".into(),
            public_title: "Major outage: API".into(),
            severity: "P1".into(),
            sev: "SEV-1".into(),
            response_time: "15 minutes".into(),
            status: "open".into(),
            public_status: "Investigating".into(),
            components: vec!["API".into(), "Database".into()],
            root: Some("container:db".into()),
            runbook: Some("database-down".into()),
            cause: "exited with code 0 <!channel>".into(),
            latest_update: Some("We are <b>on it</b> & more".into()),
            started: "2026-12-02 11:45 UTC".into(),
            resolved: None,
            duration: "3 min".into(),
            next_update_due: Some("2026-12-02 12:00 UTC".into()),
            update_every_mins: Some(15),
        }
    }

    #[test]
    fn built_in_messages_render_and_escape_what_they_quote() {
        let t = Templates::built_in();
        for m in MESSAGES {
            let r = t.render(m, &facts()).unwrap();
            assert!(!r.title.is_empty(), "{m}");
            let all = format!("{}\n{}", r.title, r.text);
            assert!(!all.contains("<!channel>") && !all.contains("<b>"), "{m}: {all}");
        }
        let initial = t.render("initial", &facts()).unwrap();
        assert!(initial.title.contains("SEV-1"), "{initial:?}");
        assert!(initial.text.contains("API, Database") && initial.text.contains("&lt;!channel&gt;"), "{initial:?}");
        assert!(initial.text.contains("2026-12-02 12:00 UTC"), "{initial:?}");
    }

    #[test]
    fn a_team_template_replaces_one_message_and_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("update.txt"), "Update {{ id }}\n{{ latest_update }}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert!(t.sources["update"].ends_with("update.txt"));
        assert_eq!(t.sources["initial"], "built-in");
        let r = t.render("update", &facts()).unwrap();
        assert_eq!(r.title, "Update inc-1");
        assert_eq!(r.text, "We are &lt;b&gt;on it&lt;/b&gt; &amp; more");

        std::fs::write(dir.path().join("resolved.txt"), "ok\n{% if %}").unwrap();
        let e = Templates::load(Some(dir.path())).unwrap_err();
        assert!(e.message().contains("resolved.txt line 2"), "{e}");

        std::fs::write(dir.path().join("resolved.txt"), "{% for i in range(1000000) %}{{ i }}{% endfor %}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let e = t.render("resolved", &facts()).unwrap_err();
        assert!(e.message().contains("resolved.txt"), "{e}");
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human_secs(45), "45 s");
        assert_eq!(human_secs(-5), "0 s");
        assert_eq!(human_secs(3900), "1 h 5 min");
        assert_eq!(sev(Severity::P2), "SEV-2");
    }
}
