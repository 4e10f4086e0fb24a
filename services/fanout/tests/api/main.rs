//! The fan-out service over real gRPC, with the real subscription service
//! and a real Redis: publish, idempotency, matching, crash recovery,
//! stream loss, backpressure and durability on replicas.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

mod backpressure;
mod durability;
mod matching;
mod publish;
mod recovery;
mod support;
