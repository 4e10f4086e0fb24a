//! A real HTTP receiver on 127.0.0.1 that records every request and answers
//! as told: a status per path (or a sequence of them), optional
//! `Retry-After`, a delay, or hanging.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
};

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answers in order; the last one repeats. Empty: 200.
    pub statuses: VecDeque<u16>,
    pub retry_after: Option<String>,
    pub delay: Duration,
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    behaviours: Mutex<HashMap<String, Behaviour>>,
    in_flight: AtomicUsize,
    max_in_flight: Mutex<HashMap<String, usize>>,
    current: Mutex<HashMap<String, usize>>,
    /// Per `webhook-id`: requests in progress now, and the most at once.
    per_message: Mutex<HashMap<String, (usize, usize)>>,
}

/// Counts a request of one message as in progress until dropped (a
/// handler whose client went away is dropped too).
struct InProgress {
    inner: Arc<Inner>,
    id: String,
}

impl InProgress {
    fn new(inner: &Arc<Inner>, id: String) -> Self {
        let mut per_message = inner.per_message.lock().unwrap();
        let (now, max) = per_message.entry(id.clone()).or_default();
        *now += 1;
        *max = (*max).max(*now);
        Self { inner: inner.clone(), id }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if let Some((now, _)) = self.inner.per_message.lock().unwrap().get_mut(&self.id) {
            *now -= 1;
        }
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, behaviour: Behaviour) {
        self.inner.behaviours.lock().unwrap().insert(path.to_owned(), behaviour);
    }

    pub fn statuses(&self, path: &str, statuses: &[u16]) {
        self.set(path, Behaviour { statuses: statuses.iter().copied().collect(), ..Default::default() });
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.inner.received.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// The most requests to `path` that were in progress at once.
    pub fn max_concurrent(&self, path: &str) -> usize {
        self.inner.max_in_flight.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// The most requests of one message (`webhook-id`) that were in
    /// progress at once, over every message.
    pub fn max_concurrent_per_message(&self) -> usize {
        self.inner.per_message.lock().unwrap().values().map(|(_, max)| *max).max().unwrap_or(0)
    }

    /// Requests being handled right now, all paths.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }
}

async fn handle(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    inner.received.lock().unwrap().push(Received {
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
    });
    let (status, retry_after, delay) = {
        let mut behaviours = inner.behaviours.lock().unwrap();
        let b = behaviours.entry(path.clone()).or_default();
        let status = if b.statuses.len() > 1 { b.statuses.pop_front() } else { b.statuses.front().copied() };
        (status.unwrap_or(200), b.retry_after.clone(), b.delay)
    };
    let message = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let _in_progress = InProgress::new(&inner, message);
    inner.in_flight.fetch_add(1, Ordering::SeqCst);
    {
        let mut current = inner.current.lock().unwrap();
        let now = current.entry(path.clone()).or_default();
        *now += 1;
        let mut max = inner.max_in_flight.lock().unwrap();
        let m = max.entry(path.clone()).or_default();
        *m = (*m).max(*now);
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    *inner.current.lock().unwrap().entry(path).or_default() -= 1;
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = (StatusCode::from_u16(status).unwrap(), format!("answered {status}")).into_response();
    if let Some(value) = retry_after {
        response.headers_mut().insert("retry-after", value.parse().unwrap());
    }
    response
}
