//! A rendered frame as SVG, for the screenshots in the README: the same buffer the
//! terminal would get, drawn cell by cell.

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

const CELL_W: f32 = 8.4;
const CELL_H: f32 = 17.0;
const BG: &str = "#1d1f21";
const FG: &str = "#c5c8c6";

fn color(c: Color, default: &str) -> String {
    match c {
        Color::Reset => default.to_string(),
        Color::Black => "#1d1f21".into(),
        Color::Red => "#cc6666".into(),
        Color::Green => "#b5bd68".into(),
        Color::Yellow => "#f0c674".into(),
        Color::Blue => "#81a2be".into(),
        Color::Magenta => "#b294bb".into(),
        Color::Cyan => "#8abeb7".into(),
        Color::Gray => "#c5c8c6".into(),
        Color::DarkGray => "#707880".into(),
        Color::LightRed => "#d54e53".into(),
        Color::LightGreen => "#b9ca4a".into(),
        Color::LightYellow => "#e7c547".into(),
        Color::LightBlue => "#7aa6da".into(),
        Color::LightMagenta => "#c397d8".into(),
        Color::LightCyan => "#70c0b1".into(),
        Color::White => "#eaeaea".into(),
        Color::Rgb(r, g, b) => format!("#{r:02x}{g:02x}{b:02x}"),
        Color::Indexed(i) => indexed(i, default),
    }
}

/// The xterm 256-colour palette: 16 system colours, a 6×6×6 cube, a grey ramp.
fn indexed(i: u8, default: &str) -> String {
    const SYSTEM: [Color; 16] = [
        Color::Black,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::Gray,
        Color::DarkGray,
        Color::LightRed,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
        Color::White,
    ];
    match i {
        0..=15 => color(SYSTEM[i as usize], default),
        16..=231 => {
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            let n = i - 16;
            format!(
                "#{:02x}{:02x}{:02x}",
                level(n / 36),
                level((n / 6) % 6),
                level(n % 6)
            )
        }
        _ => {
            let v = 8 + (i - 232) * 10;
            format!("#{v:02x}{v:02x}{v:02x}")
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn to_svg(buf: &Buffer) -> String {
    let area = buf.area;
    let w = area.width as f32 * CELL_W;
    let h = area.height as f32 * CELL_H;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.1} {h:.1}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"{BG}\"/>\n\
         <g font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"14px\" xml:space=\"preserve\">\n"
    );
    for y in 0..area.height {
        let mut x = 0;
        while x < area.width {
            let cell = &buf[(x, y)];
            let reversed = cell.modifier.contains(Modifier::REVERSED);
            let (mut fg, mut bg) = (color(cell.fg, FG), color(cell.bg, BG));
            if reversed {
                std::mem::swap(&mut fg, &mut bg);
            }
            let bold = cell.modifier.contains(Modifier::BOLD);
            // A run of cells with one style becomes one element.
            let start = x;
            let mut text = String::new();
            while x < area.width {
                let c = &buf[(x, y)];
                if c.fg != cell.fg || c.bg != cell.bg || c.modifier != cell.modifier {
                    break;
                }
                text.push_str(c.symbol());
                x += 1;
            }
            let px = start as f32 * CELL_W;
            let py = y as f32 * CELL_H;
            if bg != BG {
                out.push_str(&format!(
                    "<rect x=\"{px:.1}\" y=\"{py:.1}\" width=\"{:.1}\" height=\"{CELL_H:.1}\" fill=\"{bg}\"/>\n",
                    (x - start) as f32 * CELL_W
                ));
            }
            if !text.trim().is_empty() {
                out.push_str(&format!(
                    "<text x=\"{px:.1}\" y=\"{:.1}\" fill=\"{fg}\"{}>{}</text>\n",
                    py + CELL_H * 0.78,
                    if bold { " font-weight=\"bold\"" } else { "" },
                    escape(&text)
                ));
            }
        }
    }
    out.push_str("</g>\n</svg>\n");
    out
}
