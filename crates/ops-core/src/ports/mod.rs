//! Ports: the traits through which every capability reaches the outside world.
//!
//! Each port is small, typed and object-safe (`Arc<dyn Port>`), and no adapter library's type
//! appears in a signature. Real adapters live in [`crate::adapters`]; mocks are generated
//! with the `mocks` feature.

pub mod cache;
pub mod container;
pub mod database;
pub mod http;
pub mod notifier;
pub mod object_store;
pub mod state;

pub use cache::{Cache, CacheInfo, CachePing, KeySample, KeySize, QueueLength};
pub use container::{
    BuildCacheRecord, COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, ContainerDetails, ContainerFilter,
    ContainerRuntime, ContainerState, ContainerStats, ContainerSummary, DiskContainer, DiskImage, DiskUsage,
    DiskVolume, EngineDisk, EnginePrunePlan, EnginePruneReport, EnginePruneTarget, ExecOutput, ExecSpec, HealthStatus,
    Healthcheck, ImageInfo, LogLine, LogOptions, LogStream, RestartPolicy, RunSpec, RunningContainer, RuntimeInfo,
};
pub use database::{
    Backend, BackendCheck, BackendList, BackendSignal, ConnectionStats, Database, DatabaseConnector, DatabaseStats,
    DumpFormat, DumpOptions, DumpOutput, DumpStream, HeldLock, IndexStats, LockAttempt, PerfSnapshot, PgClient,
    PipeReader, Readiness, RestoreOutcome, SequenceStats, ServerVersion, SignalOutcome, Snapshot, SqlValue,
    StatementStats, TableInfo, TableStats,
};
pub use http::{HttpClient, HttpRequest, HttpResponse};
pub use notifier::{Delivery, Notification, NotificationLevel, Notifier};
pub use object_store::{ByteReader, ObjectMeta, ObjectStore, PutOptions, PutProof, PutReport};
pub use state::{
    Approval, BudgetDecision, BudgetRequest, COMPONENT_STATUSES, ComponentDay, IncidentQuery, MAX_EVENTS,
    MAX_LEDGER_PER_JOB, NewEvent, RunQuery, ScheduleQuery, ScheduledRun, StateStore, StoredEvent, StoredIncident,
    StoredRun,
};
