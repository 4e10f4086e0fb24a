//! One HTTP attempt: a POST with the signed body, and what came of it.
//!
//! Redirects are never followed (a 3xx is a failed attempt), the response
//! body is read only up to the excerpt limit, and every failure is put in
//! one [`AttemptError`] class so retries, summaries and operators speak the
//! same language.
//!
//! Requests go out through `hyper_util`'s pooled client (the one reqwest
//! is built on), with the address guard as its resolver and rustls for
//! TLS: a delivery needs none of reqwest's layers (redirects, retries,
//! cookies, decompression), and they cost a quarter of delivery's CPU in a
//! profile (a URL parse, a header-map copy and a clone of the client stack
//! per request). Through an egress proxy, deliveries go with reqwest,
//! which speaks the proxy protocols (absolute-form requests for http://,
//! CONNECT tunnels for https://).

use std::{
    error::Error as StdError,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use hookline_domain::EndpointUrl;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use tokio::time::timeout_at;

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

/// The client of direct deliveries: connection pools per host, the guard
/// resolving every host name, TLS by rustls.
type Direct = Client<hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// How requests leave.
#[derive(Debug, Clone)]
enum Transport {
    Direct(Box<Direct>),
    /// Through the egress proxy; `guard` checks each destination host
    /// before its request goes to the proxy (the client resolves only the
    /// proxy's host, which may well be private).
    Proxied {
        client: reqwest::Client,
        guard: GuardedResolver,
    },
}

/// The shared HTTP client and its rules.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    transport: Transport,
    policy: Arc<AddressPolicy>,
    user_agent: HeaderValue,
    body_limit: usize,
    https_only: bool,
}

/// The TLS settings of direct deliveries: rustls with the Mozilla roots
/// (`webpki-roots`, as reqwest's `rustls-tls` has them), TLS 1.2 and 1.3.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
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
    ) -> Result<Self, String> {
        let policy = Arc::new(policy);
        let resolver = GuardedResolver::new(policy.clone());
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| format!("user_agent {user_agent:?} is not a header value"))?;
        // Keep every connection the workers can use at once: with a smaller
        // idle cap, a busy endpoint's connections beyond it were closed
        // after each request and reopened for the next (more than half the
        // requests paid a TCP handshake in the benchmark).
        let idle = Duration::from_secs(90);
        let transport = match egress_proxy {
            None => {
                let mut http = HttpConnector::new_with_resolver(resolver);
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(connect_timeout));
                let tls = tls_config().map_err(|e| format!("TLS settings: {e}"))?;
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http);
                let client = Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(idle)
                    .pool_max_idle_per_host(max_concurrency)
                    .build(https);
                Transport::Direct(Box::new(client))
            }
            // Never the environment's proxy (`HTTP_PROXY` and friends):
            // through it, DNS and the connection happen at the proxy and
            // the guard would see neither. A proxy only when configured.
            Some(url) => {
                let proxy = reqwest::Proxy::all(url).map_err(|e| format!("egress_proxy: {e}"))?;
                let client = reqwest::Client::builder()
                    .proxy(proxy)
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(connect_timeout)
                    .pool_idle_timeout(idle)
                    .pool_max_idle_per_host(max_concurrency)
                    .tcp_nodelay(true)
                    .build()
                    .map_err(|e| format!("http client: {e}"))?;
                Transport::Proxied { client, guard: resolver }
            }
        };
        Ok(Self { transport, policy, user_agent, body_limit, https_only })
    }

    pub(crate) async fn send(&self, out: Outgoing<'_>) -> AttemptResult {
        let started = SystemTime::now();
        let clock = Instant::now();
        // One deadline for the whole attempt: connecting, the response and
        // the start of its body.
        let deadline = tokio::time::Instant::now() + out.timeout;
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
        if let (Transport::Proxied { guard, .. }, Some(url::Host::Domain(host))) =
            (&self.transport, out.url.as_url().host())
            && let Err(error) = guard.lookup(host).await
        {
            // A name the guard cannot check is refused, not waved through.
            return match error.downcast_ref::<Blocked>() {
                Some(blocked) => failed(AttemptError::BlockedAddress, blocked.to_string()),
                None => failed(AttemptError::Dns, "the host name does not resolve".into()),
            };
        }
        let Some(request) = self.request(out) else {
            return failed(AttemptError::Undeliverable, "the endpoint URL cannot be sent as an HTTP request".into());
        };
        let received = match &self.transport {
            Transport::Direct(client) => match timeout_at(deadline, client.request(request.map(Full::new))).await {
                Ok(Ok(response)) => Ok(self.receive(response, deadline).await),
                Ok(Err(e)) => Err(classify(&e, e.is_connect(), false)),
                Err(_) => Err((AttemptError::Timeout, "timed out".into())),
            },
            Transport::Proxied { client, .. } => match reqwest::Request::try_from(request) {
                Ok(request) => match timeout_at(deadline, client.execute(request)).await {
                    Ok(Ok(response)) => Ok(self.receive(Response::from(response), deadline).await),
                    Ok(Err(e)) => Err(classify(&e, e.is_connect(), e.is_timeout())),
                    Err(_) => Err((AttemptError::Timeout, "timed out".into())),
                },
                Err(e) => Err(classify(&e, false, false)),
            },
        };
        let Received { status, retry_after, body, timed_out } = match received {
            Ok(received) => received,
            Err((kind, message)) => return failed(kind, message),
        };
        let (error, message) = if status.is_success() {
            if timed_out {
                (AttemptError::Timeout, "timed out reading the response".into())
            } else {
                (AttemptError::None, String::new())
            }
        } else if status.is_redirection() {
            (AttemptError::Redirect, format!("HTTP {} (redirects are not followed)", status.as_u16()))
        } else {
            (AttemptError::HttpStatus, format!("HTTP {}", status.as_u16()))
        };
        AttemptResult { started, duration: clock.elapsed(), status: status.as_u16(), error, message, body, retry_after }
    }

    /// The POST itself, with the client's `User-Agent` and `Accept: */*`
    /// unless the subscription's headers set them; `None` when the URL is
    /// not one an HTTP request can carry.
    fn request(&self, out: Outgoing<'_>) -> Option<Request<Bytes>> {
        let uri = out.url.target()?.clone();
        let mut headers = out.headers;
        headers.entry(header::USER_AGENT).or_insert_with(|| self.user_agent.clone());
        headers.entry(header::ACCEPT).or_insert(HeaderValue::from_static("*/*"));
        let mut request = Request::new(Bytes::from(out.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Some(request)
    }

    /// The response's status, `Retry-After` and the start of its body (up
    /// to the excerpt limit, and only until the deadline).
    async fn receive<B>(&self, response: Response<B>, deadline: tokio::time::Instant) -> Received
    where
        B: http_body::Body<Data = Bytes> + Unpin,
    {
        let status = response.status();
        let retry_after =
            response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let mut stream = response.into_body();
        let mut body = Vec::new();
        // One timer for the whole body, not one per frame.
        let read = async {
            while body.len() < self.body_limit {
                match stream.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(chunk) = frame.into_data() {
                            body.extend_from_slice(&chunk[..chunk.len().min(self.body_limit - body.len())]);
                        }
                    }
                    // The end, or a body cut short: what came is the excerpt.
                    None | Some(Err(_)) => break,
                }
            }
        };
        let timed_out = timeout_at(deadline, read).await.is_err();
        Received { status, retry_after, body, timed_out }
    }
}

/// What a response brought.
struct Received {
    status: http::StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
    /// The deadline came while the body was being read.
    timed_out: bool,
}

fn literal_ip(url: &EndpointUrl) -> Option<std::net::IpAddr> {
    match url.as_url().host()? {
        url::Host::Ipv4(v4) => Some(v4.into()),
        url::Host::Ipv6(v6) => Some(v6.into()),
        url::Host::Domain(_) => None,
    }
}

/// Sorts a client error into a class, with a message safe to show (no
/// URL query strings, no secrets). `connect` and `timeout` are what the
/// client itself says of the error.
fn classify(error: &(dyn StdError + 'static), connect: bool, timeout: bool) -> (AttemptError, String) {
    let mut source = Some(error);
    let mut chain = Vec::new();
    let mut timed_out = timeout;
    let mut tls = false;
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return (AttemptError::BlockedAddress, blocked.to_string());
        }
        let io = e.downcast_ref::<std::io::Error>();
        timed_out |= io.is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        tls |= e.is::<rustls::Error>();
        chain.push(e.to_string().to_ascii_lowercase());
        // An I/O error's `source()` skips the error it wraps (rustls's
        // reaches us inside two of them): walk into it instead.
        source = match io.and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    let text = chain.join(": ");
    if timed_out {
        (AttemptError::Timeout, "timed out".into())
    } else if tls || text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        (AttemptError::Tls, "TLS handshake failed".into())
    } else if text.contains("dns") || text.contains("failed to lookup") || text.contains("name or service not known") {
        (AttemptError::Dns, "the host name does not resolve".into())
    } else if connect {
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
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    const LIMIT: usize = 16;

    fn sender(allow_loopback: bool) -> Sender {
        let allow = if allow_loopback { vec!["127.0.0.0/8".parse().unwrap()] } else { Vec::new() };
        let policy = AddressPolicy::new(allow);
        Sender::new(policy, Duration::from_secs(2), "hookline-test/1", false, LIMIT, 8, None).unwrap()
    }

    async fn post(sender: &Sender, url: &str, timeout: Duration) -> AttemptResult {
        let url = EndpointUrl::parse(url).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", HeaderValue::from_static("msg_1"));
        sender.send(Outgoing { url: &url, body: b"{\"a\":1}".to_vec(), headers, timeout }).await
    }

    /// A receiver that reads one request and answers it with `reply`
    /// (then holds the connection open); the request it read comes back
    /// on the returned channel.
    async fn receiver(reply: &'static [u8]) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    // Headers, then the body its Content-Length announces.
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned)
                                })
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    let _ = tx.send(String::from_utf8_lossy(&request).to_string());
                    let _ = socket.write_all(reply).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn a_post_carries_the_body_and_headers_and_reads_only_the_excerpt() {
        let (port, mut requests) =
            receiver(b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n0123456789abcdefghijklmnopqrstuvwxyzABCD").await;
        let result = post(&sender(true), &format!("http://127.0.0.1:{port}/hook?x=1"), Duration::from_secs(5)).await;
        assert_eq!((result.status, result.error), (200, AttemptError::None), "{}", result.message);
        assert_eq!(result.body, b"0123456789abcdef", "the body is read up to the excerpt limit");
        let request = requests.recv().await.unwrap();
        let lower = request.to_ascii_lowercase();
        assert!(request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"), "{request}");
        for header in ["webhook-id: msg_1", "user-agent: hookline-test/1", "accept: */*", "content-length: 7"] {
            assert!(lower.contains(header), "{header} missing: {request}");
        }
        assert!(lower.contains(&format!("host: 127.0.0.1:{port}")), "{request}");
        assert!(request.ends_with("{\"a\":1}"), "{request}");
    }

    #[tokio::test]
    async fn statuses_redirects_and_retry_after_are_classified() {
        let (port, _requests) =
            receiver(b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\n\r\n")
                .await;
        let result = post(&sender(true), &format!("http://127.0.0.1:{port}/"), Duration::from_secs(5)).await;
        assert_eq!((result.status, result.error), (302, AttemptError::Redirect), "not followed");
        let (port, _requests) =
            receiver(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 120\r\ncontent-length: 4\r\n\r\nbusy").await;
        let result = post(&sender(true), &format!("http://127.0.0.1:{port}/"), Duration::from_secs(5)).await;
        assert_eq!((result.status, result.error, result.message.as_str()), (503, AttemptError::HttpStatus, "HTTP 503"));
        assert_eq!((result.retry_after, result.body.as_slice()), (Some(Duration::from_secs(120)), &b"busy"[..]));
    }

    #[tokio::test]
    async fn silence_refusal_and_a_failed_handshake_are_told_apart() {
        // Headers, then a body that never comes.
        let (port, _requests) = receiver(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc").await;
        let result = post(&sender(true), &format!("http://127.0.0.1:{port}/"), Duration::from_millis(300)).await;
        assert_eq!((result.status, result.error), (200, AttemptError::Timeout), "{}", result.message);
        assert_eq!(result.message, "timed out reading the response");
        // No answer at all.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/", silent.local_addr().unwrap().port());
        let result = post(&sender(true), &url, Duration::from_millis(300)).await;
        assert_eq!((result.status, result.error, result.message.as_str()), (0, AttemptError::Timeout, "timed out"));
        assert!(result.duration < Duration::from_secs(2), "{:?}", result.duration);
        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let result = post(&sender(true), &format!("http://127.0.0.1:{closed}/"), Duration::from_secs(5)).await;
        assert_eq!((result.error, result.message.as_str()), (AttemptError::Connect, "could not connect"));
        // https:// to a server that speaks plain HTTP (as one answers a
        // TLS hello it cannot read).
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = plain.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = plain.accept().await.unwrap();
            let mut hello = [0u8; 512];
            let _ = socket.read(&mut hello).await;
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        });
        let result = post(&sender(true), &format!("https://127.0.0.1:{port}/"), Duration::from_secs(5)).await;
        assert_eq!((result.error, result.message.as_str()), (AttemptError::Tls, "TLS handshake failed"));
    }

    #[tokio::test]
    async fn the_guard_refuses_what_the_policy_does_not_allow() {
        let (port, mut requests) = receiver(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        for url in [format!("http://127.0.0.1:{port}/"), format!("http://localhost:{port}/")] {
            let result = post(&sender(false), &url, Duration::from_secs(5)).await;
            assert_eq!(result.error, AttemptError::BlockedAddress, "{url}: {}", result.message);
        }
        let result = post(&sender(true), &format!("http://localhost:{port}/"), Duration::from_secs(5)).await;
        assert_eq!(result.error, AttemptError::None, "a name resolving to an allowed address: {}", result.message);
        assert!(requests.recv().await.is_some());
        assert!(requests.try_recv().is_err(), "only the allowed request arrived");
    }

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
