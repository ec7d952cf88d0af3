//! Outbound safety: which addresses an endpoint may reach. The check runs on resolved
//! addresses at connect time (a DNS name can point anywhere) and on IP-literal URLs,
//! which never reach a resolver.

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restricted {
    Unspecified,
    Loopback,
    Private,
    LinkLocal,
    SharedCgnat,
    Multicast,
    Broadcast,
    Documentation,
    Reserved,
    UniqueLocal,
}

impl Restricted {
    pub fn describe(self) -> &'static str {
        match self {
            Restricted::Unspecified => "unspecified address",
            Restricted::Loopback => "loopback address",
            Restricted::Private => "private network",
            Restricted::LinkLocal => "link-local address (includes cloud metadata)",
            Restricted::SharedCgnat => "shared address space (CGNAT)",
            Restricted::Multicast => "multicast address",
            Restricted::Broadcast => "broadcast address",
            Restricted::Documentation => "documentation range",
            Restricted::Reserved => "reserved range",
            Restricted::UniqueLocal => "unique-local IPv6 address",
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Restricted> {
    let o = ip.octets();
    if o[0] == 0 {
        return Some(Restricted::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Restricted::Loopback);
    }
    if ip.is_private() {
        return Some(Restricted::Private);
    }
    if ip.is_link_local() {
        return Some(Restricted::LinkLocal);
    }
    if o[0] == 100 && (64..128).contains(&o[1]) {
        return Some(Restricted::SharedCgnat);
    }
    if ip.is_multicast() {
        return Some(Restricted::Multicast);
    }
    if ip.is_broadcast() {
        return Some(Restricted::Broadcast);
    }
    if ip.is_documentation() {
        return Some(Restricted::Documentation);
    }
    // 192.0.0.0/24 (protocol assignments), 198.18.0.0/15 (benchmarking), 240.0.0.0/4.
    if (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || o[0] >= 240
    {
        return Some(Restricted::Reserved);
    }
    None
}

fn classify_v6(ip: Ipv6Addr) -> Option<Restricted> {
    // An IPv4 address in IPv6 clothing is judged as the IPv4 address it carries.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let seg = ip.segments();
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) forms.
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return classify_v4(v4).or(Some(Restricted::Reserved));
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return classify_v4(v4);
    }
    if ip.is_unspecified() {
        return Some(Restricted::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Restricted::Loopback);
    }
    if (seg[0] & 0xfe00) == 0xfc00 {
        return Some(Restricted::UniqueLocal);
    }
    if (seg[0] & 0xffc0) == 0xfe80 {
        return Some(Restricted::LinkLocal);
    }
    if ip.is_multicast() {
        return Some(Restricted::Multicast);
    }
    if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        return Some(Restricted::Documentation);
    }
    None
}

/// `None` for a public address; otherwise the reason it is restricted.
pub fn classify(ip: IpAddr) -> Option<Restricted> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// The configured exceptions (`allow_networks`), e.g. `127.0.0.0/8` for local testing.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow: Vec<IpNet>,
}

/// What an IPv4-mapped address really is, so `::ffff:127.0.0.1` matches `127.0.0.0/8`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Policy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Policy { allow }
    }

    pub fn is_allowlisted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// `Err` with a one-line reason when the address may not be reached.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.is_allowlisted(ip) {
            return Ok(());
        }
        match classify(canonical(ip)) {
            None => Ok(()),
            Some(r) => Err(format!(
                "{ip} is a {} and not in allow_networks",
                r.describe()
            )),
        }
    }

    /// Checks a URL before it is saved or sent: scheme, and the host when it is an IP
    /// literal. A host name is checked again after DNS, at connect time.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), UrlRefused> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(UrlRefused::Scheme(scheme.to_string()));
        }
        let host = url.host().ok_or(UrlRefused::NoHost)?;
        let literal = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            self.check(ip).map_err(UrlRefused::Blocked)?;
            if scheme == "http" && !self.is_allowlisted(ip) {
                return Err(UrlRefused::NeedsHttps);
            }
        } else if scheme == "http" && self.allow.is_empty() {
            // A name can only be known to be allowlisted once resolved; without any
            // allowlist, plain http can never be right.
            return Err(UrlRefused::NeedsHttps);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("scheme '{0}' is not supported: use https:// (or http:// to an allowlisted network)")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("blocked: {0}")]
    Blocked(String),
    #[error("https:// is required outside allow_networks")]
    NeedsHttps,
}

/// The error a connection attempt fails with when every resolved address is restricted.
/// The dispatcher finds it in the error's source chain to record class `blocked`.
#[derive(Debug, thiserror::Error)]
#[error("blocked: {0}")]
pub struct BlockedError(pub String);

/// DNS resolution failure, kept apart from refused connections for error class `dns`.
#[derive(Debug, thiserror::Error)]
#[error("dns: {0}")]
pub struct DnsError(pub String);

/// A resolver that drops restricted addresses, so that the check happens after DNS and a
/// name that resolves to a private address cannot be reached. Plain-http to a name is
/// refused unless every address it resolved to is allowlisted.
pub struct GuardedResolver {
    policy: Arc<Policy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<Policy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> BoxError { Box::new(DnsError(format!("{host}: {e}"))) })?
                .collect();
            if resolved.is_empty() {
                return Err(Box::new(DnsError(format!("{host}: no addresses"))) as BoxError);
            }
            let mut reasons = Vec::new();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        reasons.push(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(
                    Box::new(BlockedError(format!("{host}: {}", reasons.join("; ")))) as BoxError,
                );
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_restricted_range_is_classified() {
        let cases = [
            ("0.0.0.0", Restricted::Unspecified),
            ("0.1.2.3", Restricted::Unspecified),
            ("127.0.0.1", Restricted::Loopback),
            ("127.255.0.9", Restricted::Loopback),
            ("10.0.0.1", Restricted::Private),
            ("172.16.0.1", Restricted::Private),
            ("172.31.255.254", Restricted::Private),
            ("192.168.1.1", Restricted::Private),
            ("169.254.169.254", Restricted::LinkLocal),
            ("100.64.0.1", Restricted::SharedCgnat),
            ("100.127.255.254", Restricted::SharedCgnat),
            ("224.0.0.1", Restricted::Multicast),
            ("239.255.255.250", Restricted::Multicast),
            ("255.255.255.255", Restricted::Broadcast),
            ("192.0.2.1", Restricted::Documentation),
            ("198.18.0.1", Restricted::Reserved),
            ("240.0.0.1", Restricted::Reserved),
            ("::", Restricted::Unspecified),
            ("::1", Restricted::Loopback),
            ("fc00::1", Restricted::UniqueLocal),
            ("fd12:3456::1", Restricted::UniqueLocal),
            ("fe80::1", Restricted::LinkLocal),
            ("ff02::1", Restricted::Multicast),
            ("2001:db8::1", Restricted::Documentation),
            ("::ffff:127.0.0.1", Restricted::Loopback),
            ("::ffff:10.1.2.3", Restricted::Private),
            ("::ffff:169.254.169.254", Restricted::LinkLocal),
            ("::ffff:100.64.1.1", Restricted::SharedCgnat),
            ("::ffff:0.0.0.0", Restricted::Unspecified),
            ("::127.0.0.1", Restricted::Loopback),
            ("64:ff9b::a9fe:a9fe", Restricted::LinkLocal),
        ];
        for (addr, want) in cases {
            assert_eq!(classify(ip(addr)), Some(want), "{addr}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn allowlist_covers_mapped_forms() {
        let p = Policy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(p.check(ip("127.0.0.1")).is_ok());
        assert!(p.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(p.check(ip("::1")).is_err());
        assert!(p.check(ip("10.0.0.1")).is_err());
        assert!(Policy::default().check(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn urls_are_checked_before_sending() {
        let strict = Policy::default();
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        for u in [
            "http://127.0.0.1/x",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://0.0.0.0/x",
            "https://169.254.169.254/latest/meta-data",
        ] {
            assert!(
                matches!(strict.check_url(&url(u)), Err(UrlRefused::Blocked(_))),
                "{u}"
            );
        }
        assert!(matches!(
            strict.check_url(&url("ftp://example.com/x")),
            Err(UrlRefused::Scheme(_))
        ));
        assert!(matches!(
            strict.check_url(&url("http://example.com/x")),
            Err(UrlRefused::NeedsHttps)
        ));
        assert!(strict.check_url(&url("https://example.com/x")).is_ok());
        let local = Policy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(local.check_url(&url("http://127.0.0.1:9/x")).is_ok());
        assert!(local.check_url(&url("http://localhost:9/x")).is_ok());
        assert!(matches!(
            local.check_url(&url("http://10.0.0.1/x")),
            Err(UrlRefused::Blocked(_))
        ));
    }
}
