//! Identifiers and secrets made by hookctl.

use base64::Engine as _;
use rand::RngCore;
use std::borrow::Cow;

/// Event ids made for producers that gave none: sortable by creation time.
pub fn event_id() -> String {
    format!("evt_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

/// Random, not time-ordered: operators type these, and any few leading characters should
/// already tell two subscriptions apart.
pub fn subscription_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| ALPHABET[(rng.next_u32() % 32) as usize] as char)
        .collect();
    format!("sub_{tail}")
}

/// A signing secret in the Standard Webhooks form (`whsec_` + base64 of 24 random bytes).
/// The same string serves the `wl` scheme, where the key is the string's bytes as shown.
pub fn secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// How tokens and inbound URL secrets are stored: only this hash, never the secret.
pub fn secret_hash(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// What may be shown of a secret anywhere but the command that created it.
pub fn mask(secret: &str) -> String {
    let shown: String = if let Some(rest) = secret.strip_prefix("whsec_") {
        format!("whsec_{}", rest.chars().take(4).collect::<String>())
    } else {
        secret.chars().take(4).collect()
    };
    if secret.chars().count() <= shown.chars().count() + 4 {
        // Too short to reveal anything of it safely.
        return "****".to_string();
    }
    format!("{shown}…****")
}

/// Header names whose values are credentials and must be masked when shown.
pub fn is_credential_header(name: &str) -> bool {
    // Asked for every header of every attempt: compared in place, without a lowercased copy.
    let contains = |part: &str| {
        name.as_bytes()
            .windows(part.len())
            .any(|w| w.eq_ignore_ascii_case(part.as_bytes()))
    };
    ["authorization", "proxy-authorization", "cookie"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
        || ["token", "secret", "api-key", "apikey"]
            .iter()
            .any(|part| contains(part))
}

pub fn mask_header_value(name: &str, value: &str) -> String {
    masked_header_value(name, value).into_owned()
}

/// The same, borrowing the value when it is no credential (most headers are not).
pub fn masked_header_value<'a>(name: &str, value: &'a str) -> Cow<'a, str> {
    if !is_credential_header(name) {
        return Cow::Borrowed(value);
    }
    // Keep the auth scheme ("Bearer") visible: it helps diagnose without revealing.
    Cow::Owned(match value.split_once(' ') {
        Some((scheme, rest)) if !rest.is_empty() => format!("{scheme} {}", mask(rest)),
        _ => mask(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_known_in_any_case() {
        for name in [
            "Authorization",
            "PROXY-AUTHORIZATION",
            "cookie",
            "X-Auth-Token",
            "x-API-Key",
            "X-Apikey",
            "Client-Secret",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        for name in [
            "Content-Type",
            "X-Trace",
            "Set-Cookie",
            "Authorization-Hint",
            "x-api",
        ] {
            assert!(!is_credential_header(name), "{name}");
        }
    }

    #[test]
    fn masks_never_reveal_the_secret() {
        let s = secret();
        let m = mask(&s);
        assert!(m.starts_with("whsec_"));
        assert!(!m.contains(&s[6..]));
        assert!(m.len() < s.len());
        assert_eq!(mask("abc"), "****");
        assert_eq!(
            mask_header_value("Authorization", "Bearer abcdefghijkl"),
            "Bearer abcd…****"
        );
        assert_eq!(mask_header_value("X-Trace", "abcdefghijkl"), "abcdefghijkl");
    }

    #[test]
    fn ids_are_unique_and_prefixed() {
        let a = event_id();
        let b = event_id();
        assert_ne!(a, b);
        assert!(a.starts_with("evt_"));
        assert!(subscription_id().starts_with("sub_"));
    }
}
