//! The console end to end in tmux, as an on-call engineer meets it: attach to a running
//! engine, see another process's events, stay silent when nothing changes, honour
//! NO_COLOR, and keep the demo's output bounded. Each test runs its own tmux server.

mod common;
use common::tmux::Tmux;
use common::*;
use std::time::{Duration, Instant};

fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn attached_console_shows_another_process_events_within_a_second() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let serve = Serve::start(&env);
    env.sub_add(&["--url", &sink.url("/x"), "--all"]);
    let t = Tmux::new(&env);
    t.start(&env, "", &[], false);
    t.wait_screen("attached", Duration::from_secs(30));
    assert!(
        t.screen()
            .contains(&format!("attached {}", serve.child.id())),
        "{}",
        t.screen()
    );
    t.keys(&["2"]);
    t.wait_screen("with its deliveries · following", Duration::from_secs(10));
    for i in 0..3 {
        let id = format!("attach-{i}");
        env.ok(&["emit", "InvoicePaid", "--id", &id]);
        let emitted = Instant::now();
        t.wait_screen(&id, Duration::from_secs(10));
        let took = emitted.elapsed();
        eprintln!("{id} on screen {took:?} after emit returned");
        assert!(took < Duration::from_secs(1), "{id} took {took:?}");
    }
    // Actions in the attached console read the running engine's data: the delivery shows.
    t.wait_screen("✓", Duration::from_secs(10));
}

#[test]
fn a_quiet_console_writes_nothing() {
    let env = Env::new();
    let _serve = Serve::start(&env);
    env.sub_add(&["--url", "http://127.0.0.1:9/x", "--events", "NoteCreate"]);
    env.ok(&["emit", "TaskCreate"]);
    let t = Tmux::new(&env);
    let out = env.path("pane.out");
    t.start(&env, "", &[], true);
    t.pipe_to(&out);
    t.keys(&["Enter"]);
    t.wait_screen("attached", Duration::from_secs(30));
    t.keys(&["2"]);
    t.wait_screen("TaskCreate", Duration::from_secs(10));
    // Let the first frames settle: output unchanged for a second.
    let mut last = file_len(&out);
    let mut still_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while still_since.elapsed() < Duration::from_secs(1) {
        assert!(Instant::now() < deadline, "output never settled");
        std::thread::sleep(Duration::from_millis(50));
        let now = file_len(&out);
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    // The clock in the header moves once a minute: measure inside one minute.
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 52 {
        std::thread::sleep(Duration::from_secs((62 - second) as u64));
        last = file_len(&out);
    }
    let start = last;
    // A measurement window, not a synchronisation: nothing should happen in it.
    std::thread::sleep(Duration::from_secs(5));
    let written = file_len(&out) - start;
    assert_eq!(written, 0, "the idle console wrote {written} bytes in 5 s");
}

/// SGR parameter lists in the raw output.
fn sgr_params(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(i) = rest.find("\x1b[") {
        rest = &rest[i + 2..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(rest.len());
        if rest[end..].starts_with('m') {
            out.push(rest[..end].to_string());
        }
        rest = &rest[end..];
    }
    out
}

/// Colour codes among SGR parameters (defaults 39/49 and resets are not colours).
fn colours(params: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for p in params {
        let parts: Vec<&str> = p.split(';').collect();
        let mut i = 0;
        while i < parts.len() {
            let n: u32 = parts[i].parse().unwrap_or(0);
            match n {
                30..=37 | 40..=47 | 90..=97 | 100..=107 => found.push(p.clone()),
                38 | 48 => {
                    found.push(p.clone());
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    found
}

fn run_all_panes(no_color: bool) -> Vec<u8> {
    let env = Env::new();
    let _serve = Serve::start(&env);
    env.sub_add(&[
        "--url",
        "http://127.0.0.1:9/x",
        "--all",
        "--retry-schedule",
        "none",
    ]);
    env.ok(&["emit", "ContactCreate"]);
    let t = Tmux::new(&env);
    let out = env.path("pane.out");
    let extra: Vec<(&str, &str)> = if no_color {
        vec![("NO_COLOR", "1")]
    } else {
        vec![]
    };
    t.start(&env, "", &extra, true);
    t.pipe_to(&out);
    t.keys(&["Enter"]);
    t.wait_screen("attached", Duration::from_secs(30));
    for (key, marker) in [
        ("2", "ContactCreate"),
        ("3", "Retries"),
        ("4", "▾"),
        ("Enter", "Inspector"),
        ("?", "keys"),
        ("Escape", "Inspector"),
        ("1", "OK 1h"),
    ] {
        t.keys(&[key]);
        t.wait_screen(marker, Duration::from_secs(20));
    }
    t.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.tmux(&["has-session", "-t", "t"]).status.success() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::read(&out).unwrap()
}

#[test]
fn no_color_means_no_colour_codes() {
    let plain = run_all_panes(true);
    let params = sgr_params(&plain);
    assert!(
        !params.is_empty(),
        "no SGR sequences seen at all: the capture is broken"
    );
    let found = colours(&params);
    assert!(found.is_empty(), "colour codes with NO_COLOR=1: {found:?}");
    // The same walk in colour does colour things: the check above can fail.
    let coloured = run_all_panes(false);
    assert!(!colours(&sgr_params(&coloured)).is_empty());
}

#[test]
fn demo_streams_within_the_output_budget() {
    let env = Env::new();
    let t = Tmux::new(&env);
    let out = env.path("pane.out");
    t.start(&env, "demo", &[], true);
    t.pipe_to(&out);
    t.keys(&["Enter"]);
    let started = Instant::now();
    t.wait_screen("legacy-erp", Duration::from_secs(30));
    let alive = started.elapsed();
    eprintln!("demo showed its subscriptions {alive:?} after start");
    assert!(alive < Duration::from_secs(10), "{alive:?}");
    t.keys(&["2"]);
    t.wait_screen("✓orders-api", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let start = file_len(&out);
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let bytes = file_len(&out) - start;
    let rate = bytes as f64 / window.as_secs_f64();
    eprintln!("demo stream at 80x24: {bytes} bytes in {window:?} = {rate:.0} B/s");
    assert!(bytes > 0, "the demo stream never changed the screen");
    assert!(rate < 20_000.0, "{rate:.0} B/s");
    t.keys(&["q"]);
}

/// The seconds in a `in 1m05s` / `in 42s` countdown on screen, if one shows.
fn countdown_secs(screen: &str) -> Option<i64> {
    let at = screen.find(" in ")? + 4;
    let word: String = screen[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let word = word.strip_suffix('s')?;
    match word.split_once('m') {
        Some((m, s)) => Some(m.parse::<i64>().ok()? * 60 + s.parse::<i64>().ok()?),
        None => word.parse().ok(),
    }
}

#[test]
fn the_retry_countdown_ticks_in_seconds() {
    let env = Env::new();
    let failing = Sink::start(&env, &["--status", "500"]);
    let _serve = Serve::start(&env);
    env.sub_add(&[
        "--url",
        &failing.url("/x"),
        "--all",
        "--retry-schedule",
        "90s",
    ]);
    env.ok(&["emit", "ContactCreate"]);
    failing.wait_count(1, Duration::from_secs(30));
    let t = Tmux::new(&env);
    t.start(&env, "", &[], false);
    t.wait_screen("attached", Duration::from_secs(30));
    t.keys(&["3"]);
    t.wait_screen("[status] HTTP 500", Duration::from_secs(20));
    let first = countdown_secs(&t.screen()).unwrap_or_else(|| panic!("{}", t.screen()));
    // Jitter is ±20 %: the first figure is at most 108 s away.
    assert!((1..=108).contains(&first), "{first} s:\n{}", t.screen());
    // The figure falls while nothing else on screen changes: the clock ticks the frame.
    wait_until(
        "the countdown to fall by two seconds",
        Duration::from_secs(20),
        || countdown_secs(&t.screen()).is_some_and(|s| s <= first - 2),
    );
}

/// An endpoint failing under a running engine: the attached console shows the incident
/// line under its header, and `!` selects that endpoint wherever the console is.
#[test]
fn the_incident_line_appears_and_bang_selects_its_endpoint() {
    let env = Env::new();
    let failing = Sink::start(&env, &["--status", "502"]);
    let healthy = Sink::start(&env, &[]);
    let _serve = Serve::start(&env);
    env.sub_add(&["--url", &healthy.url("/ok"), "--name", "fine", "--all"]);
    env.sub_add(&[
        "--url",
        &failing.url("/x"),
        "--name",
        "broken",
        "--all",
        "--retry-schedule",
        "90s",
    ]);
    let t = Tmux::new(&env);
    t.start(&env, "", &[], false);
    t.wait_screen("attached", Duration::from_secs(30));
    env.ok(&["emit", "ContactCreate"]);
    t.wait_screen("▲ incident: broken failing since", Duration::from_secs(30));
    t.keys(&["4", "!"]);
    // The Subscriptions pane, with the broken endpoint's detail below the table.
    t.wait_screen(" broken ─", Duration::from_secs(20));
    assert!(t.screen().contains("Subscriptions"), "{}", t.screen());
}
