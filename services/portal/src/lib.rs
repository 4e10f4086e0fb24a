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
//! its code).

mod config;
mod pages;
mod session;

use std::{future::Future, sync::Arc};

use axum::{
    Router,
    extract::{Form, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use hookline_auth::BearerToken;
use hookline_proto::v1::{
    self, delivery_service_client::DeliveryServiceClient, subscription_service_client::SubscriptionServiceClient,
};
use tokio::{net::TcpListener, sync::watch};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

pub use crate::config::{Brand, Config};
use crate::{pages::Page, session::Session};
pub use hookline_server::config::{ConfigError, ServiceConfig};

/// Deliveries shown on an endpoint's page.
const RECENT_DELIVERIES: i32 = 25;
/// Endpoints shown on the list page.
const ENDPOINTS_PAGE: i32 = 100;

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
}

impl App {
    /// A client acting as `token`; `None` when the token could not be a
    /// header (not one the services issued).
    fn subscriptions(&self, token: &str) -> Option<SubscriptionServiceClient<Authed>> {
        let bearer = BearerToken::new(token).ok()?;
        Some(SubscriptionServiceClient::with_interceptor(self.subscriptions.clone(), bearer))
    }

    fn deliveries(&self, token: &str) -> Option<DeliveryServiceClient<Authed>> {
        let bearer = BearerToken::new(token).ok()?;
        Some(DeliveryServiceClient::with_interceptor(self.deliveries.clone(), bearer))
    }

    /// A rendered page with the portal's security headers.
    fn page(&self, page: Page) -> Response {
        let (status, clear_cookie) = (page.status, page.status == StatusCode::UNAUTHORIZED);
        let mut response = (status, pages::render(&self.config.brand, page)).into_response();
        let headers = response.headers_mut();
        self.secure(headers);
        if clear_cookie {
            headers.insert(header::SET_COOKIE, session::clear_cookie(self.config.secure_cookies));
        }
        response
    }

    fn secure(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }

    /// The page for a service's refusal.
    fn refused(&self, status: &tonic::Status) -> Response {
        self.page(match status.code() {
            Code::Unauthenticated => Page::session_ended(),
            Code::NotFound => {
                Page::message(StatusCode::NOT_FOUND, "Not found", "There is nothing here, or it was deleted.")
            }
            Code::PermissionDenied => Page::message(StatusCode::FORBIDDEN, "Not allowed", status.message()),
            _ => {
                tracing::warn!(code = ?status.code(), message = status.message(), "portal call failed");
                Page::message(StatusCode::BAD_GATEWAY, "Try again", "The webhook service could not answer just now.")
            }
        })
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
        .route("/endpoints", get(endpoints))
        .route("/endpoints/{id}", get(endpoint))
        .route("/logout", post(logout))
        .route("/portal.css", get(stylesheet))
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
    let app = App {
        subscriptions: channel(&config.subscriptions_url)?,
        deliveries: channel(&config.delivery_url)?,
        csp: content_security_policy(&config),
        config: Arc::new(config),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let readiness = hookline_server::Readiness::default();
    hookline_server::spawn_admin(app.config.admin_addr, readiness.clone(), stop_rx);
    readiness.set(true);
    tracing::info!(addr = %listener.local_addr()?, "portal listening");
    axum::serve(listener, router(app))
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
async fn enter(State(app): State<App>, Query(query): Query<EnterQuery>) -> Response {
    if query.code.is_empty() {
        return app.page(Page::message(StatusCode::BAD_REQUEST, "No link", "Open the link you were given in full."));
    }
    let Some(mut client) = app.subscriptions(&query.code) else {
        return app.page(Page::link_refused("This is not a valid portal link."));
    };
    match client.exchange_portal_code(v1::ExchangePortalCodeRequest {}).await {
        Ok(session) => {
            let session = session.into_inner();
            let mut response = Redirect::to("/endpoints").into_response();
            app.secure(response.headers_mut());
            match session::cookie(&session, app.config.secure_cookies) {
                Some(cookie) => {
                    response.headers_mut().insert(header::SET_COOKIE, cookie);
                    response
                }
                None => app.page(Page::session_ended()),
            }
        }
        Err(status) if status.code() == Code::Unauthenticated => app.page(Page::link_refused(status.message())),
        Err(status) => app.refused(&status),
    }
}

async fn endpoints(State(app): State<App>, session: Option<Session>) -> Response {
    let Some(session) = session else { return app.page(Page::session_ended()) };
    let Some(mut client) = app.subscriptions(&session.token) else { return app.page(Page::session_ended()) };
    let request = v1::ListSubscriptionsRequest { page_size: ENDPOINTS_PAGE, ..Default::default() };
    match client.list_subscriptions(request).await {
        Ok(list) => app.page(pages::endpoints(&session, &list.into_inner())),
        Err(status) => app.refused(&status),
    }
}

async fn endpoint(State(app): State<App>, session: Option<Session>, Path(id): Path<String>) -> Response {
    let Some(session) = session else { return app.page(Page::session_ended()) };
    let (Some(mut subs), Some(mut deliveries)) = (app.subscriptions(&session.token), app.deliveries(&session.token))
    else {
        return app.page(Page::session_ended());
    };
    let subscription = match subs.get_subscription(v1::GetSubscriptionRequest { id: id.clone() }).await {
        Ok(s) => s.into_inner(),
        Err(status) => return app.refused(&status),
    };
    let request = v1::ListDeliveriesRequest { subscription_id: id, page_size: RECENT_DELIVERIES, ..Default::default() };
    match deliveries.list_deliveries(request).await {
        Ok(list) => app.page(pages::endpoint(&session, &subscription, &list.into_inner().deliveries)),
        Err(status) => app.refused(&status),
    }
}

#[derive(Debug, serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session in this browser (the token expires on its own).
async fn logout(State(app): State<App>, session: Option<Session>, Form(form): Form<CsrfForm>) -> Response {
    let Some(session) = session else { return app.page(Page::session_ended()) };
    if !session.csrf_matches(&form.csrf) {
        return app.page(Page::message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This form has expired; reload the page.",
        ));
    }
    let mut response = app.page(Page::signed_out());
    response.headers_mut().insert(header::SET_COOKIE, session::clear_cookie(app.config.secure_cookies));
    response
}

async fn stylesheet(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=300")],
        pages::stylesheet(&app.config.brand),
    )
}
