//! End-to-end tests of hookline across its real binaries: see `tests/`.
