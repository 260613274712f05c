//! The page as static files (`opsctl status export DIR`) and their upload to an object store
//! of its own (`opsctl status publish`), so the page stays up when this host is down.

use std::path::Path;
use std::sync::Arc;

use ops_core::ports::{ObjectStore, PutOptions};
use ops_core::{Error, Result};
use serde::Serialize;

use crate::model::StatusPage;
use crate::render::{JSON_DOCUMENTS, Links, atom, html, json_document};

/// One file of the static page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// Its path under the export's root (`index.html`, `api/v2/summary.json`).
    pub path: String,
    /// Its content type.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The page, the feed and every JSON document, with links relative to the root, so the files
/// render the same page from any directory or bucket.
#[must_use]
pub fn files(page: &StatusPage) -> Vec<ExportFile> {
    let feed = page
        .url
        .as_deref()
        .map_or_else(|| "feed.atom".to_owned(), |u| format!("{}/feed.atom", u.trim_end_matches('/')));
    let links = Links { feed: "feed.atom".to_owned(), summary: "api/v2/summary.json".to_owned() };
    let mut out = vec![
        ExportFile {
            path: "index.html".into(),
            content_type: "text/html; charset=utf-8",
            bytes: html(page, &links).into_bytes(),
        },
        ExportFile {
            path: "feed.atom".into(),
            content_type: "application/atom+xml; charset=utf-8",
            bytes: atom(page, &feed).into_bytes(),
        },
    ];
    for doc in JSON_DOCUMENTS {
        if let Some(json) = json_document(page, doc) {
            out.push(ExportFile {
                path: format!("api/v2/{doc}"),
                content_type: "application/json",
                bytes: serde_json::to_vec_pretty(&json).unwrap_or_default(),
            });
        }
    }
    out
}

/// What an export or a publication wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportReport {
    /// Where (a directory, or the store's location).
    pub target: String,
    /// The files, by path.
    pub files: Vec<String>,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes the files under `dir` (created if missing), each through a temporary file and a
/// rename, so a reader never sees half a page.
///
/// # Errors
/// `Unavailable` when a file cannot be written.
pub fn write_dir(dir: &Path, files: &[ExportFile]) -> Result<ExportReport> {
    let mut report = ExportReport { target: dir.display().to_string(), ..Default::default() };
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        let tmp = path.with_extension("tmp-export");
        std::fs::write(&tmp, &f.bytes)
            .map_err(|e| Error::unavailable(format!("cannot write {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::unavailable(format!("cannot write {}: {e}", path.display())))?;
        report.files.push(f.path.clone());
        report.bytes += f.bytes.len() as u64;
    }
    Ok(report)
}

/// Uploads the files to `store`, the page last (so it never links to a document not yet there).
///
/// # Errors
/// The store's errors, naming the file.
pub async fn publish(store: &Arc<dyn ObjectStore>, files: &[ExportFile]) -> Result<ExportReport> {
    let mut report = ExportReport { target: store.location(), ..Default::default() };
    let mut ordered: Vec<&ExportFile> = files.iter().filter(|f| f.path != "index.html").collect();
    ordered.extend(files.iter().filter(|f| f.path == "index.html"));
    for f in ordered {
        let body: ops_core::ports::ByteReader = Box::pin(std::io::Cursor::new(f.bytes.clone()));
        let opts = PutOptions { size_hint: Some(f.bytes.len() as u64), content_type: Some(f.content_type.to_owned()) };
        store.put(&f.path, body, &opts).await.map_err(|e| e.context(format!("publishing {}", f.path)))?;
        report.files.push(f.path.clone());
        report.bytes += f.bytes.len() as u64;
    }
    Ok(report)
}
