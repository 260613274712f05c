use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::FsStore;
use crate::ports::object_store::{ObjectStore, PutOptions};

/// Yields `ok` bytes, then fails: a dump process dying mid-stream.
struct FailingReader {
    ok: usize,
}

impl AsyncRead for FailingReader {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.ok == 0 {
            return Poll::Ready(Err(std::io::Error::other("producer died")));
        }
        let n = self.ok.min(buf.remaining()).min(4096);
        buf.put_slice(&vec![b'x'; n]);
        self.ok -= n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn failed_put_leaves_nothing_and_keeps_the_old_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    store.put("a/b.sql.gz", Box::pin(&b"old"[..]), &PutOptions::default()).await.unwrap();
    let err = store.put("a/b.sql.gz", Box::pin(FailingReader { ok: 100_000 }), &PutOptions::default()).await;
    assert!(err.is_err());
    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].size, 3, "the old object is intact");
    let names: Vec<_> = std::fs::read_dir(dir.path().join("a")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temp file left: {names:?}");
}

#[tokio::test]
async fn keys_cannot_escape_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path().join("root"));
    assert!(store.put("../x", Box::pin(&b""[..]), &PutOptions::default()).await.is_err());
    assert!(store.get("/etc/passwd").await.is_err());
}
