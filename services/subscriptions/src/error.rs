//! The service's error type and its one mapping to gRPC status codes.
//!
//! Messages are for the caller: they say what to change, and never carry
//! secrets or Redis internals (those are logged, not returned).

use hookline_domain::ValidationError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// A write not yet on enough Redis replicas; the message says so.
    #[error("{0}")]
    NotReplicated(String),
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(String),
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(v) => Status::invalid_argument(v.to_string()),
            ServiceError::BadRequest(m) => Status::invalid_argument(m),
            ServiceError::NotFound(what) => Status::not_found(format!("{what} not found")),
            ServiceError::AlreadyExists(m) => Status::already_exists(m),
            ServiceError::Stale(m) => Status::aborted(m),
            ServiceError::FailedPrecondition(m) => Status::failed_precondition(m),
            ServiceError::ResourceExhausted(m) => Status::resource_exhausted(m),
            ServiceError::PermissionDenied(m) => Status::permission_denied(m),
            ServiceError::NotReplicated(m) => Status::unavailable(m),
            ServiceError::Unavailable(source) => {
                tracing::warn!(error = %source, "storage unavailable");
                Status::unavailable("storage is unavailable; retry shortly")
            }
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

impl ServiceError {
    /// Carries a status decided elsewhere (the auth crate) through this
    /// type, keeping its code and message.
    pub(crate) fn from_status(status: &Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            tonic::Code::NotFound => Self::NotFound(message.trim_end_matches(" not found").to_owned()),
            tonic::Code::InvalidArgument => Self::BadRequest(message),
            tonic::Code::PermissionDenied => Self::PermissionDenied(message),
            _ => Self::Internal(message),
        }
    }
}
