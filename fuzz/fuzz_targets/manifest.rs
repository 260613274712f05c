//! The manifest and failure-record reader: any bytes parse or fail, never panic, and what
//! parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ops_backup::catalog::FailureRecord;
use ops_backup::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let again: Manifest = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(m, again);
        let _ = m.id.timestamp();
        let _ = m.id.prefix();
        for t in &m.tables {
            let _ = t.qualified_name();
        }
    }
    if let Ok(r) = serde_json::from_slice::<FailureRecord>(data) {
        let again: FailureRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(r, again);
    }
});
