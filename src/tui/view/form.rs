//! What sits on top of a pane: the subscription form, a message shown once.

use super::fmt;
use crate::catalog;
use crate::tui::state::SubForm;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub fn draw_form(frame: &mut Frame, area: Rect, f: &SubForm, theme: Theme) {
    let r = centered(area, 72, area.height);
    let label = |i: usize, name: &str| {
        let style = if f.focus == i {
            theme.title()
        } else {
            theme.dim()
        };
        Span::styled(format!("{name:>7} "), style)
    };
    let cursor = |i: usize| if f.focus == i { "▏" } else { "" };
    let inner_w = r.width.saturating_sub(12) as usize;
    let mut lines = vec![
        Line::from(vec![
            label(0, "URL"),
            Span::raw(fmt::cut(&f.url, inner_w)),
            Span::styled(cursor(0), theme.title()),
        ]),
        Line::from(vec![
            label(1, "Name"),
            Span::raw(if f.name.is_empty() && f.focus != 1 {
                "(the URL's host)".to_string()
            } else {
                f.name.clone()
            }),
            Span::styled(cursor(1), theme.title()),
        ]),
        Line::from(vec![
            label(2, "Events"),
            Span::raw(if f.all {
                "all".to_string()
            } else {
                fmt::cut(&f.events.join(", "), inner_w)
            }),
        ]),
    ];
    // The catalog list: a window around the cursor.
    let list_h = r.height.saturating_sub(9) as usize;
    let total = catalog::TYPES.len() + 1;
    let start = f
        .cursor
        .saturating_sub(list_h / 2)
        .min(total.saturating_sub(list_h));
    for i in start..(start + list_h).min(total) {
        let (checked, name) = if i == 0 {
            (f.all, "all events".to_string())
        } else {
            let t = &catalog::TYPES[i - 1];
            (
                f.events.contains(&t.name),
                format!("{:<30} {}", t.name, t.group),
            )
        };
        let mark = if checked { "[x]" } else { "[ ]" };
        let text = fmt::cut(
            &format!("        {mark} {name}"),
            r.width.saturating_sub(2) as usize,
        );
        let style = if f.focus == 2 && i == f.cursor {
            theme.selected()
        } else {
            ratatui::style::Style::default()
        };
        lines.push(Line::from(Span::styled(text, style)));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        label(3, ""),
        Span::styled(
            "[ Save ]",
            if f.focus == 3 {
                theme.selected()
            } else {
                theme.title()
            },
        ),
        Span::styled(
            "  Enter saves · Tab next · Space toggles · Esc",
            theme.dim(),
        ),
    ]));
    if let Some(e) = &f.error {
        lines.push(Line::from(Span::styled(e.clone(), theme.bad())));
    } else if f.editing.is_none() {
        lines.push(Line::from(Span::styled(
            "A signing secret is generated and shown once.",
            theme.dim(),
        )));
    }
    let title = if f.editing.is_some() {
        " edit subscription "
    } else {
        " add subscription "
    };
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        r,
    );
}

pub fn draw_modal(frame: &mut Frame, area: Rect, text: &str, theme: Theme) {
    let lines: Vec<Line> = text.lines().map(|l| Line::from(l.to_string())).collect();
    let r = centered(area, 70, lines.len() as u16 + 2);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(Span::styled(" note ", theme.title()))),
        r,
    );
}
