//! The rate limit on opening magic links, per client address
//! (`governor`'s keyed GCRA limiter, in this process: each replica limits
//! on its own, which bounds the cost of guessing per replica).

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
};

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::EnterLimit;

/// Client addresses remembered before the idle ones are forgotten.
const FORGET_ABOVE: usize = 10_000;

#[derive(Debug)]
pub(crate) struct EnterLimiter(DefaultKeyedRateLimiter<IpAddr>);

impl EnterLimiter {
    pub(crate) fn new(limit: &EnterLimit) -> Self {
        // validate() refuses zeros; `MIN` keeps this total anyway.
        let per_minute = NonZeroU32::new(limit.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        Self(RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)))
    }

    /// Whether `client` may open a link now (and counts it).
    pub(crate) fn allow(&self, client: IpAddr) -> bool {
        if self.0.len() > FORGET_ABOVE {
            self.0.retain_recent();
        }
        self.0.check_key(&client).is_ok()
    }
}

/// The client's address: the connection's peer, or, behind a trusted
/// proxy, the last hop its `X-Forwarded-For` names.
pub(crate) fn client_address(peer: SocketAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    let forwarded = || {
        let last = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
        last.rsplit(',').next()?.trim().parse().ok()
    };
    if trust_forwarded_for { forwarded().unwrap_or(peer.ip()) } else { peer.ip() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_while_others_go_on() {
        let limiter = EnterLimiter::new(&EnterLimit { per_minute: 1, burst: 3, trust_forwarded_for: false });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        assert_eq!((0..5).map(|_| limiter.allow(a)).collect::<Vec<_>>(), [true, true, true, false, false]);
        assert!(limiter.allow(b), "another client is not held back");
    }

    #[test]
    fn the_forwarded_address_counts_only_when_trusted() {
        let peer: SocketAddr = "10.1.1.1:4000".parse().expect("addr");
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().expect("header"));
        assert_eq!(client_address(peer, &headers, false), peer.ip());
        assert_eq!(client_address(peer, &headers, true), "198.51.100.7".parse::<IpAddr>().expect("ip"));
        assert_eq!(client_address(peer, &HeaderMap::new(), true), peer.ip());
    }
}
