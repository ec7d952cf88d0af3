//! The one shared HTTP client: connection reuse per host, no redirects, no proxies, DNS
//! through the outbound guard, response bodies read up to a cap and no further.

use super::request::Request;
use crate::model::{ErrorClass, Method};
use crate::netguard::{BlockedError, DnsError, GuardedResolver, Policy};
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// At most the configured cap.
    pub body: Vec<u8>,
    pub latency: Duration,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
    pub latency: Duration,
}

pub struct Sender {
    client: reqwest::Client,
    policy: Arc<Policy>,
    body_cap: usize,
}

/// rustls needs a process-wide crypto provider; ring builds without cmake or asm tooling.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Sender {
    pub fn new(
        policy: Arc<Policy>,
        body_cap: usize,
        per_host_idle: usize,
        local_address: Option<std::net::IpAddr>,
    ) -> anyhow::Result<Sender> {
        init_tls();
        let client = reqwest::Client::builder()
            .local_address(local_address)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(per_host_idle)
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
            .build()?;
        Ok(Sender {
            client,
            policy,
            body_cap,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Refuses what the guard forbids before any packet is sent: restricted IP literals
    /// (which never reach the resolver), and plain http to names outside the allowlist.
    async fn check_target(&self, url: &reqwest::Url) -> Result<(), String> {
        self.policy.check_url(url).map_err(|e| e.to_string())?;
        if url.scheme() == "http"
            && let Some(url::Host::Domain(name)) = url.host()
        {
            let port = url.port_or_known_default().unwrap_or(80);
            let addrs: Vec<_> = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| format!("dns: {name}: {e}"))?
                .collect();
            if let Some(a) = addrs.iter().find(|a| !self.policy.is_allowlisted(a.ip())) {
                return Err(format!(
                    "blocked: {name} resolves to {} outside allow_networks; https:// is required",
                    a.ip()
                ));
            }
        }
        Ok(())
    }

    pub async fn send(&self, req: &Request, timeout: Duration) -> Result<Response, Failure> {
        let started = Instant::now();
        let fail = |class, message: String| Failure {
            class,
            message,
            latency: started.elapsed(),
        };
        let url = reqwest::Url::parse(&req.url)
            .map_err(|e| fail(ErrorClass::Connect, format!("invalid URL: {e}")))?;
        if let Err(why) = self.check_target(&url).await {
            let class = if why.starts_with("dns:") {
                ErrorClass::Dns
            } else {
                ErrorClass::Blocked
            };
            return Err(fail(class, why));
        }
        let method = match req.method {
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Get => reqwest::Method::GET,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.client.request(method, url).timeout(timeout);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if req.method.has_body() {
            builder = builder.body(req.body.clone());
        }
        let mut resp = builder.send().await.map_err(|e| {
            let (class, message) = classify(&e);
            fail(class, message)
        })?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        loop {
            if body.len() >= self.body_cap {
                // Stop reading: the rest is not ours to hold. The connection is dropped.
                body.truncate(self.body_cap);
                break;
            }
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    let (class, message) = classify(&e);
                    return Err(fail(class, format!("reading the response: {message}")));
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body,
            latency: started.elapsed(),
        })
    }
}

/// Walks the error's sources to the cause: reqwest folds blocked addresses, DNS failures
/// and refused connections into `is_connect()`, and resets have no predicate.
pub fn classify(e: &reqwest::Error) -> (ErrorClass, String) {
    let mut chain: Vec<&(dyn StdError + 'static)> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        chain.push(err);
        cur = err.source();
    }
    let root = chain.last().map(|e| e.to_string()).unwrap_or_default();
    for err in &chain {
        if let Some(b) = err.downcast_ref::<BlockedError>() {
            return (ErrorClass::Blocked, b.to_string());
        }
        if let Some(d) = err.downcast_ref::<DnsError>() {
            return (ErrorClass::Dns, d.to_string());
        }
        if err.downcast_ref::<rustls::Error>().is_some() {
            return (ErrorClass::Tls, format!("tls: {root}"));
        }
    }
    if e.is_timeout() {
        return (ErrorClass::Timeout, "timed out".to_string());
    }
    for err in &chain {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                TimedOut => return (ErrorClass::Timeout, format!("timed out: {io}")),
                ConnectionRefused => {
                    return (ErrorClass::Connect, format!("connection refused: {io}"));
                }
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return (ErrorClass::Reset, format!("connection reset: {io}"));
                }
                _ => {}
            }
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return (ErrorClass::Tls, format!("tls: {io}"));
            }
        }
    }
    let text = chain
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        return (ErrorClass::Tls, text);
    }
    if e.is_connect() {
        return (ErrorClass::Connect, text);
    }
    // Closed mid-message, incomplete responses, protocol errors: the peer hung up on us.
    (ErrorClass::Reset, text)
}
