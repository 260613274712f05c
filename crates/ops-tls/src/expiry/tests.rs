//! Days left and the runbooks' thresholds; option parsing and validation.

use chrono::{DateTime, Duration, Utc};
use ops_core::Status;

use super::*;

fn now() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

fn status_in(d: Duration) -> Status {
    expiry_status(now() + d, now(), &CheckOptions::default())
}

#[test]
fn days_left_rounds_down_and_is_negative_once_expired() {
    assert_eq!(days_left(now() + Duration::days(10), now()), 10);
    assert_eq!(days_left(now() + Duration::days(10) - Duration::seconds(1), now()), 9);
    assert_eq!(days_left(now() + Duration::hours(23), now()), 0);
    assert_eq!(days_left(now() - Duration::seconds(1), now()), -1);
    assert_eq!(days_left(now() - Duration::days(3), now()), -3);
}

#[test]
fn runbook_thresholds() {
    assert_eq!(status_in(Duration::days(90)), Status::Ok);
    assert_eq!(status_in(Duration::days(30)), Status::Ok);
    assert_eq!(status_in(Duration::days(30) - Duration::seconds(1)), Status::Warn);
    assert_eq!(status_in(Duration::days(20)), Status::Warn);
    assert_eq!(status_in(Duration::days(14)), Status::Warn);
    assert_eq!(status_in(Duration::days(14) - Duration::seconds(1)), Status::Critical);
    assert_eq!(status_in(Duration::days(10)), Status::Critical);
    assert_eq!(status_in(Duration::seconds(1)), Status::Critical);
    assert_eq!(status_in(Duration::zero()), Status::Critical);
    assert_eq!(status_in(-Duration::days(1)), Status::Critical);
}

#[test]
fn expired_is_critical_even_with_zero_thresholds() {
    let options = CheckOptions { warn_days: 0, critical_days: 0, ..CheckOptions::default() };
    assert_eq!(expiry_status(now() + Duration::hours(1), now(), &options), Status::Ok);
    assert_eq!(expiry_status(now() - Duration::hours(1), now(), &options), Status::Critical);
}

#[test]
fn thresholds_are_configurable() {
    let options = CheckOptions { warn_days: 60, critical_days: 7, ..CheckOptions::default() };
    assert_eq!(expiry_status(now() + Duration::days(45), now(), &options), Status::Warn);
    assert_eq!(expiry_status(now() + Duration::days(10), now(), &options), Status::Warn);
    assert_eq!(expiry_status(now() + Duration::days(6), now(), &options), Status::Critical);
}

#[test]
fn options_are_kebab_case_and_reject_unknown_fields() {
    let options: CheckOptions =
        serde_json::from_str(r#"{"warn-days": 20, "critical-days": 5, "now": "2030-01-01T00:00:00Z"}"#).unwrap();
    assert_eq!(options.warn_days, 20);
    assert_eq!(options.critical_days, 5);
    assert_eq!(options.timeout_ms, 10_000);
    assert_eq!(options.now, Some(now()));
    assert!(serde_json::from_str::<CheckOptions>(r#"{"warn_days": 20}"#).is_err());
}

#[test]
fn options_out_of_range_are_rejected() {
    let options = CheckOptions { warn_days: 10, critical_days: 20, ..CheckOptions::default() };
    assert!(options.validate().is_err());
    let options = CheckOptions { timeout_ms: 0, ..CheckOptions::default() };
    assert!(options.validate().is_err());
    let options = CheckOptions { server_name: Some("not a name".into()), ..CheckOptions::default() };
    assert!(options.validate().is_err());
    assert!(CheckOptions::default().validate().is_ok());
}
