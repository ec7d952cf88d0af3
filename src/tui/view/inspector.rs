use super::fmt;
use crate::model::rfc3339;
use crate::tui::state::App;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

/// Everything the inspector shows, as lines; scrolled by the view.
pub fn lines(app: &App, theme: Theme) -> Vec<Line<'static>> {
    let Some(snap) = &app.snapshot else {
        return Vec::new();
    };
    let Some(d) = &snap.inspected else {
        let msg = match &snap.inspect_missing {
            Some(id) => format!("event {id} is not in the store (purged or pruned)"),
            None => "select an event in Stream, Retries or Dead letters and press Enter".into(),
        };
        return vec![Line::from(Span::styled(msg, theme.dim()))];
    };
    let e = &d.event;
    let mut out = vec![
        Line::from(vec![
            Span::styled(e.event_type.clone(), theme.title()),
            Span::styled(format!("  {}", e.id), theme.dim()),
        ]),
        Line::from(Span::styled(
            format!(
                "location {} · {}",
                e.location_id.as_deref().unwrap_or("-"),
                rfc3339(e.timestamp)
            ),
            theme.dim(),
        )),
    ];
    if d.deliveries.is_empty() {
        out.push(Line::from(""));
        out.push(Line::from(Span::styled(
            "no subscription matched this event",
            theme.dim(),
        )));
    }
    for dl in &d.deliveries {
        out.push(Line::from(""));
        let name = snap.sub_name(&dl.subscription_id);
        out.push(Line::from(vec![
            Span::styled(format!("→ {name} "), theme.title()),
            Span::styled(format!("[{}]", dl.status), theme.status(dl.status)),
            Span::styled(format!(" delivery {}", dl.id), theme.dim()),
        ]));
        if let Some(next) = dl.next_at {
            out.push(Line::from(Span::styled(
                format!("  next attempt {}", fmt::countdown(app.now(), Some(next))),
                theme.warn(),
            )));
        }
        if let Some(by) = dl.superseded_by {
            out.push(Line::from(Span::styled(
                format!("  redelivered as delivery {by}"),
                theme.dim(),
            )));
        }
        let sub = snap.sub(&dl.subscription_id);
        let method = sub.map(|s| s.method.upper()).unwrap_or("POST");
        out.push(Line::from(format!(
            "  {method} {}",
            dl.url.as_deref().unwrap_or("(subscription removed)")
        )));
        if dl.attempts.is_empty() {
            out.push(Line::from(Span::styled("  not attempted yet", theme.dim())));
        }
        for a in &dl.attempts {
            let outcome = match (a.status_code, &a.error) {
                (Some(c), None) => Span::styled(format!("{c}"), theme.ok()),
                (Some(c), Some(e)) => Span::styled(format!("{c} {e}"), theme.bad()),
                (None, Some(e)) => Span::styled(e.clone(), theme.bad()),
                (None, None) => Span::raw("-"),
            };
            out.push(Line::from(vec![
                Span::styled(
                    format!(
                        "  #{} {} {:>6} ",
                        a.n,
                        fmt::hhmmss(a.at),
                        fmt::ms(Some(a.latency_ms))
                    ),
                    theme.dim(),
                ),
                Span::styled(
                    a.error_class.map(|c| format!("[{c}] ")).unwrap_or_default(),
                    theme.warn(),
                ),
                outcome,
            ]));
            if let Some(body) = a.response_body.as_ref().filter(|b| !b.is_empty()) {
                let text = String::from_utf8_lossy(body);
                let first = text.lines().next().unwrap_or("");
                out.push(Line::from(Span::styled(
                    format!("     ↳ {}", fmt::cut(first, 200)),
                    theme.dim(),
                )));
            }
        }
        if !request_block_empty(dl) {
            out.push(Line::from(Span::styled("  request as sent:", theme.dim())));
        }
        // The headers exactly as the last attempt sent them (credentials were masked when
        // recorded; the signing secret is never stored with an attempt).
        if let Some(last) = dl.attempts.last() {
            for (k, v) in &last.request_headers {
                out.push(Line::from(vec![
                    Span::styled(format!("  {k}: "), theme.dim()),
                    Span::raw(v.clone()),
                ]));
            }
        }
        match &dl.body {
            Some(body) if !body.is_empty() => {
                out.push(Line::from(Span::styled("  body:", theme.dim())));
                match serde_json::from_slice::<serde_json::Value>(body) {
                    Ok(v) => out.extend(fmt::json_lines(&v, theme).into_iter().map(indent)),
                    Err(_) => out.push(Line::from(format!("  {}", String::from_utf8_lossy(body)))),
                }
            }
            _ => {}
        }
    }
    out.push(Line::from(""));
    out.push(Line::from(Span::styled("event data:", theme.dim())));
    out.extend(fmt::json_lines(e.data.value(), theme));
    out
}

fn request_block_empty(dl: &crate::store::DeliveryDetail) -> bool {
    dl.attempts
        .last()
        .is_none_or(|a| a.request_headers.is_empty())
        && dl.body.as_ref().is_none_or(|b| b.is_empty())
}

fn indent(line: Line<'static>) -> Line<'static> {
    let mut spans = vec![Span::raw("  ")];
    spans.extend(line.spans);
    Line::from(spans)
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let all = lines(app, theme);
    let visible = area.height.saturating_sub(1) as usize;
    let max = all.len().saturating_sub(visible);
    let scroll = app.inspector_scroll.min(max);
    let pos = if all.len() > visible {
        format!(
            "{}–{} of {} ",
            scroll + 1,
            (scroll + visible).min(all.len()),
            all.len()
        )
    } else {
        String::new()
    };
    let p = Paragraph::new(all)
        .scroll((scroll.min(u16::MAX as usize) as u16, 0))
        .block(
            Block::default()
                .borders(Borders::TOP)
                .title(super::title("Inspector", pos, theme)),
        );
    frame.render_widget(p, area);
}
