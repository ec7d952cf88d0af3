//! Colours, or none: with NO_COLOR every style is plain (bold and reverse still mark things).

use crate::model::{DeliveryStatus, SubState};
use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub fn from_env() -> Theme {
        Theme {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    pub fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    pub fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn dim(self) -> Style {
        self.fg(Color::DarkGray)
    }
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }
    pub fn bad(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn info(self) -> Style {
        self.fg(Color::Blue)
    }
    /// The cursor row: a dark band in colour (coloured cells stay readable), reverse video
    /// without colour.
    pub fn selected(self) -> Style {
        if self.color {
            Style::default()
                .bg(Color::Indexed(237))
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED)
        }
    }

    /// The active tab.
    pub fn tab(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }
    pub fn header(self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    pub fn status(self, s: DeliveryStatus) -> Style {
        match s {
            DeliveryStatus::Delivered => self.ok(),
            DeliveryStatus::Retrying => self.warn(),
            DeliveryStatus::Dead => self.bad(),
            DeliveryStatus::Pending => self.info(),
            DeliveryStatus::Cancelled => self.dim(),
        }
    }

    pub fn state(self, s: SubState) -> Style {
        match s {
            SubState::Active => self.ok(),
            SubState::Paused => self.warn(),
            SubState::Disabled => self.bad(),
            SubState::Pending => self.info(),
        }
    }
}
