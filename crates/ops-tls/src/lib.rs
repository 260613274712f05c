//! `ops-tls`: certificate inspection of TLS endpoints and PEM files, and planned renewal.
//!
//! It replaces the runbooks' `echo | openssl s_client -connect host:443 | openssl x509 -noout
//! -dates` and the look at certbot's `live/` directory:
//!
//! - [`check_endpoint`] connects over rustls (ring provider only), records the whole chain the
//!   server presents even when it does not verify, verifies it with webpki itself, and reports
//!   the leaf's facts, the TLS version and cipher suite, the verdict with its reason, and the
//!   earliest expiry of the presented and of the verified chain separately (a spare,
//!   soon-expiring cross-signed certificate the verified path does not use raises no alarm).
//! - [`check_path`] and [`check_pem`] inspect PEM files and directories (certbot's
//!   `live/<domain>/{cert,chain,fullchain}.pem`), including the order of a full chain.
//! - [`renew_plan`], [`apply_renew_plan`] and [`renew`] run renewal commands through the
//!   [`ContainerRuntime`](ops_core::ports::ContainerRuntime) port only when a certificate is
//!   under the threshold, then check again.
//! - [`metrics`] turns reports into the Prometheus samples users already alert on.
//!
//! Status is the runbooks': `warn` below 30 days, `critical` below 14 days or expired, both
//! configurable in [`CheckOptions`]. A check that ran and found a problem (refused connection,
//! timeout, untrusted chain) is a report with [`Status::Critical`](ops_core::Status::Critical)
//! and findings; `Err` only means the input was unusable.
//!
//! ```
//! use ops_core::Status;
//! use ops_tls::{CheckOptions, check_pem};
//!
//! // A certificate for example.com valid from 2030-01-01 to 2030-04-01, checked on 2030-01-31.
//! let key = rcgen::KeyPair::generate().unwrap();
//! let mut params = rcgen::CertificateParams::new(vec!["example.com".to_owned()]).unwrap();
//! params.not_before = rcgen::date_time_ymd(2030, 1, 1);
//! params.not_after = rcgen::date_time_ymd(2030, 4, 1);
//! let pem = params.self_signed(&key).unwrap().pem();
//!
//! let options = CheckOptions {
//!     server_name: Some("www.example.com".to_owned()),
//!     now: Some("2030-01-31T00:00:00Z".parse().unwrap()),
//!     ..CheckOptions::default()
//! };
//! let report = check_pem("cert.pem", pem.as_bytes(), &options);
//! assert_eq!(report.days_left, Some(60));
//! assert_eq!(report.certificates[0].public_key.curve.as_deref(), Some("P-256"));
//! // The certificate does not cover www.example.com: critical, with the reason.
//! assert_eq!(report.hostname_match, Some(false));
//! assert_eq!(report.status, Status::Critical);
//! assert!(report.findings[0].message.contains("hostname mismatch"));
//!
//! // Fifty days later, 10 days are left: below the 14-day threshold.
//! let options = CheckOptions { now: Some("2030-03-22T00:00:00Z".parse().unwrap()), ..CheckOptions::default() };
//! let report = check_pem("cert.pem", pem.as_bytes(), &options);
//! assert_eq!((report.days_left, report.status), (Some(10), Status::Critical));
//! ```

mod certificate;
mod chain;
mod endpoint;
mod error;
mod expiry;
mod file;
mod hostname;
pub mod metrics;
mod options;
mod renew;
mod trust;

pub use certificate::{CertificateInfo, KeyType, PublicKeyInfo};
pub use chain::{ChainOrder, ChainProblem, ChainVerification};
pub use endpoint::{ConnectionFailure, ConnectionStage, EndpointReport, check_endpoint};
pub use error::{Error, Result};
pub use expiry::{days_left, expiry_status};
pub use file::{FileReport, PathReport, check_path, check_pem};
pub use hostname::{dns_name_matches, hostname_matches};
pub use metrics::{MetricSample, endpoint_metrics, file_metrics, help as metrics_help};
pub use options::CheckOptions;
pub use renew::{
    CommandOutcome, RenewCommand, RenewOptions, RenewPlan, RenewReport, TargetReport, apply_renew_plan, renew,
    renew_plan,
};
