use super::fmt;
use crate::tui::state::App;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Row, Table, TableState};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let rows = app.visible_retries();
    let Some(snap) = &app.snapshot else { return };
    let wide = area.width >= 110;
    let id_w = if wide { 30 } else { 10 };
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            let max = snap
                .sub(&r.subscription_id)
                .map(|s| s.max_attempts())
                .unwrap_or(0);
            let spent = r.attempts - r.probes;
            let error = match (r.last_status_code, &r.last_error) {
                (_, Some(e)) => e.clone(),
                (Some(c), None) => format!("HTTP {c}"),
                _ => "-".into(),
            };
            let class = r
                .last_error_class
                .map(|c| format!("[{c}] "))
                .unwrap_or_default();
            Row::new(vec![
                Line::from(fmt::cut(
                    &snap.sub_name(&r.subscription_id),
                    if wide { 14 } else { 12 },
                )),
                Line::from(r.event_type.clone()),
                Line::from(Span::styled(fmt::id(&r.event_id, id_w), theme.dim())),
                Line::from(Span::styled(format!("{spent}/{max}"), theme.warn())),
                Line::from(fmt::countdown(app.now(), r.next_at)),
                Line::from(Span::styled(format!("{class}{error}"), theme.bad())),
            ])
        })
        .collect();
    let count = rows.len();
    let table = Table::new(
        body,
        [
            Constraint::Length(if wide { 14 } else { 12 }),
            Constraint::Length(22),
            Constraint::Length(id_w as u16),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new([
            "ENDPOINT",
            "EVENT TYPE",
            "EVENT",
            "TRY",
            "NEXT",
            "LAST ERROR",
        ])
        .style(theme.header()),
    )
    .row_highlight_style(theme.selected())
    .block(Block::default().borders(Borders::TOP).title(super::title(
        "Retries",
        if snap.retries_cut() {
            format!(
                "{count} of the soonest shown, {} waiting for their next attempt ",
                snap.counts.retrying
            )
        } else {
            format!("{count} waiting for their next attempt ")
        },
        theme,
    )));
    let mut state = TableState::default().with_selected((count > 0).then_some(app.sel()));
    frame.render_stateful_widget(table, area, &mut state);
    if count == 0 {
        super::empty_note(frame, area, "nothing is waiting to be retried", theme);
    }
}
