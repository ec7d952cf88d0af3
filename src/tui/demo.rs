//! `hookctl demo`: a fresh database, local receivers on 127.0.0.1 (one healthy, one flaky,
//! one dead port where nothing listens), and a steady stream of catalog events.

use crate::catalog;
use crate::ids;
use crate::model::*;
use crate::sink::{self, SinkConfig};
use crate::store::{NewEvent, Store};
use anyhow::Result;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Event types the generator picks from, most common first (weights by repetition).
const MIX: &[&str] = &[
    "ContactCreate",
    "ContactCreate",
    "ContactUpdate",
    "ContactUpdate",
    "ContactTagUpdate",
    "InboundMessage",
    "InboundMessage",
    "OutboundMessage",
    "OpportunityCreate",
    "OpportunityStageUpdate",
    "OpportunityStatusUpdate",
    "AppointmentCreate",
    "AppointmentUpdate",
    "InvoiceCreate",
    "InvoicePaid",
    "InvoiceSent",
    "OrderCreate",
    "TaskCreate",
    "NoteCreate",
    "FormSubmitted",
    "ProductUpdate",
];

pub struct Demo {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn start_sink(cfg: SinkConfig) -> Result<(String, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let task = tokio::spawn(async move {
        let _ = sink::serve(listener, cfg, Arc::new(|_| {})).await;
    });
    Ok((addr, task))
}

/// A loopback port with nothing listening: bound, then released.
async fn dead_port() -> Result<String> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(l.local_addr()?.to_string())
}

fn subscription(
    name: &str,
    url: String,
    events: Option<&[&str]>,
    schedule: &[u64],
) -> Subscription {
    let now = now_ms();
    Subscription {
        id: ids::subscription_id(),
        name: name.to_string(),
        url,
        events: events.map(|e| e.iter().map(|s| s.to_string()).collect()),
        location_id: None,
        secret: ids::secret(),
        method: Method::Post,
        headers: vec![(
            "Authorization".into(),
            format!("Bearer demo_{}", &ids::secret()[6..22]),
        )],
        format: BodyFormat::Json,
        payload: PayloadStyle::Flat,
        template: None,
        retry_schedule_ms: schedule.to_vec(),
        timeout_ms: 5_000,
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
        created_at: now,
        updated_at: now,
    }
}

fn event() -> NewEvent {
    let mut rng = rand::rng();
    let t = MIX[rng.random_range(0..MIX.len())];
    let mut data = catalog::sample(t).unwrap_or_default();
    // Vary the ids so that the stream reads like real traffic.
    if let Some(obj) = data.as_object_mut() {
        for key in ["id", "_id"] {
            if obj.contains_key(key) {
                obj.insert(
                    key.into(),
                    serde_json::Value::String(ids::event_id()[4..24].to_string()),
                );
            }
        }
    }
    NewEvent {
        id: ids::event_id(),
        event_type: t.to_string(),
        location_id: Some(catalog::SAMPLE_LOCATION.to_string()),
        timestamp: now_ms(),
        data,
        received_at: None,
    }
}

/// Receivers, subscriptions and the event stream; everything stops when `Demo` drops.
pub async fn populate(store: Arc<dyn Store>) -> Result<Demo> {
    let (healthy, t1) = start_sink(SinkConfig::default()).await?;
    let (flaky, t2) = start_sink(SinkConfig {
        fail_rate: 0.3,
        delay: Some(Duration::from_millis(40)),
        ..Default::default()
    })
    .await?;
    let dead = dead_port().await?;
    let short = [2_000, 5_000, 10_000];
    for (i, sub) in [
        subscription(
            "orders-api",
            format!("http://{healthy}/hooks/orders"),
            None,
            &[2_000, 10_000, 30_000],
        ),
        subscription(
            "crm-sync",
            format!("http://{flaky}/webhooks/crm"),
            Some(&[
                "ContactCreate",
                "ContactUpdate",
                "ContactTagUpdate",
                "OpportunityCreate",
                "OpportunityStageUpdate",
                "OpportunityStatusUpdate",
                "FormSubmitted",
                "AppointmentCreate",
            ]),
            &short,
        ),
        subscription(
            "legacy-erp",
            format!("http://{dead}/erp/inbound"),
            Some(&[
                "InvoiceCreate",
                "InvoicePaid",
                "InvoiceSent",
                "OrderCreate",
                "ProductUpdate",
            ]),
            &short,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        // Listed in the order made; one millisecond apart keeps that order stable.
        let mut sub = sub;
        sub.created_at += i as i64;
        store.add_subscription(sub, None).await?;
    }
    let gen_store = store.clone();
    let generator = tokio::spawn(async move {
        loop {
            let wait = rand::rng().random_range(150..450);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if let Err(e) = gen_store.publish(vec![event()]).await {
                tracing::warn!("demo: publishing failed: {e:#}");
            }
        }
    });
    Ok(Demo {
        tasks: vec![t1, t2, generator],
    })
}
