//! Keys to actions. The overlay on top ([`App::overlay`]) takes the key; otherwise the
//! panes do.

use super::state::{Action, App, FormKey, LineKey, Overlay, Pane};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

pub fn action(app: &App, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match app.overlay() {
        Some(Overlay::Modal(_)) => {
            return Some(match key.code {
                KeyCode::Char('y') => Action::Copy,
                _ => Action::CloseModal,
            });
        }
        Some(Overlay::Confirm(_)) => {
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    Some(Action::Answer(true))
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                    Some(Action::Answer(false))
                }
                _ => None,
            };
        }
        Some(Overlay::Form(form)) => {
            let in_list = form.focus == 2;
            return Some(Action::Form(match key.code {
                KeyCode::Esc => FormKey::Cancel,
                KeyCode::Enter => FormKey::Submit,
                KeyCode::Tab => FormKey::Next,
                KeyCode::BackTab => FormKey::Prev,
                KeyCode::Up => FormKey::Up,
                KeyCode::Down => FormKey::Down,
                KeyCode::Char('k') if in_list => FormKey::Up,
                KeyCode::Char('j') if in_list => FormKey::Down,
                KeyCode::Char(' ') => FormKey::Toggle,
                KeyCode::Backspace => FormKey::Backspace,
                KeyCode::Char(c) => FormKey::Char(c),
                _ => return None,
            }));
        }
        Some(Overlay::Line(_)) => {
            return Some(Action::Line(match key.code {
                KeyCode::Enter => LineKey::Run,
                KeyCode::Esc => LineKey::Cancel,
                KeyCode::Tab => LineKey::Complete,
                KeyCode::Backspace => LineKey::Backspace,
                KeyCode::Char(c) => LineKey::Char(c),
                _ => return None,
            }));
        }
        Some(Overlay::Filter(_)) => {
            return match key.code {
                KeyCode::Enter => Some(Action::FilterApply),
                KeyCode::Esc => Some(Action::FilterCancel),
                KeyCode::Backspace => Some(Action::FilterBackspace),
                KeyCode::Char(c) => Some(Action::FilterInput(c)),
                _ => None,
            };
        }
        // The help takes no keys of its own: the panes' keys work under it.
        Some(Overlay::Help) | None => {}
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Tab => Action::NextPane,
        KeyCode::BackTab => Action::PrevPane,
        KeyCode::Char(c @ '1'..='6') => Action::Goto(Pane::ALL[(c as u8 - b'1') as usize]),
        KeyCode::Char('j') | KeyCode::Down => Action::Down,
        KeyCode::Char('k') | KeyCode::Up => Action::Up,
        KeyCode::Char('g') | KeyCode::Home => Action::Top,
        KeyCode::Char('G') | KeyCode::End => Action::Bottom,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Enter => Action::Enter,
        KeyCode::Esc => Action::Back,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('f') => Action::ToggleFollow,
        KeyCode::Char('p') => Action::Pause,
        KeyCode::Char('r') => Action::Redeliver,
        KeyCode::Char('R') => Action::BulkRedeliver,
        KeyCode::Char('t') => Action::Test,
        KeyCode::Char('a') => Action::Add,
        KeyCode::Char('e') => Action::Edit,
        KeyCode::Char('d') => Action::Delete,
        KeyCode::Char('y') => Action::Copy,
        KeyCode::Char(':') => Action::StartLine,
        KeyCode::Char('!') => Action::GotoIncident,
        _ => return None,
    })
}
