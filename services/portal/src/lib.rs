//! hookline's customer portal: the pages a tenant's subscribers open with
//! a magic link, server-rendered HTML with no script at all.
//!
//! The portal holds no data and no credentials of its own. `/enter`
//! trades the link's code for a session token (ExchangePortalCode) and
//! keeps that token in an HttpOnly cookie; every page is then gRPC calls
//! made *with the session token*, so what a subscriber may see and do is
//! enforced by the services (hookline-auth's `Principal::Portal`), not
//! here. Every user-controlled string is escaped by `maud`; responses
//! carry a strict Content-Security-Policy (no scripts, `frame-ancestors`
//! from config) and `Referrer-Policy: no-referrer` (the link's URL holds
//! its code). Every form that changes something carries the session's
//! CSRF token.
//!
//! Code map: `endpoints` (list, create, edit, pause, delete, secret, test,
//! replay), `deliveries` (the log, one delivery's attempts, retry),
//! `insight` (event catalog, summary chart, signature guide), `pages`
//! (layout and shared bits), `forms` (the endpoint form's text syntax),
//! `session` (cookie and CSRF), `limit` (`/enter`'s rate limit).

mod config;
mod deliveries;
mod endpoints;
mod forms;
mod insight;
mod limit;
mod pages;
mod session;

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use hookline_auth::BearerToken;
use hookline_proto::v1::{
    self, delivery_service_client::DeliveryServiceClient, subscription_service_client::SubscriptionServiceClient,
};
use tokio::{net::TcpListener, sync::watch};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

pub use crate::config::{Brand, Config, EnterLimit};
use crate::{forms::Fields, limit::EnterLimiter, pages::Page, session::Session};
pub use hookline_server::config::{ConfigError, ServiceConfig};

/// Why the portal could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

type Authed = InterceptedService<Channel, BearerToken>;

#[derive(Debug, Clone)]
struct App {
    subscriptions: Channel,
    deliveries: Channel,
    config: Arc<Config>,
    csp: HeaderValue,
    logo: Option<Arc<(HeaderValue, Vec<u8>)>>,
    enter_limit: Arc<EnterLimiter>,
}

/// A response that ends a handler early: a refusal page. Boxed, so that
/// `Result<_, Refusal>` stays small.
#[derive(Debug)]
struct Refusal(Box<Response>);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

type Answer = Result<Response, Refusal>;

impl App {
    /// A rendered page with the portal's security headers.
    fn page(&self, page: Page) -> Response {
        let (status, clear_cookie) = (page.status, page.status == StatusCode::UNAUTHORIZED);
        let mut response = (status, pages::render(&self.config.brand, self.logo.is_some(), page)).into_response();
        let headers = response.headers_mut();
        self.secure(headers);
        if clear_cookie {
            headers.insert(header::SET_COOKIE, session::clear_cookie(self.config.secure_cookies));
        }
        response
    }

    fn refuse(&self, page: Page) -> Refusal {
        Refusal(Box::new(self.page(page)))
    }

    /// A redirect after a change (POST → 303 → GET).
    fn see_other(&self, to: &str) -> Response {
        let mut response = Redirect::to(to).into_response();
        self.secure(response.headers_mut());
        response
    }

    fn secure(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }

    /// The page for a service's refusal.
    fn refused(&self, status: &tonic::Status) -> Refusal {
        self.refuse(match status.code() {
            Code::Unauthenticated => Page::session_ended(),
            Code::NotFound => {
                Page::message(StatusCode::NOT_FOUND, "Not found", "There is nothing here, or it was deleted.")
            }
            Code::PermissionDenied => Page::message(StatusCode::FORBIDDEN, "Not allowed", status.message()),
            Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                Page::message(StatusCode::BAD_REQUEST, "That did not work", status.message())
            }
            Code::ResourceExhausted => Page::message(StatusCode::TOO_MANY_REQUESTS, "Slow down", status.message()),
            _ => {
                tracing::warn!(code = ?status.code(), message = status.message(), "portal call failed");
                Page::message(StatusCode::BAD_GATEWAY, "Try again", "The webhook service could not answer just now.")
            }
        })
    }

    /// The message of a call's answer, or the refusal page for its error.
    fn answer<T>(&self, result: Result<tonic::Response<T>, tonic::Status>) -> Result<T, Refusal> {
        result.map(tonic::Response::into_inner).map_err(|status| self.refused(&status))
    }
}

/// The signed-in subscriber: the session and clients that act as it.
/// Extracting it answers the "session ended" page when there is none.
#[derive(Debug)]
struct User {
    session: Session,
    subs: SubscriptionServiceClient<Authed>,
    deliveries: DeliveryServiceClient<Authed>,
}

impl FromRequestParts<App> for User {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Refusal> {
        use axum::extract::OptionalFromRequestParts;
        let session = <Session as OptionalFromRequestParts<App>>::from_request_parts(parts, app)
            .await
            .unwrap_or_else(|never| match never {});
        let ended = || app.refuse(Page::session_ended());
        let session = session.ok_or_else(ended)?;
        // A token that cannot be a header was not issued by the services.
        let bearer = BearerToken::new(&session.token).map_err(|_| ended())?;
        Ok(Self {
            subs: SubscriptionServiceClient::with_interceptor(app.subscriptions.clone(), bearer.clone()),
            deliveries: DeliveryServiceClient::with_interceptor(app.deliveries.clone(), bearer),
            session,
        })
    }
}

/// Endpoints and event types read for pickers: one page of each.
const PICKER_PAGE: i32 = 1000;

impl User {
    /// The tenant's endpoints (up to 1,000), for filters.
    async fn all_endpoints(&mut self, app: &App) -> Result<Vec<v1::Subscription>, Refusal> {
        let request = v1::ListSubscriptionsRequest { page_size: PICKER_PAGE, ..Default::default() };
        Ok(app.answer(self.subs.list_subscriptions(request).await)?.subscriptions)
    }

    /// The tenant's current (not archived) event types.
    async fn catalog(&mut self, app: &App) -> Result<Vec<v1::EventType>, Refusal> {
        let request = v1::ListEventTypesRequest { page_size: PICKER_PAGE, ..Default::default() };
        Ok(app.answer(self.subs.list_event_types(request).await)?.event_types)
    }

    /// Refuses a form whose CSRF token is not this session's.
    fn check(&self, app: &App, form: &Fields) -> Result<(), Refusal> {
        if self.session.csrf_matches(form.get("csrf")) {
            Ok(())
        } else {
            Err(app.refuse(Page::message(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "This form has expired; reload the page and try again.",
            )))
        }
    }
}

fn content_security_policy(config: &Config) -> HeaderValue {
    let ancestors =
        if config.frame_ancestors.is_empty() { "'none'".to_owned() } else { config.frame_ancestors.join(" ") };
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    );
    // validate() allows only origins without spaces, quotes or semicolons.
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/endpoints") }))
        .route("/enter", get(enter))
        .route("/endpoints", get(endpoints::list).post(endpoints::create))
        .route("/endpoints/new", get(endpoints::new))
        .route("/endpoints/{id}", get(endpoints::show).post(endpoints::update))
        .route("/endpoints/{id}/edit", get(endpoints::edit))
        .route("/endpoints/{id}/pause", post(endpoints::pause))
        .route("/endpoints/{id}/resume", post(endpoints::resume))
        .route("/endpoints/{id}/delete", get(endpoints::confirm_delete).post(endpoints::delete))
        .route("/endpoints/{id}/secret", post(endpoints::reveal_secret))
        .route("/endpoints/{id}/rotate", post(endpoints::rotate_secret))
        .route("/endpoints/{id}/test", post(endpoints::send_test))
        .route("/endpoints/{id}/replay", post(endpoints::replay))
        .route("/deliveries", get(deliveries::log))
        .route("/deliveries/{id}", get(deliveries::show))
        .route("/deliveries/{id}/retry", post(deliveries::retry))
        .route("/event-types", get(insight::catalog))
        .route("/summary", get(insight::summary))
        .route("/verifying", get(insight::verifying))
        .route("/logout", post(logout))
        .route("/portal.css", get(stylesheet))
        .route("/logo", get(logo))
        .layer(DefaultBodyLimit::max(forms::MAX_FORM))
        .with_state(app)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let channel = |url: &str| {
        Channel::from_shared(url.to_owned())
            .map(|c| c.connect_lazy())
            .map_err(|e| ConfigError::Invalid(format!("{url}: {e}")))
    };
    let logo = config.brand.load_logo()?.map(Arc::new);
    let app = App {
        subscriptions: channel(&config.subscriptions_url)?,
        deliveries: channel(&config.delivery_url)?,
        csp: content_security_policy(&config),
        logo,
        enter_limit: Arc::new(EnterLimiter::new(&config.enter_limit)),
        config: Arc::new(config),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let readiness = hookline_server::Readiness::default();
    hookline_server::spawn_admin(app.config.admin_addr, readiness.clone(), stop_rx);
    metrics::describe_counter!(
        "hookline_portal_links_total",
        "Magic links presented at /enter, by result: opened, refused (used, expired, ended or invalid), rate_limited"
    );
    for result in ["opened", "refused", "rate_limited"] {
        metrics::counter!("hookline_portal_links_total", "result" => result).absolute(0);
    }
    readiness.set(true);
    tracing::info!(addr = %listener.local_addr()?, "portal listening");
    axum::serve(listener, router(app).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await?;
    Ok(())
}

#[derive(Debug, serde::Deserialize)]
struct EnterQuery {
    #[serde(default)]
    code: String,
}

/// Opens a magic link: one exchange, then the session lives in a cookie.
async fn enter(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<EnterQuery>,
) -> Response {
    let client = limit::client_address(peer, &headers, app.config.enter_limit.trust_forwarded_for);
    if !app.enter_limit.allow(client) {
        metrics::counter!("hookline_portal_links_total", "result" => "rate_limited").increment(1);
        return app.page(Page::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many links were opened from here just now. Wait a minute, then open your link again.",
        ));
    }
    if query.code.is_empty() {
        return app.page(Page::message(StatusCode::BAD_REQUEST, "No link", "Open the link you were given in full."));
    }
    let Ok(bearer) = BearerToken::new(&query.code) else {
        return app.page(Page::link_refused("This is not a valid portal link."));
    };
    let mut client = SubscriptionServiceClient::with_interceptor(app.subscriptions.clone(), bearer);
    match client.exchange_portal_code(v1::ExchangePortalCodeRequest {}).await {
        Ok(session) => {
            let session = session.into_inner();
            let Some(cookie) = session::cookie(&session, app.config.secure_cookies) else {
                return app.page(Page::session_ended());
            };
            metrics::counter!("hookline_portal_links_total", "result" => "opened").increment(1);
            let mut response = app.see_other("/endpoints");
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(status) if status.code() == Code::Unauthenticated => {
            metrics::counter!("hookline_portal_links_total", "result" => "refused").increment(1);
            app.page(Page::link_refused(status.message()))
        }
        Err(status) => app.refused(&status).into_response(),
    }
}

/// Ends the session: for every service (EndPortalSession), and in this
/// browser (the cookie is cleared).
async fn logout(State(app): State<App>, mut user: User, form: Fields) -> Answer {
    user.check(&app, &form)?;
    if let Err(status) = user.subs.end_portal_session(v1::EndPortalSessionRequest::default()).await {
        // Already ended or expired: signing out is done all the same.
        if status.code() != Code::Unauthenticated {
            return Err(app.refused(&status));
        }
    }
    let mut response = app.page(Page::signed_out());
    response.headers_mut().insert(header::SET_COOKIE, session::clear_cookie(app.config.secure_cookies));
    Ok(response)
}

async fn stylesheet(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")],
        pages::stylesheet(&app.config.brand),
    )
}

async fn logo(State(app): State<App>) -> Response {
    match &app.logo {
        Some(logo) => {
            let (content_type, bytes) = logo.as_ref();
            let mut response = bytes.clone().into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, content_type.clone());
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            // An SVG opened on its own runs no script either.
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
            response
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
