//! Who is calling: the client address (the peer, or what a trusted proxy says in
//! `X-Forwarded-For`), and the IP allowlists that refuse everyone else before any token is
//! looked at.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// `allow_from` and `trusted_proxies` of the configuration, as the server applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NetworkSettings {
    /// Networks that may call at all (CIDR, IPv4 and IPv6); empty allows every address.
    pub allow_from: Vec<IpNet>,
    /// Proxies whose `X-Forwarded-For` is believed; from anyone else it is ignored.
    pub trusted_proxies: Vec<IpNet>,
}

fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    // An IPv4 client may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

impl NetworkSettings {
    /// The client's address: the peer's, unless the peer is a trusted proxy, in which case
    /// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_addr(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr().map(|a| a.ip())?;
        if !contains(&self.trusted_proxies, peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !contains(&self.trusted_proxies, *ip))
                .unwrap_or(peer),
        )
    }

    /// Whether the TCP peer is one of the trusted proxies.
    pub fn peer_is_trusted_proxy(&self, req: &HttpRequest) -> bool {
        req.peer_addr()
            .is_some_and(|a| contains(&self.trusted_proxies, a.ip()))
    }

    /// Whether `client` may call, by the global allowlist.
    pub fn allows(&self, client: Option<IpAddr>) -> bool {
        allowed_by(&self.allow_from, client)
    }
}

/// Whether `client` is inside `allow` (an empty list allows everyone; an unknown client
/// only then).
pub fn allowed_by(allow: &[IpNet], client: Option<IpAddr>) -> bool {
    allow.is_empty() || client.is_some_and(|ip| contains(allow, ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let s = NetworkSettings {
            allow_from: nets(&["10.0.0.0/8", "2001:db8::/32"]),
            trusted_proxies: nets(&["192.168.1.1/32", "192.168.1.2/32"]),
        };
        let from = |peer: &str, xff: Option<&str>| {
            let mut r =
                TestRequest::default().peer_addr(format!("{peer}:4000").parse().expect("addr"));
            if let Some(x) = xff {
                r = r.insert_header(("x-forwarded-for", x));
            }
            s.client_addr(&r.to_http_request())
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert_eq!(
            from("203.0.113.9", Some("10.1.1.1")),
            ip("203.0.113.9"),
            "untrusted peer"
        );
        assert_eq!(from("192.168.1.1", Some("10.1.1.1")), ip("10.1.1.1"));
        assert_eq!(
            from("192.168.1.1", Some("6.6.6.6, 10.1.1.1, 192.168.1.2")),
            ip("10.1.1.1"),
            "the right-most untrusted hop, not what the client wrote first"
        );
        assert_eq!(from("192.168.1.1", None), ip("192.168.1.1"));
        assert!(s.allows(ip("10.1.1.1")));
        assert!(s.allows(ip("::ffff:10.2.3.4")), "IPv4-mapped");
        assert!(s.allows(ip("2001:db8::7")));
        assert!(!s.allows(ip("203.0.113.9")));
        assert!(!s.allows(None));
        assert!(NetworkSettings::default().allows(None));
    }
}
