//! Issue 5's acceptance: everything an on-call engineer does in the console, by keys only,
//! in an 80×24 tmux pane attached to a running `serve`; outcomes checked with the CLI and
//! at the sink.

mod common;
use common::tmux::Tmux;
use common::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn state_of(env: &Env, id: &str) -> String {
    env.json(&["sub", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .map(|s| s["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn every_action_by_keys() {
    let env = Env::new();
    let sink = Sink::start(&env, &[]);
    let failing = Sink::start(&env, &["--status", "500"]);
    let failing_addr = failing.addr.clone();
    let _serve = Serve::start(&env);
    let alpha = env.sub_add(&[
        "--url",
        &sink.url("/alpha"),
        "--events",
        "ContactCreate",
        "--name",
        "alpha",
    ]);
    let beta = env.sub_add(&[
        "--url",
        &sink.url("/beta"),
        "--events",
        "ContactCreate",
        "--name",
        "beta",
    ]);
    env.sub_add(&[
        "--url",
        &failing.url("/dead"),
        "--events",
        "InvoicePaid",
        "--name",
        "delta",
        "--retry-schedule",
        "none",
    ]);
    let t = Tmux::new(&env);
    t.start(&env, "", &[], false);
    t.wait_screen("delta", LONG);

    // Pause beta with keys only: second row, p.
    t.keys(&["j", "p"]);
    t.wait_screen("beta paused", LONG);
    assert_eq!(state_of(&env, &beta), "paused");
    assert_eq!(state_of(&env, &alpha), "active");
    for i in 0..5 {
        env.ok(&["emit", "ContactCreate", "--id", &format!("held-{i}")]);
    }
    wait_until("alpha to get all 5", LONG, || {
        sink.count_path("/alpha") == 5
    });
    assert_eq!(sink.count_path("/beta"), 0);
    // Resume: the held deliveries arrive. `p` toggles the state the table shows, so the
    // table (not just the status line) must show beta paused first, as the engineer sees it.
    wait_until("beta's row to show paused", LONG, || {
        t.screen()
            .lines()
            .any(|l| l.starts_with("beta ") && l.contains(" paused "))
    });
    t.keys(&["p"]);
    t.wait_screen("beta resumed", LONG);
    wait_until("beta to get the held 5", LONG, || {
        sink.count_path("/beta") == 5
    });

    // Dead letters for delta, then the endpoint recovers.
    for i in 0..3 {
        env.ok(&["emit", "InvoicePaid", "--id", &format!("dead-{i}")]);
    }
    wait_until("three dead letters", LONG, || {
        env.json(&["event", "list", "--status", "dead"])
            .as_array()
            .unwrap()
            .len()
            == 3
    });
    failing.stop();
    let recovered = Sink::start_on(&env, &failing_addr, &[]);
    t.keys(&["4"]);
    t.wait_screen("delta HTTP 500 × 3", LONG);
    // R shows the count before anything is sent; n sends nothing.
    t.keys(&["R"]);
    t.wait_screen("redeliver 3 dead deliveries to delta?", LONG);
    t.keys(&["n"]);
    t.wait_screen("cancelled", LONG);
    assert_eq!(recovered.count(), 0);
    // One dead letter: select it, r, confirm.
    t.keys(&["r"]);
    t.wait_screen("redeliver dead-", LONG);
    let screen = t.screen();
    let event = screen
        .split("redeliver ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    t.keys(&["y"]);
    recovered.wait_count(1, LONG);
    assert_eq!(
        recovered.requests()[0]["headers"]["webhook-id"],
        event.as_str()
    );
    // The rest in bulk: the count is now 2.
    t.wait_screen("delta HTTP 500 × 2", LONG);
    t.keys(&["R"]);
    t.wait_screen("redeliver 2 dead deliveries to delta?", LONG);
    t.keys(&["y"]);
    recovered.wait_count(3, LONG);

    // Add a subscription with the form.
    t.keys(&["1"]);
    t.wait_screen("OK 1h", LONG);
    t.keys(&["a"]);
    t.wait_screen("add subscription", LONG);
    t.keys(&["-l", &sink.url("/gamma")]);
    t.keys(&["Tab"]);
    t.keys(&["-l", "gamma"]);
    t.keys(&["Enter"]);
    t.wait_screen("Signing secret, shown this once", LONG);
    let listed = env.json(&["sub", "list"]);
    let gamma = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "gamma")
        .expect("gamma listed")
        .clone();
    assert_eq!(gamma["url"], sink.url("/gamma"));
    assert_eq!(gamma["events"][0], "*");
    t.keys(&["Escape"]);

    // `:pause ID` works like p.
    t.keys(&[":"]);
    t.keys(&["-l", &format!("pause {alpha}")]);
    t.keys(&["Enter"]);
    t.wait_screen("alpha paused", LONG);
    assert_eq!(state_of(&env, &alpha), "paused");
    // With completion: `:res<Tab>al<Tab>` becomes `resume alpha`.
    t.keys(&[":"]);
    t.keys(&["-l", "res"]);
    t.keys(&["Tab"]);
    t.keys(&["-l", "al"]);
    t.keys(&["Tab"]);
    t.wait_screen(":resume alpha", LONG);
    t.keys(&["Enter"]);
    t.wait_screen("alpha resumed", LONG);
    assert_eq!(state_of(&env, &alpha), "active");

    // Delete asks first, then says what it cancelled (nothing is pending here).
    t.wait_screen("gamma              active", LONG);
    t.keys(&["G", "d"]);
    t.wait_screen("delete gamma", LONG);
    t.keys(&["y"]);
    t.wait_screen("gamma deleted", LONG);
    assert!(!env.json(&["sub", "list"]).to_string().contains("gamma"));
    // A failed action reports and the console lives on.
    t.keys(&[":"]);
    t.keys(&["-l", "pause nosuch"]);
    t.keys(&["Enter"]);
    t.wait_screen("no subscription 'nosuch'", LONG);

    // The trail: what the attached console did, with its user, filter and count.
    let trail = env.json(&["audit"]);
    let entries = trail.as_array().unwrap();
    let by = |action: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect::<Vec<_>>()
    };
    let bulk = by("bulk-redeliver");
    assert_eq!(bulk.len(), 1, "{trail:#}");
    assert_eq!(bulk[0]["actor"]["kind"], "console");
    assert_eq!(bulk[0]["actor"]["attached"], true);
    assert_eq!(bulk[0]["filter"], "status=dead");
    assert_eq!(bulk[0]["count"], 2);
    assert_eq!(bulk[0]["outcome"], "ok");
    assert_eq!(by("redeliver")[0]["event_id"], event.as_str());
    assert!(
        by("pause")
            .iter()
            .any(|e| e["subscription_id"] == beta.as_str() && e["actor"]["kind"] == "console"),
        "{trail:#}"
    );
    assert_eq!(by("sub-delete")[0]["actor"]["kind"], "console");
    assert!(by("sub-add").iter().any(|e| e["actor"]["kind"] == "cli"));
    assert!(
        by("sub-add")
            .iter()
            .any(|e| e["actor"]["kind"] == "console")
    );
}

#[test]
fn y_copies_the_selected_event_id_with_osc_52() {
    use base64::Engine as _;
    let env = Env::new();
    let _serve = Serve::start(&env);
    env.ok(&["emit", "ContactCreate", "--id", "evt_copy_me"]);
    let t = Tmux::new(&env);
    let out = env.path("pane.out");
    t.start(&env, "", &[], true);
    t.pipe_to(&out);
    t.keys(&["Enter"]);
    t.wait_screen("attached", LONG);
    t.keys(&["2"]);
    t.wait_screen("evt_copy_me", LONG);
    t.keys(&["j", "y"]);
    t.wait_screen("copied evt_copy_me", LONG);
    let want = format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode("evt_copy_me")
    );
    wait_until("the OSC 52 sequence in the pane's output", LONG, || {
        String::from_utf8_lossy(&std::fs::read(&out).unwrap_or_default()).contains(&want)
    });
}
