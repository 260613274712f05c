//! `POST /api/v1/alertmanager`: Alertmanager's webhook (payload version 4), behind its own
//! bearer keys (`alertmanager.webhook-keys`).
//!
//! - **Checked first, recorded second.** A payload that does not parse or is out of bounds is
//!   400 and records nothing; one over [`MAX_BODY`] is 413; a request without a valid key 401.
//! - **Once.** Each alert is taken once per fingerprint, start and status, whoever delivers it
//!   and however often (Alertmanager repeats notifications, and may carry one alert twice): a
//!   lease in the state store keyed by the three, which one request wins. A resolved alert also
//!   takes its firing key, so a firing delivery that arrives after it is stale and never acts.
//!   When the alerts cannot be recorded the leases go back and the answer is 5xx, so
//!   Alertmanager's retry is taken. Deliveries are remembered [`REMEMBER_DAYS`] days.
//! - **One incident per alert group**, with each alert on its log (`ops_incident::alerts`);
//!   `Watchdog`-like and low-severity alerts as configured; a `priority` label (`P1` … `P4`,
//!   as the generated rules set) gives the severity.
//! - **Acting.** A firing alert that names a runbook (its `runbook` label or annotation, or
//!   `alertmanager.runbooks`) runs it when the runbook is `auto`, within its guards;
//!   otherwise its plan goes to the webhooks for a person. A resolved alert never acts. Work is
//!   bounded: one run per runbook and target however many alerts ask (in one notification,
//!   or while a run on that target is under way), at most [`MAX_ACTIONS`] runs started from
//!   one notification, four acting at once. Right before acting, once its turn came,
//!   Alertmanager is asked whether the alert still fires (neither resolved nor silenced by a
//!   person); without an Alertmanager URL the incident says that nobody could be asked.
//! - **Silences.** While the runbook acts, a silence of the target's alerts (never a whole
//!   exporter's: an alert with only `instance` and `job` is silenced by its name too), ending
//!   after the runbook's time limit, is created through Alertmanager's API v2 (its intent in
//!   the audit log first) and expired when the run ends, even when the run panics; both are
//!   on the incident and in the audit log. Without an Alertmanager URL the step is skipped,
//!   and the incident says so.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use ops_incident::EventKind;
use ops_incident::alerts::{AlertNotice, GroupRecord};
use ops_probes::alertmanager::{WebhookAlert, WebhookMessage};
use serde_json::{Value, json};

use crate::openapi::{AlertAction, AlertIntake};
use crate::state::AppState;

/// The largest payload taken (Alertmanager's own default limit on alerts per notification is
/// far below it).
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a repeated delivery of one alert is recognised (Alertmanager's resend intervals
/// are hours).
const REMEMBER_DAYS: i64 = 30;

/// The actor of what the webhook records.
const ACTOR: &str = "alertmanager";

/// Runbooks started from one notification at most (one per runbook and target).
const MAX_ACTIONS: usize = 20;

/// Runbooks acting for alerts at once, across notifications; the others wait their turn.
static ACTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

fn bad_request(message: &str) -> (StatusCode, Json<Value>) {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": { "kind": "invalid-input", "message": message } })))
}

/// Alertmanager's webhook (`webhook_configs` with `http_config.authorization`): each alert
/// once per fingerprint, start and status; recorded on its group's incident; its `auto`
/// runbook run after re-checking it still fires. A malformed payload is 400 and records nothing.
#[utoipa::path(post, path = "/api/v1/alertmanager", tag = "alertmanager",
    request_body(content = WebhookMessage, content_type = "application/json"),
    responses((status = 200, body = crate::openapi::AlertIntake), (status = "4XX", body = crate::openapi::ErrorBody),
              (status = "5XX", body = crate::openapi::ErrorBody)))]
pub(crate) async fn intake(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    intake_answer(&state, &body).await.into_response()
}

async fn intake_answer(state: &Arc<AppState>, body: &[u8]) -> Result<Json<AlertIntake>, (StatusCode, Json<Value>)> {
    if body.len() > MAX_BODY {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({ "error": { "kind": "invalid-input", "message": format!("at most {MAX_BODY} bytes") } })),
        ));
    }
    let message = WebhookMessage::parse(body).map_err(|why| bad_request(&why))?;
    // In a task of its own: a request cut off (its time limit, Alertmanager hanging up) does
    // not stop it between taking the alerts and recording them or starting their runs.
    let recording = {
        let state = Arc::clone(state);
        tokio::spawn(async move { record(&state, message).await })
    };
    let recorded =
        recording.await.unwrap_or_else(|e| Err(ops_core::Error::internal(format!("recording stopped: {e}"))));
    match recorded {
        Ok(v) => Ok(Json(v)),
        Err(e) => {
            let api = crate::error::ApiError::Core(e);
            let status = axum::response::IntoResponse::into_response(api).status();
            Err((
                status,
                Json(json!({ "error": { "kind": "unavailable", "message": "the alerts could not be recorded" } })),
            ))
        }
    }
}

async fn record(state: &Arc<AppState>, message: WebhookMessage) -> ops_core::Result<AlertIntake> {
    let running = state.running();
    let config = running.config.alertmanager.clone().unwrap_or_default();
    let store = state.state_store().await.map_err(|e| ops_core::Error::unavailable(e.message))?;
    let now = Utc::now();
    prune_now_and_then(store.as_ref(), now).await;
    let delivery = ops_core::ids::new_id("delivery", now);
    let mut taken: Vec<String> = Vec::new();
    let result = take_and_record(state, &config, store.as_ref(), &message, &delivery, now, &mut taken).await;
    if result.is_err() {
        // Nothing was recorded: the leases go back, so Alertmanager's retry is taken.
        for key in &taken {
            if let Err(e) = store.release_lease(key, &delivery).await {
                tracing::warn!(error = %e, "an alert's lease was not given back; it expires by itself");
            }
        }
    }
    result
}

/// Forgets the deliveries older than [`REMEMBER_DAYS`], at most every ten minutes.
async fn prune_now_and_then(store: &dyn ops_core::ports::StateStore, now: chrono::DateTime<Utc>) {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    if now.timestamp() - last < 600
        || LAST
            .compare_exchange(
                last,
                now.timestamp(),
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_err()
    {
        return;
    }
    match store.prune_leases("alertmanager:", now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(forgotten = n, "alert deliveries older than {REMEMBER_DAYS} days forgotten"),
        Err(e) => tracing::warn!(error = %e, "old alert deliveries not forgotten"),
    }
}

/// The lease that says an alert's delivery was taken.
fn lease_key(alert: &WebhookAlert, status: &str) -> String {
    // The start to the millisecond: Alertmanager writes it with nanoseconds in a
    // notification and milliseconds in its API.
    let start = chrono::DateTime::parse_from_rfc3339(&alert.starts_at).map_or(0, |t| t.timestamp_millis());
    format!("alertmanager:{}:{start}:{status}", alert.fingerprint)
}

/// Takes each alert of the payload once, records the new ones on the group's incident and
/// starts what they ask for; `taken` collects the leases this delivery took.
async fn take_and_record(
    state: &Arc<AppState>,
    config: &ops_core::config::AlertmanagerConfig,
    store: &dyn ops_core::ports::StateStore,
    message: &WebhookMessage,
    delivery: &str,
    now: chrono::DateTime<Utc>,
    taken: &mut Vec<String>,
) -> ops_core::Result<AlertIntake> {
    let until = now + chrono::Duration::days(REMEMBER_DAYS);
    let (mut new, mut duplicates, mut ignored) = (Vec::new(), 0, 0);
    let mut seen = std::collections::HashSet::new();
    for alert in &message.alerts {
        let Some(severity) = config.severity_of_alert(alert.name(), &alert.labels) else {
            ignored += 1;
            continue;
        };
        let key = lease_key(alert, &alert.status);
        // The same alert twice in one payload is taken once (the delivery holds its own
        // lease, so the store would grant it again).
        if !seen.insert(key.clone()) || !store.try_lease(&key, delivery, now, until).await? {
            duplicates += 1;
            continue;
        }
        taken.push(key);
        if alert.status == "resolved" {
            // A firing delivery of the same alert that arrives after this one is stale.
            let firing = lease_key(alert, "firing");
            if seen.insert(firing.clone()) && store.try_lease(&firing, delivery, now, until).await? {
                taken.push(firing);
            }
        }
        new.push((alert, severity));
    }
    let mut incident = None;
    let mut acting = Vec::new();
    if new.is_empty() {
        return Ok(AlertIntake { alerts: message.alerts.len(), new: 0, duplicates, ignored, incident, acting });
    }
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
    // One run per runbook and target, however many alerts of the payload ask for it.
    let mut asked = std::collections::HashSet::new();
    let mut dropped = Vec::new();
    for (alert, severity) in &new {
        if alert.status != "firing" {
            continue;
        }
        let Some(runbook) = alert.runbook(config) else { continue };
        if !asked.insert((runbook.clone(), alert.target_matchers())) {
            continue;
        }
        if acting.len() >= MAX_ACTIONS {
            dropped.push(format!("{} ({runbook})", alert.name()));
            continue;
        }
        acting.push(AlertAction { alert: alert.name().to_owned(), runbook: runbook.clone() });
        let (state, alert, group, severity) = (Arc::clone(state), (*alert).clone(), group.clone(), *severity);
        tokio::spawn(async move {
            act(&state, &alert, &runbook, group.as_ref(), severity).await;
        });
    }
    if !dropped.is_empty() {
        let more = if dropped.len() > 10 { format!(" and {} more", dropped.len() - 10) } else { String::new() };
        let t = format!(
            "{} more alerts of this notification asked for runbooks; at most {MAX_ACTIONS} are started from one \
             notification, so these were not: {}{more}",
            dropped.len(),
            dropped.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
        );
        note(state, group.as_ref(), vec![text(t)]).await;
    }
    Ok(AlertIntake { alerts: message.alerts.len(), new: new.len(), duplicates, ignored, incident, acting })
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
    let not_run = |why: String| text(format!("alert {name}: runbook {runbook} not run: {why}"));
    let dir = running.config.runbooks.dir.clone();
    let catalog = match tokio::task::spawn_blocking(move || ops_runbook::Catalog::load(dir.as_deref())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return note(state, group, vec![not_run(format!("runbooks not loaded: {e}"))]).await,
        Err(e) => return note(state, group, vec![not_run(format!("loading runbooks stopped: {e}"))]).await,
    };
    let Ok(rb) = catalog.get(runbook).cloned() else {
        let t = format!("alert {name} names runbook {runbook:?}, which does not exist: nothing was run");
        return note(state, group, vec![text(t)]).await;
    };
    let mut ctx = match state.context() {
        Ok(ctx) => ctx,
        Err(e) => return note(state, group, vec![not_run(format!("the configuration is not usable: {e}"))]).await,
    };
    let store = match state.state_store().await {
        Ok(store) => store,
        Err(e) => return note(state, group, vec![not_run(format!("the state store is not reachable: {e}"))]).await,
    };
    ctx.state = Some(Arc::clone(&store));
    // The runbook's parameters from the alert's labels of the same names.
    let params = rb.params.keys().filter_map(|k| alert.labels.get(k).map(|v| (k.clone(), v.clone()))).collect();
    // The failing check: the `probe` label of the generated rules (`container:web`), from which
    // the runbook's service, database or cache is known; else the alert group's root.
    let probe = alert.labels.get("probe").filter(|p| {
        p.len() <= 255 && p.contains(':') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
    });
    let check = probe.cloned().unwrap_or_else(|| group.map_or_else(|| format!("alert:{name}"), |g| g.root.clone()));
    let opts = ops_runbook::RunOptions {
        params,
        incident: Some(ops_runbook::run::IncidentRef { runbook: name.clone(), check, severity: Some(severity) }),
        yes: false,
        actor: ACTOR.to_owned(),
        run_id: Some(ops_runbook::run::new_id(Utc::now())),
    };
    let resolved = match ops_runbook::engine::resolve_params(&ctx, &rb, &opts) {
        Ok(resolved) => resolved,
        Err(e) => return note(state, group, vec![not_run(e.to_string())]).await,
    };
    if !rb.auto {
        if still_fires(state, &config, alert, runbook, group).await {
            hand_over(state, &ctx, &rb, &opts, &name, group).await;
        }
        return;
    }
    // One run of a runbook on one target at a time, whoever started it: another alert about
    // the same target is covered by the run under way.
    let job = match state.jobs.admit("runbook", Some(&crate::runbooks::exclusive_key(runbook, &resolved))) {
        Ok(job) => job,
        Err(crate::jobs::Refusal::Busy(m)) => {
            let t =
                format!("alert {name}: runbook {runbook} is already acting on this target ({m}): not started again");
            return note(state, group, vec![text(t)]).await;
        }
        Err(crate::jobs::Refusal::Full(m)) => return note(state, group, vec![not_run(m)]).await,
    };
    let job = JobGuard { state, job: Some(job) };
    let Ok(_turn) = ACTING.acquire().await else { return };
    let _slot = state.jobs.run_slot(job.id(), "runbook").await;
    // Re-checked at the moment of acting: an alert that resolved (or that a person silenced)
    // while this one waited its turn is left alone.
    if !still_fires(state, &config, alert, runbook, group).await {
        job.finish(crate::jobs::JobStatus::Succeeded, Some(json!({ "run": false })), None);
        return;
    }
    let silence = silence(state, &ctx, &config, alert, &rb, group).await;
    let observer = crate::runbooks::JobProgress { state: Arc::clone(state), job: job.id().to_owned() };
    // In a task of its own, so a panic in the run still expires the silence and ends the job.
    let run = {
        let (ctx, rb, opts) = (ctx.clone(), rb.clone(), opts.clone());
        tokio::spawn(async move { ops_runbook::run(&ctx, &rb, &opts, &ops_runbook::Unattended, &observer).await })
    };
    let result = match run.await {
        Ok(result) => result,
        Err(e) => Err(ops_core::Error::internal(format!("the run stopped unexpectedly ({e})"))),
    };
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
        Ok(run) => job.finish(status, serde_json::to_value(&run).ok(), None),
        Err(e) => job.finish(status, None, Some(json!({ "kind": e.kind(), "message": e.message() }))),
    }
}

/// An admitted job that ends however `act` ends: finished as failed when dropped unfinished
/// (a panic), so its slot on the target is never held until a restart.
struct JobGuard<'a> {
    state: &'a AppState,
    job: Option<String>,
}

impl JobGuard<'_> {
    fn id(&self) -> &str {
        self.job.as_deref().unwrap_or_default()
    }

    fn finish(mut self, status: crate::jobs::JobStatus, report: Option<Value>, error: Option<Value>) {
        if let Some(job) = self.job.take() {
            self.state.jobs.finish(&job, status, report, error);
        }
    }
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            let error = json!({ "kind": "internal", "message": "the alert's run stopped unexpectedly" });
            self.state.jobs.finish(&job, crate::jobs::JobStatus::Failed, None, Some(error));
        }
    }
}

/// The silences ops-server made and has not expired yet: an alert they silence still fires
/// for the re-check.
static OURS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn ours() -> std::sync::MutexGuard<'static, Vec<String>> {
    OURS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the alert still fires, asked of Alertmanager now; when it does not, or cannot
/// tell, the incident says so and nothing is done. Without an Alertmanager URL nobody can be
/// asked: the incident says that the alert was taken as still firing.
async fn still_fires(
    state: &AppState,
    config: &ops_core::config::AlertmanagerConfig,
    alert: &WebhookAlert,
    runbook: &str,
    group: Option<&GroupRecord>,
) -> bool {
    let name = alert.name();
    if !config.has_url() {
        let t = format!(
            "alert {name}: no Alertmanager URL ([alertmanager] url), so whether it still fires was not re-checked \
             before runbook {runbook}"
        );
        note(state, group, vec![text(t)]).await;
        return true;
    }
    let net = ops_probes::NetOptions::from_config(&state.running().config.probes);
    let mine = ours().clone();
    let t = match ops_probes::alertmanager::still_firing(config, &alert.fingerprint, &mine, &net).await {
        Ok(true) => return true,
        Ok(false) => {
            format!("alert {name} no longer fires in Alertmanager (resolved or silenced): runbook {runbook} not run")
        }
        Err(e) => {
            format!("alert {name}: Alertmanager could not tell whether it still fires ({e}): runbook {runbook} not run")
        }
    };
    note(state, group, vec![text(t)]).await;
    false
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
    let Some(http) = ctx.http.as_deref() else {
        let t = "no HTTP client (the config's HTTP settings did not load): the target's alerts are not silenced";
        note(state, group, vec![text(t.to_owned())]).await;
        return None;
    };
    // No change without its record: the audit log first.
    let audit = match ops_core::audit::Audit::open(&ctx.config, Some(ACTOR)) {
        Ok(a) => a,
        Err(e) => {
            note(state, group, vec![text(format!("no silence: the audit log cannot be written ({e})"))]).await;
            return None;
        }
    };
    let matchers = silence_matchers(alert);
    let shown = matchers.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(", ");
    let ends = Utc::now() + time_limit(rb);
    let intent = json!({ "ends_at": ends.to_rfc3339(), "alert": name, "runbook": rb.name });
    if let Err(e) = audit.record("silence", &shown, Value::Null, intent, "started") {
        note(state, group, vec![text(format!("no silence: the audit log cannot be written ({e})"))]).await;
        return None;
    }
    let comment = format!("ops-server: runbook {} acts on {shown} for alert {name}", rb.name);
    let created = ops_probes::alertmanager::create_silence(http, config, &matchers, ends, &comment).await;
    let (after, result) = match &created {
        Ok(id) => {
            (json!({ "silence": id, "ends_at": ends.to_rfc3339(), "alert": name, "runbook": rb.name }), "ok".to_owned())
        }
        Err(e) => (Value::Null, e.to_string()),
    };
    if let Err(e) = audit.record("silence", &shown, Value::Null, after, &result) {
        tracing::error!(error = %e, "the silence's audit record was not written");
    }
    match created {
        Ok(id) => {
            ours().push(id.clone());
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

/// What the silence matches: the alert's target labels; when those are only the scrape's
/// `instance` and `job` (an exporter, not a target), the alert's name too, so the silence never
/// hides every alert of an exporter (ops-server's own among them).
fn silence_matchers(alert: &WebhookAlert) -> Vec<(String, String)> {
    let mut matchers = alert.target_matchers();
    if matchers.iter().all(|(k, _)| k == "instance" || k == "job") {
        matchers.push(("alertname".to_owned(), alert.name().to_owned()));
    }
    matchers
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
    ours().retain(|s| s != id);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)]) -> WebhookAlert {
        WebhookAlert {
            status: "firing".to_owned(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            annotations: std::collections::BTreeMap::new(),
            starts_at: "2030-01-01T00:00:00.123456789Z".to_owned(),
            fingerprint: "ab12".to_owned(),
        }
    }

    #[test]
    fn a_silence_never_hides_a_whole_exporter() {
        let only_scrape = alert(&[("alertname", "ScheduledJobMissed"), ("instance", "ops:9090"), ("job", "ops")]);
        let names: Vec<String> = silence_matchers(&only_scrape).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["instance", "job", "alertname"]);
        let target = alert(&[("alertname", "ServiceDown"), ("instance", "ops:9090"), ("service", "web")]);
        let names: Vec<String> = silence_matchers(&target).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["instance", "service"]);
        let bare = alert(&[("alertname", "Anything")]);
        assert_eq!(silence_matchers(&bare), [("alertname".to_owned(), "Anything".to_owned())]);
    }

    #[test]
    fn a_delivery_is_keyed_to_the_millisecond_of_its_start() {
        let a = alert(&[("alertname", "X")]);
        let mut b = a.clone();
        b.starts_at = "2030-01-01T00:00:00.123Z".to_owned();
        assert_eq!(lease_key(&a, "firing"), lease_key(&b, "firing"));
        assert_ne!(lease_key(&a, "firing"), lease_key(&a, "resolved"));
        assert!(lease_key(&a, "firing").starts_with("alertmanager:ab12:"));
    }
}
