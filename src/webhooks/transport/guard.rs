//! Broker hosts go through the same private-address policy as webhook
//! URLs: at registration (IP literals) and before every connection (every
//! address the name resolves to must be allowed).

use std::net::IpAddr;

use url::{Host, Url};

use crate::outbound::{OutboundError, Targets};

/// The host and port of a broker URL, checked against `targets` if the
/// host is an IP literal. `default_port` when the URL names none.
pub fn check_literal(
    url: &Url,
    targets: &Targets,
    default_port: u16,
) -> Result<(String, u16), OutboundError> {
    let host = match url.host() {
        None => return Err(OutboundError::NoHost),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).to_string(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).to_string(),
        // Non-special schemes leave IPv4 literals as names.
        Some(Host::Domain(d)) => d.to_owned(),
    };
    if host.is_empty() {
        return Err(OutboundError::NoHost);
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && !targets.permits(ip)
    {
        return Err(OutboundError::Blocked(ip));
    }
    Ok((host, url.port().unwrap_or(default_port)))
}

/// Resolves a broker URL's host and refuses it unless every address is
/// allowed (a name with one private address among public ones is refused
/// too: the client picks which to connect to).
pub async fn check_resolved(url: &Url, targets: &Targets, default_port: u16) -> Result<(), String> {
    let (host, port) = check_literal(url, targets, default_port).map_err(|e| e.to_string())?;
    let found: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    if found.is_empty() {
        return Err(format!("{host} has no addresses"));
    }
    match found.iter().find(|a| !targets.permits(a.ip())) {
        Some(a) => Err(OutboundError::Blocked(a.ip()).to_string()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_follow_the_policy() {
        let url = |s: &str| Url::parse(s).expect("url");
        let public = Targets::public_only();
        let open = Targets::new(true, &[]);
        assert!(check_literal(&url("nats://127.0.0.1:4222"), &public, 4222).is_err());
        assert!(check_literal(&url("amqp://10.1.2.3/vh"), &public, 5672).is_err());
        assert!(check_literal(&url("nats://[::1]:4222"), &public, 4222).is_err());
        assert_eq!(
            check_literal(&url("nats://127.0.0.1"), &open, 4222).ok(),
            Some(("127.0.0.1".to_owned(), 4222))
        );
        assert!(check_literal(&url("amqp://broker.example.com"), &public, 5672).is_ok());
    }
}
