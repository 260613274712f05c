//! `ops-status`: the public status page. Components are made of checks and take their status
//! from the checks' last results (all failing is a major outage, some a partial outage, a
//! warning degraded performance), with maintenance windows and a person's override on top.
//! Open incidents show their public updates only: internal notes and evidence never reach the
//! page. Each observation adds a sample per component, so the page shows 90 days of daily
//! history.
//!
//! The page comes in three forms from one [`StatusPage`]: server-rendered HTML without
//! JavaScript, Atlassian Statuspage v2 JSON (`summary.json`, `status.json`, …), and an Atom
//! feed; [`export`] writes them as static files or uploads them to an object store.
//!
//! ```
//! use ops_status::model::ComponentStatus;
//! use ops_status::build::component_id;
//!
//! assert_eq!(ComponentStatus::parse("major-outage"), Some(ComponentStatus::MajorOutage));
//! assert_eq!(component_id("Payments API"), "payments-api");
//! ```

pub mod build;
pub mod export;
pub mod model;
pub mod render;

pub use build::{StatusBoard, StatusOptions};
pub use model::{ComponentStatus, StatusPage};
