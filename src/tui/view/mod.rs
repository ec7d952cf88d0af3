//! Drawing: a pure function of the state. Header, tab bar, the pane, a footer line.

mod audit;
mod dead;
pub mod fmt;
mod form;
mod help;
mod inspector;
mod retries;
mod stream;
mod subs;

use super::snapshot::EngineMode;
use super::state::{App, Overlay, Pane};
use super::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Smallest screen the full layout fits; below it, one line says so.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 8;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "hookctl: terminal too small ({}×{}); need {MIN_WIDTH}×{MIN_HEIGHT}",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(fmt::cut(&msg, area.width as usize)), area);
        return;
    }
    let incident = app.snapshot.as_ref().and_then(|s| s.incident_line());
    let [header, alert, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(incident.is_some())),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, app, theme);
    if let Some(line) = incident {
        // What is wrong now, the same words as `hookctl incident`; `!` goes to the endpoint.
        let text = fmt::cut(&format!("▲ {line} · ! to see"), alert.width as usize);
        frame.render_widget(Paragraph::new(Span::styled(text, theme.bad())), alert);
    }
    draw_tabs(frame, tabs, app, theme);
    match app.pane {
        Pane::Subscriptions => subs::draw(frame, body, app, theme),
        Pane::Stream => stream::draw(frame, body, app, theme),
        Pane::Retries => retries::draw(frame, body, app, theme),
        Pane::Dead => dead::draw(frame, body, app, theme),
        Pane::Inspector => inspector::draw(frame, body, app, theme),
        Pane::Audit => audit::draw(frame, body, app, theme),
    }
    draw_footer(frame, footer, app, theme);
    // The confirmation, the command line and the filter live in the footer.
    match app.overlay() {
        Some(Overlay::Modal(m)) => form::draw_modal(frame, body, m, theme),
        Some(Overlay::Form(f)) => form::draw_form(frame, body, f, theme),
        Some(Overlay::Help) => help::draw(frame, body, theme),
        _ => {}
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let Some(s) = &app.snapshot else {
        frame.render_widget(
            Paragraph::new(Span::styled("hookctl  loading…", theme.title())),
            area,
        );
        return;
    };
    let (engine, style) = match &s.engine {
        EngineMode::Embedded { api: Ok(addr) } => (format!("embedded · API {addr}"), theme.ok()),
        EngineMode::Embedded { api: Err(why) } => {
            (format!("embedded · no API: {why}"), theme.warn())
        }
        EngineMode::Attached { pid: Some(p) } => (format!("attached to pid {p}"), theme.ok()),
        EngineMode::Attached { pid: None } => ("attached".to_string(), theme.ok()),
        EngineMode::Deployment { workers } => {
            (format!("attached to {workers} workers"), theme.ok())
        }
        EngineMode::Stopped => ("no engine running".to_string(), theme.bad()),
    };
    let queue = s.counts.pending + s.counts.retrying;
    let db = std::path::Path::new(&s.db)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let figures = format!(
        "{} ev/s {} dl/s ok {} │ queue {}",
        fmt::rate(s.events_per_s),
        fmt::rate(s.deliveries_per_s),
        fmt::pct(s.success_rate),
        queue
    );
    let short_engine = match &s.engine {
        EngineMode::Embedded { api: Ok(_) } => "embedded".to_string(),
        EngineMode::Embedded { api: Err(_) } => "embedded · no API".to_string(),
        EngineMode::Attached { pid: Some(p) } => format!("attached {p}"),
        EngineMode::Attached { pid: None } => "attached".to_string(),
        EngineMode::Deployment { workers } => format!("{workers} workers"),
        EngineMode::Stopped => "no engine".to_string(),
    };
    let clock = format!("{} UTC", fmt::hhmm(s.now));
    // The widest form that fits: everything, then without address and file, then bare.
    let candidates = [
        (engine, format!(" │ {figures} │ {db} │ {clock}")),
        (short_engine.clone(), format!(" │ {figures} │ {clock}")),
        (short_engine, format!(" {figures} {}", fmt::hhmm(s.now))),
    ];
    let fits = |(e, rest): &(String, String)| {
        8 + 2 + e.chars().count() + rest.chars().count() <= area.width as usize
    };
    let line = match candidates.iter().find(|c| fits(c)) {
        Some((e, rest)) => Line::from(vec![
            Span::styled("hookctl ", theme.title()),
            Span::styled(format!("● {e}"), style),
            Span::raw(rest.clone()),
        ]),
        None => Line::from(Span::raw(fmt::cut(
            &format!("{} {}", candidates[2].0, candidates[2].1.trim()),
            area.width as usize,
        ))),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let s = app.snapshot.as_ref();
    let count = |p: Pane| -> Option<i64> {
        let s = s?;
        match p {
            Pane::Retries => Some(s.counts.retrying),
            Pane::Dead => Some(s.counts.dead),
            _ => None,
        }
    };
    // Full names if they fit, then short ones, then four letters without counts.
    let labels = |name: fn(Pane) -> &'static str, counts: bool| -> Vec<String> {
        Pane::ALL
            .iter()
            .map(|&p| match count(p).filter(|_| counts) {
                Some(n) => format!(" {} {} ({n}) ", p.index() + 1, name(p)),
                None => format!(" {} {} ", p.index() + 1, name(p)),
            })
            .collect()
    };
    let fits = |l: &[String]| {
        l.iter().map(|s| s.chars().count()).sum::<usize>() <= usize::from(area.width)
    };
    let mut chosen = labels(Pane::title, true);
    if !fits(&chosen) {
        chosen = labels(Pane::short_title, true);
    }
    if !fits(&chosen) {
        chosen = labels(|p| &p.title()[..p.title().len().min(4)], false);
    }
    let mut spans = Vec::new();
    for (p, label) in Pane::ALL.into_iter().zip(chosen) {
        let style = if p == app.pane {
            theme
                .selected()
                .add_modifier(ratatui::style::Modifier::BOLD)
        } else {
            theme.dim()
        };
        spans.push(Span::styled(label, style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let line = if let Some(c) = &app.confirm {
        Line::from(vec![
            Span::styled(
                fmt::cut(&c.prompt, (area.width as usize).saturating_sub(12)),
                theme.bad(),
            ),
            Span::styled("  y / n", theme.title()),
        ])
    } else if let Some(l) = &app.cmdline {
        Line::from(vec![
            Span::styled(":", theme.title()),
            Span::raw(l.clone()),
            Span::styled("▏", theme.dim()),
        ])
    } else if let Some(input) = &app.input {
        Line::from(vec![
            Span::styled("/", theme.title()),
            Span::raw(input.clone()),
            Span::styled("▏", theme.dim()),
        ])
    } else if let Some(msg) = &app.status {
        Line::from(Span::styled(msg.clone(), theme.warn()))
    } else {
        let filter = app
            .filter
            .as_ref()
            .map(|f| format!("filter “{f}” (Esc clears) · "))
            .unwrap_or_default();
        let hints = match app.pane {
            Pane::Stream => {
                "Enter inspect · r redeliver · f follow · / filter · : command · ? help · q quit"
            }
            Pane::Inspector => "j/k scroll · r redeliver · y copy · Esc back · ? help · q quit",
            Pane::Audit => {
                "Enter inspect its event · p pause its endpoint · / filter · ? help · q quit"
            }
            Pane::Subscriptions => {
                "p pause · a add · e edit · d delete · t test · R redeliver dead · : · ? · q"
            }
            _ => "Enter inspect · r redeliver · R all dead · p pause · y copy · : · ? help · q",
        };
        Line::from(Span::styled(
            fmt::cut(&format!("{filter}{hints}"), area.width as usize),
            theme.dim(),
        ))
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// The line under an empty table's heading that says why it is empty.
pub(crate) fn empty_note(frame: &mut Frame, table: Rect, text: &str, theme: Theme) {
    let inner = Rect {
        y: table.y + 2,
        height: 1,
        ..table
    };
    frame.render_widget(
        Paragraph::new(Span::styled(text.to_string(), theme.dim())),
        inner,
    );
}

/// A pane's title line: name and what it is showing.
pub(crate) fn title<'a>(name: &str, extra: String, theme: Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!(" {name} "), theme.title()),
        Span::styled(extra, theme.dim()),
    ])
}
