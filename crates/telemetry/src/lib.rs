//! Logging set-up shared by every hookline binary, so they all read the
//! same variables: `RUST_LOG` (or `HOOKLINE_LOG`) for the filter, default
//! `info`, and `HOOKLINE_LOG_FORMAT=json` for one JSON object per line.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init_logging() {
    let filter = std::env::var("HOOKLINE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("HOOKLINE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(fmt::layer().json().with_current_span(true).flatten_event(true)).init();
    } else {
        registry.with(fmt::layer().with_target(false)).init();
    }
}
