//! The keys that act on an endpoint or an event, their confirmations, and what the
//! executor answers.

use super::*;

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
            Pane::Audit => self
                .visible_audit()
                .get(i)
                .and_then(|e| e.subscription_id.clone()),
            _ => None,
        }
    }

    pub(super) fn sub_by_key(&self, key: &str) -> Result<Subscription, String> {
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

    pub(super) fn need_sub(&mut self) -> Option<Subscription> {
        match self.selected_sub().map(|id| self.sub_by_key(&id)) {
            Some(Ok(s)) => Some(s),
            _ => {
                self.status =
                    Some("select a subscription (Subscriptions, Retries or Dead letters)".into());
                None
            }
        }
    }

    pub(super) fn confirm(&mut self, prompt: String, command: Command) {
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

    pub(super) fn key_delete(&mut self) {
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

    pub(super) fn key_copy(&mut self) {
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
}

pub(super) fn fmt_short(s: &str) -> String {
    let one_line = s.replace('\n', " ");
    crate::tui::view::fmt::cut(&one_line, 60)
}
