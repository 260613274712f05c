//! The backup-id, object-key and restore-source parsers: any string is classified or
//! refused, never panics, and what is accepted keeps its promises (an id is a plain name, an
//! object is an s3 URI, nothing else is read as a path unless it looks like one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ops_backup::naming::{BackupId, KeyKind, classify};
use ops_backup::source::{MAX_SOURCE_LEN, SourceSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match SourceSpec::parse(s) {
        Ok(SourceSpec::Latest) => assert_eq!(s, "latest"),
        Ok(SourceSpec::Id(id)) => {
            assert!(!s.contains('/') && !s.contains('\\'), "an id with a separator: {s:?}");
            assert!(id.timestamp().is_some());
        }
        Ok(SourceSpec::Object(uri)) => assert!(uri.starts_with("s3://")),
        Ok(SourceSpec::Path(_)) => assert!(s.contains('/') || s.ends_with(".gz") || s.ends_with(".zst")),
        Err(_) => {}
    }
    if let Ok(spec) = SourceSpec::parse(s) {
        assert!(s.len() <= MAX_SOURCE_LEN && !s.chars().any(char::is_control), "{spec:?}");
    }
    if let Some(id) = BackupId::parse(s) {
        assert_eq!(id.as_str(), s);
        let ts = id.timestamp().expect("a parsed id has a timestamp");
        assert_eq!(BackupId::new(id.prefix(), ts).as_str(), s);
    }
    if let Some(kind) = classify(s) {
        let id = match &kind {
            KeyKind::Dump(id, _) | KeyKind::Manifest(id) | KeyKind::Verification(id) | KeyKind::Failure(id) => id,
        };
        let name = s.rsplit('/').next().unwrap_or(s);
        assert!(name.starts_with(id.as_str()), "{s:?} classified as {kind:?}");
    }
    let _ = ops_core::ports::object_store::validate_key(s);
});
