//! The console's state and how actions change it. No I/O here: the loader fills in
//! snapshots, the key map produces actions, the view reads `&App`.

use super::commands::{Command, Outcome};
use super::snapshot::{Query, STREAM_WINDOW, Snapshot, StreamQuery, SubRow};
use crate::catalog;
use crate::model::{DeliveryStatus, Millis, SubState, Subscription, now_ms};
use crate::netguard::Policy;
use crate::store::{DeadItem, EventRow, RetryItem};
use crate::subscription;

mod actions;
mod cmdline;
mod form;

pub use cmdline::LineKey;
pub use form::{FormKey, SubForm};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Subscriptions,
    Stream,
    Retries,
    Dead,
    Inspector,
    Audit,
}

impl Pane {
    pub const ALL: [Pane; 6] = [
        Pane::Subscriptions,
        Pane::Stream,
        Pane::Retries,
        Pane::Dead,
        Pane::Inspector,
        Pane::Audit,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Subscriptions => "Subscriptions",
            Pane::Stream => "Stream",
            Pane::Retries => "Retries",
            Pane::Dead => "Dead letters",
            Pane::Inspector => "Inspector",
            Pane::Audit => "Audit",
        }
    }

    /// The tab's name where the full one does not fit.
    pub fn short_title(self) -> &'static str {
        match self {
            Pane::Subscriptions => "Subs",
            Pane::Dead => "Dead",
            Pane::Inspector => "Inspect",
            other => other.title(),
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
    /// To the subscription the header's incident line names.
    GotoIncident,
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
    /// A second passed while a countdown was on screen.
    Tick(Millis),
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
    pub selected: [usize; 6],
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
    /// The wall clock to the second, for countdowns (the snapshot's time is kept to the
    /// minute, so that a quiet screen stays still); 0 until the first tick.
    pub clock: Millis,
}

impl Default for App {
    fn default() -> Self {
        App {
            snapshot: None,
            pane: Pane::Subscriptions,
            previous: Pane::Subscriptions,
            selected: [0; 6],
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
            clock: 0,
        }
    }
}

/// What lies over the panes. One order of precedence, top first: the top one takes the
/// keys and is the one drawn (a message shown once, a confirmation, the subscription form,
/// the command line, the filter being typed, the help).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Overlay<'a> {
    Modal(&'a str),
    Confirm(&'a Confirm),
    Form(&'a SubForm),
    Line(&'a str),
    Filter(&'a str),
    Help,
}

impl App {
    /// The overlay on top, if any.
    pub fn overlay(&self) -> Option<Overlay<'_>> {
        if let Some(m) = &self.modal {
            Some(Overlay::Modal(m))
        } else if let Some(c) = &self.confirm {
            Some(Overlay::Confirm(c))
        } else if let Some(f) = &self.form {
            Some(Overlay::Form(f))
        } else if let Some(l) = &self.cmdline {
            Some(Overlay::Line(l))
        } else if let Some(i) = &self.input {
            Some(Overlay::Filter(i))
        } else if self.help {
            Some(Overlay::Help)
        } else {
            None
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

    /// The time countdowns count from: the clock's second once it ticks, else the
    /// snapshot's minute.
    pub fn now(&self) -> Millis {
        let snap = self.snapshot.as_ref().map(|s| s.now).unwrap_or(0);
        self.clock.max(snap)
    }

    /// A countdown in seconds is on screen: the retry pane or the inspector shows an
    /// attempt due within the hour (later ones count in minutes or hours, and need no
    /// second's tick).
    pub fn counting_down(&self) -> bool {
        let now = self.now();
        let soon = |t: Option<Millis>| t.is_some_and(|t| t > now - 1000 && t - now < 3_600_000);
        if self.overlay().is_some() {
            return false;
        }
        match self.pane {
            Pane::Retries => self.visible_retries().iter().any(|r| soon(r.next_at)),
            Pane::Inspector => self
                .snapshot
                .as_ref()
                .and_then(|s| s.inspected.as_ref())
                .is_some_and(|d| d.deliveries.iter().any(|dl| soon(dl.next_at))),
            _ => false,
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

    pub fn visible_audit(&self) -> Vec<&crate::audit::AuditEntry> {
        let Some(s) = &self.snapshot else {
            return Vec::new();
        };
        s.audit
            .iter()
            .filter(|e| match &self.filter {
                None => true,
                Some(f) => {
                    let f = f.to_lowercase();
                    [
                        Some(e.action.as_str()),
                        Some(e.actor.name.as_str()),
                        e.subscription_id.as_deref(),
                        e.event_id.as_deref(),
                        e.subscription_id.as_deref().map(|id| s.sub_name_ref(id)),
                    ]
                    .into_iter()
                    .flatten()
                    .any(|t| t.to_lowercase().contains(&f))
                }
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
            Pane::Audit => self.visible_audit().len(),
            Pane::Inspector => usize::MAX,
        }
    }

    fn clamp(&mut self) {
        for pane in [
            Pane::Subscriptions,
            Pane::Stream,
            Pane::Retries,
            Pane::Dead,
            Pane::Audit,
        ] {
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
            Pane::Audit => self.visible_audit().get(i).and_then(|e| e.event_id.clone()),
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
        if !matches!(
            action,
            Action::Resize(_) | Action::Done(_) | Action::Tick(_)
        ) {
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
            Action::GotoIncident => {
                let target = self.snapshot.as_ref().and_then(|s| {
                    crate::incident::headline_subscription(&s.incident).map(str::to_string)
                });
                if let Some(id) = target
                    && let Some(i) = self.visible_subs().iter().position(|r| r.sub.id == id)
                {
                    self.pane = Pane::Subscriptions;
                    self.selected[Pane::Subscriptions.index()] = i;
                }
            }
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
                self.selected = [0; 6];
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
            Action::Tick(now) => self.clock = now - now % 1000,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_overlay_is_on_top_in_one_order() {
        let mut app = App {
            help: true,
            ..App::default()
        };
        assert_eq!(app.overlay(), Some(Overlay::Help));
        app.input = Some("inv".into());
        assert_eq!(app.overlay(), Some(Overlay::Filter("inv")));
        app.cmdline = Some("pause".into());
        assert_eq!(app.overlay(), Some(Overlay::Line("pause")));
        app.form = Some(SubForm::new(None));
        assert!(matches!(app.overlay(), Some(Overlay::Form(_))));
        app.confirm = Some(Confirm {
            prompt: "delete?".into(),
            command: Command::Delete {
                sub: "sub_x".into(),
                force: false,
            },
        });
        assert!(matches!(app.overlay(), Some(Overlay::Confirm(_))));
        app.modal = Some("secret".into());
        assert_eq!(app.overlay(), Some(Overlay::Modal("secret")));
    }
}
