//! The filesystem object store.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ports::object_store::{ByteReader, ObjectMeta, ObjectStore, PutOptions, PutProof, PutReport, validate_key};
use crate::{Error, Result};

/// Names of in-progress writes start with this; they are never listed.
const TEMP_PREFIX: &str = ".ops-tmp-";
const BUF: usize = 256 * 1024;

/// Objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store rooted at `root` (created on the first put).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(key.split('/').fold(self.root.clone(), |p, seg| p.join(seg)))
    }
}

fn io_err(e: std::io::Error, what: impl std::fmt::Display) -> Error {
    Error::from(e).context(what)
}

async fn write_temp(tmp: &Path, mut body: ByteReader) -> Result<(u64, String)> {
    // A dump is the whole database: readable by its owner only. `create_new`: a temp name is
    // never shared.
    let file = crate::private_fs::options().write(true).create_new(true).open(tmp)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut size = 0u64;
    loop {
        let n = body.read(&mut buf).await.map_err(|e| io_err(e, "reading the object body"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).await?;
        size += n as u64;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok((size, hex::encode(hasher.finalize())))
}

async fn sync_dir(dir: &Path) -> Result<()> {
    // Makes the rename durable. Opening a directory read-only and fsyncing works on Linux.
    let d = tokio::fs::File::open(dir).await?;
    d.sync_all().await?;
    Ok(())
}

fn modified(meta: &std::fs::Metadata) -> Option<DateTime<Utc>> {
    meta.modified().ok().map(DateTime::<Utc>::from)
}

#[async_trait]
impl ObjectStore for FsStore {
    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put(&self, key: &str, body: ByteReader, _options: &PutOptions) -> Result<PutReport> {
        let path = self.path_of(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let mkdir = dir.clone();
        tokio::task::spawn_blocking(move || crate::private_fs::create_dir_all(&mkdir))
            .await
            .map_err(|e| Error::internal(format!("mkdir task: {e}")))?
            .map_err(|e| io_err(e, format!("creating {}", dir.display())))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("object");
        // Unique per put, so two puts of one key (two verifications writing their record)
        // never write into each other's temp file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("{TEMP_PREFIX}{}-{n}-{name}", std::process::id()));
        match write_temp(&tmp, body).await {
            Ok((size, sha256)) => {
                if let Err(e) = tokio::fs::rename(&tmp, &path).await {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(io_err(e, format!("moving {key} into place")));
                }
                sync_dir(&dir).await?;
                Ok(PutReport { key: key.to_owned(), size, sha256, parts: 1, proof: PutProof::None })
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e.context(format!("writing {key}")))
            }
        }
    }

    async fn get(&self, key: &str) -> Result<ByteReader> {
        let path = self.path_of(key)?;
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!("no object {key} in {}", self.location()))
            } else {
                io_err(e, format!("opening {key}"))
            }
        })?;
        Ok(Box::pin(tokio::io::BufReader::with_capacity(BUF, file)))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => {
                Ok(Some(ObjectMeta { key: key.to_owned(), size: m.len(), last_modified: modified(&m) }))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e, format!("reading metadata of {key}"))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e, format!("listing {}", dir.display()))),
            };
            while let Some(entry) = entries.next_entry().await? {
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let key = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                let meta = entry.metadata().await?;
                if meta.is_dir() {
                    // Descend only where keys can still match the prefix.
                    if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                        stack.push((entry.path(), key));
                    }
                } else if meta.is_file() && key.starts_with(prefix) {
                    out.push(ObjectMeta { key, size: meta.len(), last_modified: modified(&meta) });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn sweep_incomplete(&self, older_than: std::time::Duration) -> Result<u64> {
        let cutoff = std::time::SystemTime::now().checked_sub(older_than).unwrap_or(std::time::UNIX_EPOCH);
        let mut removed = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e, format!("listing {}", dir.display()))),
            };
            while let Some(entry) = entries.next_entry().await? {
                // A put in progress renames its temp file away at any moment.
                let meta = match entry.metadata().await {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(e, format!("reading {}", entry.path().display()))),
                };
                if meta.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                let is_temp = entry.file_name().to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX));
                // A temp file still being written is younger than the cutoff: every write
                // moves its modification time.
                if is_temp && meta.is_file() && meta.modified().is_ok_and(|m| m < cutoff) {
                    match tokio::fs::remove_file(entry.path()).await {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(e, format!("removing {}", entry.path().display()))),
                    }
                }
            }
        }
        Ok(removed)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e, format!("deleting {key}"))),
        }
    }
}
