//! Ports for the servers hookline's own tools start on this machine (the
//! bench, `hookline dev`, the tests): free when picked, never picked twice
//! by one process, and outside the kernel's ephemeral range.
//!
//! Asking the kernel for port 0 and releasing it is not enough. Two such
//! asks in a row may get the same port, and until the server binds it, any
//! outgoing connection (to Redis, between the services) may be given it as
//! its local port. Either way the server then fails with "Address already
//! in use", or worse, a health check meant for it reaches another server.

use std::{
    collections::HashSet,
    hash::{BuildHasher, RandomState},
    io,
    net::TcpListener,
    sync::{LazyLock, Mutex, PoisonError},
};

/// The lowest port handed out: below are the well-known and registered
/// ports other software on the machine expects to find free.
const LOWEST: u16 = 10_000;

/// Linux's default ephemeral range, when `/proc` does not say.
const EPHEMERAL_DEFAULT: (u16, u16) = (32_768, 60_999);

/// The ports this process has handed out.
static GIVEN: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(Mutex::default);

/// A port on 127.0.0.1 that is free now, has not been handed out by this
/// process before, and is outside the ephemeral range. Bind it soon.
///
/// # Errors
/// When no such port is free.
pub fn spare_port() -> io::Result<u16> {
    spare_port_with(&[])
}

/// Like [`spare_port`], and each `port + offset` is free and outside the
/// ephemeral range too (a Redis Cluster node's bus is its port + 10,000).
///
/// # Errors
/// When no such port is free.
pub fn spare_port_with(offsets: &[u16]) -> io::Result<u16> {
    let ephemeral = ephemeral_range();
    let usable = |port: u16| port >= LOWEST && !(ephemeral.0..=ephemeral.1).contains(&port);
    let candidates: Vec<u16> = (LOWEST..=u16::MAX)
        .filter(|&port| offsets.iter().all(|&offset| port.checked_add(offset).is_some_and(usable)) && usable(port))
        .collect();
    if candidates.is_empty() {
        return Err(io::Error::new(io::ErrorKind::AddrNotAvailable, "no port outside the ephemeral range"));
    }
    // A random start, so that test processes running side by side do not
    // all try the same ports in the same order.
    let start =
        usize::try_from(RandomState::new().hash_one(std::process::id()) % candidates.len() as u64).unwrap_or_default();
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    for &port in candidates[start..].iter().chain(&candidates[..start]) {
        if given.contains(&port) {
            continue;
        }
        let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(port) && offsets.iter().all(|&offset| free(port + offset)) {
            given.insert(port);
            return Ok(port);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "every port outside the ephemeral range is taken"))
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`).
fn ephemeral_range() -> (u16, u16) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return EPHEMERAL_DEFAULT;
    };
    let mut bounds = text.split_whitespace().map(str::parse::<u16>);
    match (bounds.next(), bounds.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => (low, high),
        _ => EPHEMERAL_DEFAULT,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spare_ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let (low, high) = ephemeral_range();
        let ports: Vec<u16> = (0..200).map(|_| spare_port().unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice: {ports:?}");
        for port in ports {
            assert!(port >= LOWEST && !(low..=high).contains(&port), "{port} is in the ephemeral range {low}-{high}");
            TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }

    #[test]
    fn a_port_with_an_offset_has_that_one_free_and_usable_too() {
        let (low, high) = ephemeral_range();
        let port = spare_port_with(&[10_000]).unwrap();
        let bus = port + 10_000;
        assert!(!(low..=high).contains(&bus), "{bus} is in the ephemeral range {low}-{high}");
        TcpListener::bind(("127.0.0.1", port)).unwrap();
        TcpListener::bind(("127.0.0.1", bus)).unwrap();
    }
}
