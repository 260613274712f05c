//! ObjectStore contract, run against the S3-compatible server and the filesystem.

use std::pin::Pin;
use std::task::{Context, Poll};

use ops_core::adapters::fs::FsStore;
use ops_core::adapters::s3::{S3Options, S3Store};
use ops_core::ports::{ContainerRuntime, ExecSpec, ObjectStore, PutOptions, PutProof};
use ops_core::{ErrorKind, Secret};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::harness::{S3_ACCESS_KEY, S3_SECRET_KEY, require_docker, s3};

const MIB: usize = 1024 * 1024;

/// Deterministic pseudo-random bytes (incompressible, unlike zeros).
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Yields `ok` bytes, then an error: a producer dying mid-upload.
struct DiesAfter {
    ok: usize,
}

impl AsyncRead for DiesAfter {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.ok == 0 {
            return Poll::Ready(Err(std::io::Error::other("pg_dump died")));
        }
        let n = self.ok.min(buf.remaining()).min(64 * 1024);
        buf.put_slice(&vec![7u8; n]);
        self.ok -= n;
        Poll::Ready(Ok(()))
    }
}

async fn get_all(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    let mut v = Vec::new();
    store.get(key).await.unwrap().read_to_end(&mut v).await.unwrap();
    v
}

/// The contract every ObjectStore keeps. `part` is the multipart part size (ignored by stores
/// without parts); `expect_parts` says whether large objects go up in several parts, and
/// `big_proof` what the store proves about them.
async fn contract(store: &dyn ObjectStore, part: usize, expect_parts: bool, big_proof: PutProof) {
    let small = b"-- PostgreSQL database dump complete\n".to_vec();
    let r =
        store.put("db/small.sql", Box::pin(std::io::Cursor::new(small.clone())), &PutOptions::default()).await.unwrap();
    assert_eq!(r.size, small.len() as u64);
    assert_eq!(r.sha256, hex::encode(Sha256::digest(&small)));
    assert_eq!(r.parts, 1);
    assert_eq!(r.proof, PutProof::None, "a single request is read back");
    let meta = store.head("db/small.sql").await.unwrap().expect("exists");
    assert_eq!(meta.size, small.len() as u64);
    assert!(meta.last_modified.is_some());
    assert_eq!(get_all(store, "db/small.sql").await, small);

    // Larger than one part: a multipart upload, read back byte for byte.
    let big = payload(2 * part + part / 2, 42);
    let r = store.put("db/big.bin", Box::pin(std::io::Cursor::new(big.clone())), &PutOptions::default()).await.unwrap();
    assert_eq!(r.size, big.len() as u64);
    assert_eq!(r.sha256, hex::encode(Sha256::digest(&big)));
    assert_eq!(r.parts, if expect_parts { 3 } else { 1 });
    assert_eq!(r.proof, big_proof);
    let back = get_all(store, "db/big.bin").await;
    assert_eq!(back.len(), big.len());
    assert!(back == big, "content differs");

    // An empty object reads back empty (no byte 0 to ask a range of).
    store.put("db/empty.bin", Box::pin(std::io::Cursor::new(Vec::new())), &PutOptions::default()).await.unwrap();
    assert!(get_all(store, "db/empty.bin").await.is_empty());
    store.delete("db/empty.bin").await.unwrap();

    // Listing by prefix, across page boundaries, sorted.
    for i in 0..7 {
        let body = format!("object {i}").into_bytes();
        store
            .put(&format!("page/{i:02}.txt"), Box::pin(std::io::Cursor::new(body)), &PutOptions::default())
            .await
            .unwrap();
    }
    let listed = store.list("page/").await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, (0..7).map(|i| format!("page/{i:02}.txt")).collect::<Vec<_>>());
    assert_eq!(listed[3].size, 8);
    let everything = store.list("").await.unwrap();
    assert_eq!(everything.len(), 9);
    assert!(store.list("nothing-here/").await.unwrap().is_empty());

    // A failed put leaves nothing (and keeps an older object under another key intact).
    let e = store.put("db/partial.bin", Box::pin(DiesAfter { ok: part + part / 2 }), &PutOptions::default()).await;
    assert!(e.is_err(), "a failing body fails the put");
    assert_eq!(store.head("db/partial.bin").await.unwrap(), None);
    assert!(!store.list("db/").await.unwrap().iter().any(|o| o.key.contains("partial")));

    // Delete, idempotently; missing objects are NotFound / None.
    store.delete("db/small.sql").await.unwrap();
    store.delete("db/small.sql").await.unwrap();
    assert_eq!(store.head("db/small.sql").await.unwrap(), None);
    let e = store.get("db/small.sql").await.err().expect("missing object");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let e =
        store.put("../escape", Box::pin(std::io::Cursor::new(Vec::new())), &PutOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn fs_object_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path().join("backups"));
    contract(&store, 5 * MIB, false, PutProof::None).await;
    assert!(store.location().starts_with("file://"));
}

fn s3_store(endpoint: &str, bucket: &str, prefix: &str, secret: &str) -> S3Store {
    let mut o = S3Options::new(bucket, Secret::new(S3_ACCESS_KEY), Secret::new(secret));
    o.endpoint = Some(endpoint.to_owned());
    o.path_style = true;
    o.prefix = prefix.to_owned();
    o.part_size = 5 * MIB as u64;
    o.list_page_size = 2;
    S3Store::new(o).unwrap()
}

#[tokio::test]
async fn s3_object_store_contract() {
    let (c, endpoint) = s3().await;
    let store = s3_store(&endpoint, "ops-backups", "daily", S3_SECRET_KEY);
    store.ensure_bucket().await.unwrap();
    store.ensure_bucket().await.expect("idempotent");
    // s3s-fs takes a part whatever SHA-256 comes with it, but its multipart ETag is the MD5 of
    // the MD5s of the parts it stored: that proves a multipart copy (a single request is read
    // back).
    contract(&store, 5 * MIB, true, PutProof::ServerMd5).await;
    assert_eq!(store.location(), "s3://ops-backups/daily");
    // The failed multipart upload was aborted, not left to accumulate parts.
    match store.pending_uploads().await {
        Ok(pending) => assert!(pending.is_empty(), "{pending:?}"),
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            // s3s-fs has no ListMultipartUploads; it keeps in-progress uploads as /data/.upload* files.
            let rt = require_docker().await;
            let cmd = ["find", "/data", "-maxdepth", "1", "-name", ".upload*"].map(str::to_owned).to_vec();
            let out = rt.exec(c.id(), &ExecSpec { cmd, ..Default::default() }).await.unwrap();
            assert_eq!(out.stdout.trim(), "", "leftover multipart upload files");
        }
        Err(e) => panic!("{e}"),
    }

    // The prefix isolates stores sharing a bucket.
    let other = s3_store(&endpoint, "ops-backups", "weekly", S3_SECRET_KEY);
    assert!(other.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn s3_wrong_secret_is_auth_and_never_printed() {
    let (_c, endpoint) = s3().await;
    s3_store(&endpoint, "ops-auth", "", S3_SECRET_KEY).ensure_bucket().await.unwrap();
    let bad = s3_store(&endpoint, "ops-auth", "", "definitely-wrong-secret");
    let e = bad.list("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains("definitely-wrong-secret"));
    assert!(!format!("{bad:?}").contains("definitely-wrong-secret"));
}

#[tokio::test]
async fn s3_unreachable_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let store = s3_store(&format!("http://127.0.0.1:{port}"), "x-bucket", "", S3_SECRET_KEY);
    let e = store.head("k").await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout), "{e}");
}

// ---------------------------------------------------------------------------------------------
// SeaweedFS: the same contract against a second, independent S3 implementation

#[tokio::test]
async fn object_store_seaweedfs_contract() {
    let server = crate::harness::seaweed().await;
    let store = s3_store(&server.endpoint, "ops-backups", "daily", S3_SECRET_KEY);
    store.ensure_bucket().await.unwrap();
    store.ensure_bucket().await.expect("idempotent");
    // SeaweedFS refuses a part with a wrong SHA-256 and returns the checksum over the parts,
    // which matched ours.
    contract(&store, 5 * MIB, true, PutProof::ServerSha256).await;
    // SeaweedFS lists multipart uploads: the failed one was aborted, and so was the probe.
    assert_eq!(store.pending_uploads().await.unwrap(), Vec::<String>::new());
    let other = s3_store(&server.endpoint, "ops-backups", "weekly", S3_SECRET_KEY);
    assert!(other.list("").await.unwrap().is_empty());
    // Signatures are checked.
    let bad = s3_store(&server.endpoint, "ops-backups", "daily", "definitely-wrong-secret");
    let e = bad.list("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains("definitely-wrong-secret"));
}

/// Yields `ok` bytes, then waits forever: an upload whose process is killed mid-way.
struct StallsAfter {
    ok: usize,
}

impl AsyncRead for StallsAfter {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.ok == 0 {
            return Poll::Pending;
        }
        let n = self.ok.min(buf.remaining()).min(64 * 1024);
        buf.put_slice(&payload(n, self.ok as u64));
        self.ok -= n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_seaweedfs_sweep_aborts_only_old_unfinished_uploads() {
    let server = crate::harness::seaweed().await;
    let store = std::sync::Arc::new(s3_store(&server.endpoint, "ops-sweep", "daily", S3_SECRET_KEY));
    store.ensure_bucket().await.unwrap();
    // A put that uploads a part and then hangs, dropped without its abort: what a killed
    // process leaves behind.
    let put = {
        let store = std::sync::Arc::clone(&store);
        tokio::spawn(async move {
            let body = Box::pin(StallsAfter { ok: 6 * MIB });
            store.put("app_20260101T000000Z.sql.gz", body, &PutOptions::default()).await
        })
    };
    crate::harness::eventually("an unfinished upload", std::time::Duration::from_secs(30), || {
        let store = std::sync::Arc::clone(&store);
        async move { store.pending_uploads().await.ok().filter(|p| !p.is_empty()) }
    })
    .await;
    put.abort();
    let _ = put.await;
    assert_eq!(store.pending_uploads().await.unwrap().len(), 1);
    // Young: it may be a backup in progress.
    assert_eq!(store.sweep_incomplete(std::time::Duration::from_secs(3600)).await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(store.sweep_incomplete(std::time::Duration::from_secs(1)).await.unwrap(), 1);
    assert!(store.pending_uploads().await.unwrap().is_empty());
    assert!(store.list("").await.unwrap().is_empty(), "nothing half-written is visible");
}

/// An object replaced while it downloads in ranges: the reader gets the old object whole or an
/// error, never a mix of both versions.
async fn replaced_mid_download_is_never_a_mix(store: &dyn ObjectStore) {
    let (old, new) = (payload(40 * MIB, 7), payload(40 * MIB, 8));
    store.put("mix/dump.bin", Box::pin(std::io::Cursor::new(old.clone())), &PutOptions::default()).await.unwrap();
    let mut reader = store.get("mix/dump.bin").await.unwrap();
    let mut first = vec![0u8; MIB];
    reader.read_exact(&mut first).await.unwrap();
    store.put("mix/dump.bin", Box::pin(std::io::Cursor::new(new)), &PutOptions::default()).await.unwrap();
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest).await {
        Ok(_) => {
            first.extend_from_slice(&rest);
            assert!(first == old, "a download that ends must be the old object whole");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    assert_eq!(get_all(store, "mix/dump.bin").await.len(), 40 * MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_download_of_a_replaced_object_is_never_a_mix() {
    let (_c, endpoint) = s3().await;
    let store = s3_store(&endpoint, "ops-mix", "", S3_SECRET_KEY);
    store.ensure_bucket().await.unwrap();
    replaced_mid_download_is_never_a_mix(&store).await;
    let server = crate::harness::seaweed().await;
    let store = s3_store(&server.endpoint, "ops-mix", "", S3_SECRET_KEY);
    store.ensure_bucket().await.unwrap();
    replaced_mid_download_is_never_a_mix(&store).await;
}
