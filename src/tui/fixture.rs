//! Seeded data for the console's snapshot tests and the README screenshots: a real SQLite
//! store filled through the store interface with fixed ids and a fixed clock, so that every
//! rendering is the same on every machine.

use super::snapshot::{self, EngineMode, Query, Snapshot};
use super::state::App;
use crate::model::*;
use crate::store::OpenSettings;
use crate::store::{NewEvent, Outcome, SentBody, Store};
use anyhow::Result;
use std::path::Path;

/// 2026-01-15 14:30:00 UTC.
pub const NOW: Millis = 1_768_487_400_000;
const MIN: Millis = 60_000;

fn sub(
    id: &str,
    name: &str,
    url: &str,
    events: Option<&[&str]>,
    schedule: &[u64],
    i: i64,
) -> Subscription {
    Subscription {
        id: id.into(),
        name: name.into(),
        url: url.into(),
        events: events.map(|e| e.iter().map(|s| s.to_string()).collect()),
        location_id: None,
        secret: "whsec_Zml4dHVyZS1zZWNyZXQtMDEyMzQ1Njc4OQ==".into(),
        method: Method::Post,
        headers: vec![(
            "Authorization".into(),
            "Bearer sk_live_fixture_0123456789".into(),
        )],
        format: BodyFormat::Json,
        payload: PayloadStyle::Flat,
        template: None,
        retry_schedule_ms: schedule.to_vec(),
        timeout_ms: 10_000,
        rate_per_sec: None,
        signature_scheme: SignatureScheme::Wl,
        signature_header: "x-wl-signature".into(),
        state: SubState::Active,
        state_reason: None,
        previous_secret: None,
        previous_secret_until: None,
        consecutive_failures: 0,
        circuit_open: false,
        circuit_changed_at: None,
        created_at: NOW - 86_400_000 + i,
        updated_at: NOW - 86_400_000 + i,
    }
}

/// What one attempt did.
struct Try {
    at: Millis,
    code: Option<u16>,
    class: Option<ErrorClass>,
    latency: u64,
}

fn ok(at: Millis, latency: u64) -> Try {
    Try {
        at,
        code: Some(200),
        class: None,
        latency,
    }
}
fn http(at: Millis, code: u16) -> Try {
    Try {
        at,
        code: Some(code),
        class: Some(ErrorClass::Status),
        latency: 120,
    }
}
fn refused(at: Millis) -> Try {
    Try {
        at,
        code: None,
        class: Some(ErrorClass::Connect),
        latency: 0,
    }
}

/// Builds the fixture database at `path`.
pub async fn seed(path: &Path) -> Result<std::sync::Arc<dyn Store>> {
    let store = crate::store::open(path, &OpenSettings::default()).await?;
    let schedule = [5_000, 300_000, 1_800_000];
    store
        .add_subscription(
            sub(
                "sub_orders",
                "orders-api",
                "https://orders.example.com/hooks/orders",
                None,
                &schedule,
                0,
            ),
            None,
        )
        .await?;
    store
        .add_subscription(
            sub(
                "sub_crm",
                "crm-sync",
                "https://crm.example.com/webhooks/inbound",
                Some(&[
                    "ContactCreate",
                    "ContactUpdate",
                    "OpportunityStageUpdate",
                    "FormSubmitted",
                ]),
                &schedule,
                1,
            ),
            None,
        )
        .await?;
    store
        .add_subscription(
            sub(
                "sub_erp",
                "legacy-erp",
                "https://erp.example.com/api/v1/invoices",
                Some(&["InvoicePaid", "InvoiceCreate", "OrderCreate"]),
                &schedule,
                2,
            ),
            None,
        )
        .await?;
    let types = [
        "ContactCreate",
        "InvoicePaid",
        "OpportunityStageUpdate",
        "ContactUpdate",
        "OrderCreate",
        "FormSubmitted",
        "InvoiceCreate",
        "ContactCreate",
        "TaskCreate",
        "InvoicePaid",
        "ContactUpdate",
        "AppointmentCreate",
    ];
    let events: Vec<NewEvent> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = NOW - (types.len() - i) as i64 * 40_000;
            NewEvent {
                // Made in the same moment: the ids share their start and differ at the end.
                id: format!("evt_01jhf7k2m9q4r8tb6v3k{:02}x5w", i),
                event_type: t.to_string(),
                location_id: Some(crate::catalog::SAMPLE_LOCATION.into()),
                timestamp: at,
                data: crate::catalog::sample(t).unwrap_or_default(),
                received_at: Some(at),
            }
        })
        .collect();
    store.publish(events).await?;

    // Attempts, delivery by delivery, in the order the engine would make them.
    let plan = |event: usize, sub: &str| -> Vec<Try> {
        let base = NOW - (types.len() - event) as i64 * 40_000 + 150;
        match (sub, event % 4) {
            ("sub_orders", _) => vec![ok(base, 40 + (event as u64 * 7) % 50)],
            ("sub_crm", 1) => vec![
                http(base, 500),
                http(base + 5_000, 500),
                http(base + 300_000, 500),
            ],
            ("sub_crm", 3) => vec![http(base, 503)],
            ("sub_crm", _) => vec![ok(base, 180 + event as u64 * 11)],
            ("sub_erp", _) if event < 6 => vec![
                refused(base),
                refused(base + 5_000),
                refused(base + 65_000),
                refused(base + 185_000),
            ],
            ("sub_erp", _) => vec![refused(base)],
            _ => vec![],
        }
    };
    let event_index = |id: &str| -> usize {
        id.len()
            .checked_sub(5)
            .and_then(|at| id.get(at..at + 2))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    loop {
        // Claiming with a far-future clock: every delivery is due.
        let wants = vec![
            ("sub_orders".to_string(), 100),
            ("sub_crm".to_string(), 100),
            ("sub_erp".to_string(), 100),
        ];
        let jobs = store.claim(wants, i64::MAX / 4, i64::MAX / 4).await?;
        let mut outcomes = Vec::new();
        for job in &jobs {
            let tries = plan(event_index(&job.event.id), &job.subscription_id);
            let n = job.attempts as usize;
            let Some(t) = tries.get(n) else { continue };
            let last = n + 1 == tries.len();
            let max = schedule.len() + 1;
            let (status, next_at) = if t.class.is_none() {
                (DeliveryStatus::Delivered, None)
            } else if last && n + 1 >= max {
                (DeliveryStatus::Dead, None)
            } else if last {
                (
                    DeliveryStatus::Retrying,
                    // Due at different seconds, as real retries are (jittered).
                    Some(
                        NOW + n as i64 * 4 * MIN
                            + 45_000
                            + event_index(&job.event.id) as i64 * 13_000,
                    ),
                )
            } else {
                (DeliveryStatus::Retrying, Some(t.at + 1))
            };
            outcomes.push(Outcome {
                delivery_id: job.delivery_id,
                subscription_id: job.subscription_id.clone(),
                probe: false,
                probes: 0,
                gone: false,
                attempt: Attempt {
                    n: n as u32 + 1,
                    at: t.at,
                    status_code: t.code,
                    error_class: t.class,
                    error: t.class.map(|c| match (c, t.code) {
                        (ErrorClass::Status, Some(code)) => format!("HTTP {code}"),
                        _ => "connection refused".to_string(),
                    }),
                    latency_ms: t.latency,
                    request_headers: vec![
                        ("content-type".into(), "application/json".into()),
                        ("x-wl-signature".into(), "9c1f0a5e3b7d2c4f8a6e1b0d9c3f7a2e5b8d1c4f7a0e3b6d9c2f5a8e1b4d7c0f".into()),
                        ("webhook-id".into(), job.event.id.clone()),
                        ("x-wl-timestamp".into(), (t.at / 1000).to_string()),
                        ("x-wl-attempt".into(), (n + 1).to_string()),
                        ("Authorization".into(), crate::ids::mask_header_value("Authorization", "Bearer sk_live_fixture_0123456789")),
                    ],
                    response_headers: vec![],
                    response_body: t.code.map(|c| format!("{{\"status\":{c}}}").into_bytes()),
                },
                status,
                next_at,
                body: (n == 0).then(|| {
                    // Kept as bytes, like a template's output.
                    let e = &job.event;
                    SentBody::Bytes(serde_json::to_vec(&serde_json::json!({"type": e.event_type, "locationId": e.location_id, "id": e.id})).unwrap_or_default())
                }),
                kept_headers: None,
            });
        }
        // Leases of deliveries with nothing (more) to record go back untouched.
        let recorded: Vec<i64> = outcomes.iter().map(|o| o.delivery_id).collect();
        let idle: Vec<i64> = jobs
            .iter()
            .map(|j| j.delivery_id)
            .filter(|id| !recorded.contains(id))
            .collect();
        if !idle.is_empty() {
            store.release(crate::store::Release::Ids(idle)).await?;
        }
        if outcomes.is_empty() {
            break;
        }
        store.record(outcomes.into(), 1000).await?;
    }
    audit_trail(store.as_ref()).await?;
    Ok(store)
}

/// What operators did during the fixture's incident, at fixed times and by fixed names.
async fn audit_trail(store: &dyn Store) -> Result<()> {
    use crate::audit::{Actor, ActorKind, AuditEntry, action};
    let alice = Actor {
        kind: ActorKind::Cli,
        name: "alice".into(),
        attached: false,
    };
    let bob = Actor {
        kind: ActorKind::Console,
        name: "bob".into(),
        attached: true,
    };
    let ops = Actor::token("tok_ops7f3a");
    let entries = [
        AuditEntry::new(&alice, action::SUB_ADD).on_sub("sub_erp"),
        AuditEntry::new(&bob, action::PAUSE).on_sub("sub_crm"),
        AuditEntry::new(&bob, action::RESUME).on_sub("sub_crm"),
        AuditEntry::new(&ops, action::REDELIVER)
            .on_sub("sub_crm")
            .event("evt_01jhf7k2m9q4r8tb6v3k03x5w")
            .count(1),
        AuditEntry::new(&bob, action::BULK_REDELIVER)
            .on_sub("sub_erp")
            .filter("status=dead")
            .count(2),
        AuditEntry::new(&ops, action::REDELIVER)
            .event("evt_01jhf7k2m9q4r8tb6v3k99x5w")
            .failed("no event with id evt_01jhf7k2m9q4r8tb6v3k99x5w"),
    ];
    for (i, mut e) in entries.into_iter().enumerate() {
        e.at = NOW - (25 - 4 * i as i64) * MIN;
        store.audit(e).await?;
    }
    Ok(())
}

/// The snapshot a console would load from the fixture at `NOW`.
pub async fn snapshot(store: &dyn Store, query: &Query) -> Result<Snapshot> {
    let mut s = snapshot::load(
        store,
        query,
        EngineMode::Embedded {
            api: Ok("127.0.0.1:8700".into()),
        },
        "/var/lib/hookctl/hookctl.db",
        NOW,
    )
    .await?;
    s.now = NOW - NOW % MIN;
    Ok(s)
}

/// An app showing the fixture, with the inspector on a dead letter.
pub async fn app(store: &dyn Store) -> Result<App> {
    let mut app = App::default();
    let probe = snapshot(store, &app.query()).await?;
    app.inspect = probe.dead.first().map(|d| d.event_id.clone());
    let s = snapshot(store, &app.query()).await?;
    app.set_snapshot(s);
    Ok(app)
}
