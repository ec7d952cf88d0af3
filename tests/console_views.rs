//! The console's panes rendered off-screen from a real, seeded store: insta snapshots at
//! 80×24 and 120×40, a sweep of sizes that must never panic, and the README screenshots
//! checked against what the code draws today.

use hookctl::tui::state::{Action, App};
use hookctl::tui::{fixture, render, svg, theme::Theme};

fn fixture_app() -> App {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = fixture::seed(&dir.path().join("fixture.db")).await.unwrap();
        fixture::app(&store).await.unwrap()
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
