//! `opsctl incident …` and `opsctl status …`: the incident desk and the status page from the
//! command line, over the state store the server shares; and the recording of a triage.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::Utc;
use ops_core::config::load;
use ops_core::ports::IncidentQuery;
use ops_core::{Context, Error, Result};
use ops_incident::comms::{human_secs, utc_minute};
use ops_incident::{Incident, IncidentRecord, Incidents, OpenRequest};
use ops_status::model::ComponentStatus;
use ops_status::{StatusBoard, render};

use crate::render::write_json;
use crate::{Cli, IncidentCommand, MaintenanceCommand, Outcome, StatusCommand, exit};

async fn opened(cli: &Cli, env: &BTreeMap<String, String>) -> Result<Context> {
    let cfg = load(cli.config.as_deref(), env)?.config;
    let mut ctx = Context::from_config(cfg)?;
    ctx.open_state().await?;
    Ok(ctx)
}

/// Records a triage in the state store: incidents and a status sample. A store that cannot be
/// opened is a warning, never a failed check.
pub(crate) async fn record(
    ctx: &mut Context,
    report: &ops_probes::TriageReport,
) -> Option<ops_incident::ObserveReport> {
    if !ctx.config.incidents.record {
        return None;
    }
    if ctx.state.is_none()
        && let Err(e) = ctx.open_state().await
    {
        let _ = writeln!(std::io::stderr(), "warning: incidents not recorded: {e}");
        return None;
    }
    let recorded = async {
        let desk = Incidents::from_context(ctx)?;
        let board = StatusBoard::from_context(ctx)?;
        board.record_triage(&desk, report, Utc::now()).await
    }
    .await;
    match recorded {
        Ok(r) => Some(r),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "warning: incidents not recorded: {e}");
            None
        }
    }
}

/// `opsctl incident …`.
pub(crate) async fn incident(
    cli: &Cli,
    cmd: &IncidentCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let ctx = opened(cli, env).await?;
    let desk = Incidents::from_context(&ctx)?;
    let actor = crate::actor(env);
    let now = Utc::now();
    match cmd {
        IncidentCommand::List { all } => {
            let list = desk.list(&IncidentQuery { unresolved: !all, limit: 100, ..Default::default() }).await?;
            if cli.json {
                write_json(out, &list)?;
            } else {
                list_table(out, &list, now)?;
            }
        }
        IncidentCommand::Show { id } => {
            let record = desk.load(id).await?;
            if cli.json {
                write_json(out, &record)?;
            } else {
                show(out, &record, now)?;
            }
        }
        IncidentCommand::Open { title, severity, checks, components, public_title, update } => {
            let request = OpenRequest {
                title: title.clone(),
                severity: Some(*severity),
                public_title: public_title.clone(),
                checks: checks.clone(),
                components: components.clone(),
                update: update.clone(),
            };
            let record = desk.open(&request, &actor, now).await?;
            if cli.json {
                write_json(out, &record)?;
            } else {
                writeln!(
                    out,
                    "opened {} ({}): {}",
                    record.incident.id, record.incident.severity, record.incident.title
                )?;
            }
        }
        IncidentCommand::Note { id, text, user_report } => {
            let event = desk.note(id, text, *user_report, &actor, now).await?;
            done(cli, out, &event, &format!("note added to {id}"))?;
        }
        IncidentCommand::Update { id, text, status } => {
            let event = desk.update(id, *status, text, &actor, now).await?;
            done(cli, out, &event, &format!("public update posted on {id}"))?;
        }
        IncidentCommand::Ack { id } => {
            let event = desk.acknowledge(id, &actor, now).await?;
            done(cli, out, &event, &format!("{id} acknowledged by {actor}"))?;
        }
        IncidentCommand::Resolve { id, text } => {
            let event = desk.resolve(id, text.as_deref(), &actor, now).await?;
            done(cli, out, &event, &format!("{id} resolved"))?;
        }
        IncidentCommand::Report { id, output } => {
            let record = desk.load(id).await?;
            let report = ops_incident::report::build(&record, now);
            let text = if cli.json {
                serde_json::to_string_pretty(&report).map_err(|e| Error::internal(format!("rendering json: {e}")))?
                    + "\n"
            } else {
                report.to_markdown()
            };
            match output {
                Some(path) => {
                    std::fs::write(path, text)
                        .map_err(|e| Error::unavailable(format!("cannot write {}: {e}", path.display())))?;
                    if !cli.json {
                        writeln!(out, "report written to {}", path.display())?;
                    }
                }
                None => write!(out, "{text}")?,
            }
        }
    }
    Ok(Outcome { code: exit::OK })
}

fn done(cli: &Cli, out: &mut dyn Write, event: &ops_incident::Event, line: &str) -> Result<()> {
    if cli.json { write_json(out, event) } else { Ok(writeln!(out, "{line}")?) }
}

fn list_table(out: &mut dyn Write, list: &[Incident], now: chrono::DateTime<Utc>) -> Result<()> {
    if list.is_empty() {
        writeln!(out, "no incidents")?;
        return Ok(());
    }
    writeln!(out, "{:<34} {:<3} {:<12} {:<20} {:<9} TITLE", "ID", "SEV", "STATUS", "OPENED", "LASTED")?;
    for i in list {
        writeln!(
            out,
            "{:<34} {:<3} {:<12} {:<20} {:<9} {}",
            i.id,
            i.severity.to_string(),
            i.status.to_string(),
            utc_minute(i.opened_at),
            human_secs(i.duration_secs(now)),
            i.title
        )?;
    }
    Ok(())
}

fn show(out: &mut dyn Write, record: &IncidentRecord, now: chrono::DateTime<Utc>) -> Result<()> {
    let i = &record.incident;
    writeln!(out, "{}  {}  {}", i.id, i.severity, i.status)?;
    writeln!(out, "title:        {}", i.title)?;
    writeln!(out, "public:       {} ({})", i.public_title, i.public_status.label())?;
    if let Some(root) = &i.root {
        writeln!(out, "root:         {root} (runbook {})", i.runbook.as_deref().unwrap_or("-"))?;
    }
    writeln!(out, "cause:        {}", i.cause)?;
    if !i.components.is_empty() {
        writeln!(out, "components:   {}", i.components.join(", "))?;
    }
    writeln!(out, "detected:     {}", utc_minute(i.detected_at))?;
    writeln!(out, "opened:       {} by {}", utc_minute(i.opened_at), i.opened_by)?;
    let d = &record.durations;
    let at = |t: Option<chrono::DateTime<Utc>>, secs: Option<i64>| match (t, secs) {
        (Some(t), Some(s)) => format!("{} (after {})", utc_minute(t), human_secs(s)),
        _ => "-".to_owned(),
    };
    writeln!(out, "acknowledged: {}", at(i.acknowledged_at, d.to_acknowledge_secs))?;
    writeln!(out, "mitigated:    {}", at(i.mitigated_at, d.to_mitigate_secs))?;
    writeln!(out, "resolved:     {}", at(i.resolved_at, d.to_resolve_secs))?;
    writeln!(
        out,
        "lasted:       {} (detection gap {})",
        human_secs(i.duration_secs(now)),
        human_secs(d.detection_gap_secs)
    )?;
    if let Some(due) = i.next_update_due {
        let late = if now > due { "  OVERDUE" } else { "" };
        writeln!(out, "next update:  {}{late}", utc_minute(due))?;
    }
    writeln!(out, "\ntimeline (UTC):")?;
    // In the order things happened (a run or an action is recorded after it happened).
    let mut events: Vec<&ops_incident::Event> = record.events.iter().collect();
    events.sort_by_key(|e| (e.time, e.seq));
    for e in events {
        writeln!(
            out,
            "  {}  {:<24} {}",
            e.time.format("%Y-%m-%d %H:%M:%S"),
            truncate(&e.actor, 24),
            ops_incident::report::describe(e)
        )?;
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}

/// `opsctl status …`.
pub(crate) async fn status(
    cli: &Cli,
    cmd: &StatusCommand,
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let ctx = opened(cli, env).await?;
    let board = StatusBoard::from_context(&ctx)?;
    let actor = crate::actor(env);
    let now = Utc::now();
    match cmd {
        StatusCommand::Show => {
            let page = board.page(now).await?;
            if cli.json {
                let mut v = render::json_document(&page, "summary.json").unwrap_or_default();
                // The reasons are for the people who run it, never on the public page.
                if let Some(components) = v.get_mut("components").and_then(serde_json::Value::as_array_mut) {
                    for (c, p) in components.iter_mut().zip(&page.components) {
                        c["reason"] = serde_json::Value::String(p.reason.clone());
                    }
                }
                write_json(out, &v)?;
            } else {
                writeln!(out, "{}: {}", page.title, page.indicator.description)?;
                if page.components.is_empty() {
                    writeln!(out, "no components: add [[status.components]] to the configuration")?;
                } else {
                    writeln!(out, "\n{:<24} {:<22} {:<10} {:<20} WHY", "COMPONENT", "STATUS", "UPTIME", "SINCE")?;
                    for c in &page.components {
                        writeln!(
                            out,
                            "{:<24} {:<22} {:<10} {:<20} {}",
                            truncate(&c.name, 24),
                            c.status.label(),
                            c.uptime.map_or_else(|| "-".to_owned(), |u| format!("{u:.2}%")),
                            utc_minute(c.updated_at),
                            c.reason
                        )?;
                    }
                }
                for i in &page.unresolved {
                    writeln!(out, "\nincident {} ({}): {}", i.id, i.status, i.name)?;
                    if let Some(u) = i.updates.first() {
                        writeln!(out, "  latest: {}", u.body)?;
                    }
                }
            }
        }
        StatusCommand::Export { dir } => {
            let page = board.page(now).await?;
            let files = ops_status::export::files(&page);
            let report = ops_status::export::write_dir(dir, &files)?;
            if cli.json {
                write_json(out, &report)?;
            } else {
                writeln!(out, "{} files ({} bytes) written to {}", report.files.len(), report.bytes, report.target)?;
            }
        }
        StatusCommand::Publish => {
            let publish =
                ctx.config.status.publish.as_ref().ok_or_else(|| {
                    Error::invalid_input("set [status.publish] url (another bucket or provider) first")
                })?;
            let location = publish.location().map_err(|m| Error::invalid_input(format!("status.publish.url {m}")))?;
            let store = ops_core::object_store(
                location,
                publish.endpoint.as_deref(),
                publish.region.as_deref(),
                publish.path_style,
                publish.access_key_id.as_ref(),
                publish.secret_access_key.as_ref(),
            )?;
            let page = board.page(now).await?;
            let report = ops_status::export::publish(&store, &ops_status::export::files(&page)).await?;
            if cli.json {
                write_json(out, &report)?;
            } else {
                writeln!(out, "{} files ({} bytes) published to {}", report.files.len(), report.bytes, report.target)?;
            }
        }
        StatusCommand::Override { component, status } => {
            let status = if status == "clear" {
                None
            } else {
                Some(ComponentStatus::parse(status).ok_or_else(|| {
                    Error::invalid_input(format!(
                        "{status:?}: use operational, degraded-performance, partial-outage, major-outage, \
                         under-maintenance or clear"
                    ))
                })?)
            };
            let cleared = board.set_override(component, status, &actor, now).await?;
            let line = match status {
                Some(s) => format!("{component} shows {} until cleared", s.label()),
                None if cleared => format!("{component} shows its checks' status again"),
                None => format!("{component} had no override"),
            };
            if cli.json {
                write_json(out, &serde_json::json!({ "component": component, "status": status, "cleared": cleared }))?;
            } else {
                writeln!(out, "{line}")?;
            }
        }
        StatusCommand::Maintenance(m) => match m {
            MaintenanceCommand::List => {
                let list = board.maintenances().await?;
                if cli.json {
                    write_json(out, &list)?;
                } else if list.is_empty() {
                    writeln!(out, "no maintenance planned")?;
                } else {
                    for m in list {
                        writeln!(
                            out,
                            "{}  {:<11} {} to {}  {}  [{}]",
                            m.id,
                            m.state(now),
                            utc_minute(m.starts_at),
                            utc_minute(m.ends_at),
                            m.title,
                            m.components.join(", ")
                        )?;
                    }
                }
            }
            MaintenanceCommand::Add { title, start, end, components, text } => {
                let request = ops_status::build::MaintenanceRequest {
                    title: title.clone(),
                    text: text.clone(),
                    components: components.clone(),
                    starts_at: *start,
                    ends_at: *end,
                };
                let m = board.schedule_maintenance(&request, &actor, now).await?;
                if cli.json {
                    write_json(out, &m)?;
                } else {
                    writeln!(
                        out,
                        "planned {}: {} ({} to {})",
                        m.id,
                        m.title,
                        utc_minute(m.starts_at),
                        utc_minute(m.ends_at)
                    )?;
                }
            }
            MaintenanceCommand::Cancel { id } => {
                board.cancel_maintenance(id).await?;
                if cli.json {
                    write_json(out, &serde_json::json!({ "cancelled": id }))?;
                } else {
                    writeln!(out, "cancelled {id}")?;
                }
            }
        },
    }
    Ok(Outcome { code: exit::OK })
}
