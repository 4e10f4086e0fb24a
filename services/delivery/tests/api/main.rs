//! The delivery service over the whole real pipeline: real Redis, the
//! real subscription and fanout services, real HTTP receivers.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

mod api;
mod crash;
mod hardening;
mod isolation;
mod lifecycle;
mod ordering;
mod portal;
mod receiver;
mod retries;
mod safety;
mod signing;
mod support;
