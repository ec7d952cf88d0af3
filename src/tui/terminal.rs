//! Owning the terminal: raw mode and the alternate screen on the way in, and the terminal
//! given back on every way out (normal exit, error, panic).

use anyhow::{Result, bail};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::{IsTerminal, Stdout, stdout};

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Gives the terminal back when dropped.
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

pub fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(stdout(), terminal::LeaveAlternateScreen, cursor::Show);
}

pub fn enter() -> Result<(Term, Guard)> {
    if !stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("the console needs a terminal (use the subcommands for scripts: hookctl --help)");
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    terminal::enable_raw_mode()?;
    let guard = Guard;
    execute!(stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
    let term = Terminal::new(CrosstermBackend::new(stdout()))?;
    Ok((term, guard))
}
