//! Operational events: hookctl's own news about its endpoints, as events of catalog types
//! of their own (`hookctl.*`) that a subscription takes like any other (signed, retried,
//! recorded). The rules live here once; a store emits the events in the transaction of
//! the change they report, so a change and its news are committed or lost together.
//!
//! No loops: a subscription that takes operational events is never their subject, so an
//! ops endpoint that fails says nothing about itself, and a subscription to every type
//! (`all`) does not take them — they go only where they are asked for by name, and are
//! not stored at all when no subscription asks.

use crate::catalog::EventType;
use crate::model::{Millis, rfc3339};
use crate::store::NewEvent;
use serde_json::{Value, json};

pub const CIRCUIT_OPENED: &str = "hookctl.circuit.opened";
pub const CIRCUIT_CLOSED: &str = "hookctl.circuit.closed";
pub const DISABLED: &str = "hookctl.subscription.disabled";
pub const ENABLED: &str = "hookctl.subscription.enabled";
pub const DEAD_LETTERED: &str = "hookctl.delivery.dead_lettered";
pub const BACKLOG_ALERT: &str = "hookctl.backlog.alert";
pub const BACKLOG_CLEARED: &str = "hookctl.backlog.cleared";

pub const GROUP: &str = "hookctl (operational, emitted by hookctl itself)";

pub const TYPES: &[EventType] = &[
    EventType {
        name: CIRCUIT_OPENED,
        group: GROUP,
        description: "An endpoint's circuit opened after consecutive failures",
    },
    EventType {
        name: CIRCUIT_CLOSED,
        group: GROUP,
        description: "An endpoint's circuit closed again",
    },
    EventType {
        name: DISABLED,
        group: GROUP,
        description: "A subscription was disabled (its endpoint answered 410 Gone)",
    },
    EventType {
        name: ENABLED,
        group: GROUP,
        description: "A disabled subscription was enabled again",
    },
    EventType {
        name: DEAD_LETTERED,
        group: GROUP,
        description: "Deliveries to an endpoint went dead (at most one event a minute)",
    },
    EventType {
        name: BACKLOG_ALERT,
        group: GROUP,
        description: "An endpoint's waiting backlog or its oldest delivery passed a limit",
    },
    EventType {
        name: BACKLOG_CLEARED,
        group: GROUP,
        description: "An endpoint's backlog fell back under its limit",
    },
];

/// Dead letters of one endpoint are reported at most once per window.
pub const DEAD_WINDOW_MS: Millis = 60_000;

pub fn is_operational(event_type: &str) -> bool {
    event_type.starts_with("hookctl.")
}

/// A subscription that takes operational events (and so is never their subject).
pub fn takes_operational(events: Option<&[String]>) -> bool {
    events.is_some_and(|t| t.iter().any(|t| is_operational(t)))
}

/// A batch's dead letters by subscription: (subscription, how many, the last one's error).
pub fn deaths(outcomes: &[crate::store::Outcome]) -> Vec<(String, i64, Option<String>)> {
    let mut deaths: Vec<(String, i64, Option<String>)> = Vec::new();
    for o in outcomes
        .iter()
        .filter(|o| o.status == crate::model::DeliveryStatus::Dead)
    {
        match deaths.iter_mut().find(|d| d.0 == o.subscription_id) {
            Some(d) => {
                d.1 += 1;
                d.2 = o.attempt.error.clone();
            }
            None => deaths.push((o.subscription_id.clone(), 1, o.attempt.error.clone())),
        }
    }
    deaths
}

/// What an operational event says about: the endpoint, as its subscription describes it.
#[derive(Debug, Clone)]
pub struct Subject {
    pub id: String,
    pub name: String,
    pub url: String,
    pub location_id: Option<String>,
}

/// A change worth telling.
#[derive(Debug, Clone, PartialEq)]
pub enum News {
    CircuitOpened {
        failures: i64,
        last_error: Option<String>,
    },
    CircuitClosed {
        reason: String,
    },
    Disabled {
        reason: String,
    },
    Enabled,
    DeadLettered {
        count: i64,
        first_at: Millis,
        last_error: Option<String>,
    },
    Backlog {
        alert: Alert,
        waiting: i64,
        oldest_waiting_at: Option<Millis>,
    },
    BacklogCleared {
        alert: Alert,
        waiting: i64,
        oldest_waiting_at: Option<Millis>,
    },
}

/// Which backlog limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// More deliveries waiting than `backlog_alert`.
    Count,
    /// The oldest waiting delivery older than `age_alert`.
    Age,
}

impl Alert {
    pub const ALL: [Alert; 2] = [Alert::Count, Alert::Age];

    pub fn as_str(self) -> &'static str {
        match self {
            Alert::Count => "backlog",
            Alert::Age => "age",
        }
    }

    pub fn parse(s: &str) -> Option<Alert> {
        Alert::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The backlog limits (`backlog_alert`, `age_alert`); 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub backlog: i64,
    pub age_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            backlog: 1_000,
            age_ms: 15 * 60_000,
        }
    }
}

/// An endpoint's waiting deliveries, as a store counts them.
#[derive(Debug, Clone, PartialEq)]
pub struct Backlog {
    pub subscription_id: String,
    pub waiting: i64,
    pub oldest_waiting_at: Option<Millis>,
}

impl Limits {
    /// Whether `alert` holds for `b`: raised at the limit, cleared only below nine tenths
    /// of it, so a backlog hovering at the line does not page on every tick.
    pub fn holds(&self, alert: Alert, b: &Backlog, raised: bool, now: Millis) -> bool {
        let (value, limit) = match alert {
            Alert::Count => (b.waiting, self.backlog),
            Alert::Age => (
                b.oldest_waiting_at.map(|t| now - t).unwrap_or(0),
                self.age_ms,
            ),
        };
        if limit <= 0 {
            return false;
        }
        if raised {
            value * 10 >= limit * 9
        } else {
            value >= limit
        }
    }
}

/// The backlog alerts of `b` that change now, given whether each is raised: (the alert,
/// whether it is raised now, the news that tells it).
pub fn alert_changes(
    limits: &Limits,
    b: &Backlog,
    raised: impl Fn(Alert) -> bool,
    now: Millis,
) -> Vec<(Alert, bool, News)> {
    let (waiting, oldest_waiting_at) = (b.waiting, b.oldest_waiting_at);
    Alert::ALL
        .into_iter()
        .filter_map(|alert| {
            let was = raised(alert);
            let is = limits.holds(alert, b, was, now);
            (was != is).then(|| {
                let news = if is {
                    News::Backlog {
                        alert,
                        waiting,
                        oldest_waiting_at,
                    }
                } else {
                    News::BacklogCleared {
                        alert,
                        waiting,
                        oldest_waiting_at,
                    }
                };
                (alert, is, news)
            })
        })
        .collect()
}

/// What setting a subscription's state tells, given its state and circuit before:
/// resuming a disabled one enables it, and resuming one whose circuit was open closes the
/// circuit (the operator says the endpoint is back).
pub fn on_state_change(
    id: &str,
    was: &str,
    circuit: &str,
    state: crate::model::SubState,
) -> Vec<(String, News)> {
    use crate::model::SubState;
    if state != SubState::Active {
        return Vec::new();
    }
    let mut news = Vec::new();
    if was == SubState::Disabled.as_str() {
        news.push((id.to_string(), News::Enabled));
    }
    if circuit == "open" {
        news.push((
            id.to_string(),
            News::CircuitClosed {
                reason: "an operator resumed the subscription".into(),
            },
        ));
    }
    news
}

/// One endpoint's dead letters in the current window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub opened_at: Millis,
    /// Dead letters since the window's report, told when it ends.
    pub pending: i64,
    pub pending_since: Option<Millis>,
}

/// `n` new dead letters at `now`: the count to report now (with the time of the first it
/// covers), if any, and the window after. The first dead letter is told at once; the rest
/// of its minute wait for the window's end (see [`window_ends`]).
pub fn on_dead(w: Option<Window>, n: i64, now: Millis) -> (Option<(i64, Millis)>, Window) {
    match w {
        Some(w) if now < w.opened_at + DEAD_WINDOW_MS => (
            None,
            Window {
                pending: w.pending + n,
                pending_since: w.pending_since.or(Some(now)),
                ..w
            },
        ),
        Some(w) => (
            Some((w.pending + n, w.pending_since.unwrap_or(now))),
            Window {
                opened_at: now,
                pending: 0,
                pending_since: None,
            },
        ),
        None => (
            Some((n, now)),
            Window {
                opened_at: now,
                pending: 0,
                pending_since: None,
            },
        ),
    }
}

/// A window at `now`: the count to report if it has ended with dead letters waiting, and
/// the window to keep (`None`: an ended, quiet window is forgotten).
pub fn window_ends(w: Window, now: Millis) -> (Option<(i64, Millis)>, Option<Window>) {
    if now < w.opened_at + DEAD_WINDOW_MS {
        return (None, Some(w));
    }
    if w.pending == 0 {
        return (None, None);
    }
    (
        Some((w.pending, w.pending_since.unwrap_or(w.opened_at))),
        Some(Window {
            opened_at: now,
            pending: 0,
            pending_since: None,
        }),
    )
}

/// The event that tells `news` about `subject`, in the subject's location (so that a
/// location's ops subscription hears only of its own endpoints).
pub fn event(subject: &Subject, news: &News, now: Millis) -> NewEvent {
    let mut data = json!({
        "subscriptionId": subject.id,
        "subscriptionName": subject.name,
        "url": subject.url,
        "at": rfc3339(now),
    });
    let (event_type, more) = match news {
        News::CircuitOpened {
            failures,
            last_error,
        } => (
            CIRCUIT_OPENED,
            json!({"consecutiveFailures": failures, "lastError": last_error}),
        ),
        News::CircuitClosed { reason } => (CIRCUIT_CLOSED, json!({ "reason": reason })),
        News::Disabled { reason } => (DISABLED, json!({ "reason": reason })),
        News::Enabled => (ENABLED, json!({"reason": "an operator resumed it"})),
        News::DeadLettered {
            count,
            first_at,
            last_error,
        } => (
            DEAD_LETTERED,
            json!({"count": count, "since": rfc3339(*first_at), "lastError": last_error}),
        ),
        News::Backlog {
            alert,
            waiting,
            oldest_waiting_at,
        } => (
            BACKLOG_ALERT,
            backlog_fields(*alert, *waiting, *oldest_waiting_at, now),
        ),
        News::BacklogCleared {
            alert,
            waiting,
            oldest_waiting_at,
        } => (
            BACKLOG_CLEARED,
            backlog_fields(*alert, *waiting, *oldest_waiting_at, now),
        ),
    };
    if let (Value::Object(d), Value::Object(m)) = (&mut data, more) {
        d.extend(m);
    }
    NewEvent {
        id: crate::ids::event_id(),
        event_type: event_type.to_string(),
        location_id: subject.location_id.clone(),
        timestamp: now,
        data,
        received_at: None,
    }
}

fn backlog_fields(alert: Alert, waiting: i64, oldest: Option<Millis>, now: Millis) -> Value {
    json!({
        "alert": alert.as_str(),
        "waiting": waiting,
        "oldestWaitingSeconds": oldest.map(|t| (now - t).max(0) / 1000),
    })
}

/// A sample of each operational type, for the catalog and test sends.
pub fn sample(event_type: &str) -> Option<Value> {
    let subject = Subject {
        id: "sub_7k2m9q4x".into(),
        name: "crm-sync".into(),
        url: "https://hooks.example.com/crm".into(),
        location_id: None,
    };
    let at = 1_767_225_600_000;
    let news = match event_type {
        CIRCUIT_OPENED => News::CircuitOpened {
            failures: 10,
            last_error: Some("HTTP 503".into()),
        },
        CIRCUIT_CLOSED => News::CircuitClosed {
            reason: crate::health::CLOSED_REASON.into(),
        },
        DISABLED => News::Disabled {
            reason: crate::health::GONE_REASON.into(),
        },
        ENABLED => News::Enabled,
        DEAD_LETTERED => News::DeadLettered {
            count: 12,
            first_at: at - 60_000,
            last_error: Some("HTTP 500".into()),
        },
        BACKLOG_ALERT | BACKLOG_CLEARED => {
            let (alert, waiting, oldest_waiting_at) = (Alert::Count, 1_204, Some(at - 420_000));
            if event_type == BACKLOG_ALERT {
                News::Backlog {
                    alert,
                    waiting,
                    oldest_waiting_at,
                }
            } else {
                News::BacklogCleared {
                    alert,
                    waiting: 12,
                    oldest_waiting_at,
                }
            }
        }
        _ => return None,
    };
    Some(event(&subject, &news, at).data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_dead_letter_is_told_at_once_and_the_rest_of_its_minute_at_its_end() {
        let (told, w) = on_dead(None, 1, 1_000);
        assert_eq!(told, Some((1, 1_000)));
        let (told, w) = on_dead(Some(w), 3, 20_000);
        assert_eq!(told, None);
        let (told, w) = on_dead(Some(w), 2, 30_000);
        assert_eq!((told, w.pending, w.pending_since), (None, 5, Some(20_000)));
        assert_eq!(window_ends(w, 59_000), (None, Some(w)));
        let (told, next) = window_ends(w, 61_000);
        assert_eq!(told, Some((5, 20_000)));
        let next = next.expect("a new window");
        assert_eq!((next.opened_at, next.pending), (61_000, 0));
        assert_eq!(window_ends(next, 121_000), (None, None));
        // A death after a window ended but before its end was noticed is told with the rest.
        let (told, _) = on_dead(
            Some(Window {
                opened_at: 0,
                pending: 4,
                pending_since: Some(10),
            }),
            1,
            70_000,
        );
        assert_eq!(told, Some((5, 10)));
    }

    #[test]
    fn backlog_alerts_rise_at_the_limit_and_clear_below_nine_tenths() {
        let l = Limits {
            backlog: 100,
            age_ms: 60_000,
        };
        let b = |waiting, oldest| Backlog {
            subscription_id: "s".into(),
            waiting,
            oldest_waiting_at: oldest,
        };
        assert!(!l.holds(Alert::Count, &b(99, None), false, 0));
        assert!(l.holds(Alert::Count, &b(100, None), false, 0));
        assert!(l.holds(Alert::Count, &b(90, None), true, 0));
        assert!(!l.holds(Alert::Count, &b(89, None), true, 0));
        assert!(l.holds(Alert::Age, &b(1, Some(0)), false, 60_000));
        assert!(!l.holds(Alert::Age, &b(1, Some(0)), false, 59_999));
        let off = Limits {
            backlog: 0,
            age_ms: 0,
        };
        assert!(!off.holds(Alert::Count, &b(1_000_000, Some(0)), false, i64::MAX / 2));
    }

    #[test]
    fn every_type_has_a_sample_and_only_ops_subscriptions_take_them() {
        for t in TYPES {
            let s = sample(t.name).expect(t.name);
            assert_eq!(s["subscriptionId"], "sub_7k2m9q4x", "{}", t.name);
            assert!(is_operational(t.name));
        }
        assert!(!takes_operational(None));
        assert!(!takes_operational(Some(&["ContactCreate".into()])));
        assert!(takes_operational(Some(&[
            "ContactCreate".into(),
            CIRCUIT_OPENED.into()
        ])));
    }
}
