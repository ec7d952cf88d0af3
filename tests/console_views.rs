//! The console's panes rendered off-screen from a real, seeded store: insta snapshots at
//! 80×24 and 120×40, a sweep of sizes that must never panic, and the README screenshots
//! checked against what the code draws today.

mod common;
use common::{Env, path_str};
use hookctl::store::OpenSettings;
use hookctl::tui::state::{Action, App};
use hookctl::tui::{fixture, render, snapshot::Query, svg, theme::Theme};

fn fixture_app() -> App {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = fixture::seed(&dir.path().join("fixture.db")).await.unwrap();
        fixture::app(&*store).await.unwrap()
    })
}

#[test]
fn every_pane_at_two_sizes() {
    let app = fixture_app();
    for (name, view) in render::views(&app) {
        for (w, h) in [(80, 24), (120, 40)] {
            let text = render::text(&render::buffer(&view, w, h, Theme { color: true }));
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
        }
    }
}

#[test]
fn selection_filter_and_frozen_stream() {
    let mut app = fixture_app();
    app.apply(Action::Goto(hookctl::tui::state::Pane::Stream));
    app.apply(Action::Down);
    app.apply(Action::Down);
    assert!(!app.follow, "moving the cursor freezes the stream");
    app.apply(Action::StartFilter);
    for c in "invoice".chars() {
        app.apply(Action::FilterInput(c));
    }
    let typing = render::text(&render::buffer(&app, 80, 24, Theme { color: true }));
    assert!(
        typing.lines().last().unwrap().starts_with("/invoice"),
        "{typing}"
    );
    app.apply(Action::FilterApply);
    assert_eq!(app.filter.as_deref(), Some("invoice"));
    assert!(app.follow, "a new filter shows the newest matches");
    app.apply(Action::Goto(hookctl::tui::state::Pane::Dead));
    let dead = render::text(&render::buffer(&app, 80, 24, Theme { color: true }));
    insta::assert_snapshot!("dead_letters_filtered_80x24", dead);
}

#[test]
fn no_size_panics() {
    let app = fixture_app();
    let widths = [
        1, 2, 3, 5, 10, 20, 39, 40, 41, 60, 79, 80, 81, 100, 120, 160, 200,
    ];
    let heights = [1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 24, 40, 60];
    for (_, view) in render::views(&app) {
        for w in widths {
            for h in heights {
                render::buffer(&view, w, h, Theme { color: true });
                render::buffer(&view, w, h, Theme { color: false });
            }
        }
    }
    let empty = App::default();
    for w in widths {
        for h in heights {
            render::buffer(&empty, w, h, Theme { color: true });
        }
    }
}

#[test]
fn no_color_theme_uses_no_colours() {
    let app = fixture_app();
    for (_, view) in render::views(&app) {
        let buf = render::buffer(&view, 120, 40, Theme { color: false });
        for cell in buf.content() {
            assert_eq!(cell.fg, ratatui::style::Color::Reset);
            assert_eq!(cell.bg, ratatui::style::Color::Reset);
        }
    }
    let coloured = render::buffer(&render::views(&app)[0].1, 120, 40, Theme { color: true });
    assert!(
        coloured
            .content()
            .iter()
            .any(|c| c.fg != ratatui::style::Color::Reset)
    );
}

#[test]
fn screenshots_are_current() {
    let app = fixture_app();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    for (name, view) in render::views(&app) {
        let svg = svg::to_svg(&render::buffer(&view, 100, 30, Theme { color: true }));
        let path = dir.join(format!("{name}.svg"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == svg,
            "{} is not what the console draws today: run `cargo run --example screenshots`",
            path.display()
        );
    }
}

/// More deliveries wait than a five-column count holds: the pane widens to the exact
/// figure, shows a marked lower bound past seven digits, and `status` agrees in both forms.
#[test]
fn a_backlog_past_its_column_shows_exact_or_a_marked_bound() {
    const WAITING: usize = 123_457;
    let env = Env::new();
    let id = env.sub_add(&[
        "--url",
        "http://127.0.0.1:9/x",
        "--all",
        "--name",
        "backlog",
    ]);
    env.ok(&["sub", "pause", &id]);
    let path = env.path("backlog.ndjson");
    let mut text = String::with_capacity(WAITING * 80);
    for i in 0..WAITING {
        text.push_str(&format!(
            "{{\"type\":\"ContactCreate\",\"id\":\"evt_backlog{i:07}\",\"timestamp\":{}}}\n",
            fixture::NOW - 60_000
        ));
    }
    std::fs::write(&path, text).unwrap();
    env.ok(&["emit", "--ndjson", path_str(&path)]);

    let status = env.run(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("123457 pending"), "{status}");
    assert!(status.contains("123457 waiting"), "{status}");
    let (_, json) = env.json_any(&["status"]);
    assert_eq!(json["queue"]["pending"], WAITING, "{json}");
    assert_eq!(json["subscriptions"][0]["pending"], WAITING, "{json}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut app = rt.block_on(async {
        let store = hookctl::store::open(&env.db, &OpenSettings::default())
            .await
            .unwrap();
        let mut app = App::default();
        let mut snap = fixture::snapshot(&*store, &Query::default()).await.unwrap();
        // The CLI's actions carry the wall clock and the user: not for a snapshot.
        snap.audit.clear();
        app.set_snapshot(snap);
        app
    });
    let draw = |app: &App| {
        render::text(&render::buffer(app, 80, 24, Theme { color: false })).replace(&id, "sub_ID")
    };
    let exact = draw(&app);
    insta::assert_snapshot!("backlog_exact_80x24", exact);
    assert!(exact.contains("queue 123457"), "{exact}");
    assert!(exact.contains(" 123457 "), "{exact}");

    let snap = app.snapshot.as_mut().unwrap();
    snap.subs[0].stats.pending = 12_345_678;
    let bound = draw(&app);
    insta::assert_snapshot!("backlog_bound_80x24", bound);
    assert!(bound.contains(" 12345k+ "), "{bound}");
    assert!(!bound.contains("1234567"), "{bound}");
}

/// The retry and dead-letter panes read a window of rows; when more exist, their titles
/// and tabs give the full count and say that the rows are a part of it.
#[test]
fn windows_smaller_than_the_queue_say_so() {
    let mut app = fixture_app();
    let snap = app.snapshot.as_mut().unwrap();
    snap.counts.retrying = 5_000;
    snap.counts.dead = 2_500;
    for (name, view) in render::views(&app) {
        let text = render::text(&render::buffer(&view, 120, 40, Theme { color: false }));
        assert!(text.contains("Retries (5000)"), "{name}: {text}");
        assert!(text.contains("Dead letters (2500)"), "{name}: {text}");
        match name {
            "retries" => assert!(
                text.contains("5 of the soonest shown, 5000 waiting"),
                "{text}"
            ),
            "dead-letters" => {
                assert!(
                    text.contains("2 of the newest shown, 2500 gave up"),
                    "{text}"
                );
                assert!(text.contains("connect × 2+"), "{text}");
            }
            _ => {}
        }
    }
}

/// The audit pane lists who did what, newest first, failures marked; a subscription's
/// detail names its recent actions.
#[test]
fn the_audit_trail_shows_in_its_pane_and_in_a_subscriptions_detail() {
    let mut app = fixture_app();
    app.pane = hookctl::tui::state::Pane::Audit;
    let text = render::text(&render::buffer(&app, 120, 40, Theme { color: false }));
    assert!(text.contains(" 6 Audit "), "{text}");
    assert!(text.contains("console bob (attached)"), "{text}");
    assert!(text.contains("failed"), "{text}");
    let pause = text.find("pause").unwrap();
    let resume = text.find("resume").unwrap();
    assert!(resume < pause, "newest first: {text}");
    app.pane = hookctl::tui::state::Pane::Subscriptions;
    let erp = app
        .visible_subs()
        .iter()
        .position(|r| r.sub.id == "sub_erp")
        .unwrap();
    app.selected[0] = erp;
    let text = render::text(&render::buffer(&app, 120, 40, Theme { color: false }));
    assert!(
        text.contains(
            "recent actions: bulk-redeliver by attached bob 14:21 · sub-add by cli alice 14:05"
        ),
        "{text}"
    );
}

/// The header's incident line: what is wrong now in the words of `hookctl incident`, cut
/// to the width; `!` goes to the endpoint it names; nothing wrong, no line.
#[test]
fn the_incident_line_names_the_endpoint_in_trouble_and_bang_goes_there() {
    let mut app = fixture_app();
    for (w, h) in [(80, 24), (120, 40)] {
        let text = render::text(&render::buffer(&app, w, h, Theme { color: false }));
        let header: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(
            header.contains("▲ incident: legacy-erp failing since"),
            "{header}"
        );
        insta::assert_snapshot!(format!("incident_header_{w}x{h}"), header);
    }
    app.pane = hookctl::tui::state::Pane::Dead;
    app.apply(Action::GotoIncident);
    assert_eq!(app.pane, hookctl::tui::state::Pane::Subscriptions);
    let selected = &app.visible_subs()[app.sel()];
    assert_eq!(selected.sub.id, "sub_erp");

    // Nothing wrong: no line, and the tabs sit right under the header.
    let mut snap = app.snapshot.clone().unwrap();
    snap.incident.clear();
    app.set_snapshot(snap);
    let text = render::text(&render::buffer(&app, 80, 24, Theme { color: false }));
    assert!(!text.contains("incident"), "{text}");
    assert!(
        text.lines().nth(1).unwrap().starts_with(" 1 Subs"),
        "{text}"
    );
}

/// Attached to a PostgreSQL deployment, the header says how many workers share it.
#[test]
fn the_header_counts_a_deployments_workers() {
    use hookctl::tui::snapshot::EngineMode;
    let mut app = fixture_app();
    if let Some(s) = app.snapshot.as_mut() {
        s.engine = EngineMode::Deployment { workers: 3 };
    }
    let wide = render::text(&render::buffer(&app, 120, 40, Theme { color: true }));
    let header = wide.lines().next().unwrap_or_default();
    assert!(header.contains("attached to 3 workers"), "{header}");
    let narrow = render::text(&render::buffer(&app, 60, 20, Theme { color: true }));
    let header = narrow.lines().next().unwrap_or_default();
    assert!(header.contains("3 workers"), "{header}");
}
