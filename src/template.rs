//! Merge-tag body templates (`{{contact.email}}`, `{{custom_values.api_key}}`), rendered by
//! minijinja: strict about undefined values (a field the event lacks fails the delivery
//! instead of sending an empty string), fuel-limited, and escaping every value for the body
//! format (JSON string contents, or form/url encoding).

use crate::model::{BodyFormat, Event, rfc3339};
use minijinja::value::Value;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// The namespaces a template may use.
pub const NAMESPACES: &[&str] = &[
    "event",
    "location",
    "contact",
    "opportunity",
    "appointment",
    "invoice",
    "order",
    "product",
    "price",
    "task",
    "note",
    "message",
    "conversation",
    "user",
    "object",
    "record",
    "relation",
    "association",
    "app",
    "campaign",
    "form",
    "custom_values",
    "data",
];

/// Instructions a template may spend: loops over huge inputs end as a render error.
const FUEL: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("line {line}, column {column}: unknown namespace '{name}' (known: {})", NAMESPACES.join(", "))]
    UnknownNamespace {
        name: String,
        line: usize,
        column: usize,
    },
}

/// Line and column (1-based, in characters) of a byte offset.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

fn environment(format: BodyFormat) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_debug(true);
    env.set_fuel(Some(FUEL));
    env.set_formatter(move |out, _state, value| {
        let text = if value.is_undefined() {
            return Err(minijinja::Error::new(
                ErrorKind::UndefinedError,
                "undefined value",
            ));
        } else if value.is_none() {
            String::new()
        } else if let Some(s) = value.as_str() {
            s.to_string()
        } else {
            // Numbers, booleans, lists and objects as JSON text.
            serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
        };
        let escaped = match format {
            BodyFormat::Json if value.as_str().is_some() => {
                let quoted = serde_json::to_string(&text).unwrap_or_default();
                quoted[1..quoted.len() - 1].to_string()
            }
            BodyFormat::Json => text,
            BodyFormat::Form => form_urlencoded::byte_serialize(text.as_bytes()).collect(),
        };
        out.write_str(&escaped)
            .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "write failed"))
    });
    env
}

/// Checks a template when a subscription is saved: syntax, and that every `{{ name. … }}`
/// starts with a known namespace.
pub fn check(source: &str) -> Result<(), TemplateError> {
    let env = environment(BodyFormat::Json);
    let tmpl = env.template_from_str(source).map_err(|e| {
        let (line, column) = match e.range() {
            Some(r) => position(source, r.start),
            None => (e.line().unwrap_or(1), 1),
        };
        TemplateError::Syntax {
            line,
            column,
            message: e.detail().unwrap_or("syntax error").to_string(),
        }
    })?;
    for name in tmpl.undeclared_variables(false) {
        if NAMESPACES.contains(&name.as_str()) {
            continue;
        }
        // minijinja names the variable but not where it is: find its first use.
        let offset = find_use(source, &name).unwrap_or(0);
        let (line, column) = position(source, offset);
        return Err(TemplateError::UnknownNamespace { name, line, column });
    }
    Ok(())
}

/// Where `name` is first used as a variable inside a tag.
fn find_use(source: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = source[from..].find(name).map(|i| i + from) {
        let before = source[..i].chars().next_back();
        let after = source[i + name.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        // `a.contcat` is an attribute, `contcat.x` the variable we look for.
        let ident = |c: Option<char>| word(c) || c == Some('.');
        let in_tag = source[..i]
            .rfind("{{")
            .is_some_and(|o| source[..i].rfind("}}").is_none_or(|c| c < o))
            || source[..i]
                .rfind("{%")
                .is_some_and(|o| source[..i].rfind("%}").is_none_or(|c| c < o));
        if !ident(before) && !word(after) && in_tag {
            return Some(i);
        }
        from = i + name.len();
    }
    None
}

fn snake(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An object's fields under their own names and in snake_case (`firstName` and `first_name`).
fn with_snake_keys(obj: &Map<String, Json>) -> Map<String, Json> {
    let mut out = obj.clone();
    for (k, v) in obj {
        let s = snake(k);
        if s != *k {
            out.entry(s).or_insert_with(|| v.clone());
        }
    }
    out
}

/// The namespace an event type's fields appear under.
pub fn namespace_of(event_type: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("Contact", "contact"),
        ("Opportunity", "opportunity"),
        ("Appointment", "appointment"),
        ("Invoice", "invoice"),
        ("Order", "order"),
        ("Product", "product"),
        ("Price", "price"),
        ("Task", "task"),
        ("Note", "note"),
        ("InboundMessage", "message"),
        ("OutboundMessage", "message"),
        ("ProviderOutboundMessage", "message"),
        ("Conversation", "conversation"),
        ("User", "user"),
        ("Location", "location"),
        ("ObjectSchema", "object"),
        ("Record", "record"),
        ("Relation", "relation"),
        ("Association", "association"),
        ("App", "app"),
        ("ExternalAuth", "app"),
        ("PlanChange", "app"),
        ("Campaign", "campaign"),
        ("FormSubmitted", "form"),
    ];
    PREFIXES
        .iter()
        .find(|(p, _)| event_type.starts_with(p))
        .map(|(_, ns)| *ns)
        .unwrap_or("data")
}

/// What a template sees for an event: `event.*`, `location.id`, the event's own
/// namespace (`contact.*` for contact events, …), `data` (the raw fields) and
/// `custom_values.*` (the location's values over the global ones).
pub fn context(event: &Event, custom_values: &HashMap<String, String>) -> Json {
    let mut ctx = Map::new();
    ctx.insert(
        "event".into(),
        serde_json::json!({
            "id": event.id,
            "type": event.event_type,
            "timestamp": rfc3339(event.timestamp),
            "location_id": event.location_id,
        }),
    );
    let mut location = Map::new();
    location.insert("id".into(), Json::from(event.location_id.clone()));
    let data = event.data.value().as_object().cloned().unwrap_or_default();
    // Appointment events nest their fields one level down.
    let fields = match data.get("appointment") {
        Some(Json::Object(inner)) => inner.clone(),
        _ => data.clone(),
    };
    let ns = namespace_of(&event.event_type);
    let mut own = with_snake_keys(&fields);
    if ns == "contact" || ns == "form" {
        let first = fields.get("firstName").and_then(Json::as_str).unwrap_or("");
        let last = fields.get("lastName").and_then(Json::as_str).unwrap_or("");
        let full = format!("{first} {last}").trim().to_string();
        let full = if full.is_empty() {
            fields
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        } else {
            full
        };
        if !full.is_empty() {
            own.entry("full_name".to_string())
                .or_insert(Json::String(full));
        }
    }
    if ns == "location" {
        for (k, v) in own {
            location.insert(k, v);
        }
    } else {
        ctx.insert(ns.into(), Json::Object(own));
    }
    ctx.insert("location".into(), Json::Object(location));
    ctx.insert("data".into(), Json::Object(data));
    ctx.insert(
        "custom_values".into(),
        Json::Object(
            custom_values
                .iter()
                .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                .collect(),
        ),
    );
    Json::Object(ctx)
}

/// Renders a template for one event; the error says which field was missing.
pub fn render(
    source: &str,
    format: BodyFormat,
    event: &Event,
    custom_values: &HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let env = environment(format);
    let tmpl = env
        .template_from_str(source)
        .map_err(|e| format!("template: {e}"))?;
    let ctx = Value::from(minijinja::value::Serde(context(event, custom_values)));
    let out = tmpl.render(ctx).map_err(|e| {
        let what = e
            .range()
            .and_then(|r| source.get(r))
            .map(|s| s.trim().to_string());
        match (e.kind(), what) {
            (ErrorKind::UndefinedError, Some(expr)) => {
                format!("{expr}: the {} event has no such value", event.event_type)
            }
            (_, Some(expr)) => format!("{expr}: {}", e.detail().unwrap_or("render failed")),
            _ => format!("template: {}", e.detail().unwrap_or("render failed")),
        }
    })?;
    if format == BodyFormat::Json
        && let Err(e) = serde_json::from_str::<Json>(&out)
    {
        return Err(format!("the template's output is not valid JSON ({e})"));
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Event {
        Event {
            id: "evt_1".into(),
            event_type: "ContactCreate".into(),
            location_id: Some("loc1".into()),
            timestamp: 0,
            data: serde_json::json!({"email": "a\"b@c.d", "firstName": "Zoë", "lastName": "O'Neil\nJr", "tags": ["x"]}).into(),
        }
    }

    #[test]
    fn renders_escaped_json_and_derived_names() {
        let values = HashMap::from([("api_key".to_string(), "k1".to_string())]);
        let out = render(
            r#"{"email": "{{contact.email}}", "name": "{{contact.full_name}}", "id": "{{event.id}}", "key": "{{custom_values.api_key}}", "tags": {{contact.tags}}}"#,
            BodyFormat::Json,
            &contact(),
            &values,
        )
        .unwrap();
        let v: Json = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["email"], "a\"b@c.d");
        assert_eq!(v["name"], "Zoë O'Neil\nJr");
        assert_eq!(v["key"], "k1");
        assert_eq!(v["tags"][0], "x");
    }

    #[test]
    fn form_values_are_urlencoded() {
        let out = render(
            "email={{contact.email}}&n={{contact.first_name}}",
            BodyFormat::Form,
            &contact(),
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "email=a%22b%40c.d&n=Zo%C3%AB"
        );
    }

    #[test]
    fn missing_fields_fail_with_the_expression() {
        let err = render(
            "{\"x\": \"{{contact.nickname}}\"}",
            BodyFormat::Json,
            &contact(),
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(err.contains("contact.nickname"), "{err}");
        let err = render(
            "{\"x\": \"{{opportunity.name}}\"}",
            BodyFormat::Json,
            &contact(),
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(err.contains("opportunity.name"), "{err}");
    }

    #[test]
    fn check_gives_line_and_column() {
        assert_eq!(check("{\"a\": \"{{contact.email}}\"}"), Ok(()));
        let e = check("{\n  \"a\": \"{{contcat.email}}\"\n}").unwrap_err();
        assert_eq!(
            e,
            TemplateError::UnknownNamespace {
                name: "contcat".into(),
                line: 2,
                column: 11
            }
        );
        match check("line one\n  {{ contact.email }") {
            Err(TemplateError::Syntax { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }
}
