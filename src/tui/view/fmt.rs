//! Text helpers for the view: ages at minute resolution (so a quiet screen stays still),
//! countdowns to the second (the clock ticks only while one is on screen),
//! truncation, sparklines, highlighted JSON.

use super::super::theme::Theme;
use crate::model::Millis;
use ratatui::style::Color;
use ratatui::text::{Line, Span};

/// "now", "3m", "2h", "4d": how long ago, to the minute.
pub fn age(now: Millis, t: Millis) -> String {
    let mins = (now - t).max(0) / 60_000;
    match mins {
        0 => "<1m".into(),
        1..=59 => format!("{mins}m"),
        60..=2879 => format!("{}h", mins / 60),
        _ => format!("{}d", mins / 1440),
    }
}

/// "due", "in 4s", "in 1m12s", "in 2h05m", "in 3d": a countdown, to the second within
/// the hour (rounded up, so it reads "due" only once the time has come).
pub fn countdown(now: Millis, t: Option<Millis>) -> String {
    let Some(t) = t else { return "-".into() };
    let ms = t - now;
    if ms <= 0 {
        return "due".into();
    }
    let secs = (ms + 999) / 1000;
    match secs {
        0..=59 => format!("in {secs}s"),
        60..=3599 => format!("in {}m{:02}s", secs / 60, secs % 60),
        3600..=172_799 => format!("in {}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("in {}d", secs / 86_400),
    }
}

pub fn hhmm(t: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%H:%M").to_string())
        .unwrap_or_default()
}

pub fn hhmmss(t: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

pub fn ms(v: Option<u64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 10_000 => format!("{}s", v / 1000),
        // Latencies are kept in whole milliseconds: 0 is under one.
        Some(0) => "<1ms".into(),
        Some(v) => format!("{v}ms"),
    }
}

pub fn pct(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 0.9995 => "100%".into(),
        Some(v) => format!("{:.1}%", v * 100.0),
    }
}

pub fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Cuts `s` to `width` characters, marking the cut.
pub fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// Keeps the end of an id, where ids made in the same moment differ (their start is the
/// time), marking the cut at the front.
pub fn id(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::from("…");
    out.extend(s.chars().skip(n - (width - 1)));
    out
}

/// A count in `width` columns: exact when it fits, otherwise a lower bound marked with
/// `+` (rounded down, so `1.2M+` never claims more than there is).
pub fn count(n: i64, width: usize) -> String {
    let exact = n.to_string();
    if exact.len() <= width || n < 1000 {
        return exact;
    }
    let units = [(1_000, 'k'), (1_000_000, 'M'), (1_000_000_000, 'G')];
    let mut short = exact;
    for (unit, suffix) in units {
        let tenths = n / (unit / 10);
        short = if tenths < 100 {
            format!("{}.{}{suffix}+", tenths / 10, tenths % 10)
        } else {
            format!("{}{suffix}+", n / unit)
        };
        if short.len() <= width {
            break;
        }
    }
    short
}

/// Bars for `values` in at most `width` characters: narrower than the values, adjacent
/// ones are added together, so the line still spans all of them (the whole hour).
pub fn sparkline(values: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let n = values.len();
    let vals: Vec<u64> = if width >= n {
        values.to_vec()
    } else {
        (0..width)
            .map(|i| values[i * n / width..(i + 1) * n / width].iter().sum())
            .collect()
    };
    let max = vals.iter().copied().max().unwrap_or(0);
    vals.iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                ' '
            } else {
                BARS[((v * 7).div_ceil(max) as usize).min(7)]
            }
        })
        .collect()
}

/// Pretty JSON with keys, strings, numbers and literals coloured.
pub fn json_lines(value: &serde_json::Value, theme: Theme) -> Vec<Line<'static>> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.lines().map(|l| json_line(l, theme)).collect()
}

fn json_line(line: &str, theme: Theme) -> Line<'static> {
    let mut spans = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut plain = String::new();
    let flush = |plain: &mut String, spans: &mut Vec<Span<'static>>| {
        if !plain.is_empty() {
            spans.push(Span::raw(std::mem::take(plain)));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            flush(&mut plain, &mut spans);
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            let s: String = chars[start..i].iter().collect();
            let is_key = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&':');
            let style = if is_key {
                theme.fg(Color::Cyan)
            } else {
                theme.fg(Color::Green)
            };
            spans.push(Span::styled(s, style));
            continue;
        }
        if c == '-' || c.is_ascii_digit() {
            flush(&mut plain, &mut spans);
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || "+-.eE".contains(chars[i])) {
                i += 1;
            }
            spans.push(Span::styled(
                chars[start..i].iter().collect::<String>(),
                theme.fg(Color::Magenta),
            ));
            continue;
        }
        let rest: String = chars[i..].iter().take(5).collect();
        if let Some(word) = ["true", "false", "null"]
            .iter()
            .find(|w| rest.starts_with(**w))
        {
            flush(&mut plain, &mut spans);
            spans.push(Span::styled(word.to_string(), theme.fg(Color::Yellow)));
            i += word.len();
            continue;
        }
        plain.push(c);
        i += 1;
    }
    flush(&mut plain, &mut spans);
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_to_the_minute_countdowns_to_the_second() {
        assert_eq!(age(120_000, 119_000), "<1m");
        assert_eq!(age(10 * 60_000 + 59_000, 0), "10m");
        assert_eq!(countdown(0, Some(4_000)), "in 4s");
        assert_eq!(countdown(0, Some(3_200)), "in 4s");
        assert_eq!(countdown(0, Some(59_000)), "in 59s");
        assert_eq!(countdown(0, Some(72_000)), "in 1m12s");
        assert_eq!(countdown(0, Some(-5)), "due");
        assert_eq!(countdown(0, Some(3 * 3_600_000 + 300_000)), "in 3h05m");
        assert_eq!(countdown(0, Some(3 * 86_400_000)), "in 3d");
        assert_eq!(ms(Some(0)), "<1ms");
        assert_eq!(ms(Some(7)), "7ms");
    }

    #[test]
    fn counts_are_exact_or_a_marked_lower_bound() {
        assert_eq!(count(99_999, 5), "99999");
        assert_eq!(count(1_000_000, 7), "1000000");
        assert_eq!(count(1_000_000, 5), "1.0M+");
        assert_eq!(count(1_999_999, 5), "1.9M+");
        assert_eq!(count(123_456, 5), "123k+");
        assert_eq!(count(12_345_678, 5), "12M+");
        assert_eq!(count(-3, 1), "-3");
    }

    #[test]
    fn cuts_and_bars() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
        assert_eq!(cut("abc", 0), "");
        assert_eq!(id("evt_01m95vhr1nx637jx5", 9), "…nx637jx5");
        assert_eq!(id("evt_01m95vhr1nx637jx5", 9).chars().count(), 9);
        assert_eq!(id("evt_1", 9), "evt_1");
        assert_eq!(sparkline(&[0, 1, 2, 4], 4).chars().count(), 4);
        assert_eq!(sparkline(&[0, 0], 2), "  ");
        // Narrower than its values, a line still spans them all: the newest stays last.
        assert_eq!(sparkline(&[1, 0, 0, 0, 0, 8], 3), "▂ █");
        assert_eq!(sparkline(&[0; 30], 14).chars().count(), 14);
    }

    #[test]
    fn json_is_split_into_styled_spans_without_losing_text() {
        let v = serde_json::json!({"a": "x\"y", "b": [1, -2.5e3, true, null]});
        let text: String = json_lines(&v, Theme { color: true })
            .iter()
            .map(|l| {
                l.spans
                    .iter()
                    .map(|s| s.content.to_string())
                    .collect::<String>()
                    + "\n"
            })
            .collect();
        assert_eq!(text, serde_json::to_string_pretty(&v).unwrap() + "\n");
    }
}
