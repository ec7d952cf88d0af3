//! One set of subscription rules: the same inputs, good and bad, given to `hookctl sub add`,
//! to `POST /v2/webhooks` and to the console's form are accepted or refused alike, with the
//! same words, and the accepted ones come out the same.

mod common;
use common::*;
use hookctl::netguard::Policy;
use hookctl::tui::state::{Action, App, FormKey, SubForm};
use serde_json::{Value, json};

/// The URL, the name, and the event types (`None`: all of them).
struct Case {
    url: &'static str,
    name: &'static str,
    events: Option<&'static [&'static str]>,
    /// `None`: accepted; otherwise what the refusal says, start to end.
    refused: Option<&'static str>,
}

const fn ok(
    url: &'static str,
    name: &'static str,
    events: Option<&'static [&'static str]>,
) -> Case {
    Case {
        url,
        name,
        events,
        refused: None,
    }
}

const fn no(
    url: &'static str,
    name: &'static str,
    events: Option<&'static [&'static str]>,
    refused: &'static str,
) -> Case {
    Case {
        url,
        name,
        events,
        refused: Some(refused),
    }
}

fn cases() -> Vec<Case> {
    let long_name: &'static str = Box::leak("n".repeat(101).into_boxed_str());
    vec![
        ok("http://127.0.0.1:9/a", "", None),
        ok(
            "https://hooks.example.com/in",
            "crm",
            Some(&["ContactCreate"]),
        ),
        no(
            "  http://127.0.0.1:9/spaced  ",
            "spaced",
            None,
            "url: '  http://127.0.0.1:9/spaced  ' has spaces",
        ),
        ok(
            "http://127.0.0.1:9/b",
            "orders",
            Some(&["ContactCreate", "InvoicePaid"]),
        ),
        ok("http://hooks.example.com/plain", "plain", None),
        ok("http://127.0.0.1:9/c", "  spaced  ", Some(&["TaskCreate"])),
        no(
            "ftp://example.com/x",
            "",
            None,
            "url: ftp://example.com/x: scheme 'ftp' is not supported: use https:// (or http:// to an allowlisted network)",
        ),
        no(
            "not a url",
            "",
            None,
            "url: 'not a url' has spaces or characters that are not visible ASCII (percent-encode them)",
        ),
        no("", "", None, "url: is empty"),
        no("http://10.0.0.1/x", "", None, "url: http://10.0.0.1/x: "),
        no(
            "http://169.254.169.254/latest",
            "",
            None,
            "url: http://169.254.169.254/latest: ",
        ),
        no("http://100.64.0.1/", "", None, "url: http://100.64.0.1/: "),
        no("http://224.0.0.1/", "", None, "url: http://224.0.0.1/: "),
        no(
            "https://[::1]:8443/x",
            "",
            None,
            "url: https://[::1]:8443/x: ",
        ),
        no(
            "http://[::ffff:10.0.0.1]/",
            "",
            None,
            "url: http://[::ffff:a00:1]/: ",
        ),
        no("https://0.0.0.0/", "", None, "url: https://0.0.0.0/: "),
        no(
            "https://user:pw@example.com/x",
            "",
            None,
            "url: credentials in the URL would be logged and shown: send them in a header",
        ),
        no(
            "http://127.0.0.1:9/d",
            long_name,
            None,
            "name: is longer than 100 characters",
        ),
        no(
            "http://127.0.0.1:9/e",
            "tab\there",
            None,
            "name: has control characters",
        ),
        no(
            "http://127.0.0.1:9/f",
            "none",
            Some(&[]),
            "events: name at least one event type, or all",
        ),
    ]
}

/// What each way answered: the subscription's (url, name, events), or the refusal.
type Answer = Result<(String, String, Value), String>;

fn summary(v: &Value) -> (String, String, Value) {
    (
        v["url"].as_str().unwrap_or_default().to_string(),
        v["name"].as_str().unwrap_or_default().to_string(),
        v["events"].clone(),
    )
}

fn by_cli(env: &Env, c: &Case) -> Answer {
    let mut args = vec!["--json", "sub", "add", "--url", c.url, "--name", c.name];
    let joined;
    match c.events {
        None => args.push("--all"),
        Some([]) => args.extend(["--events", ""]),
        Some(list) => {
            joined = list.join(",");
            args.extend(["--events", &joined]);
        }
    }
    let out = env.run(&args);
    if out.status.success() {
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        return Ok(summary(&v));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    Err(err
        .trim()
        .strip_prefix("hookctl: ")
        .unwrap_or(&err)
        .to_string())
}

fn by_api(rt: &tokio::runtime::Runtime, base: &str, token: &str, c: &Case) -> Answer {
    let events: Vec<&str> = c.events.map(<[_]>::to_vec).unwrap_or_else(|| vec!["*"]);
    let body = json!({"url": c.url, "name": c.name, "events": events});
    let (status, v) = rt.block_on(async {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{base}/v2/webhooks"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    });
    match status {
        201 => Ok(summary(&v)),
        400 => Err(v["detail"].as_str().unwrap_or_default().to_string()),
        other => panic!("{}: {other} {v}", c.url),
    }
}

fn by_form(c: &Case) -> Answer {
    let mut app = App {
        policy: Policy::new(vec!["127.0.0.0/8".parse().unwrap()]),
        ..App::default()
    };
    let mut form = SubForm::new(None);
    form.url = c.url.to_string();
    form.name = c.name.to_string();
    form.all = c.events.is_none();
    form.events = c.events.map(<[_]>::to_vec).unwrap_or_default();
    app.form = Some(form.clone());
    app.apply(Action::Form(FormKey::Submit));
    match &app.form {
        Some(f) => Err(f.error.clone().unwrap_or_default()),
        None => {
            let sub = form
                .build(&app.policy)
                .expect("what the form saved, built again");
            Ok(summary(&hookctl::shapes::subscription(&sub, false)))
        }
    }
}

#[test]
fn the_cli_the_api_and_the_form_follow_one_rule_set() {
    let env = Env::new();
    let serve = Serve::start(&env);
    let token = env.ok(&["token", "create", "--scopes", "webhooks:write"]);
    let token = token.trim().lines().last().unwrap().to_string();
    hookctl::engine::http::init_tls();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = format!("http://{}", serve.addr);
    let cases = cases();
    assert_eq!(cases.len(), 20);
    for c in &cases {
        let cli = by_cli(&env, c);
        let api = by_api(&rt, &base, &token, c);
        let form = by_form(c);
        assert_eq!(cli, api, "{}: the CLI and the API differ", c.url);
        assert_eq!(cli, form, "{}: the CLI and the form differ", c.url);
        match (&cli, c.refused) {
            (Ok(_), None) => {}
            (Err(e), Some(want)) => {
                assert!(e.starts_with(want), "{}: '{e}' is not '{want}…'", c.url)
            }
            (got, want) => panic!("{}: expected {want:?}, got {got:?}", c.url),
        }
    }
}
