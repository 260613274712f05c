//! [`S3Store`]: [`ObjectStore`](crate::ports::ObjectStore) on an S3-compatible bucket (AWS S3,
//! Cloudflare R2, MinIO), through aws-sdk-s3 with rustls and ring.
//!
//! Puts stream with bounded memory: one part buffer at a time. Small objects go up in one
//! request; larger ones as a multipart upload of equal-sized parts (R2 requires equal parts),
//! the part size chosen from the size hint so an object never needs more than 10,000 parts.
//! Any failure aborts the multipart upload, so nothing is left behind.

mod store;
#[cfg(test)]
mod tests;

pub use store::{S3Options, S3Store};
