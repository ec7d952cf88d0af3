use super::fmt;
use crate::tui::snapshot::{dead_group_key, dead_groups};
use crate::tui::state::App;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let rows = app.visible_dead();
    let Some(snap) = &app.snapshot else { return };
    let groups = dead_groups(&snap.dead);
    let mut body: Vec<Row> = Vec::new();
    // Group headers are rows too; the selection index counts only dead letters.
    let id_w = super::stream::id_width(area);
    let mut selected_row = None;
    let mut last_key = None;
    for (i, d) in rows.iter().enumerate() {
        let key = dead_group_key(d);
        if last_key.as_ref() != Some(&key) {
            let error = match (d.error_class, d.status_code) {
                (Some(crate::model::ErrorClass::Status), Some(c)) => format!("HTTP {c}"),
                (Some(c), _) => c.to_string(),
                (None, _) => "unknown".into(),
            };
            body.push(
                Row::new(vec![Line::from(vec![
                    Span::styled(
                        format!("▾ {} ", snap.sub_name(&d.subscription_id)),
                        theme.title(),
                    ),
                    Span::styled(
                        format!(
                            "{error} × {}{}",
                            groups.get(&key).copied().unwrap_or(0),
                            if snap.dead_cut() { "+" } else { "" }
                        ),
                        theme.bad(),
                    ),
                ])])
                .style(theme.header()),
            );
            last_key = Some(key);
        }
        if i == app.sel() {
            selected_row = Some(body.len());
        }
        body.push(Row::new(vec![
            Line::from(format!("  {}", d.event_type)),
            Line::from(Span::styled(fmt::id(&d.event_id, id_w), theme.dim())),
            Line::from(format!("{} tries", d.attempts)),
            Line::from(format!("{} ago", fmt::age(snap.now, d.died_at))),
            Line::from(Span::styled(
                d.error.clone().unwrap_or_default(),
                theme.dim(),
            )),
        ]));
    }
    let count = rows.len();
    let table = Table::new(
        body,
        [
            Constraint::Length(26),
            Constraint::Length(id_w as u16),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Min(4),
        ],
    )
    .row_highlight_style(theme.selected())
    .block(Block::default().borders(Borders::TOP).title(super::title(
        "Dead letters",
        if snap.dead_cut() {
            format!(
                "{count} of the newest shown, {} gave up, by endpoint and error ",
                snap.counts.dead
            )
        } else {
            format!("{count} gave up, by endpoint and error ")
        },
        theme,
    )));
    let mut state = TableState::default().with_selected(selected_row);
    frame.render_stateful_widget(table, area, &mut state);
    if count == 0 {
        let inner = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        frame.render_widget(
            Paragraph::new(Span::styled("no dead letters", theme.dim())),
            inner,
        );
    }
}
