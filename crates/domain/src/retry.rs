//! Retry policy and rate limit of a subscription, and the retry maths.
//!
//! The default is exponential backoff with full jitter: retry `n` waits a
//! uniformly random time in `[0, min(max, initial * 2^(n-1))]`. With 15
//! attempts, 10 s initial and a 6 h cap the upper envelope spans about 23 h,
//! "roughly a day" like the platforms receivers are used to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    max_attempts: u32,
    schedule: RetrySchedule,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrySchedule {
    Exponential {
        #[serde(with = "humantime_serde")]
        initial: Duration,
        #[serde(with = "humantime_serde")]
        max: Duration,
    },
    /// Delay before retry 1, 2, ...
    Fixed(#[serde(with = "fixed_delays")] Vec<Duration>),
}

mod fixed_delays {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        d.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<u64>::deserialize(d)?.into_iter().map(Duration::from_millis).collect())
    }
}

impl RetryPolicy {
    pub const DEFAULT_ATTEMPTS: u32 = 15;
    pub const DEFAULT_INITIAL: Duration = Duration::from_secs(10);
    pub const DEFAULT_MAX: Duration = Duration::from_secs(6 * 3600);
    pub const MAX_ATTEMPTS: u32 = 30;
    pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
    pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

    /// Exponential backoff. `0` attempts and `None` intervals take the defaults.
    pub fn exponential(
        max_attempts: u32,
        initial: Option<Duration>,
        max: Option<Duration>,
    ) -> Result<Self, ValidationError> {
        let max_attempts = if max_attempts == 0 { Self::DEFAULT_ATTEMPTS } else { max_attempts };
        Self::check_attempts(max_attempts)?;
        let initial = initial.unwrap_or(Self::DEFAULT_INITIAL);
        let max = max.unwrap_or(Self::DEFAULT_MAX.max(initial));
        Self::check_interval("initial_interval", initial)?;
        Self::check_interval("max_interval", max)?;
        if max < initial {
            return Err(ValidationError::new("retry_policy.max_interval", "must not be shorter than initial_interval"));
        }
        Ok(Self { max_attempts, schedule: RetrySchedule::Exponential { initial, max } })
    }

    /// An explicit schedule; `max_attempts` must be 0 or `delays.len() + 1`.
    pub fn fixed(max_attempts: u32, delays: Vec<Duration>) -> Result<Self, ValidationError> {
        let implied = delays.len() as u32 + 1;
        if max_attempts != 0 && max_attempts != implied {
            return Err(ValidationError::new(
                "retry_policy.max_attempts",
                format!(
                    "is {max_attempts} but the schedule implies {implied} (one first attempt + one per delay); set 0 or {implied}"
                ),
            ));
        }
        Self::check_attempts(implied)?;
        for (i, d) in delays.iter().enumerate() {
            Self::check_interval(&format!("schedule[{i}]"), *d)?;
        }
        Ok(Self { max_attempts: implied, schedule: RetrySchedule::Fixed(delays) })
    }

    fn check_attempts(n: u32) -> Result<(), ValidationError> {
        if !(1..=Self::MAX_ATTEMPTS).contains(&n) {
            return Err(ValidationError::new(
                "retry_policy.max_attempts",
                format!("must be between 1 and {} (got {n})", Self::MAX_ATTEMPTS),
            ));
        }
        Ok(())
    }

    fn check_interval(field: &str, d: Duration) -> Result<(), ValidationError> {
        if d < Self::MIN_INTERVAL || d > Self::MAX_INTERVAL {
            return Err(ValidationError::new(
                format!("retry_policy.{field}"),
                format!("must be between 1s and 24h (got {}s)", d.as_secs_f64()),
            ));
        }
        Ok(())
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn schedule(&self) -> &RetrySchedule {
        &self.schedule
    }

    /// The delay before attempt `attempt + 1`, after `attempt` attempts
    /// (1-based) have failed; `None` when none are left. `jitter` is a
    /// uniform sample in `[0, 1)` and only applies to exponential backoff.
    pub fn delay_after(&self, attempt: u32, jitter: f64) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        match &self.schedule {
            RetrySchedule::Fixed(delays) => delays.get(attempt as usize - 1).copied(),
            RetrySchedule::Exponential { initial, max } => {
                let cap = initial.saturating_mul(1u32 << (attempt - 1).min(30)).min(*max);
                Some(cap.mul_f64(jitter.clamp(0.0, 1.0)))
            }
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: Self::DEFAULT_ATTEMPTS,
            schedule: RetrySchedule::Exponential { initial: Self::DEFAULT_INITIAL, max: Self::DEFAULT_MAX },
        }
    }
}

/// A token-bucket limit on requests to one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    pub const MAX: u32 = 100_000;

    /// `burst == 0` means `per_second`.
    pub fn new(per_second: u32, burst: u32) -> Result<Self, ValidationError> {
        if !(1..=Self::MAX).contains(&per_second) {
            return Err(ValidationError::new("rate_limit.per_second", format!("must be between 1 and {}", Self::MAX)));
        }
        if burst > Self::MAX {
            return Err(ValidationError::new("rate_limit.burst", format!("must be at most {}", Self::MAX)));
        }
        Ok(Self { per_second, burst: if burst == 0 { per_second } else { burst } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_spans_roughly_a_day() {
        let p = RetryPolicy::default();
        let envelope: Duration = (1..p.max_attempts()).filter_map(|n| p.delay_after(n, 1.0)).sum();
        assert!(envelope > Duration::from_secs(20 * 3600) && envelope < Duration::from_secs(28 * 3600), "{envelope:?}");
        assert_eq!(p.delay_after(p.max_attempts(), 0.5), None, "no retry after the last attempt");
    }

    #[test]
    fn exponential_delays_double_up_to_the_cap_scaled_by_jitter() {
        let p =
            RetryPolicy::exponential(6, Some(Duration::from_secs(2)), Some(Duration::from_secs(10))).expect("valid");
        let full: Vec<_> = (1..6).map(|n| p.delay_after(n, 1.0).expect("left").as_secs()).collect();
        assert_eq!(full, [2, 4, 8, 10, 10]);
        assert_eq!(p.delay_after(3, 0.5), Some(Duration::from_secs(4)));
        assert_eq!(p.delay_after(1, 0.0), Some(Duration::ZERO));
    }

    #[test]
    fn fixed_schedule_is_followed_exactly() {
        let p = RetryPolicy::fixed(0, vec![Duration::from_secs(5), Duration::from_secs(30)]).expect("valid");
        assert_eq!(p.max_attempts(), 3);
        assert_eq!(p.delay_after(1, 0.9), Some(Duration::from_secs(5)));
        assert_eq!(p.delay_after(2, 0.1), Some(Duration::from_secs(30)));
        assert_eq!(p.delay_after(3, 0.1), None);
    }

    #[test]
    fn out_of_range_policies_are_refused() {
        assert!(RetryPolicy::exponential(31, None, None).is_err());
        assert!(RetryPolicy::exponential(3, Some(Duration::from_millis(10)), None).is_err());
        assert!(RetryPolicy::exponential(3, Some(Duration::from_secs(60)), Some(Duration::from_secs(5))).is_err());
        assert!(RetryPolicy::exponential(3, None, Some(Duration::from_secs(200_000))).is_err());
        assert!(RetryPolicy::fixed(5, vec![Duration::from_secs(1)]).is_err());
        assert!(RateLimit::new(0, 0).is_err());
        assert_eq!(RateLimit::new(10, 0).map(|r| r.burst), Ok(10));
    }
}
