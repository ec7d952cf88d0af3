//! Request signatures: the events reference's `x-wl-signature` (hex HMAC-SHA256 of the raw
//! body, keyed by the secret string's bytes) and Standard Webhooks v1.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Hex HMAC-SHA256 of `body` with the secret string's bytes as key.
pub fn sign_wl(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// Checks a hex signature in constant time (through the MAC's own verify).
pub fn verify_wl(secret: &str, body: &[u8], signature_hex: &str) -> bool {
    let Ok(sig) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut m = mac(secret.as_bytes());
    m.update(body);
    m.verify_slice(&sig).is_ok()
}

/// The key bytes of a Standard Webhooks secret: base64 after the `whsec_` prefix.
/// A secret without the prefix or not in base64 is used as raw bytes, as several
/// reference libraries do.
pub fn standard_key(secret: &str) -> Vec<u8> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign_standard(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(&standard_key(secret));
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
    )
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StandardError {
    #[error("timestamp is {0} s away from now, outside the tolerance")]
    Timestamp(i64),
    #[error("no signature matches")]
    NoMatch,
}

/// Verifies a `webhook-signature` header value (space-separated `v1,<b64>` entries):
/// valid when any entry matches and the timestamp is within `tolerance_s` of `now_s`.
pub fn verify_standard(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), StandardError> {
    let skew = now_s - timestamp;
    if skew.abs() > tolerance_s {
        return Err(StandardError::Timestamp(skew));
    }
    let key = standard_key(secret);
    for entry in header.split_whitespace() {
        let Some(b64) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            continue;
        };
        let mut m = mac(&key);
        m.update(msg_id.as_bytes());
        m.update(b".");
        m.update(timestamp.to_string().as_bytes());
        m.update(b".");
        m.update(body);
        if m.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(StandardError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wl_round_trip_and_tamper() {
        let sig = sign_wl("s3cret", b"{\"a\":1}");
        assert_eq!(sig.len(), 64);
        assert!(verify_wl("s3cret", b"{\"a\":1}", &sig));
        assert!(!verify_wl("s3cret", b"{\"a\":2}", &sig));
        assert!(!verify_wl("other", b"{\"a\":1}", &sig));
        assert!(!verify_wl("s3cret", b"{\"a\":1}", "not hex"));
    }

    #[test]
    fn wl_matches_a_known_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign_wl("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let sig = sign_standard(secret, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body);
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        let header = format!("v1,bogus {sig}");
        assert_eq!(
            verify_standard(
                secret,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                body,
                &header,
                1649367600,
                300
            ),
            Ok(())
        );
        assert_eq!(
            verify_standard(
                secret,
                "msg_other",
                1649367553,
                body,
                &header,
                1649367600,
                300
            ),
            Err(StandardError::NoMatch)
        );
        assert!(matches!(
            verify_standard(
                secret,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                body,
                &header,
                1649377553,
                300
            ),
            Err(StandardError::Timestamp(_))
        ));
    }
}
