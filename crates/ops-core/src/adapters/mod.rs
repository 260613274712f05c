//! Real adapters, one folder each, behind cargo features.
//!
//! Each translates its library's types and errors into the port's, so nothing above this
//! module knows bollard, sqlx, redis, aws-sdk-s3 or reqwest.

#[cfg(feature = "docker")]
pub mod docker;
pub mod fs;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "webhook")]
pub mod webhook;

/// The last `max` characters of a process's stderr, for error messages.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().rev().nth(max) {
        Some((i, _)) => format!("…{}", &text[i..]),
        None => text.to_owned(),
    }
}
