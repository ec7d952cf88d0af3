//! The add/edit subscription form: its fields, its keys, and what it saves.

use super::*;

/// The add/edit subscription form.
#[derive(Debug, Clone, PartialEq)]
pub struct SubForm {
    /// The subscription being edited; `None` adds one.
    pub editing: Option<Subscription>,
    pub url: String,
    pub name: String,
    /// Every event type.
    pub all: bool,
    pub events: Vec<&'static str>,
    /// 0 URL, 1 name, 2 events, 3 save.
    pub focus: usize,
    /// Position in the event list: 0 is "all events", then the catalog.
    pub cursor: usize,
    pub error: Option<String>,
}

impl SubForm {
    pub const FIELDS: usize = 4;

    pub fn new(editing: Option<&Subscription>) -> SubForm {
        match editing {
            None => SubForm {
                editing: None,
                url: String::new(),
                name: String::new(),
                all: true,
                events: Vec::new(),
                focus: 0,
                cursor: 0,
                error: None,
            },
            Some(s) => SubForm {
                editing: Some(s.clone()),
                url: s.url.clone(),
                name: s.name.clone(),
                all: s.events.is_none(),
                events: s
                    .events
                    .iter()
                    .flatten()
                    .filter_map(|t| catalog::resolve(t).ok())
                    .collect(),
                focus: 0,
                cursor: 0,
                error: None,
            },
        }
    }

    pub(super) fn toggle(&mut self) {
        if self.cursor == 0 {
            self.all = !self.all;
            return;
        }
        if let Some(t) = catalog::TYPES.get(self.cursor - 1) {
            if let Some(i) = self.events.iter().position(|e| *e == t.name) {
                self.events.remove(i);
            } else {
                self.events.push(t.name);
                self.all = false;
            }
        }
    }

    /// The subscription this form describes, or what is wrong with it, by the rules
    /// every way of making one follows.
    pub fn build(&self, policy: &Policy) -> Result<Subscription, String> {
        let changes = subscription::Changes {
            url: Some(self.url.clone()),
            name: Some(self.name.clone()),
            events: Some(if self.all {
                vec!["all".into()]
            } else {
                self.events.iter().map(|e| e.to_string()).collect()
            }),
            ..Default::default()
        };
        match &self.editing {
            Some(old) => subscription::apply(policy, changes, old.clone()),
            None => subscription::create(policy, changes),
        }
        .map_err(|e| e.to_string())
    }
}

/// Form keys, already told apart from the app's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormKey {
    Char(char),
    Backspace,
    Next,
    Prev,
    Up,
    Down,
    Toggle,
    Submit,
    Cancel,
}

impl App {
    pub(crate) fn form_key(&mut self, k: FormKey) {
        let Some(f) = &mut self.form else { return };
        f.error = None;
        match k {
            FormKey::Cancel => self.form = None,
            FormKey::Next => f.focus = (f.focus + 1) % SubForm::FIELDS,
            FormKey::Prev => f.focus = (f.focus + SubForm::FIELDS - 1) % SubForm::FIELDS,
            FormKey::Up if f.focus == 2 => f.cursor = f.cursor.saturating_sub(1),
            FormKey::Down if f.focus == 2 => f.cursor = (f.cursor + 1).min(catalog::TYPES.len()),
            FormKey::Up => f.focus = (f.focus + SubForm::FIELDS - 1) % SubForm::FIELDS,
            FormKey::Down => f.focus = (f.focus + 1) % SubForm::FIELDS,
            FormKey::Toggle if f.focus == 2 => f.toggle(),
            FormKey::Toggle | FormKey::Char(_) if f.focus > 1 => {}
            FormKey::Toggle => {
                let field = if f.focus == 0 {
                    &mut f.url
                } else {
                    &mut f.name
                };
                field.push(' ');
            }
            FormKey::Char(c) => {
                let field = if f.focus == 0 {
                    &mut f.url
                } else {
                    &mut f.name
                };
                field.push(c);
            }
            FormKey::Backspace => {
                if f.focus < 2 {
                    let field = if f.focus == 0 {
                        &mut f.url
                    } else {
                        &mut f.name
                    };
                    field.pop();
                }
            }
            FormKey::Submit => match f.build(&self.policy) {
                Ok(sub) => {
                    let cmd = if f.editing.is_some() {
                        Command::Edit(Box::new(sub))
                    } else {
                        Command::Add(Box::new(sub))
                    };
                    self.commands.push(cmd);
                    self.form = None;
                }
                Err(e) => f.error = Some(e),
            },
        }
    }
}
