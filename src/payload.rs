//! The body made from an event by a subscription without a template: its payload style
//! (flat or envelope) encoded as JSON or as form fields. Such a body is a function of the
//! event and its `Shape` alone, so the store keeps the shape instead of the bytes and makes
//! them again for a retry or for the console, byte for byte.

use crate::model::*;
use serde_json::{Map, Value};

/// How a body without a template is made: the payload style, and whether the fields are
/// form-encoded (form bodies, and the query string of GET and DELETE) or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub style: PayloadStyle,
    pub form: bool,
}

impl Shape {
    /// The shape of the subscription's bodies when it has no template.
    pub fn of(sub: &Subscription) -> Shape {
        Shape {
            style: sub.payload,
            form: !sub.method.has_body() || sub.format == BodyFormat::Form,
        }
    }

    pub fn make(self, event: &Event) -> Result<Vec<u8>, String> {
        if self.form {
            return Ok(urlencode(&pairs(&payload_value(self.style, event))).into_bytes());
        }
        if let (PayloadStyle::Envelope, Some(data)) = (self.style, event.data.stored_text()) {
            return envelope_json(event, data).map_err(|e| e.to_string());
        }
        serde_json::to_vec(&PayloadJson {
            style: self.style,
            event,
        })
        .map_err(|e| e.to_string())
    }

    /// As stored: `flat/json`, `envelope/form`, …
    pub fn as_str(self) -> &'static str {
        match (self.style, self.form) {
            (PayloadStyle::Flat, false) => "flat/json",
            (PayloadStyle::Flat, true) => "flat/form",
            (PayloadStyle::Envelope, false) => "envelope/json",
            (PayloadStyle::Envelope, true) => "envelope/form",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        let (style, encoding) = s.split_once('/')?;
        Some(Shape {
            style: style.parse().ok()?,
            form: match encoding {
                "json" => false,
                "form" => true,
                _ => return None,
            },
        })
    }
}

/// An envelope around data already in JSON: byte for byte what `PayloadJson` makes from
/// the parsed data, since the stored text is serde_json's own compact form of it.
fn envelope_json(e: &Event, data: &str) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + e.event_type.len() + 96);
    out.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut out, &e.event_type)?;
    out.extend_from_slice(b",\"locationId\":");
    serde_json::to_writer(&mut out, &e.location_id)?;
    out.extend_from_slice(b",\"timestamp\":");
    serde_json::to_writer(&mut out, &rfc3339(e.timestamp))?;
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(data.as_bytes());
    out.push(b'}');
    Ok(out)
}

/// The event as the subscription's payload style shapes it.
pub fn payload_value(style: PayloadStyle, event: &Event) -> Value {
    let mut obj = Map::new();
    obj.insert("type".into(), Value::String(event.event_type.clone()));
    obj.insert("locationId".into(), Value::from(event.location_id.clone()));
    match style {
        PayloadStyle::Flat => match event.data.value() {
            Value::Object(fields) => {
                for (k, v) in fields {
                    if k != "type" && k != "locationId" {
                        obj.insert(k.clone(), v.clone());
                    }
                }
            }
            other => {
                obj.insert("data".into(), other.clone());
            }
        },
        PayloadStyle::Envelope => {
            obj.insert("timestamp".into(), Value::String(rfc3339(event.timestamp)));
            obj.insert("data".into(), event.data.value().clone());
        }
    }
    Value::Object(obj)
}

/// The same shape as `payload_value`, serialised straight from the event: a JSON body
/// needs no copy of the event's fields (the copy was a visible share of the engine's CPU).
struct PayloadJson<'a> {
    style: PayloadStyle,
    event: &'a Event,
}

impl serde::Serialize for PayloadJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.event;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", &e.event_type)?;
        m.serialize_entry("locationId", &e.location_id)?;
        match self.style {
            PayloadStyle::Flat => match e.data.value() {
                Value::Object(fields) => {
                    for (k, v) in fields {
                        if k != "type" && k != "locationId" {
                            m.serialize_entry(k, v)?;
                        }
                    }
                }
                other => m.serialize_entry("data", other)?,
            },
            PayloadStyle::Envelope => {
                m.serialize_entry("timestamp", &rfc3339(e.timestamp))?;
                m.serialize_entry("data", e.data.value())?;
            }
        }
        m.end()
    }
}

/// Top-level fields as form/query pairs: strings as they are, anything else as JSON text.
fn pairs(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn urlencode(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_reads_back_as_written() {
        for style in PayloadStyle::ALL {
            for form in [false, true] {
                let shape = Shape {
                    style: *style,
                    form,
                };
                assert_eq!(Shape::parse(shape.as_str()), Some(shape));
            }
        }
        assert_eq!(Shape::parse("flat"), None);
        assert_eq!(Shape::parse("flat/xml"), None);
        assert_eq!(Shape::parse("nested/json"), None);
    }
}
