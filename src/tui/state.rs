//! The console's state and how actions change it. No I/O here: the loader fills in
//! snapshots, the key map produces actions, the view reads `&App`.

use super::commands::{Command, Outcome};
use super::snapshot::{Query, STREAM_WINDOW, Snapshot, StreamQuery, SubRow};
use crate::catalog;
use crate::model::{DeliveryStatus, SubState, Subscription, now_ms};
use crate::netguard::Policy;
use crate::store::{DeadItem, EventRow, RetryItem};
use crate::subscription;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Subscriptions,
    Stream,
    Retries,
    Dead,
    Inspector,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Subscriptions,
        Pane::Stream,
        Pane::Retries,
        Pane::Dead,
        Pane::Inspector,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Subscriptions => "Subscriptions",
            Pane::Stream => "Stream",
            Pane::Retries => "Retries",
            Pane::Dead => "Dead letters",
            Pane::Inspector => "Inspector",
        }
    }

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    NextPane,
    PrevPane,
    Goto(Pane),
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Enter,
    Back,
    StartFilter,
    FilterInput(char),
    FilterBackspace,
    FilterApply,
    FilterCancel,
    ToggleFollow,
    ToggleHelp,
    /// The terminal's height changed: page size follows it.
    Resize(u16),
    Pause,
    Redeliver,
    BulkRedeliver,
    Test,
    Add,
    Edit,
    Delete,
    Copy,
    StartLine,
    Line(LineKey),
    Form(FormKey),
    /// `y`/`n` on a pending confirmation.
    Answer(bool),
    CloseModal,
    /// What the executor reported.
    Done(Outcome),
}

#[derive(Debug, Clone)]
pub struct App {
    pub snapshot: Option<Snapshot>,
    pub pane: Pane,
    /// Where Esc returns to from the inspector.
    pub previous: Pane,
    pub selected: [usize; 5],
    /// The stream shows the newest rows and moves with them.
    pub follow: bool,
    pub stream_anchor: Option<i64>,
    /// Applied filter (substring of ids, types, names, errors).
    pub filter: Option<String>,
    /// Filter being typed after `/`.
    pub input: Option<String>,
    pub help: bool,
    pub inspect: Option<String>,
    pub inspector_scroll: usize,
    /// Subscription details shown under the table.
    pub details: bool,
    pub status: Option<String>,
    pub quit: bool,
    pub page: usize,
    pub confirm: Option<Confirm>,
    pub form: Option<SubForm>,
    /// The `:` command line being typed.
    pub cmdline: Option<String>,
    /// A message that stays until a key closes it (a secret shown once).
    pub modal: Option<String>,
    pub modal_copy: Option<String>,
    /// Commands for the executor, taken by the run loop.
    pub commands: Vec<Command>,
    /// Text for the clipboard (OSC 52), taken by the run loop.
    pub clipboard: Option<String>,
    /// Commands the executor has answered (see `Query::actions_done`).
    pub actions_done: u64,
    /// Where deliveries may go: the form checks URLs as `sub add` does.
    pub policy: Policy,
}

impl Default for App {
    fn default() -> Self {
        App {
            snapshot: None,
            pane: Pane::Subscriptions,
            previous: Pane::Subscriptions,
            selected: [0; 5],
            follow: true,
            stream_anchor: None,
            filter: None,
            input: None,
            help: false,
            inspect: None,
            inspector_scroll: 0,
            details: true,
            status: None,
            quit: false,
            page: 10,
            confirm: None,
            form: None,
            cmdline: None,
            modal: None,
            modal_copy: None,
            commands: Vec::new(),
            clipboard: None,
            actions_done: 0,
            policy: Policy::default(),
        }
    }
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

impl App {
    pub fn query(&self) -> Query {
        Query {
            stream: StreamQuery {
                anchor: if self.follow {
                    None
                } else {
                    self.stream_anchor
                },
                filter: self.filter.clone(),
            },
            inspect: self.inspect.clone(),
            actions_done: self.actions_done,
        }
    }

    /// Takes a new snapshot; says whether anything on screen could have changed.
    pub fn set_snapshot(&mut self, s: Snapshot) -> bool {
        if self.snapshot.as_ref() == Some(&s) {
            return false;
        }
        self.snapshot = Some(s);
        self.clamp();
        true
    }

    pub fn visible_subs(&self) -> Vec<&SubRow> {
        let Some(s) = &self.snapshot else {
            return Vec::new();
        };
        s.subs
            .iter()
            .filter(|r| match &self.filter {
                None => true,
                Some(f) => {
                    contains(&r.sub.name, f) || contains(&r.sub.id, f) || contains(&r.sub.url, f)
                }
            })
            .collect()
    }

    pub fn visible_stream(&self) -> &[EventRow] {
        self.snapshot
            .as_ref()
            .map(|s| s.stream.as_slice())
            .unwrap_or(&[])
    }

    fn item_matches(
        &self,
        event_id: &str,
        event_type: &str,
        sub: &str,
        error: Option<&str>,
    ) -> bool {
        match &self.filter {
            None => true,
            Some(f) => {
                let name = self
                    .snapshot
                    .as_ref()
                    .map(|s| s.sub_name(sub))
                    .unwrap_or_default();
                contains(event_id, f)
                    || contains(event_type, f)
                    || contains(sub, f)
                    || contains(&name, f)
                    || error.is_some_and(|e| contains(e, f))
            }
        }
    }

    pub fn visible_retries(&self) -> Vec<&RetryItem> {
        let Some(s) = &self.snapshot else {
            return Vec::new();
        };
        s.retries
            .iter()
            .filter(|r| {
                self.item_matches(
                    &r.event_id,
                    &r.event_type,
                    &r.subscription_id,
                    r.last_error.as_deref(),
                )
            })
            .collect()
    }

    pub fn visible_dead(&self) -> Vec<&DeadItem> {
        let Some(s) = &self.snapshot else {
            return Vec::new();
        };
        s.dead
            .iter()
            .filter(|r| {
                self.item_matches(
                    &r.event_id,
                    &r.event_type,
                    &r.subscription_id,
                    r.error.as_deref(),
                )
            })
            .collect()
    }

    fn rows(&self, pane: Pane) -> usize {
        match pane {
            Pane::Subscriptions => self.visible_subs().len(),
            Pane::Stream => self.visible_stream().len(),
            Pane::Retries => self.visible_retries().len(),
            Pane::Dead => self.visible_dead().len(),
            Pane::Inspector => usize::MAX,
        }
    }

    fn clamp(&mut self) {
        for pane in [Pane::Subscriptions, Pane::Stream, Pane::Retries, Pane::Dead] {
            let n = self.rows(pane);
            let i = pane.index();
            self.selected[i] = self.selected[i].min(n.saturating_sub(1));
        }
    }

    pub fn sel(&self) -> usize {
        self.selected[self.pane.index()]
    }

    /// The event the selected row is about, if any.
    pub fn selected_event(&self) -> Option<String> {
        let i = self.sel();
        match self.pane {
            Pane::Stream => self.visible_stream().get(i).map(|e| e.id.clone()),
            Pane::Retries => self.visible_retries().get(i).map(|r| r.event_id.clone()),
            Pane::Dead => self.visible_dead().get(i).map(|r| r.event_id.clone()),
            Pane::Inspector => self.inspect.clone(),
            Pane::Subscriptions => None,
        }
    }

    fn freeze(&mut self) {
        if self.follow {
            self.follow = false;
            self.stream_anchor = self.visible_stream().first().map(|e| e.seq);
        }
    }

    fn move_by(&mut self, delta: isize) {
        if self.pane == Pane::Inspector {
            self.inspector_scroll = self.inspector_scroll.saturating_add_signed(delta);
            return;
        }
        if self.pane == Pane::Stream {
            self.freeze();
        }
        let n = self.rows(self.pane);
        let i = self.pane.index();
        let cur = self.selected[i] as isize;
        let want = cur + delta;
        if self.pane == Pane::Stream {
            let rows = self.visible_stream();
            // Past the end of a full window: slide it towards older rows.
            if want >= n as isize && n as u32 >= STREAM_WINDOW {
                let half = n / 2;
                self.stream_anchor = rows.get(half).map(|e| e.seq);
                self.selected[i] = (want as usize - half).min(n - 1);
                return;
            }
            // Above the top of a window that is not the newest: slide towards newer rows.
            if want < 0 && self.stream_anchor.is_some() {
                let newest = self.snapshot.as_ref().and_then(|s| s.newest_seq);
                let top = rows.first().map(|e| e.seq);
                if let (Some(newest), Some(top)) = (newest, top)
                    && newest > top
                {
                    // Sequences are dense enough that half a window of them is a fair step;
                    // the loader clamps to what exists.
                    let step = (STREAM_WINDOW / 2) as i64;
                    let anchor = (top + step).min(newest);
                    self.stream_anchor = Some(anchor);
                    self.selected[i] = ((anchor - top) as isize + want).max(0) as usize;
                    return;
                }
            }
        }
        self.selected[i] = want.clamp(0, n.saturating_sub(1) as isize) as usize;
    }

    fn open_inspector(&mut self) {
        if let Some(id) = self.selected_event() {
            if self.pane != Pane::Inspector {
                self.previous = self.pane;
            }
            self.inspect = Some(id);
            self.inspector_scroll = 0;
            self.pane = Pane::Inspector;
        }
    }

    pub fn apply(&mut self, action: Action) {
        if !matches!(action, Action::Resize(_) | Action::Done(_)) {
            self.status = None;
        }
        match action {
            Action::Quit => self.quit = true,
            Action::Done(o) => self.outcome(o),
            Action::CloseModal => {
                self.modal = None;
                self.modal_copy = None;
            }
            Action::Answer(yes) => {
                if let Some(c) = self.confirm.take() {
                    if yes {
                        self.commands.push(c.command);
                    } else {
                        self.status = Some("cancelled".into());
                    }
                }
            }
            Action::Form(k) => self.form_key(k),
            Action::Line(k) => match k {
                LineKey::Char(c) => {
                    if let Some(l) = &mut self.cmdline {
                        l.push(c);
                    }
                }
                LineKey::Backspace => {
                    if let Some(l) = &mut self.cmdline {
                        l.pop();
                    }
                }
                LineKey::Complete => self.complete(),
                LineKey::Cancel => self.cmdline = None,
                LineKey::Run => {
                    let line = self.cmdline.take().unwrap_or_default();
                    self.run_line(&line);
                }
            },
            Action::ToggleHelp => self.help = !self.help,
            Action::Back if self.help => self.help = false,
            _ if self.help => {}
            Action::NextPane => self.pane = Pane::ALL[(self.pane.index() + 1) % 5],
            Action::PrevPane => self.pane = Pane::ALL[(self.pane.index() + 4) % 5],
            Action::Goto(p) => self.pane = p,
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page as isize)),
            Action::PageDown => self.move_by(self.page as isize),
            Action::Top => {
                if self.pane == Pane::Stream {
                    self.follow = true;
                    self.stream_anchor = None;
                }
                if self.pane == Pane::Inspector {
                    self.inspector_scroll = 0;
                } else {
                    self.selected[self.pane.index()] = 0;
                }
            }
            Action::Bottom => {
                if self.pane == Pane::Stream {
                    self.freeze();
                }
                if self.pane == Pane::Inspector {
                    self.inspector_scroll = usize::MAX / 2;
                } else {
                    let n = self.rows(self.pane);
                    self.selected[self.pane.index()] = n.saturating_sub(1);
                }
            }
            Action::Enter => match self.pane {
                Pane::Subscriptions => self.details = !self.details,
                _ => self.open_inspector(),
            },
            Action::Back => {
                if self.pane == Pane::Inspector {
                    self.pane = self.previous;
                } else if self.filter.is_some() {
                    self.filter = None;
                }
            }
            Action::StartFilter => self.input = Some(self.filter.clone().unwrap_or_default()),
            Action::FilterInput(c) => {
                if let Some(s) = &mut self.input {
                    s.push(c);
                }
            }
            Action::FilterBackspace => {
                if let Some(s) = &mut self.input {
                    s.pop();
                }
            }
            Action::FilterApply => {
                let f = self.input.take().unwrap_or_default();
                self.filter = (!f.trim().is_empty()).then(|| f.trim().to_string());
                self.selected = [0; 5];
                if self.pane == Pane::Stream {
                    self.follow = true;
                    self.stream_anchor = None;
                }
            }
            Action::FilterCancel => self.input = None,
            Action::ToggleFollow => {
                self.follow = !self.follow;
                if self.follow {
                    self.stream_anchor = None;
                    self.selected[Pane::Stream.index()] = 0;
                } else {
                    self.stream_anchor = self.visible_stream().first().map(|e| e.seq);
                }
            }
            Action::Resize(h) => self.page = (h as usize).saturating_sub(8).max(1),
            Action::Pause => self.key_pause(),
            Action::Redeliver => self.key_redeliver(),
            Action::BulkRedeliver => self.key_bulk(),
            Action::Test => {
                if let Some(s) = self.need_sub() {
                    self.status = Some(format!("sending a test event to {}…", s.name));
                    self.commands.push(Command::Test { sub: s.id });
                }
            }
            Action::Add => self.form = Some(SubForm::new(None)),
            Action::Edit => {
                if let Some(s) = self.need_sub() {
                    self.form = Some(SubForm::new(Some(&s)));
                }
            }
            Action::Delete => self.key_delete(),
            Action::Copy => {
                if let Some(secret) = self.modal_copy.clone() {
                    self.clipboard = Some(secret);
                    self.modal = None;
                    self.modal_copy = None;
                    self.status = Some("secret copied".into());
                } else {
                    self.key_copy();
                }
            }
            Action::StartLine => self.cmdline = Some(String::new()),
        }
        self.clamp();
    }
}

/// A destructive action waiting for `y` (gitui's confirm → confirmed).
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub prompt: String,
    pub command: Command,
}

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

    fn toggle(&mut self) {
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

/// Command-line keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKey {
    Char(char),
    Backspace,
    Complete,
    Run,
    Cancel,
}

const LINE_COMMANDS: &[&str] = &[
    "pause",
    "resume",
    "redeliver",
    "test",
    "rm",
    "filter",
    "quit",
];

impl App {
    /// The subscription the selected row is about.
    pub fn selected_sub(&self) -> Option<String> {
        let i = self.sel();
        match self.pane {
            Pane::Subscriptions => self.visible_subs().get(i).map(|r| r.sub.id.clone()),
            Pane::Retries => self
                .visible_retries()
                .get(i)
                .map(|r| r.subscription_id.clone()),
            Pane::Dead => self
                .visible_dead()
                .get(i)
                .map(|r| r.subscription_id.clone()),
            _ => None,
        }
    }

    fn sub_by_key(&self, key: &str) -> Result<Subscription, String> {
        let Some(s) = &self.snapshot else {
            return Err("not loaded yet".into());
        };
        if let Some(r) = s.subs.iter().find(|r| r.sub.id == key || r.sub.name == key) {
            return Ok(r.sub.clone());
        }
        let matches: Vec<&SubRow> = s
            .subs
            .iter()
            .filter(|r| r.sub.id.starts_with(key))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one.sub.clone()),
            [] => Err(format!("no subscription '{key}'")),
            _ => Err(format!("'{key}' matches several subscriptions")),
        }
    }

    fn need_sub(&mut self) -> Option<Subscription> {
        match self.selected_sub().map(|id| self.sub_by_key(&id)) {
            Some(Ok(s)) => Some(s),
            _ => {
                self.status =
                    Some("select a subscription (Subscriptions, Retries or Dead letters)".into());
                None
            }
        }
    }

    fn confirm(&mut self, prompt: String, command: Command) {
        self.confirm = Some(Confirm { prompt, command });
    }

    pub(crate) fn key_pause(&mut self) {
        if let Some(s) = self.need_sub() {
            let state = if s.state == SubState::Active {
                SubState::Paused
            } else {
                SubState::Active
            };
            self.commands.push(Command::SetState { sub: s.id, state });
        }
    }

    pub(crate) fn key_redeliver(&mut self) {
        let Some(event) = self.selected_event() else {
            self.status = Some("select an event to redeliver".into());
            return;
        };
        let sub = self
            .selected_sub()
            .filter(|_| self.pane != Pane::Subscriptions);
        let to = match &sub {
            Some(id) => self
                .snapshot
                .as_ref()
                .map(|s| s.sub_name(id))
                .unwrap_or_default(),
            None => "every subscription it went to".into(),
        };
        self.confirm(
            format!("redeliver {event} to {to}?"),
            Command::Redeliver {
                event_id: event,
                sub,
            },
        );
    }

    pub(crate) fn key_bulk(&mut self) {
        if let Some(s) = self.need_sub() {
            self.status = Some(format!("counting dead deliveries of {}…", s.name));
            self.commands.push(Command::CountBulk {
                sub: s.id,
                status: DeliveryStatus::Dead,
                since: None,
            });
        }
    }

    fn key_delete(&mut self) {
        if let Some(s) = self.need_sub() {
            self.confirm(
                format!("delete {} ({})?", s.name, s.url),
                Command::Delete {
                    sub: s.id,
                    force: false,
                },
            );
        }
    }

    fn key_copy(&mut self) {
        let text = match self.pane {
            Pane::Inspector => self
                .snapshot
                .as_ref()
                .and_then(|s| s.inspected.as_ref())
                .and_then(|d| serde_json::to_string_pretty(&d.event.data).ok()),
            Pane::Subscriptions => self.selected_sub(),
            _ => self.selected_event(),
        };
        match text {
            Some(t) => {
                self.status = Some(format!("copied {}", fmt_short(&t)));
                self.clipboard = Some(t);
            }
            None => self.status = Some("nothing selected to copy".into()),
        }
    }

    pub(crate) fn outcome(&mut self, o: Outcome) {
        self.actions_done += 1;
        match o {
            Outcome::Done(msg) => self.status = Some(msg),
            Outcome::Failed(msg) => self.status = Some(format!("failed: {msg}")),
            Outcome::BulkCount {
                sub,
                status,
                since,
                count,
            } => {
                let name = self
                    .snapshot
                    .as_ref()
                    .map(|s| s.sub_name(&sub))
                    .unwrap_or_default();
                if count == 0 {
                    self.status = Some(format!("{name} has no {status} deliveries to redeliver"));
                } else {
                    self.confirm(
                        format!("redeliver {count} {status} deliveries to {name}?"),
                        Command::Bulk { sub, status, since },
                    );
                }
            }
            Outcome::Created { id, name, secret } => {
                self.status = Some(format!("{name} added as {id}"));
                self.modal = Some(format!(
                    "{name} added ({id}).\n\nSigning secret, shown this once:\n\n{secret}\n\ny copies it · any other key closes"
                ));
                self.modal_copy = Some(secret);
            }
            Outcome::Unfinished { sub, count } => {
                let name = self
                    .snapshot
                    .as_ref()
                    .map(|s| s.sub_name(&sub))
                    .unwrap_or_default();
                self.confirm(
                    format!("{name} has {count} unfinished deliveries: cancel them and delete?"),
                    Command::Delete { sub, force: true },
                );
            }
        }
    }

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

    /// Words the command line could complete the last word with.
    pub fn completions(&self, line: &str) -> Vec<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ends_with_space = line.ends_with(' ') || line.is_empty();
        let (prefix, before): (&str, Vec<&str>) = if ends_with_space {
            ("", words.clone())
        } else {
            (
                words.last().copied().unwrap_or(""),
                words[..words.len().saturating_sub(1)].to_vec(),
            )
        };
        let subs = || -> Vec<String> {
            self.snapshot
                .as_ref()
                .map(|s| {
                    s.subs
                        .iter()
                        .flat_map(|r| [r.sub.id.clone(), r.sub.name.clone()])
                        .collect()
                })
                .unwrap_or_default()
        };
        let candidates: Vec<String> = match before.as_slice() {
            [] => LINE_COMMANDS.iter().map(|c| c.to_string()).collect(),
            [.., "--sub"] => subs(),
            [.., "--status"] => vec!["dead".into(), "retrying".into()],
            [.., "--since"] => vec!["15m".into(), "1h".into(), "6h".into(), "24h".into()],
            ["pause" | "resume" | "test" | "rm"] => subs(),
            ["redeliver", ..] if prefix.starts_with('-') || before.len() > 1 => {
                vec!["--sub".into(), "--status".into(), "--since".into()]
            }
            ["redeliver"] => {
                let mut c: Vec<String> = vec!["--sub".into()];
                if let Some(s) = &self.snapshot {
                    c.extend(s.dead.iter().map(|d| d.event_id.clone()));
                    c.extend(s.stream.iter().take(20).map(|e| e.id.clone()));
                }
                c
            }
            ["filter", ..] => catalog::TYPES.iter().map(|t| t.name.to_string()).collect(),
            _ => Vec::new(),
        };
        let mut out: Vec<String> = candidates
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect();
        out.dedup();
        out
    }

    fn complete(&mut self) {
        let Some(line) = self.cmdline.clone() else {
            return;
        };
        let options = self.completions(&line);
        let prefix_len = if line.ends_with(' ') {
            0
        } else {
            line.split_whitespace().last().map(str::len).unwrap_or(0)
        };
        match options.as_slice() {
            [] => self.status = Some("no completions".into()),
            [one] => {
                let base = &line[..line.len() - prefix_len];
                self.cmdline = Some(format!("{base}{one} "));
            }
            many => {
                let common = many.iter().skip(1).fold(many[0].clone(), |acc, s| {
                    acc.chars()
                        .zip(s.chars())
                        .take_while(|(a, b)| a == b)
                        .map(|(a, _)| a)
                        .collect()
                });
                if common.len() > prefix_len {
                    let base = &line[..line.len() - prefix_len];
                    self.cmdline = Some(format!("{base}{common}"));
                }
                self.status = Some(fmt_short(&many.join("  ")));
            }
        }
    }

    /// Runs a command line; errors go to the status line.
    pub fn run_line(&mut self, line: &str) {
        if let Err(e) = self.try_line(line) {
            self.status = Some(e);
        }
    }

    fn try_line(&mut self, line: &str) -> Result<(), String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let flag = |name: &str| -> Option<String> {
            words
                .iter()
                .position(|w| *w == name)
                .and_then(|i| words.get(i + 1))
                .map(|s| s.to_string())
        };
        match words.as_slice() {
            [] => Ok(()),
            ["q" | "quit"] => {
                self.quit = true;
                Ok(())
            }
            ["pause" | "resume", key] => {
                let s = self.sub_by_key(key)?;
                let state = if words[0] == "pause" {
                    SubState::Paused
                } else {
                    SubState::Active
                };
                self.commands.push(Command::SetState { sub: s.id, state });
                Ok(())
            }
            ["test", key] => {
                let s = self.sub_by_key(key)?;
                self.status = Some(format!("sending a test event to {}…", s.name));
                self.commands.push(Command::Test { sub: s.id });
                Ok(())
            }
            ["rm" | "delete", key] => {
                let s = self.sub_by_key(key)?;
                self.confirm(
                    format!("delete {} ({})?", s.name, s.url),
                    Command::Delete {
                        sub: s.id,
                        force: false,
                    },
                );
                Ok(())
            }
            ["filter", rest @ ..] => {
                let f = rest.join(" ");
                self.filter = (!f.is_empty()).then_some(f);
                Ok(())
            }
            ["redeliver", rest @ ..] => {
                let sub = flag("--sub").map(|k| self.sub_by_key(&k)).transpose()?;
                let event = rest
                    .first()
                    .filter(|w| !w.starts_with("--"))
                    .map(|s| s.to_string());
                match (event, sub) {
                    (Some(event_id), sub) => {
                        let to = sub.as_ref().map(|s| s.name.clone()).unwrap_or_else(|| "every subscription it went to".into());
                        self.confirm(format!("redeliver {event_id} to {to}?"), Command::Redeliver { event_id, sub: sub.map(|s| s.id) });
                        Ok(())
                    }
                    (None, Some(s)) => {
                        let status = match flag("--status").as_deref() {
                            None | Some("dead") => DeliveryStatus::Dead,
                            Some("retrying") => DeliveryStatus::Retrying,
                            Some(other) => return Err(format!("--status {other}: dead or retrying")),
                        };
                        let since = match flag("--since") {
                            None => None,
                            Some(d) => Some(now_ms() - humantime::parse_duration(&d).map_err(|e| format!("--since {d}: {e}"))?.as_millis() as i64),
                        };
                        self.commands.push(Command::CountBulk { sub: s.id, status, since });
                        Ok(())
                    }
                    (None, None) => Err("redeliver EVENT_ID [--sub ID] | redeliver --sub ID [--status dead|retrying] [--since 1h]".into()),
                }
            }
            [cmd, ..] => Err(format!(
                "unknown command '{cmd}' (Tab completes; try pause, resume, redeliver, test, rm, filter)"
            )),
        }
    }
}

fn fmt_short(s: &str) -> String {
    let one_line = s.replace('\n', " ");
    super::view::fmt::cut(&one_line, 60)
}
