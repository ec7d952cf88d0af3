//! Command output: one JSON document, or text in columns. The JSON forms are
//! [`crate::shapes`], shared with the API.

pub use crate::shapes::*;
use serde_json::Value;
use std::io::Write;

pub fn print_json(v: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Pads or cuts `s` to `width` characters.
pub fn cell(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n > width {
        let cut: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}
