//! Settings: defaults, then the config file (TOML), then `HOOKCTL_*` environment variables,
//! then command-line flags (applied by the caller).

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use serde::Deserialize;
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
}

/// The file's shape; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    db: Option<PathBuf>,
    allow_networks: Option<Vec<String>>,
    synchronous: Option<String>,
    listen: Option<String>,
    max_in_flight: Option<usize>,
    endpoint_in_flight: Option<usize>,
    busy_timeout_ms: Option<u64>,
    response_body_cap: Option<usize>,
    log: Option<String>,
    circuit_threshold: Option<u32>,
    circuit_probe_interval: Option<String>,
    retention_days: Option<u32>,
    retention: Option<String>,
    outbound_bind_address: Option<String>,
    api_body_cap: Option<usize>,
    inbound_allow_networks: Option<Vec<String>>,
    verify_interval: Option<String>,
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

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match env(name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{name}={v}: {e}")),
    }
}

impl Config {
    /// How long finished events are kept.
    pub fn retention(&self) -> std::time::Duration {
        self.retention.unwrap_or(std::time::Duration::from_secs(
            u64::from(self.retention_days) * 86_400,
        ))
    }

    pub fn defaults() -> Config {
        Config {
            db: default_db_path(),
            allow_networks: Vec::new(),
            synchronous_full: false,
            listen: "127.0.0.1:8700".to_string(),
            max_in_flight: 512,
            endpoint_in_flight: 32,
            busy_timeout_ms: 10_000,
            response_body_cap: 64 * 1024,
            log: None,
            circuit_threshold: 10,
            circuit_probe_interval: std::time::Duration::from_secs(30),
            retention_days: 30,
            retention: None,
            outbound_bind_address: None,
            api_body_cap: 1024 * 1024,
            inbound_allow_networks: Vec::new(),
            verify_interval: std::time::Duration::from_secs(10),
        }
    }

    /// Loads the file at `path` (an explicit path must exist; the default may not) and the
    /// environment on top of the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut cfg = Config::defaults();
        let (file, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (default_config_path(), false),
        };
        match std::fs::read_to_string(&file) {
            Ok(text) => cfg.apply_file(&file, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {}
            Err(e) => bail!("cannot read config {}: {e}", file.display()),
        }
        cfg.apply_env()?;
        Ok(cfg)
    }

    fn apply_file(&mut self, path: &Path, text: &str) -> Result<()> {
        let f: FileConfig =
            toml::from_str(text).with_context(|| format!("config {}", path.display()))?;
        if let Some(v) = f.db {
            self.db = v;
        }
        if let Some(v) = f.allow_networks {
            self.allow_networks = v.iter().map(|s| parse_network(s)).collect::<Result<_>>()?;
        }
        if let Some(v) = f.synchronous {
            self.synchronous_full = parse_synchronous(&v)?;
        }
        if let Some(v) = f.listen {
            self.listen = v;
        }
        if let Some(v) = f.max_in_flight {
            self.max_in_flight = v;
        }
        if let Some(v) = f.endpoint_in_flight {
            self.endpoint_in_flight = v;
        }
        if let Some(v) = f.busy_timeout_ms {
            self.busy_timeout_ms = v;
        }
        if let Some(v) = f.response_body_cap {
            self.response_body_cap = v;
        }
        if f.log.is_some() {
            self.log = f.log;
        }
        if let Some(v) = f.circuit_threshold {
            self.circuit_threshold = v;
        }
        if let Some(v) = f.circuit_probe_interval {
            self.circuit_probe_interval = parse_duration("circuit_probe_interval", &v)?;
        }
        if let Some(v) = f.retention_days {
            self.retention_days = v;
        }
        if let Some(v) = f.retention {
            self.retention = Some(parse_duration("retention", &v)?);
        }
        if let Some(v) = f.api_body_cap {
            self.api_body_cap = v;
        }
        if let Some(v) = f.inbound_allow_networks {
            self.inbound_allow_networks =
                v.iter().map(|s| parse_network(s)).collect::<Result<_>>()?;
        }
        if let Some(v) = f.verify_interval {
            self.verify_interval = parse_duration("verify_interval", &v)?;
        }
        if let Some(v) = f.outbound_bind_address {
            self.outbound_bind_address = Some(parse_ip("outbound_bind_address", &v)?);
        }
        Ok(())
    }

    fn apply_env(&mut self) -> Result<()> {
        if let Some(v) = env("HOOKCTL_ALLOW_NETWORKS") {
            self.allow_networks = parse_networks(&v).context("HOOKCTL_ALLOW_NETWORKS")?;
        }
        if let Some(v) = env("HOOKCTL_SYNCHRONOUS") {
            self.synchronous_full = parse_synchronous(&v).context("HOOKCTL_SYNCHRONOUS")?;
        }
        if let Some(v) = env("HOOKCTL_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = env_parse("HOOKCTL_MAX_IN_FLIGHT")? {
            self.max_in_flight = v;
        }
        if let Some(v) = env_parse("HOOKCTL_ENDPOINT_IN_FLIGHT")? {
            self.endpoint_in_flight = v;
        }
        if let Some(v) = env_parse("HOOKCTL_BUSY_TIMEOUT_MS")? {
            self.busy_timeout_ms = v;
        }
        if let Some(v) = env_parse("HOOKCTL_RESPONSE_BODY_CAP")? {
            self.response_body_cap = v;
        }
        if let Some(v) = env("HOOKCTL_LOG") {
            self.log = Some(v);
        }
        if let Some(v) = env_parse("HOOKCTL_CIRCUIT_THRESHOLD")? {
            self.circuit_threshold = v;
        }
        if let Some(v) = env("HOOKCTL_CIRCUIT_PROBE_INTERVAL") {
            self.circuit_probe_interval = parse_duration("HOOKCTL_CIRCUIT_PROBE_INTERVAL", &v)?;
        }
        if let Some(v) = env_parse("HOOKCTL_RETENTION_DAYS")? {
            self.retention_days = v;
        }
        if let Some(v) = env("HOOKCTL_RETENTION") {
            self.retention = Some(parse_duration("HOOKCTL_RETENTION", &v)?);
        }
        if let Some(v) = env_parse("HOOKCTL_API_BODY_CAP")? {
            self.api_body_cap = v;
        }
        if let Some(v) = env("HOOKCTL_INBOUND_ALLOW_NETWORKS") {
            self.inbound_allow_networks =
                parse_networks(&v).context("HOOKCTL_INBOUND_ALLOW_NETWORKS")?;
        }
        if let Some(v) = env("HOOKCTL_VERIFY_INTERVAL") {
            self.verify_interval = parse_duration("HOOKCTL_VERIFY_INTERVAL", &v)?;
        }
        if let Some(v) = env("HOOKCTL_OUTBOUND_BIND_ADDRESS") {
            self.outbound_bind_address = Some(parse_ip("HOOKCTL_OUTBOUND_BIND_ADDRESS", &v)?);
        }
        // HOOKCTL_DB is read by the command line parser, which gives --db precedence.
        Ok(())
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
        let mut c = Config::defaults();
        c.apply_file(
            Path::new("x.toml"),
            "allow_networks = [\"127.0.0.0/8\", \"::1\"]\nsynchronous = \"full\"\n",
        )
        .unwrap();
        assert_eq!(c.allow_networks.len(), 2);
        assert!(c.synchronous_full);
        let err = c
            .apply_file(Path::new("x.toml"), "alow_networks = []")
            .unwrap_err();
        assert!(format!("{err:#}").contains("alow_networks"));
    }

    #[test]
    fn networks_parse_with_clear_errors() {
        assert_eq!(parse_networks("127.0.0.0/8, ::1").unwrap().len(), 2);
        assert!(parse_networks("127.0.0.0/33").is_err());
        assert!(parse_networks("nonsense").is_err());
    }
}
