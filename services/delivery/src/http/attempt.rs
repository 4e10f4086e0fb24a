//! One HTTP attempt: a POST with the signed body, and what came of it.
//!
//! Redirects are never followed (a 3xx is a failed attempt), the response
//! body is read only up to the excerpt limit, and every failure is put in
//! one [`AttemptError`] class so retries, summaries and operators speak the
//! same language.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use hookline_domain::EndpointUrl;
use reqwest::{Client, dns::Resolve, header::HeaderMap, redirect};

use super::guard::{AddressPolicy, Blocked, GuardedResolver};

/// What went wrong, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptError {
    None,
    HttpStatus,
    Timeout,
    Connect,
    Tls,
    Dns,
    BlockedAddress,
    Redirect,
    /// Nothing sent: the event is past its retention.
    EventExpired,
    /// Nothing sent: no request can be made of this event (or building it
    /// failed inside hookline); final, the delivery is dead-lettered.
    Undeliverable,
}

impl AttemptError {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::HttpStatus => "http_status",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Dns => "dns",
            Self::BlockedAddress => "blocked_address",
            Self::Redirect => "redirect",
            Self::EventExpired => "event_expired",
            Self::Undeliverable => "undeliverable",
        }
    }

    /// Whether trying again can never help: the delivery is dead-lettered.
    pub(crate) fn is_final(self) -> bool {
        matches!(self, Self::EventExpired | Self::Undeliverable)
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub(crate) struct AttemptResult {
    pub(crate) started: SystemTime,
    pub(crate) duration: Duration,
    /// 0 when no response arrived.
    pub(crate) status: u16,
    pub(crate) error: AttemptError,
    pub(crate) message: String,
    /// The start of the response body.
    pub(crate) body: Vec<u8>,
    /// From a `Retry-After` header, if any.
    pub(crate) retry_after: Option<Duration>,
}

impl AttemptResult {
    /// An attempt that sent nothing.
    pub(crate) fn not_sent(error: AttemptError, message: String) -> Self {
        Self {
            started: SystemTime::now(),
            duration: Duration::ZERO,
            status: 0,
            error,
            message,
            body: Vec::new(),
            retry_after: None,
        }
    }

    pub(crate) fn succeeded(&self) -> bool {
        self.error == AttemptError::None
    }
}

/// One request to send.
#[derive(Debug)]
pub(crate) struct Outgoing<'a> {
    pub(crate) url: &'a EndpointUrl,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: HeaderMap,
    pub(crate) timeout: Duration,
}

/// The shared HTTP client (connection pools per host) and its rules.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    client: Client,
    policy: Arc<AddressPolicy>,
    /// With an egress proxy: the guard that checks each destination host
    /// before the request goes to the proxy.
    proxied: Option<GuardedResolver>,
    body_limit: usize,
    https_only: bool,
}

impl Sender {
    pub(crate) fn new(
        policy: AddressPolicy,
        connect_timeout: Duration,
        user_agent: &str,
        https_only: bool,
        body_limit: usize,
        max_concurrency: usize,
        egress_proxy: Option<&str>,
    ) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let resolver = GuardedResolver::new(policy.clone());
        // Never the environment's proxy (`HTTP_PROXY` and friends): through
        // it, DNS and the connection happen at the proxy and the guard
        // would see neither. A proxy only when configured; then the client
        // resolves only the proxy's host (which may well be private), and
        // `send` checks each destination itself first.
        let builder = match egress_proxy {
            None => Client::builder().no_proxy().dns_resolver(Arc::new(resolver.clone())),
            Some(url) => Client::builder().proxy(reqwest::Proxy::all(url)?),
        };
        let client = builder
            .redirect(redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // Keep every connection the workers can use at once: with a
            // smaller idle cap, a busy endpoint's connections beyond it were
            // closed after each request and reopened for the next (more than
            // half the requests paid a TCP handshake in the benchmark).
            .pool_max_idle_per_host(max_concurrency)
            .tcp_nodelay(true)
            .user_agent(user_agent)
            .https_only(https_only)
            .build()?;
        let proxied = egress_proxy.map(|_| resolver);
        Ok(Self { client, policy, proxied, body_limit, https_only })
    }

    pub(crate) async fn send(&self, out: Outgoing<'_>) -> AttemptResult {
        let started = SystemTime::now();
        let clock = Instant::now();
        let failed = |error: AttemptError, message: String| AttemptResult {
            started,
            duration: clock.elapsed(),
            status: 0,
            error,
            message,
            body: Vec::new(),
            retry_after: None,
        };
        if self.https_only && !out.url.is_https() {
            return failed(AttemptError::BlockedAddress, "this deployment only delivers to https:// URLs".into());
        }
        // Literal IPs never reach the resolver: check them here.
        if let Some(ip) = literal_ip(out.url).filter(|ip| !self.policy.allows(*ip)) {
            return failed(AttemptError::BlockedAddress, format!("{ip} is not a public address"));
        }
        if let (Some(resolver), Some(url::Host::Domain(host))) = (&self.proxied, out.url.as_url().host()) {
            // A name the guard cannot check is refused, not waved through.
            let Ok(name) = host.parse::<reqwest::dns::Name>() else {
                return failed(AttemptError::BlockedAddress, "the host name cannot be checked".into());
            };
            if let Err(error) = resolver.resolve(name).await {
                return match error.downcast_ref::<Blocked>() {
                    Some(blocked) => failed(AttemptError::BlockedAddress, blocked.to_string()),
                    None => failed(AttemptError::Dns, "the host name does not resolve".into()),
                };
            }
        }
        let request =
            self.client.post(out.url.as_url().clone()).headers(out.headers).timeout(out.timeout).body(out.body);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let (kind, message) = classify(&e);
                return failed(kind, message);
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut body = Vec::new();
        let mut read_error = None;
        while body.len() < self.body_limit {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(self.body_limit - body.len())]),
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        let (error, message) = if status.is_success() {
            (AttemptError::None, String::new())
        } else if status.is_redirection() {
            (AttemptError::Redirect, format!("HTTP {} (redirects are not followed)", status.as_u16()))
        } else {
            (AttemptError::HttpStatus, format!("HTTP {}", status.as_u16()))
        };
        let (error, message) = match read_error {
            Some(e) if error == AttemptError::None && e.is_timeout() => {
                (AttemptError::Timeout, "timed out reading the response".into())
            }
            _ => (error, message),
        };
        AttemptResult { started, duration: clock.elapsed(), status: status.as_u16(), error, message, body, retry_after }
    }
}

fn literal_ip(url: &EndpointUrl) -> Option<std::net::IpAddr> {
    match url.as_url().host()? {
        url::Host::Ipv4(v4) => Some(v4.into()),
        url::Host::Ipv6(v6) => Some(v6.into()),
        url::Host::Domain(_) => None,
    }
}

/// Sorts a client error into a class, with a message safe to show (no
/// URL query strings, no secrets).
fn classify(error: &reqwest::Error) -> (AttemptError, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut chain = Vec::new();
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return (AttemptError::BlockedAddress, blocked.to_string());
        }
        chain.push(e.to_string().to_ascii_lowercase());
        source = e.source();
    }
    let text = chain.join(": ");
    if error.is_timeout() {
        (AttemptError::Timeout, "timed out".into())
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        (AttemptError::Tls, "TLS handshake failed".into())
    } else if text.contains("dns") || text.contains("failed to lookup") || text.contains("name or service not known") {
        (AttemptError::Dns, "the host name does not resolve".into())
    } else if error.is_connect() {
        (AttemptError::Connect, "could not connect".into())
    } else {
        (AttemptError::Connect, "the connection failed".into())
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        let parsed = parse_retry_after(&in_a_minute).unwrap();
        assert!(parsed > Duration::from_secs(55) && parsed <= Duration::from_secs(61), "{parsed:?}");
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "past dates mean now");
        assert_eq!(parse_retry_after("soon"), None);
    }
}
