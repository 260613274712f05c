//! Integration tests: every port's contract against its real adapter, and the binaries.
//!
//! Containers come from images built locally by `cargo xtask test-env` and are started by
//! testcontainers on random 127.0.0.1 ports. Without a Docker engine these tests fail with a
//! message saying how to get one; they never skip.

mod alerts;
mod backup;
mod by_hand;
mod checks;
mod cli;
mod disk;
mod docker;
mod drill;
mod harness;
mod incidents;
mod notifier;
mod object_store;
mod openapi;
mod perf_cli;
mod perf_pg;
mod perf_stack;
mod postgres;
mod probes_local;
mod probes_net;
mod redis;
mod restore;
mod rules;
mod runbooks;
mod safety;
mod safety_server;
mod schedule;
mod server;
mod state;
mod support_browser;
mod tls;
mod triage;
