#![no_main]
//! Signature verification on arbitrary secrets, bodies and header values: a verdict,
//! never a panic; and what is signed always verifies.
use libfuzzer_sys::fuzz_target;
use hookctl::signing;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\u{0}');
    let secret = parts.next().unwrap_or("");
    let body = parts.next().unwrap_or("").as_bytes();
    let sig = parts.next().unwrap_or("");
    let id = parts.next().unwrap_or("");
    let _ = signing::verify_wl(secret, body, sig);
    let _ = signing::verify_standard(secret, id, 1_700_000_000, body, sig, 1_700_000_000, 300);
    assert!(signing::verify_wl(secret, body, &signing::sign_wl(secret, body)));
    let std_sig = signing::sign_standard(secret, id, 1_700_000_000, body);
    assert!(signing::verify_standard(secret, id, 1_700_000_000, body, &std_sig, 1_700_000_000, 300).is_ok());
});
