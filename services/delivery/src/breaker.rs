//! A circuit breaker per endpoint: the subscription's URL without its query.
//!
//! Not per host: many subscribers share a receiving host (integration
//! platforms serve thousands of customers' paths from one host), and one
//! failing path must not stop deliveries to the others.
//!
//! After `threshold` consecutive failures that say the endpoint is unwell
//! (timeouts, connection errors, 5xx, 429), the circuit opens for a
//! cooldown: tasks for that endpoint go back to the retry set without
//! spending an attempt or a worker slot. When the cooldown ends one task
//! probes (half-open): success closes the circuit, failure reopens it with
//! the cooldown doubled (up to `max_cooldown`). Each process keeps its own
//! breakers; they converge because they see the same endpoint.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Send.
    Closed,
    /// Send: this is the half-open probe.
    Probe,
    /// Do not send; try again after this long.
    Open(Duration),
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
    probing: bool,
}

#[derive(Debug)]
pub(crate) struct Breakers {
    states: Mutex<HashMap<String, State>>,
    threshold: u32,
    cooldown: Duration,
    max_cooldown: Duration,
}

impl Breakers {
    /// `threshold == 0` turns breaking off.
    pub(crate) fn new(threshold: u32, cooldown: Duration, max_cooldown: Duration) -> Self {
        Self { states: Mutex::new(HashMap::new()), threshold, cooldown, max_cooldown }
    }

    pub(crate) fn check(&self, endpoint: &str) -> Gate {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = states.get_mut(endpoint) else { return Gate::Closed };
        match state.open_until {
            None => Gate::Closed,
            Some(until) if until > Instant::now() => Gate::Open(until - Instant::now()),
            Some(_) if state.probing => Gate::Open(Duration::from_secs(1)),
            Some(_) => {
                state.probing = true;
                Gate::Probe
            }
        }
    }

    /// `healthy`: the attempt did not show the endpoint unwell.
    pub(crate) fn record(&self, endpoint: &str, healthy: bool) {
        if self.threshold == 0 {
            return;
        }
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if healthy {
            if states.remove(endpoint).is_some_and(|s| s.open_until.is_some()) {
                tracing::info!(endpoint = shown(endpoint), "circuit closed");
            }
            return;
        }
        let state = states.entry(endpoint.to_owned()).or_default();
        state.failures += 1;
        if state.probing {
            state.probing = false;
            state.cooldown = (state.cooldown * 2).min(self.max_cooldown);
            state.open_until = Some(Instant::now() + state.cooldown);
            tracing::warn!(
                endpoint = shown(endpoint),
                cooldown_secs = state.cooldown.as_secs(),
                "probe failed; circuit open again"
            );
        } else if state.open_until.is_none() && state.failures >= self.threshold {
            state.cooldown = self.cooldown;
            state.open_until = Some(Instant::now() + state.cooldown);
            tracing::warn!(endpoint = shown(endpoint), failures = state.failures, "circuit open");
        }
    }
}

impl Breakers {
    /// Endpoints whose circuit is open, and those being probed (half-open).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let open = states.values().filter(|s| s.open_until.is_some() && !s.probing).count();
        let probing = states.values().filter(|s| s.probing).count();
        (open, probing)
    }
}

/// The breaker key of a URL: scheme, host, port and path.
pub(crate) fn endpoint_of(url: &url::Url) -> String {
    format!(
        "{}://{}:{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0),
        url.path()
    )
}

/// An endpoint key as logs show it: scheme, host and port, the path cut
/// (it may hold a secret, as Slack-style URLs do).
fn shown(endpoint: &str) -> &str {
    let after_scheme = endpoint.find("://").map_or(0, |i| i + 3);
    endpoint[after_scheme..].find('/').map_or(endpoint, |i| &endpoint[..after_scheme + i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_show_an_endpoint_without_its_path() {
        assert_eq!(shown("https://hooks.slack.com:443/services/T0/B0/secret"), "https://hooks.slack.com:443");
        assert_eq!(shown("http://h:80"), "http://h:80");
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_then_probes_and_closes() {
        let b = Breakers::new(3, Duration::from_secs(10), Duration::from_secs(60));
        for _ in 0..2 {
            b.record("e", false);
        }
        assert_eq!(b.check("e"), Gate::Closed, "below the threshold");
        b.record("e", false);
        assert!(matches!(b.check("e"), Gate::Open(d) if d == Duration::from_secs(10)));

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.check("e"), Gate::Probe, "one probe after the cooldown");
        assert!(matches!(b.check("e"), Gate::Open(_)), "only one probe at a time");
        b.record("e", true);
        assert_eq!(b.check("e"), Gate::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_doubles_the_cooldown_up_to_the_cap() {
        let b = Breakers::new(1, Duration::from_secs(10), Duration::from_secs(15));
        b.record("e", false);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.check("e"), Gate::Probe);
        b.record("e", false);
        assert!(matches!(b.check("e"), Gate::Open(d) if d == Duration::from_secs(15)), "20 s capped to 15 s");
        assert_eq!(b.check("other"), Gate::Closed, "endpoints are independent");
    }

    #[test]
    fn endpoints_are_urls_without_query_so_paths_on_one_host_are_apart() {
        let parse = |u: &str| url::Url::parse(u).unwrap_or_else(|_| unreachable!());
        assert_eq!(endpoint_of(&parse("https://Example.com/a?b=c")), "https://example.com:443/a");
        assert_ne!(
            endpoint_of(&parse("https://hooks.example.com/1")),
            endpoint_of(&parse("https://hooks.example.com/2"))
        );
    }
}
