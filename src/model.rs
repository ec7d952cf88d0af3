//! The engine's nouns, shared by the store, the engine, the CLI and the API.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The time `d` before `now`, saturating rather than overflowing on a huge `d`.
pub fn before(now: Millis, d: std::time::Duration) -> Millis {
    now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub location_id: Option<String>,
    pub timestamp: Millis,
    pub data: EventData,
}

/// An event's `data`. Read from the store it is the JSON text as stored, parsed only when
/// something needs its fields (a template, a flat or form payload, the console): an
/// envelope body carries the text as it is. Parsing each event's ~1 KiB and freeing the
/// tree again cost the engine 2–3 % of its deliveries a second in benchmark workload 1.
#[derive(Clone, Default)]
pub struct EventData {
    /// As stored: serde_json's compact text of the value (the store writes nothing else),
    /// so these bytes are the ones serialising the parsed value would give.
    text: Option<std::sync::Arc<str>>,
    value: std::sync::OnceLock<serde_json::Value>,
}

impl EventData {
    /// `text` as the store wrote it (compact JSON from a `serde_json::Value`).
    pub fn stored(text: &str) -> EventData {
        EventData {
            text: Some(text.into()),
            value: std::sync::OnceLock::new(),
        }
    }

    pub fn value(&self) -> &serde_json::Value {
        self.value.get_or_init(|| {
            // Only a damaged database holds text that is not JSON; it reads as null.
            self.text
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default()
        })
    }

    /// The compact JSON text, when it is at hand without serialising.
    pub fn stored_text(&self) -> Option<&str> {
        self.text.as_deref()
    }
}

impl From<serde_json::Value> for EventData {
    fn from(v: serde_json::Value) -> EventData {
        EventData {
            text: None,
            value: v.into(),
        }
    }
}

impl PartialEq for EventData {
    fn eq(&self, other: &EventData) -> bool {
        self.value() == other.value()
    }
}

impl fmt::Debug for EventData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value().fmt(f)
    }
}

impl Serialize for EventData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

/// Generates `FromStr`, `Display` and `as_str` for a fieldless enum whose text form is fixed.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "'{s}' is not one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubState {
    Pending,
    Active,
    Paused,
    Disabled,
}
text_enum!(SubState { Pending => "pending", Active => "active", Paused => "paused", Disabled => "disabled" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Post,
    Put,
    Get,
    Delete,
}
text_enum!(Method { Post => "post", Put => "put", Get => "get", Delete => "delete" });

impl Method {
    pub fn upper(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Get => "GET",
            Method::Delete => "DELETE",
        }
    }
    /// GET and DELETE carry the event's fields as query parameters instead of a body.
    pub fn has_body(self) -> bool {
        matches!(self, Method::Post | Method::Put)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
}
text_enum!(BodyFormat { Json => "json", Form => "form" });

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadStyle {
    Flat,
    Envelope,
}
text_enum!(PayloadStyle { Flat => "flat", Envelope => "envelope" });

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    Wl,
    Standard,
}
text_enum!(SignatureScheme { Wl => "wl", Standard => "standard" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryStatus {
    Pending,
    Retrying,
    Delivered,
    Dead,
    Cancelled,
}
text_enum!(DeliveryStatus {
    Pending => "pending",
    Retrying => "retrying",
    Delivered => "delivered",
    Dead => "dead",
    Cancelled => "cancelled",
});

impl DeliveryStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Delivered | DeliveryStatus::Dead | DeliveryStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    Timeout,
    Connect,
    Dns,
    Tls,
    Reset,
    Status,
    Blocked,
    Render,
    CircuitOpen,
}
text_enum!(ErrorClass {
    Timeout => "timeout",
    Connect => "connect",
    Dns => "dns",
    Tls => "tls",
    Reset => "reset",
    Status => "status",
    Blocked => "blocked",
    Render => "render",
    CircuitOpen => "circuit_open",
});

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub id: String,
    pub name: String,
    pub url: String,
    /// `None` subscribes to every event type.
    pub events: Option<Vec<String>>,
    pub location_id: Option<String>,
    #[serde(skip)]
    pub secret: String,
    pub method: Method,
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    pub format: BodyFormat,
    pub payload: PayloadStyle,
    pub template: Option<String>,
    /// Delays before each retry; the first attempt is immediate.
    pub retry_schedule_ms: Vec<u64>,
    pub timeout_ms: u64,
    pub rate_per_sec: Option<f64>,
    pub signature_scheme: SignatureScheme,
    pub signature_header: String,
    pub state: SubState,
    pub state_reason: Option<String>,
    /// During a rotation's grace period the old secret keeps signing the main header.
    #[serde(skip)]
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<Millis>,
    pub consecutive_failures: u32,
    pub circuit_open: bool,
    pub circuit_changed_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Subscription {
    /// A subscription with the defaults of `hookctl sub add`: active, POST, JSON, flat,
    /// the default retry schedule and timeout, signed in `x-wl-signature`.
    pub fn new(
        id: String,
        name: String,
        url: String,
        events: Option<Vec<String>>,
        secret: String,
    ) -> Subscription {
        let now = now_ms();
        Subscription {
            id,
            name,
            url,
            events,
            location_id: None,
            secret,
            method: Method::Post,
            headers: Vec::new(),
            format: BodyFormat::Json,
            payload: PayloadStyle::Flat,
            template: None,
            retry_schedule_ms: DEFAULT_RETRY_SCHEDULE_MS.to_vec(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
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
            created_at: now,
            updated_at: now,
        }
    }

    /// The old secret, while its grace period lasts at `now`.
    pub fn grace_secret(&self, now: Millis) -> Option<&str> {
        match (&self.previous_secret, self.previous_secret_until) {
            (Some(old), Some(until)) if now < until => Some(old.as_str()),
            _ => None,
        }
    }

    pub fn matches(&self, event_type: &str, location_id: Option<&str>) -> bool {
        let type_ok = match &self.events {
            None => true,
            Some(types) => types.iter().any(|t| t == event_type),
        };
        let location_ok = match &self.location_id {
            None => true,
            Some(scope) => location_id == Some(scope.as_str()),
        };
        type_ok && location_ok
    }

    /// Total attempts a delivery gets: the first one plus one per scheduled retry.
    pub fn max_attempts(&self) -> u32 {
        self.retry_schedule_ms.len() as u32 + 1
    }
}

/// Default retry delays, after the first attempt at once: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
pub const DEFAULT_RETRY_SCHEDULE_MS: &[u64] = &[
    5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000, 72_000_000,
    86_400_000,
];

pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub n: u32,
    pub at: Millis,
    pub status_code: Option<u16>,
    pub error_class: Option<ErrorClass>,
    pub error: Option<String>,
    pub latency_ms: u64,
    #[serde(skip)]
    pub request_headers: Vec<(String, String)>,
    #[serde(skip)]
    pub response_headers: Vec<(String, String)>,
    #[serde(skip)]
    pub response_body: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub subscription_id: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_at: Option<Millis>,
    pub superseded_by: Option<i64>,
    pub created_at: Millis,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.event_type)
    }
}
