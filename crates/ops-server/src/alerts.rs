//! `POST /api/v1/alertmanager`: Alertmanager's webhook (payload version 4), behind its own
//! bearer keys (`alertmanager.webhook-keys`).
//!
//! - **Checked first, recorded second.** A payload that does not parse or is out of bounds is
//!   400 and records nothing; one over [`MAX_BODY`] is 413; a request without a valid key 401.
//! - **Once.** Each alert is taken once per fingerprint, start and status, whoever delivers it
//!   and however often (Alertmanager repeats notifications): a lease in the state store keyed
//!   by the three, which one request wins.
//! - **One incident per alert group**, with each alert on its log (`ops_incident::alerts`);
//!   `Watchdog`-like and low-severity alerts as configured.
//! - **Acting.** A firing alert that names a runbook (its `runbook` label or annotation, or
//!   `alertmanager.runbooks`) runs it when the runbook is `auto`, within its guards, after
//!   checking with Alertmanager that the alert still fires; otherwise its plan goes to the
//!   webhooks for a person. A resolved alert never acts.
//! - **Silences.** While the runbook acts, a silence of the target's alerts, ending after the
//!   runbook's time limit, is created through Alertmanager's API v2 and expired when the run
//!   ends; both are on the incident and in the audit log. Without an Alertmanager URL the step
//!   is skipped, and the incident says so.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use ops_incident::EventKind;
use ops_incident::alerts::{AlertNotice, GroupRecord};
use ops_probes::alertmanager::{WebhookAlert, WebhookMessage};
use serde_json::{Value, json};

use crate::state::AppState;

/// The largest payload taken (Alertmanager's own default limit on alerts per notification is
/// far below it).
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a repeated delivery of one alert is recognised (Alertmanager's resend intervals
/// are hours).
const REMEMBER_DAYS: i64 = 30;

/// The actor of what the webhook records.
const ACTOR: &str = "alertmanager";

fn bad_request(message: &str) -> (StatusCode, Json<Value>) {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": { "kind": "invalid_input", "message": message } })))
}

pub(crate) async fn intake(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> (StatusCode, Json<Value>) {
    if body.len() > MAX_BODY {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({ "error": { "kind": "invalid_input", "message": format!("at most {MAX_BODY} bytes") } })),
        );
    }
    let message = match WebhookMessage::parse(&body) {
        Ok(m) => m,
        Err(why) => return bad_request(&why),
    };
    match record(&state, message).await {
        Ok(v) => (StatusCode::OK, Json(v)),
        Err(e) => {
            let api = crate::error::ApiError::Core(e);
            let status = axum::response::IntoResponse::into_response(api).status();
            (status, Json(json!({ "error": { "kind": "unavailable", "message": "the alerts could not be recorded" } })))
        }
    }
}

async fn record(state: &Arc<AppState>, message: WebhookMessage) -> ops_core::Result<Value> {
    let running = state.running();
    let config = running.config.alertmanager.clone().unwrap_or_default();
    let store = state.state_store().await.map_err(|e| ops_core::Error::unavailable(e.message))?;
    let now = Utc::now();
    let delivery = ops_core::ids::new_id("delivery", now);
    let (mut new, mut duplicates, mut ignored) = (Vec::new(), 0, 0);
    for alert in &message.alerts {
        let Some(severity) = config.severity_of(alert.name(), alert.labels.get("severity").map(String::as_str)) else {
            ignored += 1;
            continue;
        };
        // The start to the millisecond: Alertmanager writes it with nanoseconds in a
        // notification and milliseconds in its API.
        let start = chrono::DateTime::parse_from_rfc3339(&alert.starts_at).map_or(0, |t| t.timestamp_millis());
        let key = format!("alertmanager:{}:{start}:{}", alert.fingerprint, alert.status);
        let until = now + chrono::Duration::days(REMEMBER_DAYS);
        if store.try_lease(&key, &delivery, now, until).await? {
            new.push((alert, severity));
        } else {
            duplicates += 1;
        }
    }
    let mut incident = None;
    let mut acting = Vec::new();
    if !new.is_empty() {
        let notices: Vec<AlertNotice> = new
            .iter()
            .map(|(a, severity)| AlertNotice {
                name: a.name().to_owned(),
                firing: a.status == "firing",
                summary: a.summary(),
                severity: *severity,
            })
            .collect();
        let group = match state.desk().await {
            Ok((desk, _)) => {
                let r = desk.record_alert_group(&message.group_key, message.status == "resolved", &notices, ACTOR, now);
                let r = r.await?;
                state.page_changed().await;
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "alerts not recorded on incidents");
                None
            }
        };
        incident = group.as_ref().map(|g| g.incident.clone());
        for (alert, severity) in &new {
            if alert.status != "firing" {
                continue;
            }
            let Some(runbook) = alert.runbook(&config) else { continue };
            acting.push(json!({ "alert": alert.name(), "runbook": runbook }));
            let (state, alert, group, severity) = (Arc::clone(state), (*alert).clone(), group.clone(), *severity);
            tokio::spawn(async move {
                act(&state, &alert, &runbook, group.as_ref(), severity).await;
            });
        }
    }
    Ok(json!({
        "alerts": message.alerts.len(),
        "new": new.len(),
        "duplicates": duplicates,
        "ignored": ignored,
        "incident": incident,
        "acting": acting,
    }))
}

/// Appends what happened to the group's incident (when there is one) and logs it.
async fn note(state: &AppState, group: Option<&GroupRecord>, kinds: Vec<EventKind>) {
    let Some(group) = group else { return };
    match state.desk().await {
        Ok((desk, _)) => {
            if let Err(e) = desk.record_events(&group.incident, &kinds, ACTOR, Utc::now()).await {
                tracing::warn!(incident = %group.incident, error = %e, "not recorded on the incident");
            }
        }
        Err(e) => tracing::warn!(error = %e, "not recorded on the incident"),
    }
}

fn text(t: String) -> EventKind {
    EventKind::Note { text: t, user_report: false }
}

/// The longest a runbook may take: each step's limit (a minute when it sets none, two for a
/// wait), plus five minutes to verify.
fn time_limit(rb: &ops_runbook::Runbook) -> chrono::Duration {
    let steps: i64 = rb
        .steps
        .iter()
        .map(|s| {
            let default = if s.kind.name() == "wait" { 120 } else { 60 };
            s.timeout.map_or(default, |t| i64::try_from(t.as_secs()).unwrap_or(default))
        })
        .sum();
    chrono::Duration::seconds(steps.min(24 * 3600) + 300)
}

async fn act(
    state: &Arc<AppState>,
    alert: &WebhookAlert,
    runbook: &str,
    group: Option<&GroupRecord>,
    severity: ops_core::Severity,
) {
    let running = state.running();
    let config = running.config.alertmanager.clone().unwrap_or_default();
    let name = alert.name().to_owned();
    let dir = running.config.runbooks.dir.clone();
    let catalog = match tokio::task::spawn_blocking(move || ops_runbook::Catalog::load(dir.as_deref())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return note(state, group, vec![text(format!("alert {name}: runbooks not loaded: {e}"))]).await,
        Err(e) => return tracing::error!(error = %e, "loading runbooks"),
    };
    let Ok(rb) = catalog.get(runbook).cloned() else {
        let t = format!("alert {name} names runbook {runbook:?}, which does not exist: nothing was run");
        return note(state, group, vec![text(t)]).await;
    };
    let Ok(mut ctx) = state.context() else { return };
    let Ok(store) = state.state_store().await else { return };
    ctx.state = Some(Arc::clone(&store));
    // The runbook's parameters from the alert's labels of the same names.
    let params = rb.params.keys().filter_map(|k| alert.labels.get(k).map(|v| (k.clone(), v.clone()))).collect();
    let root = group.map_or_else(|| format!("alert:{name}"), |g| g.root.clone());
    let opts = ops_runbook::RunOptions {
        params,
        incident: Some(ops_runbook::run::IncidentRef { runbook: name.clone(), check: root, severity: Some(severity) }),
        yes: false,
        actor: ACTOR.to_owned(),
        run_id: Some(ops_runbook::run::new_id(Utc::now())),
    };
    if let Err(e) = ops_runbook::engine::resolve_params(&ctx, &rb, &opts) {
        return note(state, group, vec![text(format!("alert {name}: runbook {runbook} not run: {e}"))]).await;
    }
    // Re-checked at the moment of acting: an alert that resolved meanwhile is left alone.
    if config.has_url() {
        let net = ops_probes::NetOptions::from_config(&running.config.probes);
        match ops_probes::alertmanager::still_firing(&config, &alert.fingerprint, &net).await {
            Ok(true) => {}
            Ok(false) => {
                let t = format!("alert {name} no longer fires in Alertmanager: runbook {runbook} not run");
                return note(state, group, vec![text(t)]).await;
            }
            Err(e) => {
                let t = format!("alert {name}: Alertmanager could not tell whether it still fires ({e}): not run");
                return note(state, group, vec![text(t)]).await;
            }
        }
    }
    if !rb.auto {
        hand_over(state, &ctx, &rb, &opts, &name, group).await;
        return;
    }
    let job = match state.jobs.admit("runbook", Some(&format!("runbook {runbook}"))) {
        Ok(job) => job,
        Err(crate::jobs::Refusal::Busy(m) | crate::jobs::Refusal::Full(m)) => {
            return note(state, group, vec![text(format!("alert {name}: runbook {runbook} not started: {m}"))]).await;
        }
    };
    let _slot = state.jobs.run_slot(&job, "runbook").await;
    let silence = silence(state, &ctx, &config, alert, &rb, group).await;
    let observer = crate::runbooks::JobProgress { state: Arc::clone(state), job: job.clone() };
    let result = ops_runbook::run(&ctx, &rb, &opts, &ops_runbook::Unattended, &observer).await;
    let (status, kinds) = match &result {
        Ok(run) => (
            if run.ok() { crate::jobs::JobStatus::Succeeded } else { crate::jobs::JobStatus::Failed },
            vec![EventKind::Run {
                id: run.id.clone(),
                runbook: runbook.to_owned(),
                status: run.status.as_str().to_owned(),
            }],
        ),
        Err(e) => {
            (crate::jobs::JobStatus::Failed, vec![text(format!("runbook {runbook} for alert {name} failed: {e}"))])
        }
    };
    note(state, group, kinds).await;
    if let Some(id) = silence {
        let verified = result.as_ref().is_ok_and(ops_runbook::Run::ok);
        unsilence(state, &ctx, &config, &id, verified, group).await;
    }
    match result {
        Ok(run) => state.jobs.finish(&job, status, serde_json::to_value(&run).ok(), None),
        Err(e) => state.jobs.finish(&job, status, None, Some(json!({ "kind": e.kind(), "message": e.message() }))),
    }
}

/// Sends the plan of a runbook not marked `auto` to the webhooks, for a person.
async fn hand_over(
    state: &AppState,
    ctx: &ops_core::Context,
    rb: &ops_runbook::Runbook,
    opts: &ops_runbook::RunOptions,
    name: &str,
    group: Option<&GroupRecord>,
) {
    let plan = match ops_runbook::plan(ctx, rb, opts).await {
        Ok(plan) => plan,
        Err(e) => {
            return note(state, group, vec![text(format!("alert {name}: runbook {} not planned: {e}", rb.name))]).await;
        }
    };
    // Label values came from the alert: quoted, so the command is safe to paste into a shell.
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let params: Vec<String> =
        opts.params.iter().map(|(k, v)| format!("--param {}", quote(&format!("{k}={v}")))).collect();
    let command = format!("opsctl runbook run {} {} --apply", rb.name, params.join(" ")).replace("  ", " ");
    let steps: Vec<String> = plan
        .steps
        .iter()
        .map(|s| {
            format!(
                "- {}: {:?}{}",
                s.title,
                s.outcome,
                if s.detail.is_empty() { String::new() } else { format!(" ({})", s.detail) }
            )
        })
        .collect();
    let note_text = format!(
        "alert {name}: runbook {} is not marked auto; its plan went to the webhooks for a person: {command}",
        rb.name
    );
    let notification = ops_core::ports::Notification {
        title: format!("Alert {name}: runbook {} needs a person", rb.name),
        text: format!("{}\n\nPlan:\n{}\n\nTo run it: {command}", rb.title, steps.join("\n")),
        level: ops_core::ports::NotificationLevel::Warning,
        fields: std::collections::BTreeMap::from([("alert".to_owned(), name.to_owned())]),
    };
    for n in &ctx.notifiers {
        if let Err(e) = n.notify(&notification).await {
            tracing::warn!(target = %n.target(), error = %e, "the plan was not delivered");
        }
    }
    note(state, group, vec![text(note_text)]).await;
}

/// Creates the silence of the alert's target while the runbook acts; its id, or `None` (and
/// the incident says why).
async fn silence(
    state: &AppState,
    ctx: &ops_core::Context,
    config: &ops_core::config::AlertmanagerConfig,
    alert: &WebhookAlert,
    rb: &ops_runbook::Runbook,
    group: Option<&GroupRecord>,
) -> Option<String> {
    let name = alert.name();
    if !config.silence {
        return None;
    }
    if !config.has_url() {
        let t = "no Alertmanager URL ([alertmanager] url): the target's alerts are not silenced while the runbook acts";
        note(state, group, vec![text(t.to_owned())]).await;
        return None;
    }
    let http = ctx.http.as_deref()?;
    // No change without its record: the audit log first.
    let audit = match ops_core::audit::Audit::open(&ctx.config, Some(ACTOR)) {
        Ok(a) => a,
        Err(e) => {
            note(state, group, vec![text(format!("no silence: the audit log cannot be written ({e})"))]).await;
            return None;
        }
    };
    let matchers = alert.target_matchers();
    let shown = matchers.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(", ");
    let ends = Utc::now() + time_limit(rb);
    let comment = format!("ops-server: runbook {} acts on {shown} for alert {name}", rb.name);
    match ops_probes::alertmanager::create_silence(http, config, &matchers, ends, &comment).await {
        Ok(id) => {
            let after = json!({ "silence": id, "ends_at": ends.to_rfc3339(), "alert": name, "runbook": rb.name });
            if let Err(e) = audit.record("silence", &shown, Value::Null, after, "ok") {
                tracing::error!(error = %e, "the silence's audit record was not written");
            }
            let t =
                format!("silence {id} of {shown} created until {} while runbook {} acts", ends.to_rfc3339(), rb.name);
            note(state, group, vec![text(t)]).await;
            Some(id)
        }
        Err(e) => {
            note(state, group, vec![text(format!("no silence of {shown}: {e}"))]).await;
            None
        }
    }
}

/// Expires the silence once the run ended.
async fn unsilence(
    state: &AppState,
    ctx: &ops_core::Context,
    config: &ops_core::config::AlertmanagerConfig,
    id: &str,
    verified: bool,
    group: Option<&GroupRecord>,
) {
    let Some(http) = ctx.http.as_deref() else { return };
    let why = if verified { "verification passed" } else { "the run did not succeed: the alerts reach people again" };
    let outcome = ops_probes::alertmanager::expire_silence(http, config, id).await;
    if let Ok(audit) = ops_core::audit::Audit::open(&ctx.config, Some(ACTOR)) {
        let result = match &outcome {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        let _ = audit.record("unsilence", id, json!({ "silence": id }), json!({ "reason": why }), &result);
    }
    let t = match outcome {
        Ok(()) => format!("silence {id} expired: {why}"),
        Err(e) => format!("silence {id} not expired ({e}): it ends by itself"),
    };
    note(state, group, vec![text(t)]).await;
}
