//! File checks: a PEM file, or a directory of them such as certbot's `live/` tree
//! (`live/<domain>/{cert,chain,fullchain}.pem`, symlinks into `archive/` followed).
//!
//! Private keys are never parsed: files whose name says key (`privkey.pem`, `*.key`) are
//! skipped unread, and only `CERTIFICATE` blocks of the others are decoded.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use ops_core::{Finding, Status};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use crate::certificate::CertificateInfo;
use crate::chain::{ChainOrder, check_chain_order, earliest_expiry};
use crate::endpoint::{elapsed_ms, expiry_message};
use crate::expiry::{days_left, expiry_status};
use crate::hostname::hostname_matches;
use crate::{CheckOptions, Error, Result};

/// Directories below the checked one that hold no current certificate (certbot's history,
/// keys, requests and accounts): walking them would report long-replaced certificates.
const SKIPPED_DIRS: [&str; 4] = ["archive", "keys", "csr", "accounts"];
/// Certificate file extensions looked at in a directory.
const CERT_EXTENSIONS: [&str; 3] = ["pem", "crt", "cer"];
/// Symlinked trees can loop; real certificate trees are shallow.
const MAX_DEPTH: usize = 16;

/// What a check of one PEM file found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileReport {
    /// The file (or the label given to [`check_pem`]).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub path: PathBuf,
    /// The worst of [`findings`](Self::findings), `ok` when there are none.
    pub status: Status,
    /// Every problem found, each with its status.
    pub findings: Vec<Finding>,
    /// The certificates in file order.
    pub certificates: Vec<CertificateInfo>,
    /// Order and linkage when the file holds a chain (two or more certificates that are not
    /// all self-signed roots).
    pub chain_order: Option<ChainOrder>,
    /// Whether the first certificate covers [`CheckOptions::server_name`]; `None` when no name
    /// was given or the file starts with a CA certificate (`chain.pem`).
    pub hostname_match: Option<bool>,
    /// Earliest `notAfter` in the file.
    pub earliest_expiry: Option<DateTime<Utc>>,
    /// Days left until [`earliest_expiry`](Self::earliest_expiry).
    pub days_left: Option<i64>,
    /// How long the check took, in milliseconds.
    pub duration_ms: u64,
}

/// What a check of a file or directory found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathReport {
    /// The file or directory checked.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub path: PathBuf,
    /// The worst status of its files and findings.
    pub status: Status,
    /// Problems with the path itself (no certificate under it).
    pub findings: Vec<Finding>,
    /// One report per certificate file, in path order.
    pub files: Vec<FileReport>,
    /// Files looked at but not checked: key files (never read) and files without a certificate.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub skipped: Vec<PathBuf>,
    /// Earliest `notAfter` over all files.
    pub earliest_expiry: Option<DateTime<Utc>>,
    /// Days left until [`earliest_expiry`](Self::earliest_expiry).
    pub days_left: Option<i64>,
    /// The moment the check ran at.
    pub checked_at: DateTime<Utc>,
    /// How long the check took, in milliseconds.
    pub duration_ms: u64,
}

/// Checks a PEM file, or every certificate file under a directory (following symlinks, skipping
/// key files and certbot's `archive/`, `keys/`, `csr/` and `accounts/`).
///
/// An expired, soon-expiring, misordered or misnamed certificate is a finding in the report; an
/// unreadable file inside a directory too.
///
/// # Errors
/// [`Error::Read`] when `path` itself cannot be read (`NotFound` kind when it does not exist),
/// [`Error::InvalidOption`] for options out of range.
pub async fn check_path(path: impl AsRef<Path>, options: &CheckOptions) -> Result<PathReport> {
    options.validate()?;
    let path = path.as_ref().to_owned();
    let options = options.clone();
    tokio::task::spawn_blocking(move || check_path_blocking(&path, &options))
        .await
        .map_err(|e| Error::Internal(format!("file check task failed: {e}")))?
}

/// Checks the certificates of one PEM text, labelled `path` in the report. Pure: reads nothing.
#[must_use]
pub fn check_pem(path: impl Into<PathBuf>, pem: &[u8], options: &CheckOptions) -> FileReport {
    inspect_pem(path.into(), pem, options, options.now(), Instant::now())
}

fn check_path_blocking(path: &Path, options: &CheckOptions) -> Result<PathReport> {
    let started = Instant::now();
    let now = options.now();
    let meta = std::fs::metadata(path).map_err(|e| Error::read(path, e))?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    if meta.is_dir() {
        let mut candidates = Vec::new();
        let mut visited = HashSet::new();
        walk(path, 0, &mut visited, &mut candidates, &mut skipped)?;
        for file in candidates {
            let file_started = Instant::now();
            match std::fs::read(&file) {
                Ok(pem) if !has_certificate(&pem) => skipped.push(file),
                Ok(pem) => files.push(inspect_pem(file, &pem, options, now, file_started)),
                Err(e) => files.push(unreadable(file, &e, file_started)),
            }
        }
    } else {
        let pem = std::fs::read(path).map_err(|e| Error::read(path, e))?;
        files.push(inspect_pem(path.to_owned(), &pem, options, now, started));
    }

    let mut findings = Vec::new();
    if files.is_empty() {
        findings.push(Finding {
            subject: format!("path:{}", path.display()),
            status: Status::Critical,
            message: "no certificate file found".to_owned(),
            evidence: skipped.iter().map(|p| format!("skipped {}", p.display())).collect(),
        });
    }
    let earliest = files.iter().filter_map(|f| f.earliest_expiry).min();
    let status = files.iter().map(|f| f.status).chain(findings.iter().map(|f| f.status)).max().unwrap_or(Status::Ok);
    Ok(PathReport {
        path: path.to_owned(),
        status,
        findings,
        files,
        skipped,
        earliest_expiry: earliest,
        days_left: earliest.map(|t| days_left(t, now)),
        checked_at: now,
        duration_ms: elapsed_ms(started),
    })
}

fn walk(
    dir: &Path,
    depth: usize,
    visited: &mut HashSet<PathBuf>,
    candidates: &mut Vec<PathBuf>,
    skipped: &mut Vec<PathBuf>,
) -> Result<()> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| Error::read(dir, e))?;
    if depth > MAX_DEPTH || !visited.insert(canonical) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::read(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        // Follows symlinks: certbot's live/ files are links into archive/.
        let is_dir = std::fs::metadata(&entry).is_ok_and(|m| m.is_dir());
        if is_dir {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                walk(&entry, depth + 1, visited, candidates, skipped)?;
            }
            continue;
        }
        let extension = entry.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        if !CERT_EXTENSIONS.contains(&extension.as_str()) {
            continue;
        }
        if is_key_file(&name) {
            skipped.push(entry);
        } else {
            candidates.push(entry);
        }
    }
    Ok(())
}

fn is_key_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    match lower.rsplit_once('.') {
        Some((stem, extension)) => stem.contains("key") || extension == "key",
        None => lower.contains("key"),
    }
}

fn has_certificate(pem: &[u8]) -> bool {
    CertificateDer::pem_slice_iter(pem).next().is_some()
}

fn unreadable(path: PathBuf, e: &std::io::Error, started: Instant) -> FileReport {
    let finding = Finding {
        subject: format!("file:{}", path.display()),
        status: Status::Critical,
        message: format!("cannot read: {e}"),
        evidence: Vec::new(),
    };
    FileReport {
        path,
        status: Status::Critical,
        findings: vec![finding],
        certificates: Vec::new(),
        chain_order: None,
        hostname_match: None,
        earliest_expiry: None,
        days_left: None,
        duration_ms: elapsed_ms(started),
    }
}

fn inspect_pem(path: PathBuf, pem: &[u8], options: &CheckOptions, now: DateTime<Utc>, started: Instant) -> FileReport {
    let subject = format!("file:{}", path.display());
    let mut findings = Vec::new();
    let mut push = |status: Status, message: String| {
        findings.push(Finding { subject: subject.clone(), status, message, evidence: Vec::new() });
    };

    let mut ders = Vec::new();
    for (i, block) in CertificateDer::pem_slice_iter(pem).enumerate() {
        match block {
            Ok(der) => ders.push(der),
            Err(e) => push(Status::Critical, format!("pem block {} does not decode: {e}", i + 1)),
        }
    }
    if ders.is_empty() {
        push(Status::Critical, "no certificate in the file".to_owned());
    }
    let mut certificates = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        match CertificateInfo::from_der(der, now) {
            Ok(info) => certificates.push(info),
            Err(e) => push(Status::Critical, format!("certificate {} does not parse: {e}", i + 1)),
        }
    }

    let is_root_bundle = certificates.iter().all(|c| c.self_signed && c.is_ca);
    let chain_order = (ders.len() > 1 && !is_root_bundle).then(|| check_chain_order(&ders));
    if let Some(order) = chain_order.as_ref().filter(|o| !o.in_order) {
        for problem in &order.problems {
            push(Status::Critical, format!("chain order: {problem}"));
        }
    }

    let hostname_match = match (&options.server_name, certificates.first()) {
        (Some(name), Some(first)) if !first.is_ca => {
            let ok = hostname_matches(name, &first.dns_names, &first.ip_addresses);
            if !ok {
                push(
                    Status::Critical,
                    format!(
                        "hostname mismatch: {} is valid for [{}], not {name}",
                        first.display_name(),
                        first.dns_names.join(", ")
                    ),
                );
            }
            Some(ok)
        }
        _ => None,
    };

    for cert in certificates.iter().filter(|c| c.not_before > now) {
        push(
            Status::Critical,
            format!("{} is not valid yet: valid from {}", cert.display_name(), cert.not_before.to_rfc3339()),
        );
    }
    if let Some(earliest) = certificates.iter().min_by_key(|c| c.not_after) {
        let status = expiry_status(earliest.not_after, now, options);
        if status != Status::Ok {
            push(status, expiry_message(earliest));
        }
    }

    let earliest = earliest_expiry(&certificates);
    let status = findings.iter().map(|f| f.status).max().unwrap_or(Status::Ok);
    FileReport {
        path,
        status,
        findings,
        certificates,
        chain_order,
        hostname_match,
        earliest_expiry: earliest,
        days_left: earliest.map(|t| days_left(t, now)),
        duration_ms: elapsed_ms(started),
    }
}

#[cfg(test)]
mod tests;
