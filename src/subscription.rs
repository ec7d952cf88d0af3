//! The subscription rules: what a subscription may be given and how each field is checked,
//! in one place for every way of making or changing one (`sub add`, `/v2/webhooks`, the
//! console's form), so that all of them accept and refuse the same input with the same
//! words. Fields arrive as text, as a user typed them; a refusal names the field.

use crate::catalog;
use crate::ids;
use crate::model::*;
use crate::netguard::Policy;

/// What a caller sets; `None` keeps the subscription's value (or the default, for a new one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub url: Option<String>,
    pub name: Option<String>,
    /// Event types (canonical names or aliases); `*` or `all` alone means every type.
    pub events: Option<Vec<String>>,
    pub location_id: Option<String>,
    pub secret: Option<String>,
    /// `(name, value)` pairs.
    pub headers: Option<Vec<(String, String)>>,
    pub method: Option<String>,
    pub format: Option<String>,
    pub payload: Option<String>,
    /// Empty text removes the template.
    pub template: Option<String>,
    /// Delays such as `5s`; empty, or `none` alone, means no retries.
    pub retry_schedule: Option<Vec<String>>,
    pub timeout_ms: Option<u64>,
    /// `50/s`, `120/m`, `3000/h`; empty text removes the limit.
    pub rate: Option<String>,
    pub signature_scheme: Option<String>,
    pub signature_header: Option<String>,
}

/// Why a subscription was refused: the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Refused {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        field,
        reason: reason.into(),
    }
}

/// The longest name: enough for any label, short enough for a console row and a log line.
pub const NAME_MAX: usize = 100;
/// The longest attempt: a receiver slower than this holds a slot for nothing.
pub const TIMEOUT_MAX_MS: u64 = 600_000;
/// The units a duration may be written in.
const UNITS: &[&str] = &["ms", "s", "sec", "min", "m", "h", "hr", "d", "day", "days"];
/// [`parse_duration`]'s grammar as a regular expression, for the API's schema.
pub const DURATION_PATTERN: &str =
    "^[0-9]{1,6}(ms|s|sec|min|m|h|hr|d|day|days)( [0-9]{1,6}(ms|s|sec|min|m|h|hr|d|day|days))*$";

/// A new subscription from `changes`, which must give a URL and the events.
pub fn create(policy: &Policy, changes: Changes) -> Result<Subscription, Refused> {
    if changes.url.is_none() {
        return Err(refuse("url", "is required"));
    }
    if changes.events.is_none() {
        return Err(refuse(
            "events",
            "is required: name the event types, or all",
        ));
    }
    let base = Subscription::new(
        ids::subscription_id(),
        String::new(),
        String::new(),
        None,
        ids::secret(),
    );
    apply(policy, changes, base)
}

/// `sub` with `changes` applied, every given field checked; nothing else is touched.
pub fn apply(
    policy: &Policy,
    changes: Changes,
    mut sub: Subscription,
) -> Result<Subscription, Refused> {
    if let Some(url) = changes.url {
        sub.url = check_url(policy, &url)?;
    }
    if let Some(name) = changes.name {
        sub.name = check_name(&name)?;
    }
    if sub.name.is_empty() {
        sub.name = reqwest::Url::parse(&sub.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "endpoint".into());
    }
    if let Some(events) = changes.events {
        sub.events = events_of(&events)?;
    }
    if let Some(l) = changes.location_id {
        sub.location_id = match l.trim() {
            "" => None,
            l => Some(l.to_string()),
        };
    }
    if let Some(s) = changes.secret {
        if !s.chars().any(|c| c.is_ascii_graphic()) {
            return Err(refuse("secret", "has no visible character"));
        }
        sub.secret = s;
    }
    if let Some(h) = changes.headers {
        sub.headers = headers_of(h, &sub.headers)?;
    }
    if let Some(m) = changes.method {
        sub.method = m.trim().parse().map_err(|e| refuse("method", e))?;
    }
    if let Some(f) = changes.format {
        sub.format = f.trim().parse().map_err(|e| refuse("format", e))?;
    }
    if let Some(p) = changes.payload {
        sub.payload = p.trim().parse().map_err(|e| refuse("payload", e))?;
    }
    if let Some(t) = changes.template {
        sub.template = if t.is_empty() {
            None
        } else {
            crate::template::check(&t).map_err(|e| refuse("template", e.to_string()))?;
            Some(t)
        };
    }
    if let Some(r) = changes.retry_schedule {
        sub.retry_schedule_ms = r
            .iter()
            .map(|d| {
                parse_duration(d)
                    .map(|d| d.as_millis() as u64)
                    .map_err(|e| refuse("retry_schedule", e))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(t) = changes.timeout_ms {
        if t == 0 || t > TIMEOUT_MAX_MS {
            return Err(refuse(
                "timeout",
                "must be more than zero and at most 10 minutes",
            ));
        }
        sub.timeout_ms = t;
    }
    if let Some(r) = changes.rate {
        sub.rate_per_sec = match r.trim() {
            "" => None,
            r => Some(parse_rate(r)?),
        };
    }
    if let Some(s) = changes.signature_scheme {
        sub.signature_scheme = s
            .trim()
            .parse()
            .map_err(|e| refuse("signature_scheme", e))?;
    }
    if let Some(h) = changes.signature_header {
        let h = h.trim().to_ascii_lowercase();
        reqwest::header::HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| refuse("signature_header", format!("'{h}' is not a header name")))?;
        sub.signature_header = h;
    }
    sub.updated_at = now_ms();
    Ok(sub)
}

/// A URL as written: `http://` or `https://`, a host that is a DNS name (letters, digits
/// and hyphens, the last label starting with a letter) or an IP address the policy
/// allows, then visible ASCII without a fragment. The parser would quietly repair
/// anything else (spaces around it included), so it is refused instead.
fn check_url(policy: &Policy, url: &str) -> Result<String, Refused> {
    let text = url;
    if text.is_empty() {
        return Err(refuse("url", "is empty"));
    }
    if !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err(refuse(
            "url",
            format!(
                "'{text}' has spaces or characters that are not visible ASCII (percent-encode them)"
            ),
        ));
    }
    let u = reqwest::Url::parse(text).map_err(|e| refuse("url", format!("'{text}': {e}")))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(refuse(
            "url",
            "credentials in the URL would be logged and shown: send them in a header",
        ));
    }
    policy
        .check_url(&u)
        .map_err(|e| refuse("url", format!("{u}: {e}")))?;
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Err(refuse(
            "url",
            format!("'{text}': write the scheme as http:// or https://"),
        ));
    }
    if text.contains('#') {
        return Err(refuse(
            "url",
            format!("'{text}': a fragment (#…) is never sent"),
        ));
    }
    if !path_is_rfc3986(text) {
        return Err(refuse(
            "url",
            format!(
                "'{text}': the path and query may hold letters, digits, -._~!$&'()*+,;=:@/? and %XX escapes"
            ),
        ));
    }
    if let Some(url::Host::Domain(d)) = u.host() {
        let labels: Vec<&str> = d.split('.').collect();
        let ldh =
            |l: &&str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let last_is_name = labels
            .last()
            .and_then(|l| l.bytes().next())
            .is_some_and(|b| b.is_ascii_alphabetic());
        if !labels.iter().all(ldh) || !last_is_name {
            return Err(refuse(
                "url",
                format!("'{d}' is not a host name (letters, digits and hyphens between dots)"),
            ));
        }
    }
    Ok(u.to_string())
}

/// The path and query, after the scheme and authority, in RFC 3986's characters.
fn path_is_rfc3986(text: &str) -> bool {
    let after = text.split_once("://").map_or("", |(_, r)| r);
    let Some(at) = after.find(['/', '?']) else {
        return true;
    };
    let rest = &after.as_bytes()[at..];
    let mut i = 0;
    while i < rest.len() {
        let b = rest[i];
        if b == b'%' {
            if !(rest.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && rest.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

fn check_name(name: &str) -> Result<String, Refused> {
    let name = name.trim();
    if name.chars().any(char::is_control) {
        return Err(refuse("name", "has control characters"));
    }
    if name.chars().count() > NAME_MAX {
        return Err(refuse(
            "name",
            format!("is longer than {NAME_MAX} characters"),
        ));
    }
    Ok(name.to_string())
}

/// `None` for every type; otherwise the canonical names, each once, in the order given.
fn events_of(list: &[String]) -> Result<Option<Vec<String>>, Refused> {
    let given: Vec<&str> = list
        .iter()
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if let [one] = given[..]
        && (one == "*" || one.eq_ignore_ascii_case("all"))
    {
        return Ok(None);
    }
    let mut types: Vec<String> = Vec::new();
    for e in given {
        // `hookctl.*` names every operational type, which `all` leaves out.
        let named: Vec<&str> = if e.eq_ignore_ascii_case("hookctl.*") {
            crate::ops::TYPES.iter().map(|t| t.name).collect()
        } else {
            vec![catalog::resolve(e).map_err(|err| refuse("events", err.to_string()))?]
        };
        for t in named {
            if !types.iter().any(|x| x == t) {
                types.push(t.to_string());
            }
        }
    }
    if types.is_empty() {
        return Err(refuse("events", "name at least one event type, or all"));
    }
    Ok(Some(types))
}

/// Checked headers; a masked value sent back unchanged keeps the real one it stands for.
fn headers_of(
    given: Vec<(String, String)>,
    old: &[(String, String)],
) -> Result<Vec<(String, String)>, Refused> {
    let mut out = Vec::with_capacity(given.len());
    for (name, value) in given {
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| refuse("headers", format!("'{name}' is not a header name")))?;
        // Visible ASCII, spaces and tabs: what every receiver reads the same way.
        if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
            return Err(refuse(
                "headers",
                format!("the value of '{name}' has characters a header cannot carry"),
            ));
        }
        let kept = old
            .iter()
            .find(|(k, v)| *k == name && ids::mask_header_value(k, v) == value)
            .map(|(_, v)| v.clone());
        out.push((name, kept.unwrap_or(value)));
    }
    Ok(out)
}

/// `Name: value`, as a flag gives a header.
pub fn parse_header(h: &str) -> Result<(String, String), Refused> {
    let (k, v) = h
        .split_once(':')
        .ok_or_else(|| refuse("headers", format!("'{h}' is not 'Name: value'")))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// `50/s`, `120/m`, `3000/h`, or a bare number per second.
pub fn parse_rate(s: &str) -> Result<f64, Refused> {
    let (n, per) = s.trim().split_once('/').unwrap_or((s.trim(), "s"));
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| refuse("rate", format!("'{s}': expected N/s, N/m or N/h")))?;
    let secs = match per.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => {
            return Err(refuse(
                "rate",
                format!("'{s}': unknown unit '{other}' (s, m or h)"),
            ));
        }
    };
    if !(n > 0.0 && n.is_finite()) {
        return Err(refuse("rate", format!("'{s}': must be more than zero")));
    }
    Ok(n / secs)
}

/// A comma-separated list of delays, as a flag gives it: empty or `none` means no retries.
pub fn schedule_items(list: &str) -> Vec<String> {
    let list = list.trim();
    if list.is_empty() || list == "none" {
        return Vec::new();
    }
    list.split(',').map(|d| d.trim().to_string()).collect()
}

/// The delays of [`schedule_items`], in milliseconds.
pub fn parse_schedule(list: &str) -> Result<Vec<u64>, Refused> {
    schedule_items(list)
        .iter()
        .map(|d| {
            parse_duration(d)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| refuse("retry_schedule", e))
        })
        .collect()
}

/// `500ms`, `5s`, `2h`, `1day`, `1h 30m`: numbers of at most six digits, each with its
/// unit, separated by single spaces (the form durations are shown in).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let wrong = || format!("'{s}' is not a duration; use e.g. 500ms, 5s, 2h, 1day");
    let s = s.trim();
    for part in s.split(' ') {
        let digits = part.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=6).contains(&digits) || !UNITS.contains(&&part[digits..]) {
            return Err(wrong());
        }
    }
    humantime::parse_duration(s).map_err(|_| wrong())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Policy {
        Policy::new(vec!["127.0.0.0/8".parse().unwrap()])
    }

    #[test]
    fn a_new_subscription_needs_url_and_events_and_gets_a_name() {
        let err = create(&open(), Changes::default()).unwrap_err();
        assert_eq!(err.field, "url");
        let ok = create(
            &open(),
            Changes {
                url: Some("http://127.0.0.1:9/x".into()),
                events: Some(vec!["all".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ok.url, "http://127.0.0.1:9/x");
        assert_eq!(ok.name, "127.0.0.1");
        assert_eq!(ok.events, None);
    }

    #[test]
    fn parsers_name_their_field() {
        assert_eq!(parse_rate("120/m").unwrap(), 2.0);
        assert_eq!(parse_rate("0/s").unwrap_err().field, "rate");
        assert_eq!(parse_schedule("5s,1m").unwrap(), vec![5_000, 60_000]);
        assert!(parse_schedule("none").unwrap().is_empty());
        assert_eq!(parse_schedule("5x").unwrap_err().field, "retry_schedule");
        assert_eq!(parse_duration("1h 30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("1day").unwrap().as_secs(), 86_400);
        for bad in ["", "5", "s", "5 s", "1h  30m", "1234567s", "5min30s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_header("no colon").unwrap_err().field, "headers");
    }
}
