//! `ops-tls`: certificate inspection of TLS endpoints and PEM files.
//!
//! This crate is part of the workspace skeleton; its checks arrive with the TLS issue.
