use super::fmt;
use crate::tui::state::App;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Row, Table, TableState};

/// Rows of events with their deliveries, newest first: the stream pane's body, also
/// shown under the subscriptions as the latest events.
pub fn event_rows<'a>(
    rows: &[crate::store::EventRow],
    snap: &crate::tui::snapshot::Snapshot,
    area: Rect,
    theme: Theme,
) -> Vec<Row<'a>> {
    let id_w = id_width(area);
    rows.iter()
        .map(|e| {
            let mut spans: Vec<Span> = Vec::new();
            if e.deliveries.is_empty() {
                spans.push(Span::styled("no subscriber", theme.dim()));
            }
            for d in &e.deliveries {
                let name = fmt::cut(&snap.sub_name(&d.subscription_id), 12);
                let mark = match d.status {
                    crate::model::DeliveryStatus::Delivered => "✓",
                    crate::model::DeliveryStatus::Retrying => "↻",
                    crate::model::DeliveryStatus::Dead => "✗",
                    crate::model::DeliveryStatus::Pending => "…",
                    crate::model::DeliveryStatus::Cancelled => "–",
                };
                spans.push(Span::styled(
                    format!("{mark}{name} "),
                    theme.status(d.status),
                ));
            }
            Row::new(vec![
                Line::from(Span::styled(fmt::hhmmss(e.timestamp), theme.dim())),
                Line::from(e.event_type.clone()),
                Line::from(Span::styled(fmt::id(&e.id, id_w), theme.dim())),
                Line::from(spans),
            ])
        })
        .collect()
}

/// Room for a whole id on a wide screen; otherwise its tail.
pub fn id_width(area: Rect) -> usize {
    if area.width >= 110 { 30 } else { 14 }
}

pub fn widths(area: Rect) -> [Constraint; 4] {
    [
        Constraint::Length(8),
        Constraint::Length(24),
        Constraint::Length(id_width(area) as u16),
        Constraint::Min(10),
    ]
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let rows = app.visible_stream();
    let Some(snap) = &app.snapshot else { return };
    let mode = if app.follow {
        "following".to_string()
    } else {
        let behind = match (snap.newest_seq, rows.first()) {
            (Some(n), Some(top)) if n > top.seq => " · newer events above".to_string(),
            _ => String::new(),
        };
        format!("frozen (f follows){behind}")
    };
    let filter = app
        .filter
        .as_ref()
        .map(|f| format!(" · “{f}”"))
        .unwrap_or_default();
    let body = event_rows(rows, snap, area, theme);
    let table = Table::new(body, widths(area))
        .header(Row::new(["TIME", "TYPE", "EVENT", "DELIVERIES"]).style(theme.header()))
        .row_highlight_style(theme.selected())
        .block(Block::default().borders(Borders::TOP).title(super::title(
            "Stream",
            format!("every event, newest first, with its deliveries · {mode}{filter} "),
            theme,
        )));
    let selected = (!rows.is_empty()).then_some(app.sel());
    let mut state = TableState::default().with_selected(if app.follow { None } else { selected });
    frame.render_stateful_widget(table, area, &mut state);
    if rows.is_empty() {
        let msg = if app.filter.is_some() {
            "no event matches the filter"
        } else {
            "no events yet: hookctl emit ContactCreate"
        };
        super::empty_note(frame, area, msg, theme);
    }
}
