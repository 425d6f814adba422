//! The one factory of outbound HTTP clients (webhook delivery, media fetch).
//!
//! Every client it builds refuses to follow redirects and resolves names
//! through [`GuardedResolver`], which drops private, loopback, link-local,
//! multicast and unspecified addresses unless `allow_private_targets` is set
//! or the address is in `allowed_targets`:
//! the address checked is the address connected to, so DNS rebinding cannot
//! slip past. reqwest does not consult the resolver for IP-literal hosts,
//! so callers check those with [`check_url`] before sending.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("the URL is not an absolute http or https URL")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("{0} is a private, loopback, link-local or otherwise non-public address")]
    Blocked(IpAddr),
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Installs ring as rustls's process-wide crypto provider (once; later calls
/// are no-ops), which reqwest's rustls backend needs before any client is
/// built.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Which addresses outbound requests may reach: public ones, plus every
/// address when private targets are allowed, plus the allowed networks.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    allow_private: bool,
    allowed: Arc<[ipnet::IpNet]>,
}

impl Targets {
    pub fn new(allow_private: bool, allowed: &[ipnet::IpNet]) -> Self {
        Self {
            allow_private,
            allowed: allowed.into(),
        }
    }

    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self::new(settings.allow_private_targets, &settings.allowed_targets)
    }

    /// Public addresses only.
    pub fn public_only() -> Self {
        Self::default()
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped address is the IPv4 address for every rule.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow_private || is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// Options of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub targets: Targets,
    /// Whole-request timeout.
    pub timeout: Duration,
    pub user_agent: String,
    /// Idle connections kept per host. Below the number of requests that
    /// may run at once to one host, every burst opens connections only to
    /// close them again.
    pub idle_per_host: usize,
}

/// Builds a client: no redirects, no proxy from the environment, the SSRF
/// guard as its resolver.
pub fn client(opts: &ClientOptions) -> Result<reqwest::Client, OutboundError> {
    install_crypto_provider();
    let resolver = GuardedResolver {
        targets: opts.targets.clone(),
    };
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
        .user_agent(opts.user_agent.clone())
        .pool_max_idle_per_host(opts.idle_per_host)
        .dns_resolver(Arc::new(resolver))
        .build()?)
}

/// Checks the scheme and, for IP-literal hosts (which never reach the
/// resolver), the address.
pub fn check_url(url: &Url, targets: &Targets) -> Result<(), OutboundError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OutboundError::Scheme);
    }
    let ip = match url.host() {
        None => return Err(OutboundError::NoHost),
        Some(Host::Domain(_)) => return Ok(()),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
    };
    if targets.permits(ip) {
        Ok(())
    } else {
        Err(OutboundError::Blocked(ip))
    }
}

/// Whether an address is one an outbound request may reach by default.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg0 = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg0 & 0xfe00) == 0xfc00 // unique local
        || (seg0 & 0xffc0) == 0xfe80 // link-local
        || (seg0 & 0xffc0) == 0xfec0 // site-local (deprecated)
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)) // IPv4-compatible
        || (seg0 == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (seg0 == 0x64 && ip.segments()[1] == 0xff9b)) // NAT64 can reach private v4
}

/// A DNS resolver that drops non-public addresses (unless allowed) and fails
/// when nothing is left.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    targets: Targets,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let targets = self.targets.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| targets.permits(a.ip()))
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match found.first() {
                    Some(a) => Box::new(OutboundError::Blocked(a.ip())),
                    None => format!("{host} has no addresses").into(),
                };
                return Err(err);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether a request error came from the SSRF guard.
pub fn is_blocked(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(OutboundError::Blocked(_)) = e.downcast_ref::<OutboundError>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn classifies_addresses() {
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip(blocked)), "{blocked} must be blocked");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(public)), "{public} must be allowed");
        }
    }

    #[test]
    fn literal_hosts_are_checked() {
        let url = |s: &str| Url::parse(s).expect("url");
        let guarded = Targets::public_only();
        let open = Targets::new(true, &[]);
        assert!(check_url(&url("http://127.0.0.1:9/x"), &guarded).is_err());
        assert!(check_url(&url("http://[::1]/x"), &guarded).is_err());
        assert!(check_url(&url("http://[::ffff:7f00:1]/x"), &guarded).is_err());
        assert!(check_url(&url("http://127.0.0.1:9/x"), &open).is_ok());
        assert!(check_url(&url("https://example.com/x"), &guarded).is_ok());
        assert!(check_url(&url("ftp://example.com/x"), &open).is_err());
    }

    #[test]
    fn allowed_networks_open_only_themselves() {
        let net: ipnet::IpNet = "10.1.0.0/16".parse().expect("net");
        let targets = Targets::new(false, &[net]);
        assert!(targets.permits(ip("10.1.2.3")));
        assert!(targets.permits(ip("::ffff:10.1.2.3")));
        assert!(!targets.permits(ip("10.2.0.1")));
        assert!(!targets.permits(ip("127.0.0.1")));
        assert!(targets.permits(ip("8.8.8.8")));
    }

    #[tokio::test]
    async fn resolver_refuses_loopback_names() {
        let guarded = GuardedResolver {
            targets: Targets::public_only(),
        };
        let name: Name = "localhost".parse().expect("name");
        assert!(guarded.resolve(name).await.is_err());
        let open = GuardedResolver {
            targets: Targets::new(true, &[]),
        };
        let name: Name = "localhost".parse().expect("name");
        assert!(open.resolve(name).await.is_ok());
    }
}
