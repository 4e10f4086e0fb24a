//! The subscription service over real gRPC against a real Redis: every RPC's
//! happy path, bad input, tenant isolation, concurrency, the watch stream
//! and recovery from Redis outages.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

mod catalog;
mod crud;
mod isolation;
mod lifecycle;
mod limits;
mod portal;
mod resilience;
mod support;
mod tls;
mod validation;
mod watch;
