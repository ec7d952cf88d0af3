//! What goes on the wire for one attempt: the payload rendered once per delivery, and the
//! headers (signature, ids, attempt number) made fresh for each attempt.

use crate::ids;
use crate::model::*;
use crate::payload::Shape;
use crate::signing;

/// A request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The headers with credential values masked: what may be stored or shown.
    pub fn headers_for_record(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.clone(), ids::mask_header_value(k, v)))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// The bytes that are signed and sent: the body for POST/PUT, the query string for
/// GET/DELETE (which carry the fields as parameters).
pub fn render_payload(
    sub: &Subscription,
    event: &Event,
    values: &std::collections::HashMap<String, String>,
) -> Result<Vec<u8>, RenderError> {
    let Some(t) = &sub.template else {
        return Shape::of(sub).make(event).map_err(RenderError);
    };
    // GET and DELETE put the rendered text in the query, so it is form-encoded.
    let format = if sub.method.has_body() {
        sub.format
    } else {
        BodyFormat::Form
    };
    crate::template::render(t, format, event, values).map_err(RenderError)
}

fn content_type(sub: &Subscription) -> Option<&'static str> {
    if !sub.method.has_body() {
        return None;
    }
    Some(match sub.format {
        BodyFormat::Json => "application/json",
        BodyFormat::Form => "application/x-www-form-urlencoded",
    })
}

/// The full request for attempt `attempt` (1-based) at `now`.
pub fn build(
    sub: &Subscription,
    event: &Event,
    payload: &[u8],
    attempt: u32,
    now: Millis,
) -> Request {
    let ts = now.div_euclid(1000);
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(ct) = content_type(sub) {
        headers.push(("content-type".into(), ct.into()));
    }
    headers.push((
        "user-agent".into(),
        concat!("hookctl/", env!("CARGO_PKG_VERSION")).into(),
    ));
    // During a rotation's grace period the main signature stays on the old secret, so a
    // receiver that checks only that header keeps working; the new one rides beside it.
    let old = sub.grace_secret(now);
    match sub.signature_scheme {
        SignatureScheme::Wl => {
            let name = sub.signature_header.to_ascii_lowercase();
            match old {
                Some(old) => {
                    headers.push((name.clone(), signing::sign_wl(old, payload)));
                    headers.push((
                        format!("{name}-next"),
                        signing::sign_wl(&sub.secret, payload),
                    ));
                }
                None => headers.push((name, signing::sign_wl(&sub.secret, payload))),
            }
            headers.push(("webhook-id".into(), event.id.clone()));
            headers.push(("x-wl-timestamp".into(), ts.to_string()));
        }
        SignatureScheme::Standard => {
            headers.push(("webhook-id".into(), event.id.clone()));
            headers.push(("webhook-timestamp".into(), ts.to_string()));
            let mut sigs = Vec::new();
            if let Some(old) = old {
                sigs.push(signing::sign_standard(old, &event.id, ts, payload));
            }
            sigs.push(signing::sign_standard(&sub.secret, &event.id, ts, payload));
            headers.push(("webhook-signature".into(), sigs.join(" ")));
        }
    }
    headers.push(("x-wl-attempt".into(), attempt.to_string()));
    for (k, v) in &sub.headers {
        headers.push((k.clone(), v.clone()));
    }
    let (url, body) = if sub.method.has_body() {
        (sub.url.clone(), payload.to_vec())
    } else {
        let query = String::from_utf8_lossy(payload);
        let sep = if sub.url.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            sub.url.clone()
        } else {
            format!("{}{sep}{query}", sub.url)
        };
        (url, Vec::new())
    };
    Request {
        method: sub.method,
        url,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sub() -> Subscription {
        Subscription {
            id: "sub_1".into(),
            name: "t".into(),
            url: "http://127.0.0.1:9/x".into(),
            events: None,
            location_id: None,
            secret: "s3cret".into(),
            method: Method::Post,
            headers: vec![("Authorization".into(), "Bearer abcdefghijkl".into())],
            format: BodyFormat::Json,
            payload: PayloadStyle::Flat,
            template: None,
            retry_schedule_ms: vec![1000],
            timeout_ms: 1000,
            rate_per_sec: None,
            signature_scheme: SignatureScheme::Wl,
            signature_header: "x-wl-signature".into(),
            state: SubState::Active,
            state_reason: None,
            previous_secret: None,
            previous_secret_until: None,
            consecutive_failures: 0,
            circuit_open: false,
            circuit_changed_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn event() -> Event {
        Event {
            id: "evt_1".into(),
            event_type: "ContactCreate".into(),
            location_id: Some("loc1".into()),
            timestamp: 1_700_000_000_000,
            data: serde_json::json!({"id": "c1", "email": "a@b.c", "tags": ["x"]}).into(),
        }
    }

    #[test]
    fn flat_payload_puts_fields_at_the_top() {
        let body = render_payload(&sub(), &event(), &Default::default()).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"type":"ContactCreate","locationId":"loc1","id":"c1","email":"a@b.c","tags":["x"]}"#
        );
    }

    /// Whether the data was parsed or is the text the store keeps (an envelope copies that
    /// text as it is), a body is the payload value serialised, byte for byte: a retry
    /// signs the same bytes as the first attempt.
    #[test]
    fn json_bodies_match_the_payload_value_byte_for_byte() {
        let datas = [
            serde_json::json!({"id": "c1", "type": "spoofed", "locationId": "x", "n": 1.5}),
            serde_json::json!({"b": 1, "a": [1e300, -0.0, 12345678901234567890u64, -7], "é": "\u{1F600}\t\u{0}"}),
            serde_json::json!({"nested": {"z": {"y": null, "x": true}}, "s": "</script>\\"}),
            serde_json::json!(["not", "an", "object"]),
            serde_json::json!("just text with \"quotes\" and \u{2028}"),
            serde_json::json!(null),
        ];
        for style in [PayloadStyle::Flat, PayloadStyle::Envelope] {
            for data in &datas {
                // As the store writes it, then reads it back.
                let stored = crate::model::EventData::stored(&data.to_string());
                for from_store in [false, true] {
                    for location in [None, Some("loc\"1".to_string())] {
                        let mut s = sub();
                        s.payload = style;
                        let mut e = event();
                        e.data = if from_store {
                            stored.clone()
                        } else {
                            data.clone().into()
                        };
                        e.location_id = location;
                        let body = render_payload(&s, &e, &Default::default()).unwrap();
                        let parsed = Event {
                            data: data.clone().into(),
                            ..e.clone()
                        };
                        let expected =
                            serde_json::to_vec(&crate::payload::payload_value(style, &parsed))
                                .unwrap();
                        assert_eq!(
                            String::from_utf8_lossy(&body),
                            String::from_utf8_lossy(&expected),
                            "{style:?} {data} stored: {from_store}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn envelope_payload_nests_data() {
        let mut s = sub();
        s.payload = PayloadStyle::Envelope;
        let v: serde_json::Value =
            serde_json::from_slice(&render_payload(&s, &event(), &Default::default()).unwrap())
                .unwrap();
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["data"]["email"], "a@b.c");
    }

    #[test]
    fn signed_headers_and_masked_record() {
        let s = sub();
        let e = event();
        let payload = render_payload(&s, &e, &Default::default()).unwrap();
        let req = build(&s, &e, &payload, 2, 1_700_000_000_123);
        let get = |n: &str| {
            req.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        assert!(signing::verify_wl(
            "s3cret",
            &req.body,
            &get("x-wl-signature").unwrap()
        ));
        assert_eq!(get("webhook-id").as_deref(), Some("evt_1"));
        assert_eq!(get("x-wl-attempt").as_deref(), Some("2"));
        assert_eq!(get("x-wl-timestamp").as_deref(), Some("1700000000"));
        let recorded = req.headers_for_record();
        assert!(!format!("{recorded:?}").contains("abcdefghijkl"));
        // The engine's way, the text the store keeps made beside the send, reads back
        // the same.
        let kept = crate::store::header_text::masked_text(&req.headers);
        assert_eq!(crate::store::header_text::from_text(Some(kept)), recorded);
    }

    #[test]
    fn rotation_keeps_the_old_signature_in_the_main_header_during_grace() {
        let mut s = sub();
        s.previous_secret = Some("old".into());
        s.previous_secret_until = Some(1_000_000);
        let e = event();
        let payload = render_payload(&s, &e, &Default::default()).unwrap();
        let during = build(&s, &e, &payload, 1, 999_999);
        let get = |r: &Request, n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        assert!(signing::verify_wl(
            "old",
            &payload,
            &get(&during, "x-wl-signature").unwrap()
        ));
        assert!(signing::verify_wl(
            "s3cret",
            &payload,
            &get(&during, "x-wl-signature-next").unwrap()
        ));
        let after = build(&s, &e, &payload, 1, 1_000_000);
        assert!(signing::verify_wl(
            "s3cret",
            &payload,
            &get(&after, "x-wl-signature").unwrap()
        ));
        assert!(get(&after, "x-wl-signature-next").is_none());
    }

    #[test]
    fn get_carries_fields_in_the_query() {
        let mut s = sub();
        s.method = Method::Get;
        let e = event();
        let payload = render_payload(&s, &e, &Default::default()).unwrap();
        let req = build(&s, &e, &payload, 1, 0);
        assert!(req.body.is_empty());
        assert!(
            req.url
                .starts_with("http://127.0.0.1:9/x?type=ContactCreate&locationId=loc1&id=c1"),
            "{}",
            req.url
        );
        assert!(!req.headers.iter().any(|(k, _)| k == "content-type"));
    }
}
