//! `google.protobuf.Timestamp` / `Duration` to and from `std::time`.

use std::time::{Duration, SystemTime};

use hookline_domain::ValidationError;

pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    t.into()
}

pub fn timestamp_from_proto(field: &str, t: &prost_types::Timestamp) -> Result<SystemTime, ValidationError> {
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
