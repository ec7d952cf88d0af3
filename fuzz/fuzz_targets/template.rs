#![no_main]
//! Templates: checking and rendering any text against a real event, in both body formats,
//! ends in output or an error (the fuel limit bounds loops), never a panic.
use libfuzzer_sys::fuzz_target;
use hookctl::model::{BodyFormat, Event};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let _ = hookctl::template::check(source);
    let event = Event {
        id: "evt_fuzz".into(),
        event_type: "ContactCreate".into(),
        location_id: Some("loc1".into()),
        timestamp: 0,
        data: hookctl::catalog::sample("ContactCreate").unwrap_or_default(),
    };
    let values = std::collections::HashMap::from([("api_key".to_string(), "k\"\n".to_string())]);
    for format in [BodyFormat::Json, BodyFormat::Form] {
        let _ = hookctl::template::render(source, format, &event, &values);
    }
});
