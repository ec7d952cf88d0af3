//! What console actions do: commands executed off the UI loop against the store (and, for
//! test sends, the network), each answered with an outcome for the status line.

use crate::model::*;
use crate::netguard::Policy;
use crate::store::{RedeliverTarget, Store};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    SetState {
        sub: String,
        state: SubState,
    },
    Redeliver {
        event_id: String,
        sub: Option<String>,
    },
    /// Counts first: the answer is `Outcome::BulkCount`, which asks for confirmation.
    CountBulk {
        sub: String,
        status: DeliveryStatus,
        since: Option<Millis>,
    },
    Bulk {
        sub: String,
        status: DeliveryStatus,
        since: Option<Millis>,
    },
    Test {
        sub: String,
    },
    Add(Box<Subscription>),
    Edit(Box<Subscription>),
    Delete {
        sub: String,
        force: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done(String),
    Failed(String),
    BulkCount {
        sub: String,
        status: DeliveryStatus,
        since: Option<Millis>,
        count: usize,
    },
    /// A new subscription: its secret is shown once.
    Created {
        id: String,
        name: String,
        secret: String,
    },
    /// Delete refused for unfinished deliveries: ask again with force.
    Unfinished {
        sub: String,
        count: i64,
    },
}

pub struct Executor {
    pub store: Arc<dyn Store>,
    pub policy: Arc<Policy>,
    pub bind_address: Option<std::net::IpAddr>,
    /// Who the audit trail says acted: this console's user.
    pub actor: crate::audit::Actor,
}

impl Executor {
    pub async fn run(
        self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        tx: mpsc::UnboundedSender<Outcome>,
    ) {
        while let Some(cmd) = rx.recv().await {
            let out = match self.execute(cmd).await {
                Ok(o) => o,
                Err(e) => Outcome::Failed(format!("{e:#}")),
            };
            if tx.send(out).is_err() {
                return;
            }
        }
    }

    /// Why a URL may not be saved, as `sub add` would say it.
    fn refused(&self, url: &str) -> Option<String> {
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) => u,
            Err(e) => return Some(format!("{url}: {e}")),
        };
        self.policy
            .check_url(&parsed)
            .err()
            .map(|e| format!("{url}: {e}"))
    }

    async fn name(&self, id: &str) -> String {
        match self.store.find_subscription(id).await {
            Ok(Some(s)) => s.name,
            _ => id.to_string(),
        }
    }

    pub async fn execute(&self, cmd: Command) -> anyhow::Result<Outcome> {
        Ok(match cmd {
            Command::SetState { sub, state } => {
                if !self
                    .store
                    .set_subscription_state(&sub, state, Some(&self.actor))
                    .await?
                {
                    return Ok(Outcome::Failed(format!("no subscription {sub}")));
                }
                let what = match state {
                    SubState::Paused => "paused: new deliveries are held",
                    _ => "resumed: held deliveries are released",
                };
                Outcome::Done(format!("{} {what}", self.name(&sub).await))
            }
            Command::Redeliver { event_id, sub } => {
                let done = self
                    .store
                    .redeliver(
                        RedeliverTarget::Event {
                            event_id: event_id.clone(),
                            subscription_id: sub,
                        },
                        false,
                        now_ms(),
                        Some(&self.actor),
                    )
                    .await?;
                Outcome::Done(format!(
                    "redelivering {event_id} ({} deliveries)",
                    done.len()
                ))
            }
            Command::CountBulk { sub, status, since } => {
                let plan = self
                    .store
                    .redeliver(bulk(&sub, status, since), true, now_ms(), None)
                    .await?;
                Outcome::BulkCount {
                    sub,
                    status,
                    since,
                    count: plan.len(),
                }
            }
            Command::Bulk { sub, status, since } => {
                let done = self
                    .store
                    .redeliver(
                        bulk(&sub, status, since),
                        false,
                        now_ms(),
                        Some(&self.actor),
                    )
                    .await?;
                Outcome::Done(format!(
                    "redelivering {} {status} deliveries to {}",
                    done.len(),
                    self.name(&sub).await
                ))
            }
            Command::Test { sub } => self.test(&sub).await?,
            Command::Add(s) | Command::Edit(s) if self.refused(&s.url).is_some() => {
                Outcome::Failed(self.refused(&s.url).unwrap_or_default())
            }
            Command::Add(s) => {
                let (id, name, secret) = (s.id.clone(), s.name.clone(), s.secret.clone());
                self.store.add_subscription(*s, Some(&self.actor)).await?;
                Outcome::Created { id, name, secret }
            }
            Command::Edit(s) => {
                let name = s.name.clone();
                self.store
                    .update_subscription(*s, Some(&self.actor))
                    .await?;
                Outcome::Done(format!("{name} saved"))
            }
            Command::Delete { sub, force } => {
                let name = self.name(&sub).await;
                let out = self
                    .store
                    .delete_subscription(&sub, force, Some(&self.actor))
                    .await?;
                if !out.deleted && out.unfinished > 0 {
                    Outcome::Unfinished {
                        sub,
                        count: out.unfinished,
                    }
                } else if out.unfinished > 0 {
                    Outcome::Done(format!(
                        "{name} deleted; {} unfinished deliveries cancelled",
                        out.unfinished
                    ))
                } else {
                    Outcome::Done(format!("{name} deleted"))
                }
            }
        })
    }

    /// Sends one sample event straight to the endpoint (not through the queue) and says
    /// what came back.
    async fn test(&self, id: &str) -> anyhow::Result<Outcome> {
        let Some(sub) = self.store.find_subscription(id).await? else {
            return Ok(Outcome::Failed(format!("no subscription {id}")));
        };
        let t = sub
            .events
            .as_ref()
            .and_then(|e| e.first().cloned())
            .unwrap_or_else(|| "ContactCreate".into());
        let out = crate::engine::testsend::send(
            &self.store,
            &sub,
            &t,
            false,
            self.policy.clone(),
            self.bind_address,
        )
        .await?;
        Ok(match out.response {
            Some(Ok(r)) if (200..300).contains(&r.status) => Outcome::Done(format!(
                "test {t} to {}: {} in {} ms",
                sub.name,
                r.status,
                r.latency.as_millis()
            )),
            Some(Ok(r)) => Outcome::Failed(format!(
                "test {t} to {}: HTTP {} in {} ms",
                sub.name,
                r.status,
                r.latency.as_millis()
            )),
            Some(Err(f)) => Outcome::Failed(format!(
                "test {t} to {}: [{}] {}",
                sub.name, f.class, f.message
            )),
            None => Outcome::Done(format!("test {t} to {}: not sent", sub.name)),
        })
    }
}

fn bulk(sub: &str, status: DeliveryStatus, since: Option<Millis>) -> RedeliverTarget {
    RedeliverTarget::Bulk {
        subscription_id: sub.to_string(),
        statuses: vec![status],
        since,
    }
}
