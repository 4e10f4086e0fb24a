//! hookline's gRPC contracts, generated from `proto/hookline/v1` by
//! `tonic-prost-build`, plus the encoded descriptor set that every server
//! registers with gRPC reflection.
//!
//! The conversions between these wire types and `hookline-domain` live in
//! [`convert`], so each service validates a request the same way.

/// Generated code for package `hookline.v1`.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("hookline.v1");
}

pub mod convert;

/// The encoded `FileDescriptorSet` of every hookline proto, for
/// `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hookline_descriptor");

/// The largest message a hookline client or server decodes (tonic's
/// default, made explicit so both sides of every call agree on it).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The most a server puts in one message it sends: a page of a List
/// response ends early rather than pass it, and the watch stream never
/// sends one larger (a stored subscription is at most
/// `hookline_domain::limits::MAX_SUBSCRIPTION_BYTES`, half of this). Half of
/// [`MAX_MESSAGE_BYTES`], so every message sent can be decoded.
pub const MAX_PAGE_BYTES: usize = MAX_MESSAGE_BYTES / 2;

/// Well-known types used in the generated code, re-exported so users need
/// not depend on `prost-types` themselves.
pub use prost_types::{Duration, FieldMask, Timestamp};
