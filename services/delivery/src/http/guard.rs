//! Which addresses hookline may connect to.
//!
//! By default only public unicast addresses: loopback, private, link-local
//! (which includes cloud metadata at 169.254.169.254), CGNAT, multicast,
//! documentation, benchmarking and reserved ranges are refused, for IPv4,
//! IPv6, and IPv4 addresses embedded in IPv6 (mapped, NAT64). Operators open
//! specific ranges with `allow_cidrs` (development, tests, in-cluster
//! receivers).
//!
//! [`GuardedResolver`] is the HTTP client's DNS resolver: it resolves, drops
//! every refused address, and hands the client only the checked addresses,
//! so the connection goes to an address that was checked (no window for DNS
//! rebinding between check and connect).

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;

/// The decision for one address.
#[derive(Debug, Clone)]
pub(crate) struct AddressPolicy {
    allow: Vec<IpNet>,
}

const BLOCKED_V4: &[&str] = &[
    "0.0.0.0/8",       // "this network"
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // carrier-grade NAT
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local, cloud metadata
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation
    "192.88.99.0/24",  // 6to4 relay anycast
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation
    "203.0.113.0/24",  // documentation
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, broadcast
];

const BLOCKED_V6: &[&str] = &[
    "::/96",          // unspecified, loopback and IPv4-compatible (deprecated: ::127.0.0.1)
    "64:ff9b:1::/48", // local-use NAT64 (RFC 8215): embeds any IPv4 address
    "100::/64",       // discard
    "2001::/23",      // IETF protocol assignments (Teredo, ORCHID, ...)
    "2001:db8::/32",  // documentation
    "2002::/16",      // 6to4 (embeds an IPv4 address)
    "fc00::/7",       // unique local (incl. fd00:ec2::254 metadata)
    "fe80::/10",      // link-local
    "fec0::/10",      // site-local (deprecated)
    "ff00::/8",       // multicast
];

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().filter_map(|n| n.parse().ok()).collect()
}

/// The blocked ranges, parsed once (every resolved address is checked).
static BLOCKED: std::sync::LazyLock<(Vec<IpNet>, Vec<IpNet>)> =
    std::sync::LazyLock::new(|| (nets(BLOCKED_V4), nets(BLOCKED_V6)));

impl AddressPolicy {
    pub(crate) fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }
}

/// Whether `ip` is a public unicast address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            if let Some(v4) = nat64(v6) {
                return is_public_v4(v4);
            }
            !BLOCKED.1.iter().any(|n| n.contains(&IpAddr::V6(v6)))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !BLOCKED.0.iter().any(|n| n.contains(&IpAddr::V4(ip)))
}

/// The IPv4 address inside a NAT64 well-known-prefix address (64:ff9b::/96).
fn nat64(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]).then(|| {
        let o = ip.octets();
        Ipv4Addr::new(o[12], o[13], o[14], o[15])
    })
}

/// The refusal, recognisable in the HTTP client's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses hookline may not connect to ({addresses})")]
pub(crate) struct Blocked {
    pub(crate) host: String,
    pub(crate) addresses: String,
}

/// The HTTP client's DNS resolver; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    pub(crate) fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }

    /// The addresses of `host` hookline may connect to; [`Blocked`] when it
    /// resolves only to refused ones.
    pub(crate) async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        let allowed: Vec<SocketAddr> = resolved.iter().copied().filter(|a| self.policy.allows(a.ip())).collect();
        if allowed.is_empty() {
            let addresses = resolved.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ");
            return Err(Box::new(Blocked { host: host.to_owned(), addresses }));
        }
        Ok(allowed)
    }
}

/// Why a name gave no address to connect to.
pub(crate) type ResolveError = Box<dyn std::error::Error + Send + Sync>;

/// The resolver of the HTTP client's connector (`hyper_util`'s
/// `HttpConnector` asks it for every host name it connects to).
impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.clone();
        Box::pin(async move { resolver.lookup(name.as_str()).await.map(Vec::into_iter) })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn every_non_public_class_is_refused() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.10",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "2001::1",
            "::127.0.0.1",
            "::169.254.169.254",
            "::8.8.8.8",
            "64:ff9b:1::a00:1",
            "64:ff9b:1::808:808",
        ];
        let policy = AddressPolicy::new(Vec::new());
        assert_eq!(nets(BLOCKED_V4).len(), BLOCKED_V4.len(), "every v4 range parses");
        assert_eq!(nets(BLOCKED_V6).len(), BLOCKED_V6.len(), "every v6 range parses");
        for text in refused {
            assert!(!policy.allows(ip(text)), "{text} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let policy = AddressPolicy::new(Vec::new());
        for text in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
        ] {
            assert!(policy.allows(ip(text)), "{text} must be allowed");
        }
        assert!(!policy.allows(ip("172.32.0.0")) || is_public(ip("172.32.0.0")), "172.32/16 is public");
        assert!(is_public(ip("172.32.0.1")));
    }

    #[test]
    fn the_allow_list_opens_only_its_ranges() {
        let policy = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]);
        assert!(policy.allows(ip("127.0.0.1")));
        assert!(policy.allows(ip("fd12::1")));
        assert!(!policy.allows(ip("10.0.0.1")));
        assert!(!policy.allows(ip("169.254.169.254")));
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_only_loopback_addresses() {
        let resolver = GuardedResolver::new(Arc::new(AddressPolicy::new(Vec::new())));
        let err = match resolver.lookup("localhost").await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<Blocked>().is_some(), "{err}");
        let open = GuardedResolver::new(Arc::new(AddressPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])));
        let addrs = open.lookup("localhost").await.unwrap();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
