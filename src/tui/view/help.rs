use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

const KEYS: &[(&str, &str)] = &[
    ("1-6 Tab", "switch pane (6: the audit trail)"),
    ("!", "go to the endpoint the incident line names"),
    ("j k ↑ ↓", "move"),
    ("g G", "top / bottom (PgUp PgDn: a page)"),
    ("Enter", "inspect (details on Subscriptions)"),
    ("Esc", "back · clear filter"),
    ("/", "filter"),
    ("f", "follow the stream / freeze it"),
    ("p", "pause / resume the endpoint"),
    ("r", "redeliver the selected event (confirm)"),
    (
        "R",
        "redeliver the endpoint's dead letters (count, confirm)",
    ),
    ("t", "send the endpoint a test event"),
    ("a e d", "add / edit / delete a subscription"),
    ("y", "copy the id (the payload in the inspector) via OSC 52"),
    (
        ":",
        "command line: pause ID, redeliver --sub ID --since 1h; Tab",
    ),
    ("?", "this help"),
    ("q", "quit at once (unfinished attempts are retried later)"),
];

pub fn draw(frame: &mut Frame, area: Rect, theme: Theme) {
    let w = 76.min(area.width);
    let h = (KEYS.len() as u16 + 2).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<10} "), theme.title()),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        r,
    );
}
