//! The service's error type and its one mapping to gRPC status codes.

use hookline_domain::ValidationError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("storage unavailable")]
    Redis(#[from] redis::RedisError),
}

impl From<hookline_queue::WriteError> for ServiceError {
    fn from(e: hookline_queue::WriteError) -> Self {
        match e {
            hookline_queue::WriteError::Redis(error) => Self::Redis(error),
            not_replicated => Self::Unavailable(format!(
                "{not_replicated}; it may still be delivered: retry with the same idempotency_key"
            )),
        }
    }
}

impl ServiceError {
    /// Carries a status decided by the auth crate.
    pub(crate) fn from_status(status: &Status) -> Self {
        match status.code() {
            tonic::Code::NotFound => Self::NotFound(status.message().to_owned()),
            _ => Self::BadRequest(status.message().to_owned()),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(v) => Status::invalid_argument(v.to_string()),
            ServiceError::BadRequest(m) => Status::invalid_argument(m),
            ServiceError::NotFound(m) => Status::not_found(m),
            ServiceError::FailedPrecondition(m) => Status::failed_precondition(m),
            ServiceError::PermissionDenied(m) => Status::permission_denied(m),
            ServiceError::Unavailable(m) => Status::unavailable(m),
            ServiceError::Redis(error) => {
                tracing::warn!(%error, "redis error");
                Status::unavailable("storage is unavailable; retry shortly")
            }
        }
    }
}
