//! What an attempt's result means for the delivery: done, retry when,
//! dead-letter, or the endpoint is gone.

use std::time::Duration;

use hookline_domain::RetryPolicy;

use crate::{
    http::{AttemptError, AttemptResult},
    store::Streak,
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Decision {
    Success,
    /// Try again after this delay.
    Retry(Duration),
    /// No attempts left.
    DeadLetter,
    /// 410 Gone: dead-letter and disable the subscription.
    Gone,
}

/// `attempt` is the number of the attempt that produced `result` (from 1);
/// `jitter` a uniform sample in `[0, 1)`. A `Retry-After` (capped at
/// `max_retry_after`) is honoured when it asks for more than the policy's
/// delay.
pub(crate) fn decide(
    result: &AttemptResult,
    policy: &RetryPolicy,
    attempt: u32,
    max_retry_after: Duration,
    jitter: f64,
) -> Decision {
    if result.succeeded() {
        return Decision::Success;
    }
    if result.status == 410 {
        return Decision::Gone;
    }
    if result.error.is_final() {
        return Decision::DeadLetter;
    }
    match policy.delay_after(attempt, jitter) {
        None => Decision::DeadLetter,
        Some(delay) => {
            let asked = result.retry_after.map(|d| d.min(max_retry_after)).unwrap_or_default();
            Decision::Retry(delay.max(asked))
        }
    }
}

/// When a failing subscription is paused: after a streak of failed
/// attempts that is both long (`after` of them) and old (`failing_for`
/// since the first), so that a burst of failures never pauses (a wave of
/// `max_in_flight` concurrent attempts to an endpoint that is down for a
/// minute passes any count at once) and an endpoint that has failed every
/// attempt for a day does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AutoPause {
    /// 0: never pause.
    pub(crate) after: u64,
    pub(crate) failing_for: Duration,
}

impl AutoPause {
    pub(crate) fn applies(&self, streak: Streak, now_ms: u64) -> bool {
        self.after > 0
            && streak.failures >= self.after
            && now_ms.saturating_sub(streak.since_ms) >= self.failing_for.as_millis() as u64
    }
}

/// Whether a failure says the endpoint itself is unwell (trips the
/// circuit breaker), as opposed to refusing this one request.
pub(crate) fn endpoint_unhealthy(result: &AttemptResult) -> bool {
    match result.error {
        AttemptError::Timeout | AttemptError::Connect | AttemptError::Tls | AttemptError::Dns => true,
        AttemptError::HttpStatus => result.status >= 500 || result.status == 429,
        AttemptError::None
        | AttemptError::BlockedAddress
        | AttemptError::Redirect
        | AttemptError::EventExpired
        | AttemptError::Undeliverable => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn result(status: u16, error: AttemptError, retry_after: Option<u64>) -> AttemptResult {
        AttemptResult {
            started: SystemTime::now(),
            duration: Duration::from_millis(5),
            status,
            error,
            message: String::new(),
            body: Vec::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::fixed(0, vec![Duration::from_secs(5), Duration::from_secs(30)]).unwrap()
    }

    #[test]
    fn success_gone_retry_and_dead_letter() {
        let cap = Duration::from_secs(3600);
        assert_eq!(decide(&result(204, AttemptError::None, None), &policy(), 1, cap, 0.5), Decision::Success);
        assert_eq!(decide(&result(410, AttemptError::HttpStatus, None), &policy(), 1, cap, 0.5), Decision::Gone);
        assert_eq!(
            decide(&result(500, AttemptError::HttpStatus, None), &policy(), 1, cap, 0.5),
            Decision::Retry(Duration::from_secs(5))
        );
        assert_eq!(
            decide(&result(0, AttemptError::Timeout, None), &policy(), 2, cap, 0.5),
            Decision::Retry(Duration::from_secs(30))
        );
        assert_eq!(decide(&result(500, AttemptError::HttpStatus, None), &policy(), 3, cap, 0.5), Decision::DeadLetter);
    }

    #[test]
    fn retry_after_is_honoured_within_its_cap() {
        let cap = Duration::from_secs(60);
        let busy = result(429, AttemptError::HttpStatus, Some(20));
        assert_eq!(
            decide(&busy, &policy(), 1, cap, 0.5),
            Decision::Retry(Duration::from_secs(20)),
            "longer than the policy's 5 s"
        );
        let greedy = result(503, AttemptError::HttpStatus, Some(86_400));
        assert_eq!(decide(&greedy, &policy(), 1, cap, 0.5), Decision::Retry(cap), "capped");
        let short = result(503, AttemptError::HttpStatus, Some(1));
        assert_eq!(
            decide(&short, &policy(), 1, cap, 0.5),
            Decision::Retry(Duration::from_secs(5)),
            "never sooner than the policy"
        );
    }

    #[test]
    fn a_burst_of_failures_never_pauses_a_long_streak_does() {
        let rule = AutoPause { after: 50, failing_for: Duration::from_secs(86_400) };
        let day_ms = 86_400_000;
        let streak = |failures, since_ms| Streak { failures, since_ms };
        assert!(!rule.applies(streak(10_000, 1_000), 1_000 + 60_000), "10,000 failures in a minute");
        assert!(!rule.applies(streak(49, 1_000), 1_000 + 2 * day_ms), "49 failures over two days");
        assert!(rule.applies(streak(50, 1_000), 1_000 + day_ms), "50 failures over a day");
        let never = AutoPause { after: 0, failing_for: Duration::ZERO };
        assert!(!never.applies(streak(1_000_000, 0), 10 * day_ms), "0 turns it off");
        let by_count = AutoPause { after: 3, failing_for: Duration::ZERO };
        assert!(by_count.applies(streak(3, 5), 5), "failing_for 0: the count alone");
    }

    #[test]
    fn only_endpoint_failures_trip_the_breaker() {
        assert!(endpoint_unhealthy(&result(0, AttemptError::Timeout, None)));
        assert!(endpoint_unhealthy(&result(503, AttemptError::HttpStatus, None)));
        assert!(endpoint_unhealthy(&result(429, AttemptError::HttpStatus, None)));
        assert!(!endpoint_unhealthy(&result(400, AttemptError::HttpStatus, None)));
        assert!(!endpoint_unhealthy(&result(200, AttemptError::None, None)));
    }
}
