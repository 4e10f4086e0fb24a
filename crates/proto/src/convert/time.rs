//! `google.protobuf.Timestamp` / `Duration` to and from `std::time`.

use std::time::{Duration, SystemTime};

use hookline_domain::ValidationError;

pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    t.into()
}

/// The range of `google.protobuf.Timestamp`: 0001-01-01T00:00:00Z to
/// 9999-12-31T23:59:59.999999999Z, in seconds from the Unix epoch.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// Unix milliseconds as a timestamp, held within the protobuf range (a
/// stored time from an older build or a damaged record never yields a
/// timestamp clients cannot format).
pub fn timestamp_from_unix_ms(ms: u64) -> prost_types::Timestamp {
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX).min(MAX_SECONDS);
    prost_types::Timestamp { seconds, nanos: ((ms % 1000) * 1_000_000) as i32 }
}

/// The last millisecond a timestamp (and RFC 3339) can show, in Unix ms.
pub const MAX_UNIX_MS: u64 = MAX_SECONDS as u64 * 1000 + 999;

/// A timestamp within the protobuf range (year 1 to 9999, nanos in
/// `0..1e9`), as every RFC 3339 formatter downstream expects.
pub fn timestamp_from_proto(field: &str, t: &prost_types::Timestamp) -> Result<SystemTime, ValidationError> {
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&t.seconds) {
        return Err(ValidationError::new(
            field,
            format!("{} seconds is outside the range of timestamps (years 1 to 9999)", t.seconds),
        ));
    }
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(ValidationError::new(field, format!("nanos must be in 0..999999999 (got {})", t.nanos)));
    }
    SystemTime::try_from(*t).map_err(|_| ValidationError::new(field, "is not a valid timestamp"))
}

/// A non-negative duration; `None` when unset.
pub fn duration_from_proto(
    field: &str,
    d: Option<&prost_types::Duration>,
) -> Result<Option<Duration>, ValidationError> {
    d.map(|d| Duration::try_from(*d).map_err(|_| ValidationError::new(field, "must be a non-negative duration")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos }
    }

    #[test]
    fn timestamps_outside_the_protobuf_range_are_refused() {
        for bad in [ts(253_402_300_800, 0), ts(i64::MAX, 0), ts(i64::MIN, 0), ts(0, -1), ts(0, 1_000_000_000)] {
            let err = timestamp_from_proto("occurred_at", &bad).expect_err("out of range");
            assert_eq!(err.field, "occurred_at");
        }
        for good in [ts(0, 0), ts(1_700_000_000, 999_999_999), ts(253_402_300_799, 0), ts(-62_135_596_800, 0)] {
            assert!(timestamp_from_proto("t", &good).is_ok(), "{good:?}");
        }
    }
}
