//! An attempt's headers in the form the store keeps them: a line `name: value` each, as on
//! the wire. Under load the writer's cost follows the bytes it writes (the WAL, then the
//! checkpoint), and JSON's quotes and brackets were a sixth of these; a name in this form
//! cannot start with `[`, which tells it apart from JSON, kept for headers no line can
//! hold exactly (and in rows written before).
//!
//! The engine makes this text in the task that ran the attempt, while the headers are in
//! that core's cache: on the writer thread, the first code to read them from another
//! core, the same work took 1.5–1.7 % of the process in `hookctl bench` workload 2.

use serde::Serialize;
use std::borrow::Cow;

/// What the store keeps of an attempt's headers, made by whoever ran the attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeptHeaders {
    pub request: String,
    /// None when the attempt got no response (or one without headers).
    pub response: Option<String>,
}

/// A request's headers as kept: credential values masked (see `ids::mask_header_value`),
/// the rest as sent.
pub fn masked_text(request: &[(String, String)]) -> String {
    let masked: Vec<(&str, Cow<'_, str>)> = request
        .iter()
        .map(|(k, v)| (k.as_str(), crate::ids::masked_header_value(k, v)))
        .collect();
    to_text(&masked)
}

/// A response's headers as kept: none when it had none (or there was no response).
pub fn response_text(response: &[(String, String)]) -> Option<String> {
    (!response.is_empty()).then(|| to_text(response))
}

pub fn to_text<K, V>(h: &[(K, V)]) -> String
where
    K: AsRef<str> + Serialize,
    V: AsRef<str> + Serialize,
{
    // Each test folds over every byte without an early exit, which the compiler turns
    // into wide compares (byte by byte with a branch each took twice as long: 135 against
    // 70 ns for an attempt's six headers, warm). Bytes, not chars: a two-char pattern
    // decodes every char.
    let fits = h.iter().all(|(k, v)| {
        let (k, v) = (k.as_ref(), v.as_ref());
        let name_ok = k.bytes().fold(true, |ok, b| {
            ok & b.is_ascii_graphic() & (b != b':') & (b != b'[')
        });
        let one_line = !v
            .bytes()
            .fold(false, |bad, b| bad | (b == b'\r') | (b == b'\n'));
        !k.is_empty() && name_ok && one_line
    });
    if !fits {
        return serde_json::to_string(h).unwrap_or_else(|_| "[]".to_string());
    }
    let len = h
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 3)
        .sum();
    let mut out = String::with_capacity(len);
    for (k, v) in h {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(k.as_ref());
        out.push_str(": ");
        out.push_str(v.as_ref());
    }
    out
}

pub fn from_text(s: Option<String>) -> Vec<(String, String)> {
    match s {
        Some(s) if s.starts_with('[') => serde_json::from_str(&s).unwrap_or_default(),
        Some(s) => s
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn headers_read_back_as_they_were_sent() {
        let sent = h(&[
            ("content-type", "application/json"),
            ("x-wl-signature", "ab12"),
            ("authorization", "Bearer tok_…f00d"),
            ("x-empty", ""),
            ("x-spaced", "  a: b  "),
        ]);
        let stored = to_text(&sent);
        assert!(!stored.starts_with('['), "{stored}");
        assert_eq!(from_text(Some(stored)), sent);
        assert_eq!(from_text(Some(String::new())), vec![]);
    }

    #[test]
    fn headers_no_line_can_hold_are_stored_as_json_and_old_rows_still_read() {
        for odd in [
            h(&[("x-a", "two\nlines")]),
            h(&[("x-a", "cr\r")]),
            h(&[("bad:name", "v")]),
            h(&[("[x", "v")]),
            h(&[("", "v")]),
        ] {
            let stored = to_text(&odd);
            assert!(stored.starts_with('['), "{stored}");
            assert_eq!(from_text(Some(stored)), odd);
        }
        let before =
            serde_json::to_string(&h(&[("date", "Tue, 25 Nov 2026 10:00:00 GMT")])).unwrap();
        assert_eq!(
            from_text(Some(before)),
            h(&[("date", "Tue, 25 Nov 2026 10:00:00 GMT")])
        );
    }

    /// What the engine keeps is what the store kept before the engine made the text:
    /// credentials masked, everything else as sent.
    #[test]
    fn kept_request_headers_are_masked_and_the_rest_kept_as_sent() {
        let request = h(&[
            ("content-type", "application/json"),
            ("Authorization", "Bearer abcdefghijkl"),
            ("x-api-key", "k3y-0123456789"),
        ]);
        let kept = masked_text(&request);
        assert!(!kept.contains("abcdefghijkl"), "{kept}");
        assert!(!kept.contains("k3y-0123456789"), "{kept}");
        let masked: Vec<(String, String)> = request
            .iter()
            .map(|(k, v)| (k.clone(), crate::ids::mask_header_value(k, v)))
            .collect();
        assert_eq!(from_text(Some(kept)), masked);
    }
}
