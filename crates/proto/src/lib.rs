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

/// Well-known types used in the generated code, re-exported so users need
/// not depend on `prost-types` themselves.
pub use prost_types::{Duration, FieldMask, Timestamp};
