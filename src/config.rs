//! Settings: defaults, then the config file (TOML), then `HOOKCTL_*` environment variables,
//! then command-line flags (applied by the caller).

use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Config {
    pub db: PathBuf,
    /// Networks that delivery may reach despite being loopback/private (e.g. 127.0.0.0/8).
    pub allow_networks: Vec<IpNet>,
    /// `synchronous=FULL`: survive power loss, at a throughput cost.
    pub synchronous_full: bool,
    pub listen: String,
    /// Attempts in flight across all endpoints.
    pub max_in_flight: usize,
    /// Attempts in flight to one endpoint, so a slow one only holds its own slots.
    pub endpoint_in_flight: usize,
    pub busy_timeout_ms: u64,
    /// Response body bytes kept (and read) per attempt.
    pub response_body_cap: usize,
    pub log: Option<String>,
    pub circuit_threshold: u32,
    pub circuit_probe_interval: std::time::Duration,
    pub retention_days: u32,
    /// Overrides `retention_days` with any duration (e.g. "12h"; soaks use minutes).
    pub retention: Option<std::time::Duration>,
    /// Source address for outbound connections (receivers can allowlist it).
    pub outbound_bind_address: Option<std::net::IpAddr>,
    /// Largest API request body.
    pub api_body_cap: usize,
    /// Where inbound webhooks may come from; empty: anywhere.
    pub inbound_allow_networks: Vec<IpNet>,
    /// Seconds between confirmation requests to a pending subscription.
    pub verify_interval: std::time::Duration,
    /// Backlog limits that raise `hookctl.backlog.alert` events.
    pub alerts: crate::ops::Limits,
    /// Several engines on one PostgreSQL database: how long a lease outlives its worker.
    pub worker_lease: std::time::Duration,
}

/// Every setting as the file and the environment give it, and the defaults: the one list
/// of keys. An unknown key, in the file or as `HOOKCTL_<KEY>`, is refused by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    db: Option<PathBuf>,
    #[serde(deserialize_with = "list")]
    allow_networks: Vec<String>,
    synchronous: String,
    listen: String,
    max_in_flight: usize,
    endpoint_in_flight: usize,
    busy_timeout_ms: u64,
    response_body_cap: usize,
    log: Option<String>,
    circuit_threshold: u32,
    circuit_probe_interval: String,
    retention_days: u32,
    retention: Option<String>,
    outbound_bind_address: Option<String>,
    api_body_cap: usize,
    #[serde(deserialize_with = "list")]
    inbound_allow_networks: Vec<String>,
    verify_interval: String,
    backlog_alert: u64,
    age_alert: String,
    worker_lease: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            db: None,
            allow_networks: Vec::new(),
            synchronous: "normal".into(),
            listen: "127.0.0.1:8700".into(),
            max_in_flight: 512,
            endpoint_in_flight: 32,
            busy_timeout_ms: 10_000,
            response_body_cap: 64 * 1024,
            log: None,
            circuit_threshold: 10,
            circuit_probe_interval: "30s".into(),
            retention_days: 30,
            retention: None,
            outbound_bind_address: None,
            api_body_cap: 1024 * 1024,
            inbound_allow_networks: Vec::new(),
            verify_interval: "10s".into(),
            backlog_alert: 1_000,
            age_alert: "15m".into(),
            worker_lease: "10s".into(),
        }
    }
}

/// A list as TOML writes it, or comma-separated text as the environment gives it.
fn list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        One(String),
    }
    Ok(match List::deserialize(d)? {
        List::Many(v) => v,
        List::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

fn parse_duration(key: &str, v: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(v.trim()).map_err(|e| anyhow::anyhow!("{key} = '{v}': {e}"))
}

fn parse_ip(key: &str, v: &str) -> Result<std::net::IpAddr> {
    v.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{key} = '{v}' is not an IP address"))
}

fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
            PathBuf::from(home).join(fallback)
        }
    }
}

pub fn default_db_path() -> PathBuf {
    xdg_dir("XDG_DATA_HOME", ".local/share").join("hookctl/hookctl.db")
}

pub fn default_config_path() -> PathBuf {
    xdg_dir("XDG_CONFIG_HOME", ".config").join("hookctl/config.toml")
}

pub fn parse_networks(list: &str) -> Result<Vec<IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_network)
        .collect()
}

/// A CIDR, or a bare address meaning just that address.
pub fn parse_network(s: &str) -> Result<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| anyhow::anyhow!("'{s}' is not a network (expected CIDR like 127.0.0.0/8)"))
}

impl Config {
    /// How long finished events are kept.
    pub fn retention(&self) -> std::time::Duration {
        self.retention.unwrap_or(std::time::Duration::from_secs(
            u64::from(self.retention_days) * 86_400,
        ))
    }

    pub fn defaults() -> Config {
        Config::from_settings(Settings::default()).expect("the defaults are valid")
    }

    /// Loads the file at `path` (an explicit path must exist; the default may not) and the
    /// environment on top of the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let (file, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (default_config_path(), false),
        };
        let mut layers = Figment::from(Serialized::defaults(Settings::default()));
        match std::fs::metadata(&file) {
            Ok(_) => layers = layers.merge(Toml::file_exact(&file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {}
            Err(e) => bail!("cannot read config {}: {e}", file.display()),
        }
        // HOOKCTL_CONFIG names the file itself; an empty variable counts as unset.
        let empty: Vec<String> = std::env::vars()
            .filter(|(k, v)| k.starts_with("HOOKCTL_") && v.is_empty())
            .map(|(k, _)| k["HOOKCTL_".len()..].to_string())
            .collect();
        let env = Env::prefixed("HOOKCTL_")
            .ignore(&["config"])
            .filter(move |k| !empty.iter().any(|e| k == e.as_str()));
        let settings: Settings = layers
            .merge(env)
            .extract()
            .map_err(|e| anyhow::anyhow!("{}", describe(&e)))?;
        Config::from_settings(settings)
    }

    fn from_settings(s: Settings) -> Result<Config> {
        let networks = |key: &str, v: &[String]| -> Result<Vec<IpNet>> {
            v.iter()
                .map(|n| parse_network(n).with_context(|| key.to_string()))
                .collect()
        };
        Ok(Config {
            db: s.db.unwrap_or_else(default_db_path),
            allow_networks: networks("allow_networks", &s.allow_networks)?,
            synchronous_full: parse_synchronous(&s.synchronous)?,
            listen: s.listen,
            max_in_flight: s.max_in_flight,
            endpoint_in_flight: s.endpoint_in_flight,
            busy_timeout_ms: s.busy_timeout_ms,
            response_body_cap: s.response_body_cap,
            log: s.log,
            circuit_threshold: s.circuit_threshold,
            circuit_probe_interval: parse_duration(
                "circuit_probe_interval",
                &s.circuit_probe_interval,
            )?,
            retention_days: s.retention_days,
            retention: s
                .retention
                .map(|r| parse_duration("retention", &r))
                .transpose()?,
            outbound_bind_address: s
                .outbound_bind_address
                .map(|a| parse_ip("outbound_bind_address", &a))
                .transpose()?,
            api_body_cap: s.api_body_cap,
            inbound_allow_networks: networks("inbound_allow_networks", &s.inbound_allow_networks)?,
            verify_interval: parse_duration("verify_interval", &s.verify_interval)?,
            alerts: crate::ops::Limits {
                backlog: i64::try_from(s.backlog_alert).unwrap_or(i64::MAX),
                age_ms: i64::try_from(parse_duration("age_alert", &s.age_alert)?.as_millis())
                    .unwrap_or(i64::MAX),
            },
            worker_lease: parse_duration("worker_lease", &s.worker_lease)?,
        })
    }
}

/// One line: the key, where it came from (the file or `HOOKCTL_<KEY>`), what is wrong.
fn describe(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let source = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(figment::Source::File(f)) => format!("config {}", f.display()),
        _ if e
            .metadata
            .as_ref()
            .is_some_and(|m| m.name.contains("environment")) =>
        {
            format!("HOOKCTL_{}", key.to_ascii_uppercase())
        }
        _ => "settings".to_string(),
    };
    let what = match &e.kind {
        figment::error::Kind::UnknownField(name, known) => {
            return format!(
                "{}: '{name}' is not a setting (the settings: {})",
                match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                    Some(figment::Source::File(f)) => format!("config {}", f.display()),
                    _ => format!("HOOKCTL_{}", name.to_ascii_uppercase()),
                },
                known.join(", ")
            );
        }
        other => other.to_string(),
    };
    if key.is_empty() {
        format!("{source}: {what}")
    } else {
        format!("{source}: {key}: {what}")
    }
}

fn parse_synchronous(v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "normal" => Ok(false),
        "full" => Ok(true),
        _ => bail!("synchronous must be 'normal' or 'full', not '{v}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_apply_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(
            &path,
            "allow_networks = [\"127.0.0.0/8\", \"::1\"]\nsynchronous = \"full\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.allow_networks.len(), 2);
        assert!(c.synchronous_full);
        std::fs::write(&path, "alow_networks = []").unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("'alow_networks' is not a setting"), "{err}");
        assert!(err.contains("x.toml"), "{err}");
        std::fs::write(&path, "max_in_flight = \"many\"").unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("max_in_flight"), "{err}");
    }

    #[test]
    fn networks_parse_with_clear_errors() {
        assert_eq!(parse_networks("127.0.0.0/8, ::1").unwrap().len(), 2);
        assert!(parse_networks("127.0.0.0/33").is_err());
        assert!(parse_networks("nonsense").is_err());
    }
}
