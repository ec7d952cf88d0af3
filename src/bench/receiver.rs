//! The counting receiver: an axum app on 127.0.0.1, in a child process or in this one.

use super::*;
use crate::store::Store;
use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one wait for the receipt count lasts at most: the benchmark's wait checks for
/// a stall (and its own deadline) between waits.
pub(super) const REACH_POLL: Duration = Duration::from_secs(1);

/// What the counting receiver saw.
#[derive(Default)]
pub(super) struct Seen {
    /// Receipts, except on the slow endpoint.
    pub(super) count: AtomicU64,
    /// The count a waiter wants; the receipt that reaches it wakes the waiter.
    pub(super) want: AtomicU64,
    pub(super) reached: tokio::sync::Notify,
    /// publish → receipt, ms, from the envelope's timestamp.
    pub(super) latencies: Mutex<Vec<f64>>,
}

impl Seen {
    pub(super) fn add(&self) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.want.load(Ordering::Relaxed) {
            self.reached.notify_waiters();
        }
    }

    /// The count once it reaches `n`, or after `limit`, whichever comes first. The
    /// benchmark waits on this instead of asking for the count every few milliseconds:
    /// those requests ran on the cores the engine was being measured on (200 a second
    /// beside ~10,000 deliveries), which the raw baseline never paid for.
    pub(super) async fn reach(&self, n: u64, limit: Duration) -> u64 {
        self.want.store(n, Ordering::Relaxed);
        let reached = self.reached.notified();
        tokio::pin!(reached);
        reached.as_mut().enable();
        if self.count.load(Ordering::Relaxed) < n {
            let _ = tokio::time::timeout(limit, reached).await;
        }
        self.count.load(Ordering::Relaxed)
    }
}

pub(super) async fn receive(
    State((seen, delay)): State<(Arc<Seen>, Option<Duration>)>,
    uri: axum::http::Uri,
    body: Bytes,
) -> StatusCode {
    let slow = uri.path().starts_with("/slow");
    if let Some(d) = delay.filter(|_| slow) {
        tokio::time::sleep(d).await;
    }
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1000.0;
    if let Some(ts) = (!slow)
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|v| {
            v["timestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        })
    {
        seen.latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(now - ts.timestamp_micros() as f64 / 1000.0);
    }
    if !slow {
        seen.add();
    }
    StatusCode::OK
}

pub(super) fn sink_app(seen: Arc<Seen>, slow: Option<Duration>) -> axum::Router {
    axum::Router::new()
        .route(
            "/__bench/reach/{n}",
            axum::routing::get(
                |State((seen, _)): State<(Arc<Seen>, Option<Duration>)>,
                 axum::extract::Path(n): axum::extract::Path<u64>| async move {
                    seen.reach(n, REACH_POLL).await.to_string()
                },
            ),
        )
        .route(
            "/__bench/latencies",
            axum::routing::get(
                move |State((seen, _)): State<(Arc<Seen>, Option<Duration>)>| async move {
                    let lat = seen
                        .latencies
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    axum::Json(lat)
                },
            ),
        )
        .fallback(receive)
        .with_state((seen, slow))
}

/// The counting receiver: in a child process of its own (the default: a receiver never
/// shares the sender's runtime and allocator, and the engine's peak RSS is then its own),
/// or in this process. Its CPU is counted with the sender's either way.
pub(super) enum Receiver {
    Local {
        addr: String,
        seen: Arc<Seen>,
    },
    Child {
        addr: String,
        pid: u32,
        client: reqwest::Client,
        _child: tokio::process::Child,
    },
}

impl Receiver {
    pub(super) fn addr(&self) -> &str {
        match self {
            Receiver::Local { addr, .. } | Receiver::Child { addr, .. } => addr,
        }
    }

    /// One of the child receiver's figures, by its path.
    pub(super) async fn ask(addr: &str, client: &reqwest::Client, what: &str) -> Result<Bytes> {
        let url = format!("http://{addr}/__bench/{what}");
        Ok(client.get(url).send().await?.bytes().await?)
    }

    /// The count once it reaches `n`, or after at most [`REACH_POLL`].
    pub(super) async fn reach(&self, n: u64) -> Result<u64> {
        match self {
            Receiver::Local { seen, .. } => Ok(seen.reach(n, REACH_POLL).await),
            Receiver::Child { addr, client, .. } => {
                let text = Self::ask(addr, client, &format!("reach/{n}")).await?;
                Ok(String::from_utf8_lossy(&text).trim().parse()?)
            }
        }
    }

    pub(super) async fn latencies(&self) -> Result<Vec<f64>> {
        match self {
            Receiver::Local { seen, .. } => Ok(seen
                .latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()),
            Receiver::Child { addr, client, .. } => Ok(serde_json::from_slice(
                &Self::ask(addr, client, "latencies").await?,
            )?),
        }
    }

    /// Waits until `n` receipts or the deadline; returns the count reached. When nothing
    /// arrives for ten seconds it says where the rest is (a stalled engine is a bug, and
    /// this is where one shows).
    pub(super) async fn wait_for(&self, n: u64, limit: Duration, store: &dyn Store) -> Result<u64> {
        let deadline = Instant::now() + limit;
        let (mut last, mut since, mut told) = (0, Instant::now(), false);
        loop {
            let got = self.reach(n).await?;
            if got >= n || Instant::now() >= deadline {
                return Ok(got);
            }
            if got != last {
                (last, since, told) = (got, Instant::now(), false);
            } else if !told && since.elapsed() >= Duration::from_secs(10) {
                told = true;
                if let Ok(q) = store.queue_counts().await {
                    eprintln!(
                        "  no receipt for 10 s at {got}/{n}: pending {}, retrying {}, leased {}, dead {}",
                        q.pending, q.retrying, q.in_flight, q.dead
                    );
                }
            }
        }
    }

    /// CPU seconds the receiver used so far, when it is a process of its own.
    pub(super) fn cpu(&self) -> f64 {
        match self {
            Receiver::Local { .. } => 0.0,
            Receiver::Child { pid, .. } => proc_cpu(&format!("/proc/{pid}/stat")),
        }
    }
}

pub(super) async fn start_sink(child: bool, slow: Option<Duration>) -> Result<Receiver> {
    if !child {
        let seen = Arc::new(Seen::default());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?.to_string();
        let app = sink_app(seen.clone(), slow);
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        return Ok(Receiver::Local { addr, seen });
    }
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.arg("bench-sink")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(d) = slow {
        cmd.arg("--slow-ms").arg(d.as_millis().to_string());
    }
    let mut child = cmd.spawn().context("cannot start the receiver process")?;
    let out = child.stdout.take().context("receiver without stdout")?;
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::BufReader::new(out).read_line(&mut line),
    )
    .await
    .context("the receiver process did not start listening")??;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .context("the receiver process said something unexpected")?
        .to_string();
    let pid = child.id().unwrap_or(0);
    crate::engine::http::init_tls();
    let client = reqwest::Client::builder().no_proxy().build()?;
    Ok(Receiver::Child {
        addr,
        pid,
        client,
        _child: child,
    })
}

/// `hookctl bench-sink`: the benchmark's receiver as a process of its own. Prints
/// `listening ADDR`, answers until its stdin closes (the benchmark ended, however it ended).
pub async fn serve_sink(slow: Option<Duration>) -> Result<()> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", l.local_addr()?);
    let app = sink_app(Arc::new(Seen::default()), slow);
    let stdin_closed = async {
        let mut buf = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        use tokio::io::AsyncReadExt;
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        r = axum::serve(l, app) => r?,
        _ = stdin_closed => {}
    }
    Ok(())
}
