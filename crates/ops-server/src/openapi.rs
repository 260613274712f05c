//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every `/api/v1` route, generated
//! from the handlers' `#[utoipa::path]` annotations and the `ToSchema` derives of the types
//! they answer with (the library crates' `openapi` feature). The bodies here are the answers
//! whose shape belongs to the server itself; handlers build them, so the document cannot
//! drift from what is sent.

use std::collections::BTreeMap;

use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// Every error answer: `{"error": {"kind": "not-found", "message": "…"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    pub(crate) error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable kind (`unauthenticated`, `not-found`, `invalid-input`, `conflict`, …).
    pub(crate) kind: String,
    /// For a person; never a secret or an internal detail.
    pub(crate) message: String,
    /// More, for some kinds: the location of a config error, the seconds to wait after a 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<serde_json::Value>,
}

/// `202 Accepted`: a long operation runs as a job.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobAccepted {
    /// The job's id.
    pub(crate) job: String,
    /// `queued`.
    pub(crate) status: String,
    /// Where its status and report are: `/api/v1/jobs/{id}`.
    pub(crate) href: String,
}

/// `GET /api/v1/config` and `POST /api/v1/config/reload`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConfigAnswer<'a> {
    /// Present after a reload: the new file was read and is running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reloaded: Option<bool>,
    /// The running configuration, secrets as `***`.
    pub(crate) config: &'a ops_core::config::OpsConfig,
}

/// `GET /api/v1/backups`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BackupList {
    /// Newest first.
    pub(crate) backups: Vec<ops_backup::BackupEntry>,
}

/// `GET /api/v1/probes`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProbeList<'a> {
    /// When the triage these probes belong to started.
    pub(crate) started_at: DateTime<Utc>,
    /// The probes that pass the filters.
    pub(crate) probes: Vec<&'a ops_probes::ProbeReport>,
}

/// `GET /api/v1/tls`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TlsList<'a> {
    /// Every `[[tls]]` target that could be checked.
    pub(crate) targets: &'a [ops_tls::TargetReport],
    /// Targets that could not be checked at all, and why.
    pub(crate) errors: Vec<NamedError<'a>>,
}

/// A target and why it could not be checked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NamedError<'a> {
    /// The target's name.
    pub(crate) name: &'a str,
    /// Why.
    pub(crate) error: &'a str,
}

/// `POST /api/v1/actions`: the plan, or what applying it did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActionAnswer {
    /// Whether anything was done.
    pub(crate) applied: bool,
    /// Without `"apply": true` (or with nothing to act on): what would be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) plan: Option<ops_act::ActionPlan>,
    /// With `"apply": true`: what was done, target by target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) report: Option<ops_act::ActionReport>,
}

/// Adds the boolean `flag` to an object schema, or to each object of a `oneOf` (a tagged
/// enum): the bodies whose options refuse unknown fields plus one flag (`confirm`, `apply`),
/// read by `backups::options_and_flag`. An `allOf` of the two would contradict itself.
fn with_flag(schema: RefOr<Schema>, flag: &str, description: &str, required: bool) -> RefOr<Schema> {
    fn add(object: &mut Object, flag: &str, description: &str, required: bool) {
        let property = ObjectBuilder::new().schema_type(Type::Boolean).description(Some(description)).build();
        object.properties.insert(flag.to_owned(), RefOr::T(Schema::Object(property)));
        if required {
            object.required.push(flag.to_owned());
        }
    }
    match schema {
        RefOr::T(Schema::Object(mut object)) => {
            add(&mut object, flag, description, required);
            RefOr::T(Schema::Object(object))
        }
        RefOr::T(Schema::OneOf(mut one_of)) => {
            for item in &mut one_of.items {
                if let RefOr::T(Schema::Object(object)) = item {
                    add(object, flag, description, required);
                }
            }
            RefOr::T(Schema::OneOf(one_of))
        }
        other => other,
    }
}

/// Body of `POST /api/v1/actions`: an action (`{"action": "kill-idle", "older-than-secs":
/// 600}`) plus `"apply"`.
pub(crate) struct ActionBody;

impl PartialSchema for ActionBody {
    fn schema() -> RefOr<Schema> {
        with_flag(
            <ops_act::Action as PartialSchema>::schema(),
            "apply",
            "Act; without it only the plan is returned.",
            false,
        )
    }
}

impl ToSchema for ActionBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <ops_act::Action as ToSchema>::schemas(schemas);
    }
}

/// Body of `POST /api/v1/restores`: the restore options plus `"confirm": true`.
pub(crate) struct RestoreBody;

impl PartialSchema for RestoreBody {
    fn schema() -> RefOr<Schema> {
        let options = <ops_backup::RestoreOptions as PartialSchema>::schema();
        with_flag(options, "confirm", "Must be true: a restore replaces a database.", false)
    }
}

impl ToSchema for RestoreBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <ops_backup::RestoreOptions as ToSchema>::schemas(schemas);
    }
}

/// One runbook of the catalog.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RunbookSummary<'a> {
    /// Its name (`database-down`).
    pub(crate) name: &'a str,
    /// Its title.
    pub(crate) title: &'a str,
    /// The problems and alert names it answers.
    pub(crate) applies_to: &'a [String],
    /// Whether an alert or a schedule may run it without a person.
    pub(crate) auto: bool,
    /// The severity it is written for.
    pub(crate) severity: Option<ops_core::Severity>,
    /// Its parameters.
    pub(crate) params: &'a BTreeMap<String, ops_runbook::format::Param>,
    /// How many steps it has.
    pub(crate) steps: usize,
    /// Shipped with ops (else read from `[runbooks] dir`).
    pub(crate) built_in: bool,
}

/// `GET /api/v1/runbooks`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunbookList<'a> {
    /// Every runbook, built-in and the team's.
    pub(crate) runbooks: Vec<RunbookSummary<'a>>,
}

/// `GET /api/v1/runbooks/{name}`: the summary, its text and its steps.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RunbookDetail<'a> {
    /// Its name.
    pub(crate) name: &'a str,
    /// Its title.
    pub(crate) title: &'a str,
    /// The problems and alert names it answers.
    pub(crate) applies_to: &'a [String],
    /// Whether an alert or a schedule may run it without a person.
    pub(crate) auto: bool,
    /// The severity it is written for.
    pub(crate) severity: Option<ops_core::Severity>,
    /// Its parameters.
    pub(crate) params: &'a BTreeMap<String, ops_runbook::format::Param>,
    /// Shipped with ops.
    pub(crate) built_in: bool,
    /// The Markdown text.
    pub(crate) text: &'a str,
    /// Its steps, in order.
    pub(crate) steps: Vec<StepSummary<'a>>,
}

/// One step of a runbook.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct StepSummary<'a> {
    /// Its id.
    pub(crate) id: &'a str,
    /// `check`, `action`, `wait`, `manual`, …
    pub(crate) kind: &'a str,
    /// Its line in the runbook's text.
    pub(crate) line: usize,
    /// What a failure does.
    pub(crate) on_failure: bool,
    /// The condition it runs under.
    pub(crate) when: Option<&'a str>,
}

/// `202` of `POST /api/v1/runbooks/{name}/runs`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RunAccepted {
    /// The run's id.
    pub(crate) run: String,
    /// The job that runs it.
    pub(crate) job: String,
    /// `queued`.
    pub(crate) status: String,
    /// `/api/v1/runs/{run}`.
    pub(crate) href: String,
    /// `/api/v1/jobs/{job}`.
    pub(crate) job_href: String,
}

/// `GET /api/v1/runs`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunList {
    /// Newest first.
    pub(crate) runs: Vec<ops_runbook::Run>,
}

/// `POST /api/v1/runs/{id}/approve`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Approved {
    /// The run.
    pub(crate) run: String,
    /// The step that goes on.
    pub(crate) step: u32,
    /// Who approved it (a key's fingerprint).
    pub(crate) approved_by: String,
}

/// `GET /api/v1/incidents`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IncidentList {
    /// Newest first.
    pub(crate) incidents: Vec<ops_incident::Incident>,
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InternalStatus {
    /// Each component with why it has its status.
    pub(crate) components: Vec<ComponentState>,
    /// Statuses set by hand, by component.
    pub(crate) overrides: BTreeMap<String, ops_status::model::Override>,
    /// Scheduled maintenance windows.
    pub(crate) maintenances: Vec<ops_status::model::Maintenance>,
}

/// One component of [`InternalStatus`].
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ComponentState {
    /// Its name.
    pub(crate) name: String,
    /// Its status.
    pub(crate) status: ops_status::model::ComponentStatus,
    /// Why.
    pub(crate) reason: String,
    /// Since when.
    pub(crate) since: DateTime<Utc>,
    /// The checks it is made of.
    pub(crate) checks: Vec<String>,
}

/// `POST /api/v1/status/overrides`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OverrideSet {
    /// The component.
    pub(crate) component: String,
    /// The status now set; `null` when cleared.
    pub(crate) status: Option<ops_status::model::ComponentStatus>,
    /// Whether an override was removed.
    pub(crate) cleared: bool,
}

/// `DELETE /api/v1/status/maintenances/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Cancelled {
    /// The maintenance's id.
    pub(crate) cancelled: String,
}

/// `GET /api/v1/schedule`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    /// Every `[[schedule]]` entry.
    pub(crate) jobs: Vec<ops_core::schedule::JobStatus>,
}

/// `GET /api/v1/schedule/{name}/runs`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduledRunList {
    /// Newest first.
    pub(crate) runs: Vec<ops_core::ports::state::ScheduledRun>,
}

/// `POST /api/v1/alertmanager`: what the notification did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertIntake {
    /// Alerts in the notification.
    pub(crate) alerts: usize,
    /// Seen for the first time (fingerprint, start and status).
    pub(crate) new: usize,
    /// Delivered before (by this or another replica).
    pub(crate) duplicates: usize,
    /// Ignored by `[alertmanager] ignore` or a low severity.
    pub(crate) ignored: usize,
    /// The group's incident.
    pub(crate) incident: Option<String>,
    /// The runbooks started or handed to a person, by alert.
    pub(crate) acting: Vec<AlertAction>,
}

/// One alert a runbook answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertAction {
    /// The alert's name.
    pub(crate) alert: String,
    /// The runbook.
    pub(crate) runbook: String,
}

/// The bearer key every `/api/v1` route asks for.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`API_KEYS` (read) or `ADMIN_KEYS` (read and act); `ALERTMANAGER_WEBHOOK_KEYS` for the \
                         webhook. Also accepted as `X-API-Key: KEY`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ops-server",
        description = "The API of ops-server: the checks, backups, runbooks, incidents, status and schedule of \
                       one Docker-hosted stack. Read routes take a read or admin key; routes that change \
                       anything take an admin key.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        crate::routes::get_config,
        crate::routes::reload_config,
        crate::routes::openapi_json,
        crate::backups::list,
        crate::backups::start_backup,
        crate::backups::verify,
        crate::backups::dr_test,
        crate::backups::restore,
        crate::backups::job,
        crate::checks::triage,
        crate::checks::probes,
        crate::checks::tls,
        crate::perf::analyze,
        crate::perf::act,
        crate::runbooks::list,
        crate::runbooks::show,
        crate::runbooks::plan,
        crate::runbooks::start,
        crate::runbooks::list_runs,
        crate::runbooks::get_run,
        crate::runbooks::approve,
        crate::incidents::list,
        crate::incidents::get,
        crate::incidents::report,
        crate::incidents::open,
        crate::incidents::note,
        crate::incidents::update,
        crate::incidents::ack,
        crate::incidents::resolve,
        crate::status::internal,
        crate::status::set_override,
        crate::status::add_maintenance,
        crate::status::cancel_maintenance,
        crate::scheduler::list,
        crate::scheduler::runs,
        crate::alerts::intake,
    ),
    modifiers(&BearerKey),
    security(("key" = [])),
    tags(
        (name = "config", description = "The running configuration"),
        (name = "backups", description = "PostgreSQL backups, verification, DR tests and restores, as jobs"),
        (name = "checks", description = "Triage, probes, certificates and performance"),
        (name = "runbooks", description = "Runbooks as code and their runs"),
        (name = "incidents", description = "Incidents, updates and post-incident reports"),
        (name = "status", description = "The status page's components, overrides and maintenance"),
        (name = "schedule", description = "The [[schedule]] entries and their ledger"),
        (name = "alertmanager", description = "Alertmanager's webhook"),
    )
)]
pub(crate) struct ApiDoc;

/// The document as JSON, built once.
pub(crate) fn document() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or(serde_json::Value::Null))
}

/// The answer of `GET /api/v1/openapi.json`.
pub(crate) fn answer() -> Json<&'static serde_json::Value> {
    Json(document())
}
