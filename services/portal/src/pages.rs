//! The pages, as `maud` templates: every interpolated string is escaped,
//! so names, URLs, headers and event types (all attacker-controlled) render
//! as text, never as markup.

use std::time::SystemTime;

use axum::http::StatusCode;
use hookline_proto::v1;
use maud::{DOCTYPE, Markup, html};

use crate::{config::Brand, session::Session};

/// What a handler answers: a status and a page.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    title: String,
    body: Markup,
    /// The session's CSRF token, for the sign-out form in the header.
    csrf: Option<String>,
}

impl Page {
    pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Self {
        Self { status, title: title.to_owned(), body: html! { h1 { (title) } p { (text) } }, csrf: None }
    }

    pub(crate) fn session_ended() -> Self {
        Self::message(
            StatusCode::UNAUTHORIZED,
            "Your session has ended",
            "Sessions last a limited time. Ask for a new link to the webhooks portal.",
        )
    }

    /// A used, expired or invalid magic link; `reason` is the service's.
    pub(crate) fn link_refused(reason: &str) -> Self {
        Self::message(StatusCode::GONE, "This link cannot be opened", reason)
    }

    pub(crate) fn signed_out() -> Self {
        Self::message(StatusCode::OK, "Signed out", "You have left the webhooks portal. You can close this page.")
    }
}

pub(crate) fn render(brand: &Brand, page: Page) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title) " · " (brand.name) }
                link rel="stylesheet" href="/portal.css";
            }
            body {
                header {
                    span.brand { (brand.name) }
                    @if let Some(csrf) = &page.csrf {
                        nav aria-label="Portal" {
                            a href="/endpoints" { "Endpoints" }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (page.body) }
            }
        }
    }
}

fn label(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).replace('_', " ").to_lowercase()
}

fn state(subscription: &v1::Subscription) -> String {
    v1::SubscriptionState::try_from(subscription.state)
        .map_or_else(|_| "unknown".into(), |s| label(s.as_str_name(), "SUBSCRIPTION_STATE_"))
}

fn status(delivery: &v1::Delivery) -> String {
    v1::DeliveryStatus::try_from(delivery.status)
        .map_or_else(|_| "unknown".into(), |s| label(s.as_str_name(), "DELIVERY_STATUS_"))
}

fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .map(|t| humantime_serde::re::humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

pub(crate) fn endpoints(session: &Session, list: &v1::ListSubscriptionsResponse) -> Page {
    let body = html! {
        h1 { "Endpoints" }
        @if list.subscriptions.is_empty() {
            p { "No endpoints yet." }
        } @else {
            table {
                caption { "Where your webhooks are sent" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "State" } } }
                tbody {
                    @for s in &list.subscriptions {
                        tr {
                            td { a href={ "/endpoints/" (s.id) } { @if s.name.is_empty() { (s.id) } @else { (s.name) } } }
                            td.url { (s.url) }
                            td { (s.event_types.join(", ")) }
                            td {
                                (state(s))
                                @if let Some(reason) = s.state_reason.as_ref().filter(|r| !r.message.is_empty()) {
                                    br; small { (reason.message) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Page { status: StatusCode::OK, title: "Endpoints".into(), body, csrf: Some(session.csrf()) }
}

pub(crate) fn endpoint(session: &Session, s: &v1::Subscription, deliveries: &[v1::Delivery]) -> Page {
    let name = if s.name.is_empty() { s.id.clone() } else { s.name.clone() };
    let body = html! {
        p { a href="/endpoints" { "← All endpoints" } }
        h1 { (name) }
        dl {
            dt { "URL" } dd.url { (s.url) }
            dt { "Events" } dd { (s.event_types.join(", ")) }
            dt { "State" } dd { (state(s)) }
            @if !s.headers.is_empty() {
                dt { "Extra headers" }
                dd { @for (k, v) in &s.headers { code { (k) ": " (v) } br; } }
            }
        }
        h2 { "Recent deliveries" }
        @if deliveries.is_empty() {
            p { "Nothing delivered yet." }
        } @else {
            table {
                caption { "The latest deliveries to this endpoint, newest first" }
                thead { tr { th scope="col" { "Event" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Last answer" } th scope="col" { "Updated" } } }
                tbody {
                    @for d in deliveries {
                        tr {
                            td { (d.event_type) br; small { code { (d.event_id) } } }
                            td { (status(d)) }
                            td { (d.attempt_count) }
                            td {
                                @if let Some(a) = &d.last_attempt {
                                    @if a.response_status_code > 0 { "HTTP " (a.response_status_code) } @else { (a.error_message) }
                                }
                            }
                            td { (time(d.update_time.as_ref())) }
                        }
                    }
                }
            }
        }
    };
    Page { status: StatusCode::OK, title: name, body, csrf: Some(session.csrf()) }
}

/// The one stylesheet; the brand's colour is the only thing in it from
/// configuration (validated as `#rrggbb`).
pub(crate) fn stylesheet(brand: &Brand) -> String {
    format!(
        ":root {{ --primary: {color}; }}
body {{ font-family: system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fff; }}
header {{ display: flex; justify-content: space-between; align-items: center; padding: .75rem 1.5rem; border-bottom: 3px solid var(--primary); }}
header nav {{ display: flex; gap: 1rem; align-items: center; }}
header form {{ margin: 0; }}
.brand {{ font-weight: 600; }}
main {{ padding: 1rem 1.5rem; max-width: 70rem; }}
a {{ color: var(--primary); }}
button {{ background: var(--primary); color: #fff; border: 0; border-radius: 4px; padding: .4rem .8rem; font: inherit; cursor: pointer; }}
button:focus-visible, a:focus-visible {{ outline: 3px solid #1d1d1f; outline-offset: 2px; }}
table {{ border-collapse: collapse; width: 100%; }}
caption {{ text-align: left; color: #555; padding-bottom: .5rem; }}
th, td {{ text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
.url {{ word-break: break-all; font-family: ui-monospace, monospace; }}
dt {{ font-weight: 600; margin-top: .5rem; }}
dd {{ margin-left: 0; }}
small {{ color: #555; }}
",
        color = brand.primary_color
    )
}
