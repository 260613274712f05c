//! The post-incident report, built from the incident's log in the seeds' structure (Orion's
//! template and SE-OPS §6): summary, UTC timeline, root cause, resolution with the exact
//! runs and actions, impact, detection gap, response times and action items. Markdown ready
//! to commit, or JSON for tools.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::comms::{human_secs, sev};
use crate::model::{Durations, Event, EventKind, IncidentRecord};

/// A post-incident report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PostIncidentReport {
    /// Incident id.
    pub id: String,
    /// Internal title.
    pub title: String,
    /// Public title.
    pub public_title: String,
    /// Current severity, and the one it opened with.
    pub severity: String,
    /// Severity when it opened.
    pub initial_severity: String,
    /// `open` … `resolved`.
    pub status: String,
    /// One paragraph.
    pub summary: String,
    /// First evidence.
    pub started_at: DateTime<Utc>,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// First evidence to resolution (to the report's time while open), seconds.
    pub duration_secs: i64,
    /// Every event, in order.
    pub timeline: Vec<TimelineRow>,
    /// The cause.
    pub root_cause: RootCause,
    /// What was done.
    pub resolution: Resolution,
    /// Who and what it hurt.
    pub impact: Impact,
    /// Response times.
    pub response: Durations,
    /// What to do so it does not happen again, or is found sooner.
    pub action_items: Vec<ActionItem>,
}

/// One row of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineRow {
    /// When.
    pub time: DateTime<Utc>,
    /// The event's kind.
    pub kind: String,
    /// Who or what.
    pub actor: String,
    /// What happened, in words.
    pub text: String,
}

/// The root cause as the evidence shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RootCause {
    /// The failing check at the root.
    pub check: Option<String>,
    /// Its runbook.
    pub runbook: Option<String>,
    /// The cause in one line.
    pub message: String,
    /// Diagnostic evidence.
    pub evidence: Vec<String>,
}

/// What was done to fix it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Resolution {
    /// Runbook runs: id, runbook, final status, and the command that shows it.
    pub runs: Vec<RunTaken>,
    /// Actions from the audit log.
    pub actions: Vec<ActionTaken>,
    /// How it ended (`its checks passed for 5 min`, `resolved by hand`).
    pub ended: Option<String>,
}

/// A runbook run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunTaken {
    /// The run's id.
    pub id: String,
    /// The runbook.
    pub runbook: String,
    /// Its last recorded status.
    pub status: String,
    /// The command that shows the run, step by step.
    pub command: String,
}

/// An action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionTaken {
    /// When.
    pub time: DateTime<Utc>,
    /// The action.
    pub action: String,
    /// Its target.
    pub target: String,
    /// Its result.
    pub result: String,
    /// Who.
    pub actor: String,
}

/// The incident's impact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Impact {
    /// Public components affected.
    pub components: Vec<String>,
    /// Checks that failed because of it.
    pub checks: Vec<String>,
    /// Reports from users.
    pub user_reports: usize,
    /// First evidence to mitigation (its checks passing), seconds.
    pub downtime_secs: Option<i64>,
    /// Times it failed again after mitigation.
    pub relapses: usize,
}

/// An action item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionItem {
    /// What to do.
    pub action: String,
    /// Why (the evidence behind it).
    pub why: String,
    /// Due date (a week after the report).
    pub due: String,
}

/// Builds the report from the incident's log, at `now`.
#[must_use]
pub fn build(record: &IncidentRecord, now: DateTime<Utc>) -> PostIncidentReport {
    let inc = &record.incident;
    let mut timeline = Vec::new();
    // A gap under a second is the triage's own run time, not a detection gap.
    if (inc.opened_at - inc.detected_at).num_seconds() >= 1 {
        timeline.push(TimelineRow {
            time: inc.detected_at,
            kind: "detected".into(),
            actor: "triage".into(),
            text: format!(
                "first evidence: {} failing",
                inc.root.as_deref().or_else(|| inc.checks.iter().next().map(String::as_str)).unwrap_or("a check")
            ),
        });
    }
    let mut root_cause = RootCause {
        check: inc.root.clone(),
        runbook: inc.runbook.clone(),
        message: inc.cause.clone(),
        evidence: Vec::new(),
    };
    let mut resolution = Resolution::default();
    let mut impact = Impact { components: inc.components.clone(), ..Default::default() };
    let mut runs: Vec<RunTaken> = Vec::new();
    for event in &record.events {
        timeline.push(TimelineRow {
            time: event.time,
            kind: event.kind.name().to_owned(),
            actor: event.actor.clone(),
            text: describe(event),
        });
        match &event.kind {
            EventKind::Opened { evidence, consequences, .. } => {
                root_cause.evidence.clone_from(evidence);
                impact.checks.extend(consequences.iter().map(|c| format!("{}: {}", c.check, c.message)));
            }
            EventKind::Run { id, runbook, status } => match runs.iter_mut().find(|r| &r.id == id) {
                Some(r) => r.status.clone_from(status),
                None => runs.push(RunTaken {
                    id: id.clone(),
                    runbook: runbook.clone(),
                    status: status.clone(),
                    command: format!("opsctl runbook show-run {id}"),
                }),
            },
            EventKind::Action { action, target, result } => resolution.actions.push(ActionTaken {
                time: event.time,
                action: action.clone(),
                target: target.clone(),
                result: result.clone(),
                actor: event.actor.clone(),
            }),
            EventKind::Note { user_report: true, .. } => impact.user_reports += 1,
            EventKind::Relapsed { .. } => impact.relapses += 1,
            EventKind::Resolved { reason } => resolution.ended = Some(reason.clone()),
            _ => {}
        }
    }
    resolution.runs = runs;
    timeline.sort_by_key(|r| r.time);
    impact.downtime_secs = inc.mitigated_at.map(|m| (m - inc.detected_at).num_seconds().max(0));
    let durations = inc.durations();
    let duration_secs = inc.duration_secs(now);
    let summary = summary(record, duration_secs);
    let due = (inc.resolved_at.unwrap_or(now) + Duration::days(7)).format("%Y-%m-%d").to_string();
    let action_items = action_items(record, &durations, &resolution, &impact, &due);
    PostIncidentReport {
        id: inc.id.clone(),
        title: inc.title.clone(),
        public_title: inc.public_title.clone(),
        severity: inc.severity.to_string(),
        initial_severity: inc.initial_severity.to_string(),
        status: inc.status.to_string(),
        summary,
        started_at: inc.detected_at,
        opened_at: inc.opened_at,
        resolved_at: inc.resolved_at,
        duration_secs,
        timeline,
        root_cause,
        resolution,
        impact,
        response: durations,
        action_items,
    }
}

fn summary(record: &IncidentRecord, duration_secs: i64) -> String {
    let inc = &record.incident;
    let what = match &inc.root {
        Some(root) => format!("{root} failed ({})", inc.cause),
        None => inc.cause.clone(),
    };
    let affected =
        if inc.components.is_empty() { String::new() } else { format!(", affecting {}", inc.components.join(", ")) };
    let ended = match inc.resolved_at {
        Some(_) => format!("It lasted {} from the first evidence to resolution.", human_secs(duration_secs)),
        None => format!("It is still {} after {}.", inc.status, human_secs(duration_secs)),
    };
    format!("{} incident: {what}{affected}. {ended}", sev(inc.severity))
}

fn action_items(
    record: &IncidentRecord,
    d: &Durations,
    resolution: &Resolution,
    impact: &Impact,
    due: &str,
) -> Vec<ActionItem> {
    let inc = &record.incident;
    let mut items = Vec::new();
    let root = inc.root.clone().unwrap_or_else(|| "the failing component".to_owned());
    items.push(ActionItem {
        action: format!("Find and remove why {root} failed"),
        why: inc.cause.clone(),
        due: due.to_owned(),
    });
    if d.detection_gap_secs > 60 {
        items.push(ActionItem {
            action: format!("Detect {root} failing sooner: check it more often or alert on it"),
            why: format!(
                "{} passed between the first evidence and the incident opening",
                human_secs(d.detection_gap_secs)
            ),
            due: due.to_owned(),
        });
    }
    let target = inc.initial_severity.response_secs();
    if let Some(ack) = d.to_acknowledge_secs
        && ack > target
    {
        items.push(ActionItem {
            action: "Review paging: acknowledge within the response time".to_owned(),
            why: format!(
                "acknowledged after {}, the target is {}",
                human_secs(ack),
                inc.initial_severity.response_time()
            ),
            due: due.to_owned(),
        });
    }
    if impact.relapses > 0 {
        items.push(ActionItem {
            action: format!("Make the fix of {root} last"),
            why: format!("it failed again {} time(s) after its checks had passed", impact.relapses),
            due: due.to_owned(),
        });
    }
    let fixed_by_runbook = resolution.runs.iter().any(|r| r.status == "succeeded");
    if !fixed_by_runbook && let Some(runbook) = &inc.runbook {
        items.push(ActionItem {
            action: format!("Automate the fix: run or extend runbook {runbook}"),
            why: "no runbook run succeeded during the incident".to_owned(),
            due: due.to_owned(),
        });
    }
    items
}

/// One event in words.
#[must_use]
pub fn describe(event: &Event) -> String {
    match &event.kind {
        EventKind::Opened { root, message, consequences, .. } => {
            let mut s = match root {
                Some(root) => format!("incident opened: {root}: {message}"),
                None => format!("incident opened: {message}"),
            };
            if !consequences.is_empty() {
                let names: Vec<&str> = consequences.iter().map(|c| c.check.as_str()).collect();
                s.push_str(&format!(" (consequences: {})", names.join(", ")));
            }
            s
        }
        EventKind::Severity { from, to, reason } => format!("severity {from} → {to}: {reason}"),
        EventKind::Probe { check, from, to, message } => format!("{check} {from} → {to}: {message}"),
        EventKind::Alert { name, state, summary } => {
            if summary.is_empty() {
                format!("alert {name} {state}")
            } else {
                format!("alert {name} {state}: {summary}")
            }
        }
        EventKind::Run { id, runbook, status } => format!("runbook {runbook} run {id}: {status}"),
        EventKind::Action { action, target, result } => format!("{action} {target}: {result}"),
        EventKind::Note { text, user_report } => {
            if *user_report {
                format!("user report: {text}")
            } else {
                format!("note: {text}")
            }
        }
        EventKind::Update { status, text } => format!("public update ({}): {text}", status.label()),
        EventKind::Acknowledged => "acknowledged".to_owned(),
        EventKind::Mitigated { reason } => format!("mitigated: {reason}"),
        EventKind::Relapsed { check } => format!("relapsed: {check} failing again"),
        EventKind::Resolved { reason } => format!("resolved: {reason}"),
        EventKind::Notified { message, delivered, failed } => {
            if failed.is_empty() && *delivered == 0 {
                format!("{message} message not sent: no webhooks configured (notify.webhooks)")
            } else if failed.is_empty() {
                format!("{message} message sent ({delivered} delivered)")
            } else {
                format!("{message} message: {delivered} delivered, failed: {}", failed.join("; "))
            }
        }
    }
}

/// Escapes text for Markdown prose and table cells: Markdown's punctuation is backslashed,
/// `<`, `>` and `&` become entities (no raw HTML), line breaks become spaces.
#[must_use]
pub fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            // Parentheses and `!` mean something only after a bracket, which is escaped.
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A code span, with a fence longer than any run of backticks inside.
fn code(text: &str) -> String {
    let text: String = text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}").replace('|', "\\|")
}

fn hhmm(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

impl PostIncidentReport {
    /// The report as Markdown, in the seeds' structure.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        let line = |m: &mut String, s: &str| {
            m.push_str(s);
            m.push('\n');
        };
        line(&mut m, &format!("# Post-Incident Report: {}", md(&self.public_title)));
        line(&mut m, "");
        line(&mut m, &format!("**Incident**: {}  ", code(&self.id)));
        line(&mut m, &format!("**Date**: {}  ", self.opened_at.format("%Y-%m-%d")));
        let severity = if self.severity == self.initial_severity {
            self.severity.clone()
        } else {
            format!("{} (opened as {})", self.severity, self.initial_severity)
        };
        line(&mut m, &format!("**Severity**: {severity}  "));
        line(&mut m, &format!("**Status**: {}  ", self.status));
        line(
            &mut m,
            &format!("**Duration**: {} (from the first evidence to resolution)  ", human_secs(self.duration_secs)),
        );
        line(&mut m, "**Author**: _to fill in_");
        line(&mut m, "");
        line(&mut m, "## Incident Summary");
        line(&mut m, "");
        line(&mut m, &md(&self.summary));
        line(&mut m, "");
        line(&mut m, "## Timeline (UTC)");
        line(&mut m, "");
        line(&mut m, "| Time | Event | By |");
        line(&mut m, "|------|-------|----|");
        for row in &self.timeline {
            line(&mut m, &format!("| {} | {} | {} |", hhmm(row.time), md(&row.text), md(&row.actor)));
        }
        line(&mut m, "");
        line(&mut m, "## Root Cause");
        line(&mut m, "");
        match (&self.root_cause.check, &self.root_cause.runbook) {
            (Some(check), Some(runbook)) => line(
                &mut m,
                &format!("{} failed (runbook {}): {}", code(check), code(runbook), md(&self.root_cause.message)),
            ),
            _ => line(&mut m, &md(&self.root_cause.message)),
        }
        if !self.root_cause.evidence.is_empty() {
            line(&mut m, "");
            line(&mut m, "Evidence:");
            line(&mut m, "");
            for e in &self.root_cause.evidence {
                line(&mut m, &format!("- {}", code(e)));
            }
        }
        line(&mut m, "");
        line(&mut m, "_Confirm or correct: the evidence shows what failed first, a person says why._");
        line(&mut m, "");
        line(&mut m, "## Resolution");
        line(&mut m, "");
        if self.resolution.runs.is_empty() && self.resolution.actions.is_empty() {
            line(&mut m, "No runbook run or recorded action during the incident.");
        }
        for r in &self.resolution.runs {
            line(&mut m, &format!("- Runbook {} ({}): {}", code(&r.runbook), md(&r.status), code(&r.command)));
        }
        for a in &self.resolution.actions {
            line(
                &mut m,
                &format!(
                    "- {} {} {} by {}: {}",
                    hhmm(a.time),
                    code(&a.action),
                    code(&a.target),
                    md(&a.actor),
                    md(&a.result)
                ),
            );
        }
        if let Some(ended) = &self.resolution.ended {
            line(&mut m, &format!("- Resolved: {}", md(ended)));
        }
        line(&mut m, "");
        line(&mut m, "## Impact");
        line(&mut m, "");
        let components = if self.impact.components.is_empty() {
            "none recorded".to_owned()
        } else {
            md(&self.impact.components.join(", "))
        };
        line(&mut m, &format!("- **Components affected**: {components}"));
        if !self.impact.checks.is_empty() {
            line(&mut m, "- **Consequences**:");
            for c in &self.impact.checks {
                line(&mut m, &format!("  - {}", md(c)));
            }
        }
        let downtime = self.impact.downtime_secs.map_or_else(|| "still failing".to_owned(), human_secs);
        line(&mut m, &format!("- **Downtime**: {downtime} (first evidence to its checks passing)"));
        line(&mut m, &format!("- **User reports**: {}", self.impact.user_reports));
        line(&mut m, "- **Users affected**: _to fill in_");
        line(&mut m, "- **Data lost**: _to fill in_");
        line(&mut m, "");
        line(&mut m, "## Detection and Response");
        line(&mut m, "");
        let r = &self.response;
        line(
            &mut m,
            &format!(
                "- **Detection gap**: {} from the first evidence to the incident opening",
                human_secs(r.detection_gap_secs)
            ),
        );
        let or_not = |v: Option<i64>| v.map_or_else(|| "not reached".to_owned(), human_secs);
        line(&mut m, &format!("- **Time to acknowledge**: {}", or_not(r.to_acknowledge_secs)));
        line(&mut m, &format!("- **Time to mitigate**: {}", or_not(r.to_mitigate_secs)));
        line(&mut m, &format!("- **Time to resolve**: {}", or_not(r.to_resolve_secs)));
        line(&mut m, "");
        line(&mut m, "## Action Items");
        line(&mut m, "");
        line(&mut m, "| Action | Why | Owner | Due Date | Status |");
        line(&mut m, "|--------|-----|-------|----------|--------|");
        for a in &self.action_items {
            line(&mut m, &format!("| {} | {} | _to assign_ | {} | [ ] Open |", md(&a.action), md(&a.why), a.due));
        }
        line(&mut m, "");
        line(&mut m, "## Lessons Learned");
        line(&mut m, "");
        line(&mut m, "_What went well, what could be improved in the response process._");
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_text_cannot_break_out() {
        assert_eq!(md("a | b"), "a \\| b");
        assert_eq!(md("<script>x</script>"), "&lt;script&gt;x&lt;/script&gt;");
        assert_eq!(md("[x](javascript:1)"), "\\[x\\](javascript:1)");
        assert_eq!(md("![img](x) (fine)"), "!\\[img\\](x) (fine)");
        assert_eq!(md("line\nbreak"), "line break");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("x|y"), "`x\\|y`");
    }
}
