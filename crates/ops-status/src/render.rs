//! The page's three forms: Atlassian Statuspage v2 JSON (what status-page readers, and this
//! project's own status-page probe, already parse), an Atom feed of the public updates, and
//! server-rendered HTML that needs no JavaScript. Every text is escaped by its form's rules:
//! JSON by serde, Atom and HTML by entity escaping (MiniJinja's HTML auto-escape for the page).

use chrono::{DateTime, Utc};
use minijinja::{AutoEscape, Environment, Value};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::model::{Component, ComponentStatus, Maintenance, PublicIncident, StatusPage};

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn page_id(page: &StatusPage) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(page.title.as_bytes())[..6])
}

fn page_json(page: &StatusPage) -> Json {
    json!({
        "id": page_id(page),
        "name": page.title,
        "url": page.url.clone().unwrap_or_default(),
        "time_zone": "Etc/UTC",
        "updated_at": ts(page.updated_at),
    })
}

fn component_json(page: &StatusPage, c: &Component) -> Json {
    json!({
        "id": c.id,
        "name": c.name,
        "status": c.status.as_str(),
        "created_at": ts(c.updated_at),
        "updated_at": ts(c.updated_at),
        "position": c.position,
        "description": c.description,
        "showcase": true,
        "start_date": Json::Null,
        "group_id": Json::Null,
        "page_id": page_id(page),
        "group": false,
        "only_show_if_degraded": false,
    })
}

fn affected(page: &StatusPage, names: &[String]) -> Vec<Json> {
    page.components.iter().filter(|c| names.contains(&c.name)).map(|c| component_json(page, c)).collect()
}

fn shortlink(page: &StatusPage, id: &str) -> String {
    page.url.as_deref().map(|u| format!("{}/#{id}", u.trim_end_matches('/'))).unwrap_or_default()
}

fn incident_json(page: &StatusPage, i: &PublicIncident) -> Json {
    let updates: Vec<Json> = i
        .updates
        .iter()
        .map(|u| {
            json!({
                "id": u.id,
                "status": u.status,
                "body": u.body,
                "incident_id": i.id,
                "created_at": ts(u.created_at),
                "updated_at": ts(u.created_at),
                "display_at": ts(u.created_at),
                "affected_components": Json::Null,
                "deliver_notifications": true,
                "custom_tweet": Json::Null,
                "tweet_id": Json::Null,
            })
        })
        .collect();
    json!({
        "id": i.id,
        "name": i.name,
        "status": i.status,
        "created_at": ts(i.created_at),
        "updated_at": ts(i.updated_at),
        "monitoring_at": i.monitoring_at.map(ts),
        "resolved_at": i.resolved_at.map(ts),
        "impact": i.impact,
        "shortlink": shortlink(page, &i.id),
        "started_at": ts(i.started_at),
        "page_id": page_id(page),
        "incident_updates": updates,
        "components": affected(page, &i.components),
    })
}

fn maintenance_json(page: &StatusPage, m: &Maintenance) -> Json {
    let state = m.state(page.updated_at);
    let update_status = match state {
        "scheduled" => "scheduled",
        "in_progress" => "in_progress",
        _ => "completed",
    };
    json!({
        "id": m.id,
        "name": m.title,
        "status": state,
        "created_at": ts(m.created_at),
        "updated_at": ts(m.created_at),
        "monitoring_at": Json::Null,
        "resolved_at": (state == "completed").then(|| ts(m.ends_at)),
        "impact": "maintenance",
        "shortlink": shortlink(page, &m.id),
        "started_at": ts(m.starts_at),
        "page_id": page_id(page),
        "incident_updates": [{
            "id": format!("{}-1", m.id),
            "status": update_status,
            "body": if m.text.is_empty() { m.title.clone() } else { m.text.clone() },
            "incident_id": m.id,
            "created_at": ts(m.created_at),
            "updated_at": ts(m.created_at),
            "display_at": ts(m.created_at),
        }],
        "components": affected(page, &m.components),
        "scheduled_for": ts(m.starts_at),
        "scheduled_until": ts(m.ends_at),
    })
}

/// The JSON documents of the Statuspage v2 API, by path under `/api/v2/`.
pub const JSON_DOCUMENTS: [&str; 8] = [
    "summary.json",
    "status.json",
    "components.json",
    "incidents.json",
    "incidents/unresolved.json",
    "scheduled-maintenances.json",
    "scheduled-maintenances/upcoming.json",
    "scheduled-maintenances/active.json",
];

/// One document of [`JSON_DOCUMENTS`]; `None` for another path.
#[must_use]
pub fn json_document(page: &StatusPage, path: &str) -> Option<Json> {
    let p = page_json(page);
    let status = json!({ "indicator": page.indicator.indicator, "description": page.indicator.description });
    let components: Vec<Json> = page.components.iter().map(|c| component_json(page, c)).collect();
    let now = page.updated_at;
    let maint = |f: &dyn Fn(&Maintenance) -> bool| -> Vec<Json> {
        page.maintenances.iter().filter(|m| f(m)).map(|m| maintenance_json(page, m)).collect()
    };
    Some(match path {
        "summary.json" => json!({
            "page": p,
            "components": components,
            "incidents": page.unresolved.iter().map(|i| incident_json(page, i)).collect::<Vec<_>>(),
            "scheduled_maintenances": maint(&|m| m.state(now) != "completed"),
            "status": status,
        }),
        "status.json" => json!({ "page": p, "status": status }),
        "components.json" => json!({ "page": p, "components": components }),
        "incidents.json" => {
            json!({ "page": p, "incidents": page.incidents.iter().map(|i| incident_json(page, i)).collect::<Vec<_>>() })
        }
        "incidents/unresolved.json" => {
            json!({ "page": p, "incidents": page.unresolved.iter().map(|i| incident_json(page, i)).collect::<Vec<_>>() })
        }
        "scheduled-maintenances.json" => json!({ "page": p, "scheduled_maintenances": maint(&|_| true) }),
        "scheduled-maintenances/upcoming.json" => {
            json!({ "page": p, "scheduled_maintenances": maint(&|m| m.state(now) == "scheduled") })
        }
        "scheduled-maintenances/active.json" => {
            json!({ "page": p, "scheduled_maintenances": maint(&|m| m.state(now) == "in_progress") })
        }
        _ => return None,
    })
}

fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The Atom feed: one entry per public update, newest first (at most 100).
#[must_use]
pub fn atom(page: &StatusPage, feed_href: &str) -> String {
    let base = page.url.as_deref().map(|u| u.trim_end_matches('/').to_owned());
    let mut entries: Vec<(&PublicIncident, &crate::model::PublicUpdate)> =
        page.incidents.iter().flat_map(|i| i.updates.iter().map(move |u| (i, u))).collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.1.created_at));
    entries.truncate(100);
    let updated = entries.first().map_or(page.updated_at, |(_, u)| u.created_at);
    let mut s =
        String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    s.push_str(&format!("  <id>urn:ops-status:{}</id>\n", page_id(page)));
    s.push_str(&format!("  <title>{}</title>\n", xml(&page.title)));
    s.push_str(&format!("  <updated>{}</updated>\n", ts(updated)));
    s.push_str(&format!("  <author><name>{}</name></author>\n", xml(&page.title)));
    s.push_str(&format!("  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n", xml(feed_href)));
    if let Some(b) = &base {
        s.push_str(&format!("  <link rel=\"alternate\" type=\"text/html\" href=\"{}/\"/>\n", xml(b)));
    }
    for (i, u) in entries {
        s.push_str("  <entry>\n");
        s.push_str(&format!("    <id>urn:ops-status:{}:{}</id>\n", xml(&i.id), xml(&u.id)));
        s.push_str(&format!("    <title>{}: {}</title>\n", xml(&i.name), xml(status_label(&u.status))));
        s.push_str(&format!("    <updated>{}</updated>\n", ts(u.created_at)));
        s.push_str(&format!("    <published>{}</published>\n", ts(u.created_at)));
        if let Some(b) = &base {
            s.push_str(&format!(
                "    <link rel=\"alternate\" type=\"text/html\" href=\"{}/#{}\"/>\n",
                xml(b),
                xml(&i.id)
            ));
        }
        s.push_str(&format!(
            "    <content type=\"text\">{}: {}</content>\n",
            xml(status_label(&u.status)),
            xml(&u.body)
        ));
        s.push_str("  </entry>\n");
    }
    s.push_str("</feed>\n");
    s
}

fn status_label(status: &str) -> &'static str {
    match status {
        "investigating" => "Investigating",
        "identified" => "Identified",
        "monitoring" => "Monitoring",
        "resolved" => "Resolved",
        "scheduled" => "Scheduled",
        "in_progress" => "In progress",
        "completed" => "Completed",
        _ => "Update",
    }
}

/// Where the page's links point: `/status/feed.atom` on the server, `feed.atom` in an export.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Links {
    /// The Atom feed.
    pub feed: String,
    /// `summary.json`.
    pub summary: String,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct DayView {
    class: &'static str,
    title: String,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct ComponentView {
    id: String,
    name: String,
    description: Option<String>,
    status: &'static str,
    label: &'static str,
    uptime: String,
    bad_days: Vec<String>,
    days: Vec<DayView>,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct UpdateView {
    label: &'static str,
    body: String,
    time: String,
    datetime: String,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct IncidentView {
    id: String,
    name: String,
    status: String,
    label: &'static str,
    impact: String,
    started: String,
    resolved: Option<String>,
    components: String,
    updates: Vec<UpdateView>,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct MaintenanceView {
    id: String,
    title: String,
    text: String,
    state: &'static str,
    window: String,
    components: String,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct PageView {
    title: String,
    indicator: String,
    description: String,
    updated: String,
    updated_iso: String,
    history_days: u32,
    components: Vec<ComponentView>,
    unresolved: Vec<IncidentView>,
    past: Vec<IncidentView>,
    maintenances: Vec<MaintenanceView>,
    links: Links,
}

fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn class_of(s: Option<ComponentStatus>) -> &'static str {
    match s {
        None => "none",
        Some(ComponentStatus::Operational) => "ok",
        Some(ComponentStatus::UnderMaintenance) => "maint",
        Some(ComponentStatus::DegradedPerformance) => "minor",
        Some(ComponentStatus::PartialOutage) => "major",
        Some(ComponentStatus::MajorOutage) => "critical",
    }
}

fn incident_view(i: &PublicIncident) -> IncidentView {
    IncidentView {
        id: i.id.clone(),
        name: i.name.clone(),
        status: i.status.clone(),
        label: status_label(&i.status),
        impact: i.impact.clone(),
        started: minute(i.started_at),
        resolved: i.resolved_at.map(minute),
        components: i.components.join(", "),
        updates: i
            .updates
            .iter()
            .map(|u| UpdateView {
                label: status_label(&u.status),
                body: u.body.clone(),
                time: minute(u.created_at),
                datetime: ts(u.created_at),
            })
            .collect(),
    }
}

const PAGE: &str = include_str!("../templates/page.html");

/// The page as HTML: server-rendered, no JavaScript, every text escaped.
///
/// # Panics
/// Never: the built-in template is checked by this crate's tests.
#[must_use]
pub fn html(page: &StatusPage, links: &Links) -> String {
    let view = PageView {
        title: page.title.clone(),
        indicator: page.indicator.indicator.clone(),
        description: page.indicator.description.clone(),
        updated: minute(page.updated_at),
        updated_iso: ts(page.updated_at),
        history_days: page.history_days,
        components: page
            .components
            .iter()
            .map(|c| ComponentView {
                id: c.id.clone(),
                name: c.name.clone(),
                description: c.description.clone(),
                status: class_of(Some(c.status)),
                label: c.status.label(),
                uptime: c.uptime.map_or_else(|| "no data yet".to_owned(), |u| format!("{u:.2} % uptime")),
                bad_days: c
                    .history
                    .iter()
                    .filter(|d| d.worst.is_some_and(|w| w > ComponentStatus::UnderMaintenance))
                    .map(|d| {
                        format!(
                            "{}: {} ({:.2} % up)",
                            d.day,
                            d.worst.map_or("", ComponentStatus::label),
                            d.uptime.unwrap_or(0.0)
                        )
                    })
                    .collect(),
                days: c
                    .history
                    .iter()
                    .map(|d| DayView {
                        class: class_of(d.worst),
                        title: match (d.worst, d.uptime) {
                            (Some(w), Some(u)) => format!("{}: {} ({u:.2} % up)", d.day, w.label()),
                            _ => format!("{}: no data", d.day),
                        },
                    })
                    .collect(),
            })
            .collect(),
        unresolved: page.unresolved.iter().map(incident_view).collect(),
        past: page.incidents.iter().filter(|i| i.status == "resolved").map(incident_view).collect(),
        maintenances: page
            .maintenances
            .iter()
            .map(|m| MaintenanceView {
                id: m.id.clone(),
                title: m.title.clone(),
                text: m.text.clone(),
                state: status_label(m.state(page.updated_at)),
                window: format!("{} to {}", minute(m.starts_at), minute(m.ends_at)),
                components: m.components.join(", "),
            })
            .collect(),
        links: links.clone(),
    };
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template("page.html", PAGE).unwrap_or_else(|e| unreachable!("status page template: {e}"));
    env.get_template("page.html")
        .and_then(|t| t.render(Value::from(minijinja::value::Serde(&view))))
        .unwrap_or_else(|e| unreachable!("status page template: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Day, Indicator, PublicUpdate};

    pub(crate) fn sample() -> StatusPage {
        let t = DateTime::parse_from_rfc3339("2026-12-02T11:45:00Z").unwrap().with_timezone(&Utc);
        StatusPage {
            title: "Shop <status>".into(),
            url: Some("https://status.example.com".into()),
            updated_at: t,
            indicator: Indicator { indicator: "critical".into(), description: "Major System Outage".into() },
            components: vec![Component {
                id: "api".into(),
                name: "API & <b>web</b>".into(),
                description: Some("The public API".into()),
                status: ComponentStatus::MajorOutage,
                reason: "http:api critical".into(),
                position: 1,
                updated_at: t,
                uptime: Some(99.5),
                history: vec![
                    Day {
                        day: "2026-12-01".into(),
                        worst: Some(ComponentStatus::Operational),
                        uptime: Some(100.0),
                        samples: 10,
                    },
                    Day {
                        day: "2026-12-02".into(),
                        worst: Some(ComponentStatus::MajorOutage),
                        uptime: Some(90.0),
                        samples: 10,
                    },
                ],
            }],
            unresolved: vec![PublicIncident {
                id: "inc-1".into(),
                name: "Outage: API".into(),
                status: "investigating".into(),
                impact: "critical".into(),
                started_at: t,
                created_at: t,
                updated_at: t,
                monitoring_at: None,
                resolved_at: None,
                components: vec!["API & <b>web</b>".into()],
                updates: vec![PublicUpdate {
                    id: "inc-1-2".into(),
                    status: "investigating".into(),
                    body: "We are <script>alert(1)</script> on it".into(),
                    created_at: t,
                }],
            }],
            incidents: Vec::new(),
            maintenances: Vec::new(),
            history_days: 2,
        }
    }

    #[test]
    fn html_escapes_every_text_and_needs_no_script() {
        let mut page = sample();
        page.incidents = page.unresolved.clone();
        let h = html(&page, &Links { feed: "feed.atom".into(), summary: "api/v2/summary.json".into() });
        assert!(!h.contains("<script>") && h.contains("&lt;script&gt;"), "{h}");
        assert!(!h.contains("<b>web</b>"), "{h}");
        assert!(h.contains("Major outage") && h.contains("lang=\"en\""));
        assert!(!h.to_lowercase().contains("<script"), "no JavaScript at all");
    }

    #[test]
    fn json_has_statuspage_v2_shape() {
        let page = sample();
        let s = json_document(&page, "summary.json").unwrap();
        assert_eq!(s["status"]["indicator"], "critical");
        assert_eq!(s["components"][0]["status"], "major_outage");
        assert_eq!(s["incidents"][0]["incident_updates"][0]["status"], "investigating");
        assert_eq!(s["page"]["time_zone"], "Etc/UTC");
        for doc in JSON_DOCUMENTS {
            assert!(json_document(&page, doc).is_some(), "{doc}");
        }
        assert!(json_document(&page, "../secrets.json").is_none());
    }

    #[test]
    fn atom_is_escaped_xml() {
        let mut page = sample();
        page.incidents = page.unresolved.clone();
        let a = atom(&page, "https://status.example.com/feed.atom");
        assert!(a.contains("&lt;script&gt;") && !a.contains("<script>"), "{a}");
        assert!(a.contains("<title>Shop &lt;status&gt;</title>"), "{a}");
        assert_eq!(a.matches("<entry>").count(), 1);
    }
}
