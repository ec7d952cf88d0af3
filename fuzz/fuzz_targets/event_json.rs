#![no_main]
//! Event ingestion: whatever bytes a producer sends, parsing either yields an event or an
//! error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = hookctl::ingest::event_from_json(&v);
        if let Some(items) = v.as_array() {
            for item in items {
                let _ = hookctl::ingest::event_from_json(item);
            }
        }
    }
});
