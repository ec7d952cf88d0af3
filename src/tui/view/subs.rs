use super::fmt;
use crate::tui::state::App;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let rows = app.visible_subs();
    let detail_h = if app.details && area.height >= 16 && !rows.is_empty() {
        6
    } else {
        0
    };
    // Endpoints first, the latest events under them, the selected endpoint's details last.
    let table_h = (rows.len() as u16 + 3)
        .max(4)
        .min(area.height.saturating_sub(detail_h) / 2 + 2);
    let [table_area, latest_area, detail_area] = Layout::vertical([
        Constraint::Length(table_h),
        Constraint::Min(0),
        Constraint::Length(detail_h),
    ])
    .areas(area);
    // Counts widen their columns up to 7 digits, so that they are exact below ten million;
    // past that they show a marked lower bound.
    let digits = |n: i64| n.to_string().len().clamp(4, 7);
    let wait_w = rows
        .iter()
        .map(|r| digits(r.stats.pending + r.stats.retrying))
        .max()
        .unwrap_or(4);
    let dead_w = rows.iter().map(|r| digits(r.stats.dead)).max().unwrap_or(4);
    let mut widths = vec![
        Constraint::Length(18),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Length(wait_w as u16 + 1),
        Constraint::Length(dead_w as u16 + 1),
    ];
    // The activity line gets what the other columns (and the gaps between columns) leave,
    // up to one character per bucket; too narrow to read, it is left out.
    let fixed: u16 = widths
        .iter()
        .map(|c| match c {
            Constraint::Length(n) => *n + 1,
            _ => 0,
        })
        .sum();
    let spark_w = usize::from(table_area.width.saturating_sub(fixed)).min(30);
    let spark = spark_w >= 8;
    if spark {
        widths.push(Constraint::Length(spark_w as u16));
    }
    let mut heading = vec![
        "NAME", "STATE", "OK 1h", "P50", "P95", "LAST", "WAIT", "DEAD",
    ];
    if spark {
        heading.push(if spark_w >= 11 {
            "ACTIVITY 1h"
        } else {
            "LAST 1h"
        });
    }
    let header = Row::new(heading).style(theme.header());
    let now = app.snapshot.as_ref().map(|s| s.now).unwrap_or(0);
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            let state = if r.sub.circuit_open && r.sub.state == crate::model::SubState::Active {
                Span::styled("circuit", theme.bad())
            } else {
                Span::styled(r.sub.state.as_str(), theme.state(r.sub.state))
            };
            let ok_style = match r.success_rate {
                Some(v) if v < 0.9 => theme.bad(),
                Some(v) if v < 0.99 => theme.warn(),
                Some(_) => theme.ok(),
                None => theme.dim(),
            };
            let last = match r.stats.last_status_code {
                Some(c) if (200..300).contains(&c) => Span::styled(c.to_string(), theme.ok()),
                Some(c) => Span::styled(c.to_string(), theme.bad()),
                None if r.stats.last_attempt_at.is_some() => Span::styled("err", theme.bad()),
                None => Span::styled("-", theme.dim()),
            };
            let dead = Span::styled(
                fmt::count(r.stats.dead, dead_w),
                if r.stats.dead > 0 {
                    theme.bad()
                } else {
                    theme.dim()
                },
            );
            let mut cells = vec![
                Line::from(fmt::cut(&r.sub.name, 18)),
                Line::from(state),
                Line::from(Span::styled(fmt::pct(r.success_rate), ok_style)),
                Line::from(fmt::ms(r.p50_ms)),
                Line::from(fmt::ms(r.p95_ms)),
                Line::from(last),
                Line::from(fmt::count(r.stats.pending + r.stats.retrying, wait_w)),
                Line::from(dead),
            ];
            if spark {
                cells.push(Line::from(Span::styled(
                    fmt::sparkline(&r.spark, spark_w),
                    theme.info(),
                )));
            }
            Row::new(cells)
        })
        .collect();
    let count = rows.len();
    let table = Table::new(body, widths)
        .header(header)
        .row_highlight_style(theme.selected())
        .block(Block::default().borders(Borders::TOP).title(super::title(
            "Subscriptions",
            format!("{count} endpoints "),
            theme,
        )));
    let mut state = TableState::default().with_selected((count > 0).then_some(app.sel()));
    frame.render_stateful_widget(table, table_area, &mut state);
    if count == 0 {
        let msg = if app.filter.is_some() {
            "no subscription matches the filter"
        } else {
            "no subscriptions yet: hookctl sub add --url URL --all"
        };
        super::empty_note(frame, table_area, msg, theme);
    }
    if latest_area.height >= 3
        && let Some(snap) = &app.snapshot
    {
        let latest = &snap.stream[..snap.stream.len().min(latest_area.height as usize)];
        let table = Table::new(
            super::stream::event_rows(latest, snap, latest_area, theme),
            super::stream::widths(latest_area),
        )
        .block(Block::default().borders(Borders::TOP).title(super::title(
            "Latest events",
            "2 for the stream ".into(),
            theme,
        )));
        frame.render_widget(table, latest_area);
    }
    if detail_h > 0
        && let Some(r) = rows.get(app.sel())
    {
        let s = &r.sub;
        let events = s
            .events
            .as_ref()
            .map(|e| e.join(", "))
            .unwrap_or_else(|| "all events".into());
        let mut lines = vec![
            Line::from(vec![
                Span::styled(format!("{} ", s.id), theme.dim()),
                Span::raw(format!("{} {}", s.method.upper(), s.url)),
            ]),
            Line::from(format!("events: {events}")),
            Line::from(format!(
                "retries: {} · timeout {} · signed {} in {} · {} / {}",
                if s.retry_schedule_ms.is_empty() {
                    "none".into()
                } else {
                    s.retry_schedule_ms
                        .iter()
                        .map(|m| {
                            humantime::format_duration(std::time::Duration::from_millis(*m))
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                },
                fmt::ms(Some(s.timeout_ms)),
                s.signature_scheme,
                s.signature_header,
                s.format,
                s.payload
            )),
        ];
        let mut health = format!(
            "{} attempts in the last hour · {} consecutive failures · circuit {}",
            r.attempts_1h,
            s.consecutive_failures,
            if s.circuit_open { "OPEN" } else { "closed" }
        );
        if let Some(t) = s.circuit_changed_at.filter(|_| s.circuit_open) {
            health.push_str(&format!(" for {}", fmt::age(now, t)));
        }
        lines.push(Line::from(Span::styled(
            health,
            if s.circuit_open {
                theme.bad()
            } else {
                theme.dim()
            },
        )));
        if let Some(reason) = &s.state_reason {
            lines.push(Line::from(Span::styled(
                format!("{}: {reason}", s.state),
                theme.bad(),
            )));
        }
        let actions: Vec<String> = app
            .snapshot
            .iter()
            .flat_map(|snap| snap.audit.iter())
            .filter(|e| e.subscription_id.as_deref() == Some(s.id.as_str()))
            .take(3)
            .map(|e| {
                let failed = if e.ok { "" } else { " (failed)" };
                format!(
                    "{}{failed} by {} {}",
                    e.action,
                    e.actor.short(),
                    fmt::hhmm(e.at)
                )
            })
            .collect();
        if !actions.is_empty() {
            lines.push(Line::from(Span::styled(
                fmt::cut(
                    &format!("recent actions: {}", actions.join(" · ")),
                    detail_area.width as usize,
                ),
                theme.dim(),
            )));
        }
        frame.render_widget(
            Paragraph::new(lines).block(
                Block::default().borders(Borders::TOP).title(super::title(
                    &fmt::cut(&s.name, 40),
                    String::new(),
                    theme,
                )),
            ),
            detail_area,
        );
    }
}
