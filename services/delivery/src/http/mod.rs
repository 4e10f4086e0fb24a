//! Everything between a prepared delivery and the receiver: the address
//! guard, the HTTP client, one attempt with its classified outcome, and
//! the attempt's span.

mod attempt;
mod guard;
pub(crate) mod span;

pub(crate) use attempt::{AttemptError, AttemptResult, Outgoing, Sender};
pub(crate) use guard::AddressPolicy;
