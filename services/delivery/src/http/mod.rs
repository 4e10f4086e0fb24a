//! Everything between a prepared delivery and the receiver: the address
//! guard, the HTTP client, and one attempt with its classified outcome.

mod attempt;
mod guard;

pub(crate) use attempt::{AttemptError, AttemptResult, Outgoing, Sender};
pub(crate) use guard::AddressPolicy;
