//! One function per command: load what it needs, call the library, render.

use std::collections::BTreeMap;
use std::io::Write;

use ops_core::config::load;
use ops_core::{Error, Result};

use crate::render::{self, write_json};
use crate::{Cli, Outcome, exit};

/// `opsctl config check`.
pub(crate) fn config_check(cli: &Cli, env: &BTreeMap<String, String>, out: &mut dyn Write) -> Result<Outcome> {
    match load(cli.config.as_deref(), env) {
        Ok(loaded) => {
            let file = loaded.path.as_ref().map(|p| p.display().to_string());
            if cli.json {
                write_json(out, &serde_json::json!({ "valid": true, "file": file, "config": loaded.config }))?;
            } else {
                render::config_summary(out, file.as_deref(), &loaded.config)?;
            }
            Ok(Outcome { code: exit::OK })
        }
        Err(e) => {
            if cli.json {
                write_json(out, &serde_json::json!({ "valid": false, "error": e }))?;
                Ok(Outcome { code: exit::INVALID_INPUT })
            } else {
                Err(Error::from(e))
            }
        }
    }
}

/// `opsctl keys generate`.
pub(crate) fn keys_generate(cli: &Cli, out: &mut dyn Write) -> Result<Outcome> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness from the OS: {e}")))?;
    let key = hex::encode(bytes);
    if cli.json {
        write_json(out, &serde_json::json!({ "key": key }))?;
    } else {
        writeln!(out, "{key}")?;
    }
    Ok(Outcome { code: exit::OK })
}
