//! `ops-server`: the HTTP API over the ops SDK. See `ops_server` for routes and auth.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(ops_server::main_impl())
}
