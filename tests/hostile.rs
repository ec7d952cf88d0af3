//! Hostile receivers: every way an endpoint can misbehave gets the designed behaviour —
//! bounded time, bounded memory, an attempt on record with a clear error class, and no
//! worker stuck (a healthy endpoint keeps receiving throughout).

mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LONG: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
enum Behaviour {
    /// Reads the request, starts a response, then resets the connection.
    ResetMidResponse,
    /// Accepts and never answers.
    Silent,
    /// Sends a status line and then header lines forever, slowly.
    EndlessHeaders,
    /// A 100 MB body.
    HugeBody,
}

/// Runs a raw TCP endpoint on 127.0.0.1 in a thread of its own; returns its address.
fn hostile(b: Behaviour) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap().to_string()).unwrap();
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let _ = s.read(&mut buf).await;
                    match b {
                        Behaviour::ResetMidResponse => {
                            let _ = s
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial",
                                )
                                .await;
                            let _ = s.set_zero_linger();
                            drop(s);
                        }
                        Behaviour::Silent => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        Behaviour::EndlessHeaders => {
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
                            for i in 0.. {
                                if s.write_all(
                                    format!("X-More-{i}: {}\r\n", "y".repeat(100)).as_bytes(),
                                )
                                .await
                                .is_err()
                                {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                        Behaviour::HugeBody => {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
                                .await;
                            let chunk = vec![b'z'; 1 << 20];
                            for _ in 0..100 {
                                if s.write_all(&chunk).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
    });
    rx.recv().unwrap()
}

struct Case<'a> {
    name: &'a str,
    url: String,
    extra: Vec<&'a str>,
    /// Error class of the first attempt (None: delivered).
    class: Option<&'a str>,
    /// The first attempt must have ended within this.
    within: Duration,
}

fn first_attempt(env: &Env, event: &str) -> Option<Value> {
    let d = env.json(&["event", "show", event]);
    d["deliveries"][0]["attempts"]
        .as_array()
        .and_then(|a| a.first().cloned())
}

#[test]
fn every_hostile_receiver_is_bounded_and_recorded() {
    let env = Env::new();
    let healthy = Sink::start(&env, &[]);
    let s500 = Sink::start(&env, &["--status", "500"]);
    let flaky = Sink::start(&env, &["--fail-rate", "0.5"]);
    let slow = Sink::start(&env, &["--delay", "5s"]);
    let throttle = Sink::start(&env, &["--status", "429", "--retry-after", "2"]);
    let gone = Sink::start(&env, &["--status", "410"]);
    let moved = Sink::start(&env, &["--status", "301"]);
    let reset = hostile(Behaviour::ResetMidResponse);
    let silent = hostile(Behaviour::Silent);
    let endless = hostile(Behaviour::EndlessHeaders);
    let huge = hostile(Behaviour::HugeBody);
    let serve = Serve::start(&env);
    env.sub_add(&["--url", &healthy.url("/healthy"), "--events", "TaskCreate"]);
    let cases = vec![
        Case {
            name: "500",
            url: s500.url("/x"),
            extra: vec![],
            class: Some("status"),
            within: Duration::from_secs(5),
        },
        Case {
            name: "random failures",
            url: flaky.url("/x"),
            extra: vec![
                "--retry-schedule",
                "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
            ],
            class: None,
            within: Duration::from_secs(5),
        },
        Case {
            name: "slower than the timeout",
            url: slow.url("/x"),
            extra: vec!["--timeout", "500ms"],
            class: Some("timeout"),
            within: Duration::from_secs(3),
        },
        Case {
            name: "reset mid-response",
            url: format!("http://{reset}/x"),
            extra: vec![],
            class: Some("reset"),
            within: Duration::from_secs(5),
        },
        Case {
            name: "never answers",
            url: format!("http://{silent}/x"),
            extra: vec!["--timeout", "500ms"],
            class: Some("timeout"),
            within: Duration::from_secs(3),
        },
        Case {
            name: "headers never end",
            url: format!("http://{endless}/x"),
            extra: vec!["--timeout", "1s"],
            class: None,
            within: Duration::from_secs(4),
        },
        Case {
            name: "100 MB body",
            url: format!("http://{huge}/x"),
            extra: vec![],
            class: None,
            within: Duration::from_secs(10),
        },
        Case {
            name: "429 Retry-After",
            url: throttle.url("/x"),
            extra: vec![],
            class: Some("status"),
            within: Duration::from_secs(5),
        },
        Case {
            name: "410 Gone",
            url: gone.url("/x"),
            extra: vec![],
            class: Some("status"),
            within: Duration::from_secs(5),
        },
        Case {
            name: "301 redirect",
            url: moved.url("/x"),
            extra: vec![],
            class: Some("status"),
            within: Duration::from_secs(5),
        },
    ];
    let mut events = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let t = format!(
            "ContactCreate,{}",
            [
                "NoteCreate",
                "InvoicePaid",
                "OrderCreate",
                "FormSubmitted",
                "AppointmentCreate",
                "ProductUpdate",
                "PriceCreate",
                "UserCreate",
                "RecordCreate",
                "RelationCreate"
            ][i]
        );
        let mut args = vec!["--url", &c.url, "--events", &t[14..]];
        args.extend(c.extra.iter());
        env.sub_add(&args);
    }
    let started = Instant::now();
    for (i, _) in cases.iter().enumerate() {
        let t = [
            "NoteCreate",
            "InvoicePaid",
            "OrderCreate",
            "FormSubmitted",
            "AppointmentCreate",
            "ProductUpdate",
            "PriceCreate",
            "UserCreate",
            "RecordCreate",
            "RelationCreate",
        ][i];
        events.push(env.json(&["emit", t])["id"].as_str().unwrap().to_string());
    }
    // Meanwhile the healthy endpoint keeps full service.
    for i in 0..20 {
        env.ok(&["emit", "TaskCreate", "--id", &format!("healthy-{i}")]);
    }
    healthy.wait_count(20, LONG);
    let healthy_done = started.elapsed();
    for (c, event) in cases.iter().zip(&events) {
        let mut attempt = None;
        wait_until(&format!("{}: an attempt on record", c.name), LONG, || {
            attempt = first_attempt(&env, event);
            attempt.is_some()
        });
        let a = attempt.unwrap();
        let latency = Duration::from_millis(a["latency_ms"].as_u64().unwrap());
        eprintln!(
            "{:<24} class {:<8} status {:<5} {:>6} ms  {}",
            c.name, a["error_class"], a["status_code"], a["latency_ms"], a["error"]
        );
        assert!(
            latency <= c.within,
            "{}: the attempt took {latency:?}",
            c.name
        );
        match c.class {
            Some(class) => assert_eq!(a["error_class"], class, "{}: {a}", c.name),
            None if c.name == "headers never end" => {
                // Either hyper refuses the oversized head or the timeout ends it: both bounded.
                assert!(
                    a["error_class"] == "timeout" || a["error_class"] == "reset",
                    "{a}"
                );
            }
            None if c.name == "random failures" => {
                let mut status = Value::Null;
                wait_until("the flaky delivery to get through", LONG, || {
                    status = env.json(&["event", "show", event])["deliveries"][0]["status"].clone();
                    status == "delivered"
                });
            }
            None => {
                assert_eq!(a["status_code"], 200, "{}: {a}", c.name);
                assert!(a["error_class"].is_null());
            }
        }
        if c.name == "301 redirect" {
            assert!(a["error"].as_str().unwrap().contains("not followed"), "{a}");
            assert_eq!(moved.count(), 1, "a redirect is never followed");
        }
    }
    // The 100 MB answer was read up to the cap, not held.
    let huge_event = &events[6];
    let shown = env.json(&["event", "show", huge_event]);
    assert_eq!(shown["deliveries"][0]["status"], "delivered");
    // 429 honoured Retry-After; 410 disabled the subscription.
    let subs = env.json(&["sub", "list"]);
    assert!(
        subs.as_array()
            .unwrap()
            .iter()
            .any(|s| s["url"] == gone.url("/x") && s["state"] == "disabled")
    );
    let rss_kb: u64 = std::fs::read_to_string(format!("/proc/{}/status", serve.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").parse().unwrap())
        })
        .unwrap();
    eprintln!("healthy endpoint served 20 events in {healthy_done:?}; engine RSS {rss_kb} kB");
    assert!(
        rss_kb < 200_000,
        "the engine holds {rss_kb} kB after a 100 MB answer"
    );
}
