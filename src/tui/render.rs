//! Rendering a state off-screen: for snapshot tests, the size sweep and screenshots.

use super::state::{App, Pane};
use super::theme::Theme;
use super::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

pub fn buffer(app: &App, width: u16, height: u16, theme: Theme) -> Buffer {
    let mut term =
        Terminal::new(TestBackend::new(width, height)).expect("a test backend cannot fail");
    term.draw(|f| view::draw(f, app, theme))
        .expect("a test backend cannot fail");
    term.backend().buffer().clone()
}

/// The buffer's characters, one line per row, trailing spaces kept.
pub fn text(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// Every view worth a picture: the six panes and the help overlay.
pub fn views(app: &App) -> Vec<(&'static str, App)> {
    let mut out = Vec::new();
    for (name, pane) in [
        ("subscriptions", Pane::Subscriptions),
        ("stream", Pane::Stream),
        ("retries", Pane::Retries),
        ("dead-letters", Pane::Dead),
        ("inspector", Pane::Inspector),
        ("audit", Pane::Audit),
    ] {
        let mut a = app.clone();
        a.pane = pane;
        out.push((name, a));
    }
    let mut help = app.clone();
    help.pane = Pane::Stream;
    help.help = true;
    out.push(("help", help));
    out
}
