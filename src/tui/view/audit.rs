//! The audit pane: operator actions, newest first — who did what to which endpoint or
//! event, and how it ended.

use super::fmt;
use crate::tui::state::App;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Row, Table, TableState};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let rows = app.visible_audit();
    let Some(snap) = &app.snapshot else { return };
    let wide = area.width >= 110;
    let who_w = if wide { 26 } else { 18 };
    let id_w = super::stream::id_width(area);
    let body: Vec<Row> = rows
        .iter()
        .map(|e| {
            let mut target: Vec<String> = Vec::new();
            if let Some(s) = &e.subscription_id {
                target.push(snap.sub_name(s));
            }
            if let Some(ev) = &e.event_id {
                target.push(fmt::id(ev, id_w));
            }
            if let Some(f) = &e.filter {
                target.push(f.clone());
            }
            if let Some(d) = e.detail.as_deref().filter(|_| !e.ok) {
                target.push(format!("— {d}"));
            }
            let outcome = if e.ok {
                Span::styled("ok", theme.ok())
            } else {
                Span::styled("failed", theme.bad())
            };
            let at = if wide {
                chrono::DateTime::from_timestamp_millis(e.at)
                    .map(|d| d.format("%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default()
            } else {
                fmt::hhmmss(e.at)
            };
            Row::new(vec![
                Line::from(Span::styled(at, theme.dim())),
                Line::from(fmt::cut(
                    &if wide {
                        e.actor.describe()
                    } else {
                        e.actor.short()
                    },
                    who_w,
                )),
                Line::from(e.action.clone()),
                Line::from(outcome),
                Line::from(e.count.map(|n| n.to_string()).unwrap_or_default()),
                Line::from(target.join(" ")),
            ])
        })
        .collect();
    let count = rows.len();
    let table = Table::new(
        body,
        [
            Constraint::Length(if wide { 14 } else { 8 }),
            Constraint::Length(who_w as u16),
            Constraint::Length(14),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["TIME", "WHO", "ACTION", "RESULT", "COUNT", "TARGET"]).style(theme.header()))
    .row_highlight_style(theme.selected())
    .block(Block::default().borders(Borders::TOP).title(super::title(
        "Audit",
        format!("{count} operator actions, newest first "),
        theme,
    )));
    let mut state = TableState::default().with_selected((count > 0).then_some(app.sel()));
    frame.render_stateful_widget(table, area, &mut state);
    if count == 0 {
        super::empty_note(frame, area, "no operator actions recorded yet", theme);
    }
}
