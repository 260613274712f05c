//! The crate's error: `ops-core`'s, so kinds and messages flow unchanged to the binaries.
//!
//! Error policy: every public function returns [`Result`]; failures name what failed
//! (`pg_dump failed (exit status: 1): …`, `upload to s3://…: …`) and never a secret.

pub use ops_core::{Error, ErrorKind, Result};
