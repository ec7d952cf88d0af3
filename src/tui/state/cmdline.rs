//! The `:` command line: completion and the commands it runs.

use super::actions::fmt_short;
use super::*;

/// Command-line keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKey {
    Char(char),
    Backspace,
    Complete,
    Run,
    Cancel,
}

pub(super) const LINE_COMMANDS: &[&str] = &[
    "pause",
    "resume",
    "redeliver",
    "test",
    "rm",
    "filter",
    "quit",
];

impl App {
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

    pub(super) fn complete(&mut self) {
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

    pub(super) fn try_line(&mut self, line: &str) -> Result<(), String> {
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
