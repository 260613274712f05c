//! The S3 object store.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::upload_part::{UploadPartError, UploadPartOutput};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::ports::object_store::{ByteReader, ObjectMeta, ObjectStore, PutOptions, PutProof, PutReport, validate_key};
use crate::secret::Secret;
use crate::{Error, ErrorKind, Result};

const MIB: u64 = 1024 * 1024;
/// S3's limit on parts per upload.
pub(crate) const MAX_PARTS: u64 = 10_000;
/// S3's smallest allowed part (except the last).
pub(crate) const MIN_PART: u64 = 5 * MIB;
/// S3's largest allowed part.
const MAX_PART: u64 = 5 * 1024 * MIB;
/// Bytes per ranged request when an object is downloaded.
const RANGE: u64 = 4 * MIB;
/// Ranged requests of one download in flight: one stream from a server is often slower than
/// its disk (s3s-fs: about 100 MB/s each), and a download is read back or restored while the
/// next ranges arrive. At most this many ranges are held (16 MiB), as the segments they
/// arrived in (no copy).
const RANGES_IN_FLIGHT: usize = 4;

/// The total size in a `Content-Range` answer (`bytes 0-4194303/125000000`).
pub(crate) fn range_total(content_range: &str) -> Option<u64> {
    content_range.rsplit('/').next()?.parse().ok()
}

/// Parts uploading at once; the next part is read while all but one of them go, so at most
/// this many part buffers are held.
const UPLOADS_IN_FLIGHT: usize = 3;

/// How to reach a bucket.
#[derive(Clone)]
pub struct S3Options {
    /// Bucket.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// Custom endpoint (R2, MinIO); AWS when `None`.
    pub endpoint: Option<String>,
    /// Region (`us-east-1`; `auto` for R2).
    pub region: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// Access key id.
    pub access_key_id: Secret,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Part size when no size hint is given, and the floor otherwise (at least 5 MiB).
    pub part_size: u64,
    /// Keys per list request (at most 1000).
    pub list_page_size: i32,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3Options {
    /// Options with the defaults: region `us-east-1`, 8 MiB parts (at most three held: 24 MiB),
    /// 1000 keys per page.
    pub fn new(bucket: impl Into<String>, access_key_id: Secret, secret_access_key: Secret) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            region: "us-east-1".to_owned(),
            path_style: false,
            access_key_id,
            secret_access_key,
            part_size: 8 * MIB,
            list_page_size: 1000,
        }
    }
}

/// Part size for an upload: the configured floor, or larger when the hinted size (with 50 %
/// headroom for growth) would otherwise need more than 10,000 parts. Rounded up to a MiB.
pub(crate) fn part_size_for(floor: u64, size_hint: Option<u64>) -> u64 {
    let floor = floor.max(MIN_PART);
    let needed = size_hint.map_or(0, |s| s.saturating_add(s / 2).div_ceil(MAX_PARTS - 1));
    floor.max(needed).div_ceil(MIB).saturating_mul(MIB).min(MAX_PART)
}

/// A multipart upload neither completed nor aborted.
struct Unfinished {
    /// Full key in the bucket.
    key: String,
    upload_id: String,
    initiated: Option<DateTime<Utc>>,
}

/// An S3 bucket (under a prefix) as an object store.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    options: S3Options,
    /// Whether the server refuses a part whose SHA-256 is wrong: found out once, on the first
    /// multipart upload.
    checks_parts: std::sync::Arc<tokio::sync::OnceCell<bool>>,
}

/// What each part's digest is kept for: the proof on completion.
pub(crate) enum PartDigests {
    /// SHA-256, sent with each part (the server checks it on arrival) and compared with the
    /// server's checksum over them on completion.
    Sha256(PartChecksums),
    /// MD5, kept here only and compared with the multipart ETag on completion
    /// ([`PutProof::ServerMd5`]).
    Md5(Vec<[u8; 16]>),
}

/// S3's multipart ETag: the MD5 of the parts' MD5s, lowercase hex, then `-N`.
pub(crate) fn multipart_etag(md5s: &[[u8; 16]]) -> String {
    use md5::Digest as _;
    let mut h = md5::Md5::new();
    for d in md5s {
        h.update(d);
    }
    format!("{}-{}", hex::encode(h.finalize()), md5s.len())
}

/// The SHA-256 checksums of a multipart upload's parts, as S3 takes and returns them.
#[derive(Default)]
pub(crate) struct PartChecksums {
    /// Raw digests, in part order.
    pub(crate) digests: Vec<[u8; 32]>,
}

impl PartChecksums {
    fn base64(digest: &[u8]) -> String {
        aws_smithy_types::base64::encode(digest)
    }

    /// S3's checksum of a multipart object: the SHA-256 of the parts' digests, then `-N`.
    pub(crate) fn composite(&self) -> String {
        let mut h = Sha256::new();
        for d in &self.digests {
            h.update(d);
        }
        format!("{}-{}", Self::base64(&h.finalize()), self.digests.len())
    }
}

fn sdk_err<E: ProvideErrorMetadata + std::error::Error + 'static>(e: SdkError<E>, what: &str) -> Error {
    let status = e.raw_response().map(|r| r.status().as_u16());
    match &e {
        SdkError::DispatchFailure(d) => {
            let kind = if d.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Unavailable };
            return Error::new(kind, format!("{what}: object store unreachable"));
        }
        SdkError::TimeoutError(_) => return Error::new(ErrorKind::Timeout, format!("{what}: object store timed out")),
        _ => {}
    }
    let code = e.code().unwrap_or_default().to_owned();
    let message = e.message().unwrap_or_default().to_owned();
    let kind = match (code.as_str(), status) {
        ("NoSuchKey" | "NoSuchBucket" | "NoSuchUpload" | "NotFound", _) | (_, Some(404)) => ErrorKind::NotFound,
        ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken", _)
        | (_, Some(401 | 403)) => ErrorKind::Auth,
        ("SlowDown" | "ServiceUnavailable" | "InternalError", _) | (_, Some(500 | 502 | 503 | 504)) => {
            ErrorKind::Unavailable
        }
        ("NotImplemented", _) | (_, Some(501)) => ErrorKind::Unsupported,
        ("EntityTooLarge" | "EntityTooSmall" | "InvalidPart" | "InvalidArgument", _) | (_, Some(400)) => {
            ErrorKind::InvalidInput
        }
        _ => ErrorKind::Internal,
    };
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, true) => status.map_or_else(|| "unexpected response".to_owned(), |s| format!("http {s}")),
        (false, true) => code,
        (true, false) => message,
        (false, false) => format!("{code}: {message}"),
    };
    Error::new(kind, format!("{what}: {detail}"))
}

/// Reads until `buf` is full or the body ends; returns the bytes read.
async fn fill(body: &mut ByteReader, buf: &mut Vec<u8>, limit: usize) -> Result<usize> {
    buf.clear();
    buf.reserve(limit);
    while buf.len() < limit {
        // Straight into the part's buffer: no intermediate chunk to copy from.
        let want = u64::try_from(limit - buf.len()).unwrap_or(u64::MAX);
        let n = (&mut *body)
            .take(want)
            .read_buf(buf)
            .await
            .map_err(|e| Error::from(e).context("reading the object body"))?;
        if n == 0 {
            break;
        }
    }
    Ok(buf.len())
}

impl S3Store {
    /// Builds a client (no request is sent).
    ///
    /// # Errors
    /// `InvalidInput` for an unusable bucket or endpoint.
    pub fn new(options: S3Options) -> Result<Self> {
        if options.bucket.is_empty() {
            return Err(Error::invalid_input("s3 storage needs a bucket"));
        }
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        let creds = Credentials::new(
            options.access_key_id.expose(),
            options.secret_access_key.expose(),
            None,
            None,
            "ops-config",
        );
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(options.region.clone()))
            .credentials_provider(creds)
            .http_client(http)
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
            // A server that stops answering fails the call instead of hanging it: connecting
            // is bounded, and so is every wait for the next bytes of a response.
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .read_timeout(std::time::Duration::from_secs(120))
                    .build(),
            )
            .force_path_style(options.path_style)
            // Checksums only where S3 requires them: R2 and older servers reject the newer
            // default trailers. Integrity is ours: SHA-256 over every byte.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &options.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        Ok(Self {
            client: Client::from_conf(conf.build()),
            options,
            checks_parts: std::sync::Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// Whether the server checks the SHA-256 sent with a part: a throwaway multipart upload
    /// sends it one part with a wrong checksum, which a checking server refuses (`BadDigest`),
    /// then the same part with its right one, which it must take, then is aborted. Asked once per store; any other answer counts as "does not check", so
    /// the copy is read back instead. s3s-fs takes the wrong part; AWS S3 and SeaweedFS refuse
    /// it.
    async fn server_checks_parts(&self) -> bool {
        *self
            .checks_parts
            .get_or_init(|| async {
                let Ok(key) = self.full_key(".ops-checksum-probe") else { return false };
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.options.bucket)
                    .key(&key)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .send()
                    .await;
                let Some(upload_id) = created.ok().and_then(|c| c.upload_id().map(str::to_owned)) else {
                    return false;
                };
                const BODY: &[u8] = b"ops checksum probe";
                // Both sent as real parts are: the checksum header signed, the payload not.
                let part = |checksum: String| {
                    self.send_part(&key, &upload_id, 1, Some(checksum), ByteStream::from_static(BODY))
                };
                let wrong = part(PartChecksums::base64(&Sha256::digest(b"not these bytes"))).await;
                // Only a checksum error counts: a bare 400 may be a proxy or a policy.
                let refused = wrong
                    .as_ref()
                    .err()
                    .and_then(ProvideErrorMetadata::code)
                    .is_some_and(|code| matches!(code, "BadDigest" | "XAmzContentChecksumMismatch"));
                // The control: the same part with its right checksum is taken, and a checksum
                // the server echoes is that one.
                let right = PartChecksums::base64(&Sha256::digest(BODY));
                let taken = refused
                    && part(right.clone())
                        .await
                        .is_ok_and(|out| out.checksum_sha256().is_none_or(|echoed| echoed == right));
                self.abort(&key, &upload_id).await;
                tracing::debug!(location = %self.location(), refused, taken, "checksum probe");
                refused && taken
            })
            .await
    }

    /// Creates the bucket unless it exists (for fresh MinIO/R2 setups and tests).
    ///
    /// # Errors
    /// `Unavailable`, `Auth`, `Conflict` when the name is taken by another account.
    pub async fn ensure_bucket(&self) -> Result<()> {
        let bucket = &self.options.bucket;
        if self.client.head_bucket().bucket(bucket).send().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = sdk_err(e, &format!("create bucket {bucket}"));
                if err.message().contains("BucketAlreadyOwnedByYou") { Ok(()) } else { Err(err) }
            }
        }
    }

    /// Keys of multipart uploads started under this store's prefix and neither completed nor
    /// aborted. They cost storage until removed; a healthy store has none.
    ///
    /// # Errors
    /// `Unavailable`, `Auth`.
    pub async fn pending_uploads(&self) -> Result<Vec<String>> {
        Ok(self.unfinished_uploads().await?.into_iter().map(|u| self.relative(&u.key).to_owned()).collect())
    }

    /// Every unfinished multipart upload under this store's prefix (`prod/`, never
    /// `prod-eu/…`), all pages of the listing.
    async fn unfinished_uploads(&self) -> Result<Vec<Unfinished>> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut upload_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.options.bucket)
                .prefix(self.key_prefix())
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_marker.take())
                .send()
                .await
                .map_err(|e| sdk_err(e, &format!("list unfinished uploads of {}", self.location())))?;
            out.extend(page.uploads().iter().filter_map(|u| {
                Some(Unfinished {
                    key: u.key()?.to_owned(),
                    upload_id: u.upload_id()?.to_owned(),
                    initiated: to_utc(u.initiated()),
                })
            }));
            key_marker = page.next_key_marker().map(str::to_owned);
            upload_marker = page.next_upload_id_marker().map(str::to_owned);
            if page.is_truncated() != Some(true) || (key_marker.is_none() && upload_marker.is_none()) {
                return Ok(out);
            }
        }
    }

    /// The prefix of every key of this store (`prefix/`, or nothing for the whole bucket).
    fn key_prefix(&self) -> String {
        if self.options.prefix.is_empty() { String::new() } else { format!("{}/", self.options.prefix) }
    }

    fn full_key(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(if self.options.prefix.is_empty() { key.to_owned() } else { format!("{}/{key}", self.options.prefix) })
    }

    fn relative<'a>(&self, full: &'a str) -> &'a str {
        if self.options.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.options.prefix).and_then(|k| k.strip_prefix('/')).unwrap_or(full)
        }
    }

    async fn put_multipart(
        &self,
        full: &str,
        first: Vec<u8>,
        body: &mut ByteReader,
        part_size: usize,
        hasher: &mut Sha256,
        content_type: Option<&str>,
    ) -> Result<(u64, u32, PutProof)> {
        let what = format!("multipart upload of {full}");
        let checked = self.server_checks_parts().await;
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.options.bucket)
            .key(full)
            .set_content_type(content_type.map(str::to_owned))
            .set_checksum_algorithm(checked.then_some(ChecksumAlgorithm::Sha256))
            .send()
            .await
            .map_err(|e| sdk_err(e, &what))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let mut digests =
            if checked { PartDigests::Sha256(PartChecksums::default()) } else { PartDigests::Md5(Vec::new()) };
        let result = self.upload_parts(full, &upload_id, first, body, part_size, hasher, &mut digests).await;
        match result {
            Ok((size, parts)) => {
                let completed = CompletedMultipartUpload::builder().set_parts(Some(parts.clone())).build();
                let done = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.options.bucket)
                    .key(full)
                    .upload_id(&upload_id)
                    .multipart_upload(completed)
                    .send()
                    .await;
                let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
                match done {
                    Ok(out) => {
                        let proof = match &digests {
                            PartDigests::Sha256(sums) => self.check_composite(full, sums, out.checksum_sha256()).await,
                            // Another ETag (not MD5-based, or not these bytes) proves
                            // nothing: the copy is read back, which finds any difference.
                            PartDigests::Md5(md5s) => Ok(
                                if out
                                    .e_tag()
                                    .is_some_and(|t| t.trim_matches('"').eq_ignore_ascii_case(&multipart_etag(md5s)))
                                {
                                    PutProof::ServerMd5
                                } else {
                                    PutProof::None
                                },
                            ),
                        };
                        if proof.is_err() {
                            // Completed, but not with the bytes sent: nothing may stay.
                            let _ = self.client.delete_object().bucket(&self.options.bucket).key(full).send().await;
                        }
                        Ok((size, count, proof?))
                    }
                    Err(e) => {
                        self.abort(full, &upload_id).await;
                        Err(sdk_err(e, &what))
                    }
                }
            }
            Err(e) => {
                self.abort(full, &upload_id).await;
                Err(e)
            }
        }
    }

    /// Compares the server's checksum of a completed multipart object (from the completion's
    /// answer, else from `HeadObject` with checksums) with the one computed here. A server
    /// that gives none proves nothing (the caller reads the copy back); a different one is an
    /// integrity error.
    async fn check_composite(&self, full: &str, sums: &PartChecksums, answered: Option<&str>) -> Result<PutProof> {
        let expected = sums.composite();
        let stored = match answered {
            Some(c) => Some(c.to_owned()),
            // An answer that cannot be had proves nothing either way: the copy is read back.
            None => match self
                .client
                .head_object()
                .bucket(&self.options.bucket)
                .key(full)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
            {
                Ok(head) => head.checksum_sha256().map(str::to_owned),
                Err(_) => None,
            },
        };
        match stored {
            None => Ok(PutProof::None),
            // Some servers leave out the part count.
            Some(c) if c == expected || Some(c.as_str()) == expected.split('-').next() => Ok(PutProof::ServerSha256),
            Some(c) => Err(Error::integrity(format!(
                "{full}: the server's SHA-256 of the parts is {c}, the parts sent have {expected}"
            ))),
        }
    }

    /// The whole object in one streamed answer.
    async fn get_whole(&self, full: &str, what: &str) -> Result<ByteReader> {
        let out = self
            .client
            .get_object()
            .bucket(&self.options.bucket)
            .key(full)
            .send()
            .await
            .map_err(|e| sdk_err(e, what))?;
        Ok(Box::pin(out.body.into_async_read()))
    }

    /// Sends part `number` of an upload. With a SHA-256 the header is signed and the server
    /// checks the body against it, so the body is not hashed a second time for the signature.
    fn send_part(
        &self,
        full: &str,
        upload_id: &str,
        number: i32,
        checksum: Option<String>,
        body: ByteStream,
    ) -> impl Future<Output = std::result::Result<UploadPartOutput, SdkError<UploadPartError>>> + Send + 'static {
        let signed = checksum.is_some();
        let request = self
            .client
            .upload_part()
            .bucket(&self.options.bucket)
            .key(full)
            .upload_id(upload_id)
            .part_number(number)
            .set_checksum_sha256(checksum)
            .body(body);
        async move { if signed { request.customize().disable_payload_signing().send().await } else { request.send().await } }
    }

    async fn abort(&self, full: &str, upload_id: &str) {
        let r = self
            .client
            .abort_multipart_upload()
            .bucket(&self.options.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = r {
            tracing::warn!(key = full, error = %sdk_err(e, "abort multipart upload"), "could not abort a failed upload");
        }
    }

    /// Uploads the parts, up to [`UPLOADS_IN_FLIGHT`] at a time, the next one read while the
    /// others go: the network and the producer (compression) overlap, and at most
    /// `UPLOADS_IN_FLIGHT` part buffers are held. Each part's buffer moves into its request (no copy). A
    /// failed part stops the others; the caller aborts the upload.
    #[allow(clippy::too_many_arguments)] // the upload's identity, its body, and the two digests kept
    async fn upload_parts(
        &self,
        full: &str,
        upload_id: &str,
        first: Vec<u8>,
        body: &mut ByteReader,
        part_size: usize,
        hasher: &mut Sha256,
        digests: &mut PartDigests,
    ) -> Result<(u64, Vec<CompletedPart>)> {
        struct Uploads(std::collections::VecDeque<tokio::task::JoinHandle<Result<CompletedPart>>>);
        impl Drop for Uploads {
            fn drop(&mut self) {
                // On an error (or a dropped caller) nothing keeps uploading into an aborted upload.
                for h in &self.0 {
                    h.abort();
                }
            }
        }
        async fn finish_oldest(uploads: &mut Uploads, parts: &mut Vec<CompletedPart>) -> Result<()> {
            if let Some(h) = uploads.0.pop_front() {
                let part = h.await.map_err(|e| Error::internal(format!("a part upload task failed: {e}")))??;
                parts.push(part);
            }
            Ok(())
        }
        let mut uploads = Uploads(std::collections::VecDeque::new());
        let pool = PartPool::default();
        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut current = first;
        let mut number = 0i32;
        loop {
            number = number.saturating_add(1);
            if u64::try_from(number).unwrap_or(u64::MAX) > MAX_PARTS {
                return Err(Error::invalid_input(format!(
                    "{full}: object exceeds {MAX_PARTS} parts of {part_size} bytes; give a larger size hint"
                )));
            }
            size += current.len() as u64;
            let checksum = match digests {
                // The server checks this part against its SHA-256 before taking it.
                PartDigests::Sha256(sums) => {
                    let digest: [u8; 32] = Sha256::digest(&current).into();
                    sums.digests.push(digest);
                    Some(PartChecksums::base64(&digest))
                }
                PartDigests::Md5(md5s) => {
                    md5s.push(<md5::Md5 as md5::Digest>::digest(&current).into());
                    None
                }
            };
            let sending = self.send_part(
                full,
                upload_id,
                number,
                checksum.clone(),
                ByteStream::from(pool.wrap(std::mem::take(&mut current))),
            );
            let what = format!("upload part {number} of {full}");
            uploads.0.push_back(tokio::spawn(async move {
                let sent = sending.await.map_err(|e| sdk_err(e, &what))?;
                if let (Some(ours), Some(theirs)) = (&checksum, sent.checksum_sha256())
                    && ours != theirs
                {
                    return Err(Error::integrity(format!("{what}: the server has SHA-256 {theirs}, sent {ours}")));
                }
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(sent.e_tag().map(str::to_owned))
                    .set_checksum_sha256(checksum)
                    .build())
            }));
            if uploads.0.len() >= UPLOADS_IN_FLIGHT {
                finish_oldest(&mut uploads, &mut parts).await?;
            }
            let mut next = pool.take(part_size);
            let n = fill(body, &mut next, part_size).await?;
            if n == 0 {
                break;
            }
            hasher.update(&next);
            current = next;
        }
        while !uploads.0.is_empty() {
            finish_oldest(&mut uploads, &mut parts).await?;
        }
        Ok((size, parts))
    }
}

/// The buffers of one upload's parts. A part's buffer comes back when its request is done with
/// it and carries a later part: an upload holds [`UPLOADS_IN_FLIGHT`] buffers from start to
/// end, instead of freeing and allocating one per part, which the allocator may keep as free
/// memory beside the live buffers (glibc raises its mmap threshold after the first free).
#[derive(Clone, Default)]
struct PartPool(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl PartPool {
    /// An empty buffer of at least `capacity` bytes, a returned one when there is one.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let returned = self.0.lock().ok().and_then(|mut free| free.pop());
        match returned {
            Some(mut buf) => {
                buf.clear();
                buf.reserve(capacity);
                buf
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// `buf` as a request body that returns to the pool when the last reference is dropped.
    fn wrap(&self, buf: Vec<u8>) -> bytes::Bytes {
        bytes::Bytes::from_owner(PooledPart { buf, pool: self.clone() })
    }
}

struct PooledPart {
    buf: Vec<u8>,
    pool: PartPool,
}

impl AsRef<[u8]> for PooledPart {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledPart {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.0.lock() {
            free.push(std::mem::take(&mut self.buf));
        }
    }
}

/// One ranged request of a download, not started until polled: the segments it arrived in.
type RangeDownload = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<bytes::Bytes>>> + Send>>;

/// A range's body, whole: the segments as they arrived, `len` bytes in all.
async fn whole_range(body: ByteStream, len: u64, what: &str) -> Result<Vec<bytes::Bytes>> {
    let segments: Vec<bytes::Bytes> =
        body.collect().await.map_err(|e| Error::unavailable(format!("{what}: {e}")))?.into_segments().collect();
    let got: u64 = segments.iter().map(|b| b.len() as u64).sum();
    if got != len {
        return Err(Error::unavailable(format!("{what}: the server sent {got} bytes, not {len}")));
    }
    Ok(segments)
}

/// One range of an object, whole; `If-Match` its ETag, when the first answer had one.
async fn fetch_range(
    client: Client,
    bucket: String,
    full: String,
    (etag, version): (Option<String>, Option<String>),
    start: u64,
    end: u64,
) -> Result<Vec<bytes::Bytes>> {
    let what = format!("download of {full} (bytes {start}-{end})");
    let out = client
        .get_object()
        .bucket(&bucket)
        .key(&full)
        .range(format!("bytes={start}-{end}"))
        .set_if_match(etag.clone())
        .set_version_id(version)
        .send()
        .await
        .map_err(|e| sdk_err(e, &what))?;
    // Not every server honours `If-Match` (s3s-fs does not): the answer's own ETag must match too.
    if etag.is_some() && out.e_tag() != etag.as_deref() {
        return Err(Error::conflict(format!("{what}: the object was replaced during the download")));
    }
    whole_range(out.body, end - start + 1, &what).await
}

fn to_utc(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> String {
        if self.options.prefix.is_empty() {
            format!("s3://{}", self.options.bucket)
        } else {
            format!("s3://{}/{}", self.options.bucket, self.options.prefix)
        }
    }

    async fn put(&self, key: &str, mut body: ByteReader, options: &PutOptions) -> Result<PutReport> {
        let full = self.full_key(key)?;
        let part_size = usize::try_from(part_size_for(self.options.part_size, options.size_hint))
            .map_err(|_| Error::invalid_input("part size does not fit in memory"))?;
        let mut hasher = Sha256::new();
        let mut first = Vec::with_capacity(part_size.min(64 * 1024 * 1024));
        let n = fill(&mut body, &mut first, part_size).await?;
        hasher.update(&first);
        let (size, parts, proof) = if n < part_size {
            // Fits in one request.
            let what = format!("upload of {full}");
            self.client
                .put_object()
                .bucket(&self.options.bucket)
                .key(&full)
                .set_content_type(options.content_type.clone())
                .body(ByteStream::from(first))
                .send()
                .await
                .map_err(|e| sdk_err(e, &what))?;
            (n as u64, 1, PutProof::None)
        } else {
            self.put_multipart(&full, first, &mut body, part_size, &mut hasher, options.content_type.as_deref()).await?
        };
        Ok(PutReport { key: key.to_owned(), size, sha256: hex::encode(hasher.finalize()), parts, proof })
    }

    /// Downloads in ranges of [`RANGE`], [`RANGES_IN_FLIGHT`] at once and handed on in order;
    /// every range after the first must come from the same version of the object (`If-Match`
    /// its ETag, and the same ETag in the answer) and be as long as asked. A server that ignores ranges sends the whole object
    /// in one answer, which is streamed as it is.
    async fn get(&self, key: &str) -> Result<ByteReader> {
        let full = self.full_key(key)?;
        let what = format!("download of {full}");
        let first = self
            .client
            .get_object()
            .bucket(&self.options.bucket)
            .key(&full)
            .range(format!("bytes=0-{}", RANGE - 1))
            .send()
            .await;
        let first = match first {
            Ok(f) => f,
            // An empty object has no byte 0: asked again, whole.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return self.get_whole(&full, &what).await;
            }
            Err(e) => return Err(sdk_err(e, &what)),
        };
        // No range: the whole object came (a server without ranges).
        let Some(content_range) = first.content_range() else { return Ok(Box::pin(first.body.into_async_read())) };
        let total = match range_total(content_range) {
            Some(total) if total <= RANGE => return Ok(Box::pin(first.body.into_async_read())),
            Some(total) if first.e_tag().is_some() => total,
            // No total (`bytes 0-…/*`), or nothing to pin the later ranges to: one plain GET.
            _ => {
                return self.get_whole(&full, &what).await;
            }
        };
        let etag = first.e_tag().map(str::to_owned);
        let version = first.version_id().map(str::to_owned);
        let client = self.client.clone();
        let bucket = self.options.bucket.clone();
        let first_body = first.body;
        let first_key = full.clone();
        let first_fetch = async move {
            let what = format!("download of {first_key} (bytes 0-{})", RANGE - 1);
            whole_range(first_body, RANGE, &what).await
        };
        let count = total.div_ceil(RANGE);
        let range = move |i: u64| -> RangeDownload {
            let (start, end) = (i * RANGE, ((i + 1) * RANGE).min(total) - 1);
            Box::pin(fetch_range(
                client.clone(),
                bucket.clone(),
                full.clone(),
                (etag.clone(), version.clone()),
                start,
                end,
            ))
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        tokio::spawn(async move {
            // Ranges are asked for only as earlier ones are handed on: memory stays bounded
            // whatever the object's size.
            let mut in_flight: futures::stream::FuturesOrdered<RangeDownload> = futures::stream::FuturesOrdered::new();
            in_flight.push_back(Box::pin(first_fetch));
            let mut next = 1;
            while next < count && in_flight.len() < RANGES_IN_FLIGHT {
                in_flight.push_back(range(next));
                next += 1;
            }
            while let Some(done) = futures::StreamExt::next(&mut in_flight).await {
                let segments = match done {
                    Ok(segments) => segments,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
                for segment in segments {
                    // A reader that went away stops the download.
                    if tx.send(Ok(segment)).await.is_err() {
                        return;
                    }
                }
                if next < count {
                    in_flight.push_back(range(next));
                    next += 1;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        Ok(Box::pin(tokio_util::io::StreamReader::new(Box::pin(stream))))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let full = self.full_key(key)?;
        match self.client.head_object().bucket(&self.options.bucket).key(&full).send().await {
            Ok(h) => Ok(Some(ObjectMeta {
                key: key.to_owned(),
                size: h.content_length().and_then(|l| u64::try_from(l).ok()).unwrap_or(0),
                last_modified: to_utc(h.last_modified()),
            })),
            Err(e) => {
                let e = sdk_err(e, &format!("head of {full}"));
                if e.kind() == ErrorKind::NotFound { Ok(None) } else { Err(e) }
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let full_prefix = if self.options.prefix.is_empty() {
            prefix.to_owned()
        } else {
            format!("{}/{prefix}", self.options.prefix)
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.options.bucket)
                .prefix(&full_prefix)
                .max_keys(self.options.list_page_size)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_err(e, &format!("list of {}", self.location())))?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                out.push(ObjectMeta {
                    key: self.relative(k).to_owned(),
                    size: obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    last_modified: to_utc(obj.last_modified()),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn sweep_incomplete(&self, older_than: std::time::Duration) -> Result<u64> {
        let cutoff = Utc::now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let uploads = match self.unfinished_uploads().await {
            Ok(u) => u,
            // Some S3-compatible servers cannot list them: nothing can be found to remove.
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                tracing::debug!(location = %self.location(), "the server cannot list unfinished uploads");
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        // A backup can upload for hours: only uploads begun before the cutoff go.
        for u in uploads.iter().filter(|u| u.initiated.is_some_and(|at| at < cutoff)) {
            self.client
                .abort_multipart_upload()
                .bucket(&self.options.bucket)
                .key(&u.key)
                .upload_id(&u.upload_id)
                .send()
                .await
                .map_err(|e| sdk_err(e, &format!("abort of the unfinished upload of {}", u.key)))?;
            removed += 1;
        }
        Ok(removed)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.options.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| sdk_err(e, &format!("delete of {full}")))?;
        Ok(())
    }
}
