//! A circuit breaker per endpoint: the subscription's URL without its query.
//!
//! Not per host: many subscribers share a receiving host (integration
//! platforms serve thousands of customers' paths from one host), and one
//! failing path must not stop deliveries to the others.
//!
//! After `threshold` consecutive failures that say the endpoint is unwell
//! (timeouts, connection errors, 5xx, 429), the circuit opens: tasks for
//! that endpoint go back to the retry set without spending an attempt or a
//! worker slot, due when the cooldown ends (it doubles with each failed
//! probe, up to `max_cooldown`, so a long outage costs little), and noted
//! in their subscription's endpoint-wait set. Probing is apart from that
//! backoff: every `probe_every` while the circuit is open, one task is let
//! through (half-open), and if none is at hand one deferred task is brought
//! forward to be it. A successful probe closes the circuit and brings every
//! deferred task of the endpoint forward, so deliveries flow again within
//! about `probe_every` of the endpoint's recovery however long the outage
//! was. Each process keeps its own breakers; they converge because they see
//! the same endpoint, and a task deferred by a process that died is still
//! due at its cooldown's end.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

use tokio::time::Instant;

/// Subscriptions one open endpoint remembers having deferred tasks of.
const MAX_DEFERRED_SUBSCRIPTIONS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Send.
    Closed,
    /// Send: this is the half-open probe.
    Probe,
    /// Do not send; try again after this long.
    Open(Duration),
}

/// A subscription with tasks deferred for an open endpoint: its
/// partition and id.
pub(crate) type Deferred = (u16, String);

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
    probing: bool,
    /// While open: when the next probe may go.
    probe_at: Option<Instant>,
    /// When a deferred task was last brought forward to probe with, and
    /// how many times (which subscription's turn it is next).
    woken_at: Option<Instant>,
    wakes: usize,
    deferred: HashSet<Deferred>,
}

#[derive(Debug)]
pub(crate) struct Breakers {
    states: Mutex<HashMap<String, State>>,
    threshold: u32,
    cooldown: Duration,
    max_cooldown: Duration,
    probe_every: Duration,
}

impl Breakers {
    /// `threshold == 0` turns breaking off.
    pub(crate) fn new(threshold: u32, cooldown: Duration, max_cooldown: Duration, probe_every: Duration) -> Self {
        Self { states: Mutex::new(HashMap::new()), threshold, cooldown, max_cooldown, probe_every }
    }

    pub(crate) fn check(&self, endpoint: &str) -> Gate {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = states.get_mut(endpoint) else { return Gate::Closed };
        let Some(until) = state.open_until else { return Gate::Closed };
        let now = Instant::now();
        let probe_due = until <= now || state.probe_at.is_some_and(|at| at <= now);
        if probe_due && !state.probing {
            state.probing = true;
            return Gate::Probe;
        }
        Gate::Open(until.saturating_duration_since(now).max(Duration::from_secs(1)))
    }

    /// Notes that a task of this subscription was deferred for `endpoint`'s
    /// open circuit.
    pub(crate) fn deferred(&self, endpoint: &str, subscription: Deferred) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = states.get_mut(endpoint)
            && (state.deferred.len() < MAX_DEFERRED_SUBSCRIPTIONS || state.deferred.contains(&subscription))
        {
            state.deferred.insert(subscription);
        }
    }

    /// Open endpoints whose probe is due with no task at hand to be it: one
    /// subscription of each, whose next deferred task should be brought
    /// forward. Asks again for an endpoint only after `probe_every`.
    pub(crate) fn probes_to_wake(&self) -> Vec<Deferred> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut wake = Vec::new();
        for state in states.values_mut() {
            let due = state.probe_at.is_some_and(|at| at <= now)
                && !state.probing
                && state.woken_at.is_none_or(|at| at + self.probe_every <= now);
            // Each subscription in turn: one whose deferred tasks have all
            // come back already must not stand in for the others.
            let turn = state.wakes % state.deferred.len().max(1);
            if let Some(sub) = state.deferred.iter().nth(turn).filter(|_| due) {
                state.woken_at = Some(now);
                state.wakes += 1;
                wake.push(sub.clone());
            }
        }
        wake
    }

    /// A task let through was parked instead of sent (its subscription's
    /// in-flight limit, rate or fair share): if it was the probe, the next
    /// task may probe instead (else no probe would ever report back).
    pub(crate) fn not_sent(&self, endpoint: &str) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = states.get_mut(endpoint) {
            state.probing = false;
        }
    }

    /// `healthy`: the attempt did not show the endpoint unwell. Replies the
    /// subscriptions with deferred tasks when this closed an open circuit.
    pub(crate) fn record(&self, endpoint: &str, healthy: bool) -> Vec<Deferred> {
        if self.threshold == 0 {
            return Vec::new();
        }
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if healthy {
            return match states.remove(endpoint) {
                Some(state) if state.open_until.is_some() => {
                    tracing::info!(endpoint = shown(endpoint), "circuit closed");
                    state.deferred.into_iter().collect()
                }
                _ => Vec::new(),
            };
        }
        let now = Instant::now();
        let state = states.entry(endpoint.to_owned()).or_default();
        state.failures += 1;
        if state.probing {
            state.probing = false;
            state.cooldown = (state.cooldown * 2).min(self.max_cooldown);
            state.open_until = Some(now + state.cooldown);
            state.probe_at = Some(now + self.probe_every);
            tracing::warn!(
                endpoint = shown(endpoint),
                cooldown_secs = state.cooldown.as_secs(),
                "probe failed; circuit open again"
            );
        } else if state.open_until.is_none() && state.failures >= self.threshold {
            state.cooldown = self.cooldown;
            state.open_until = Some(now + state.cooldown);
            state.probe_at = Some(now + self.probe_every);
            tracing::warn!(endpoint = shown(endpoint), failures = state.failures, "circuit open");
        }
        Vec::new()
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
        let b = Breakers::new(3, Duration::from_secs(10), Duration::from_secs(60), Duration::from_secs(60));
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
        let b = Breakers::new(1, Duration::from_secs(10), Duration::from_secs(15), Duration::from_secs(60));
        b.record("e", false);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.check("e"), Gate::Probe);
        b.record("e", false);
        assert!(matches!(b.check("e"), Gate::Open(d) if d == Duration::from_secs(15)), "20 s capped to 15 s");
        assert_eq!(b.check("other"), Gate::Closed, "endpoints are independent");
    }

    /// However long the cooldown has grown, a probe goes every
    /// `probe_every`; with no task at hand, a deferred one is brought
    /// forward to be it; the probe that succeeds names the subscriptions
    /// whose deferred tasks should come back now.
    #[tokio::test(start_paused = true)]
    async fn probes_go_on_a_short_period_however_long_the_cooldown() {
        let every = Duration::from_secs(5);
        let b = Breakers::new(1, Duration::from_secs(300), Duration::from_secs(300), every);
        b.record("e", false);
        assert!(matches!(b.check("e"), Gate::Open(d) if d == Duration::from_secs(300)), "deferred for the cooldown");
        b.deferred("e", (0, "sub_a".into()));
        b.deferred("e", (0, "sub_a".into()));
        assert!(b.probes_to_wake().is_empty(), "no probe before probe_every");

        tokio::time::advance(every).await;
        assert_eq!(b.probes_to_wake(), vec![(0, "sub_a".to_owned())], "a deferred task is brought forward");
        assert!(b.probes_to_wake().is_empty(), "once per period");
        assert_eq!(b.check("e"), Gate::Probe, "it arrives and probes");
        assert!(matches!(b.check("e"), Gate::Open(_)), "one probe at a time");
        assert!(b.probes_to_wake().is_empty(), "none brought forward while one is out");
        b.not_sent("e");
        assert_eq!(b.check("e"), Gate::Probe, "a probe parked by its subscription's limits lets another go");
        assert!(b.record("e", false).is_empty());

        tokio::time::advance(every).await;
        assert_eq!(b.check("e"), Gate::Probe, "5 s later, although the cooldown is now capped at 300 s");
        b.deferred("e", (1, "sub_b".into()));
        let mut woken = b.record("e", true);
        woken.sort();
        assert_eq!(woken, vec![(0, "sub_a".to_owned()), (1, "sub_b".to_owned())], "closed: wake them all");
        assert_eq!(b.check("e"), Gate::Closed);
        assert!(b.record("e", true).is_empty(), "a closed circuit wakes nothing");
    }
}
