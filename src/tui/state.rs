//! The console's state and how actions change it. No I/O here: the loader fills in
//! snapshots, the key map produces actions, the view reads `&App`.

use super::snapshot::{Query, STREAM_WINDOW, Snapshot, StreamQuery, SubRow};
use crate::store::{DeadItem, EventRow, RetryItem};

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

#[derive(Debug, Clone, PartialEq, Eq)]
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
        if !matches!(action, Action::Resize(_)) {
            self.status = None;
        }
        match action {
            Action::Quit => self.quit = true,
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
        }
        self.clamp();
    }
}
