//! `opsctl`: the command-line shell over the ops SDK. See `ops_cli` for the commands.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(ops_cli::main_impl())
}
