//! [`FsStore`]: [`ObjectStore`](crate::ports::ObjectStore) on a local directory.
//!
//! A put writes to a hidden temporary file in the target's directory, fsyncs it, renames it
//! into place and fsyncs the directory, so a reader never sees a partial object and a crash
//! leaves either the old object or the new one.

mod store;
#[cfg(test)]
mod tests;

pub use store::FsStore;
