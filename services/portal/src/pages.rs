//! The layout every page shares, and the small pieces pages have in
//! common. Templates are `maud`: every interpolated string is escaped, so
//! names, URLs, headers, payloads and response bodies (all
//! attacker-controlled) render as text, never as markup.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use hookline_proto::v1;
use maud::{DOCTYPE, Markup, html};

use crate::{User, config::Brand};

/// The portal's sections, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Endpoints,
    Deliveries,
    EventTypes,
    Summary,
    Verifying,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Endpoints, "/endpoints", "Endpoints"),
    (Section::Deliveries, "/deliveries", "Deliveries"),
    (Section::EventTypes, "/event-types", "Event types"),
    (Section::Summary, "/summary", "Summary"),
    (Section::Verifying, "/verifying", "Verifying signatures"),
];

/// What a handler answers: a status and a page.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    title: String,
    body: Markup,
    /// For a signed-in subscriber: the navigation and the sign-out form.
    chrome: Option<(Section, String)>,
}

impl Page {
    /// A page of the signed-in portal.
    pub(crate) fn of(user: &User, section: Section, title: impl Into<String>, body: Markup) -> Self {
        Self { status: StatusCode::OK, title: title.into(), body, chrome: Some((section, user.session.csrf())) }
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Self {
        Self { status, title: title.to_owned(), body: html! { h1 { (title) } p { (text) } }, chrome: None }
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

pub(crate) fn render(brand: &Brand, logo: bool, page: Page) -> Markup {
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
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand {
                        @if logo { img src="/logo" alt="" height="28"; }
                        (brand.name)
                    }
                    @if let Some((current, csrf)) = &page.chrome {
                        nav aria-label="Portal" {
                            @for (section, href, label) in SECTIONS {
                                @if section == *current {
                                    a href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button.quiet type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" { (page.body) }
            }
        }
    }
}

/// The hidden field every changing form carries.
pub(crate) fn csrf(user: &User) -> Markup {
    html! { input type="hidden" name="csrf" value=(user.session.csrf()); }
}

/// What a redirect after a change reports: `?done=<what>`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

/// The notice for a [`Done`]: fixed sentences, so nothing from the URL is
/// reflected.
pub(crate) fn notice(done: &Done) -> Markup {
    let text = match done.done.as_deref() {
        Some("created") => "The endpoint was created. Reveal its signing secret below to verify deliveries.",
        Some("saved") => "Your changes were saved.",
        Some("paused") => "The endpoint is paused: new deliveries wait until you resume it.",
        Some("resumed") => "The endpoint is active again; waiting deliveries are on their way.",
        Some("deleted") => "The endpoint was deleted.",
        Some("retried") => "The delivery was sent again; its new attempt is listed below.",
        _ => return html! {},
    };
    html! { p.notice role="status" { (text) } }
}

/// A filter's endpoint choice: every endpoint, or one.
pub(crate) fn endpoint_picker(id: &str, endpoints: &[v1::Subscription], selected: &str) -> Markup {
    html! {
        div {
            label for=(id) { "Endpoint" }
            select id=(id) name="endpoint" {
                option value="" { "every endpoint" }
                @for s in endpoints {
                    option value=(s.id) selected[s.id == selected] { (endpoint_name(s)) }
                }
            }
        }
    }
}

/// An error to fix in a form.
pub(crate) fn problem(text: Option<&str>) -> Markup {
    html! { @if let Some(text) = text { p.problem role="alert" { (text) } } }
}

fn label(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).replace('_', " ").to_lowercase()
}

pub(crate) fn state(subscription: &v1::Subscription) -> String {
    v1::SubscriptionState::try_from(subscription.state)
        .map_or_else(|_| "unknown".into(), |s| label(s.as_str_name(), "SUBSCRIPTION_STATE_"))
}

pub(crate) fn status_name(status: i32) -> String {
    v1::DeliveryStatus::try_from(status)
        .map_or_else(|_| "unknown".into(), |s| label(s.as_str_name(), "DELIVERY_STATUS_"))
}

/// A delivery's status as a badge.
pub(crate) fn status_badge(status: i32) -> Markup {
    let class = match v1::DeliveryStatus::try_from(status) {
        Ok(v1::DeliveryStatus::Succeeded) => "ok",
        Ok(v1::DeliveryStatus::DeadLettered) => "bad",
        Ok(v1::DeliveryStatus::Scheduled | v1::DeliveryStatus::Held) => "warn",
        _ => "",
    };
    html! { span class={ "badge " (class) } { (status_name(status)) } }
}

pub(crate) fn trigger(attempt: &v1::Attempt) -> String {
    v1::AttemptTrigger::try_from(attempt.trigger)
        .map_or_else(|_| "unknown".into(), |t| label(t.as_str_name(), "ATTEMPT_TRIGGER_"))
}

/// What an attempt's answer was, in a few words.
pub(crate) fn answer(attempt: &v1::Attempt) -> String {
    match (attempt.response_status_code, attempt.error_message.as_str()) {
        (0, "") => "no answer".into(),
        (0, error) => error.to_owned(),
        (code, _) => format!("HTTP {code}"),
    }
}

pub(crate) fn duration(d: Option<&prost_types::Duration>) -> String {
    d.and_then(|d| Duration::try_from(*d).ok()).map_or_else(String::new, |d| format!("{} ms", d.as_millis()))
}

/// Up to 1,000 characters of a response body, as text (never markup).
pub(crate) fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 1000;
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

pub(crate) fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .map(|t| humantime_serde::re::humantime::format_rfc3339_seconds(t).to_string().replace('T', " "))
        .unwrap_or_default()
}

/// The name a person knows an endpoint by.
pub(crate) fn endpoint_name(s: &v1::Subscription) -> &str {
    if s.name.is_empty() { &s.url } else { &s.name }
}

/// The one stylesheet; the brand's colour is the only thing in it from
/// configuration (validated as `#rrggbb`).
pub(crate) fn stylesheet(brand: &Brand) -> String {
    format!(
        ":root {{ --primary: {color}; }}
* {{ box-sizing: border-box; }}
body {{ font-family: system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fff; line-height: 1.45; }}
.skip {{ position: absolute; left: -999px; }}
.skip:focus {{ left: 1rem; top: .5rem; background: #fff; padding: .25rem .5rem; z-index: 1; }}
header {{ display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; justify-content: space-between; align-items: center; padding: .75rem 1.5rem; border-bottom: 3px solid var(--primary); }}
header nav {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; }}
header nav a[aria-current] {{ font-weight: 600; text-decoration-thickness: 3px; }}
header form {{ margin: 0; }}
.brand {{ font-weight: 600; display: flex; align-items: center; gap: .5rem; }}
main {{ padding: 1rem 1.5rem 3rem; max-width: 72rem; }}
a {{ color: var(--primary); }}
button, .button {{ display: inline-block; background: var(--primary); color: #fff; border: 2px solid var(--primary); border-radius: 4px; padding: .35rem .8rem; font: inherit; cursor: pointer; text-decoration: none; }}
button.quiet, .button.quiet {{ background: #fff; color: var(--primary); }}
button.danger {{ background: #b3261e; border-color: #b3261e; }}
button:focus-visible, a:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible {{ outline: 3px solid #1d1d1f; outline-offset: 2px; }}
.actions {{ display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: 1rem 0; }}
.actions form {{ margin: 0; display: flex; gap: .5rem; align-items: center; }}
table {{ border-collapse: collapse; width: 100%; }}
caption {{ text-align: left; color: #555; padding-bottom: .5rem; }}
th, td {{ text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
.url {{ word-break: break-all; font-family: ui-monospace, monospace; }}
pre, code {{ font-family: ui-monospace, monospace; }}
pre {{ background: #f4f4f6; padding: .75rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }}
dt {{ font-weight: 600; margin-top: .5rem; }}
dd {{ margin-left: 0; }}
small, .hint {{ color: #555; }}
label {{ display: block; font-weight: 600; margin-top: 1rem; }}
form small {{ display: block; }}
.actions label {{ margin-top: 0; }}
.actions select {{ width: auto; }}
.actions button {{ white-space: nowrap; }}
fieldset {{ border: 1px solid #ccc; margin-top: 1rem; }}
fieldset label {{ display: flex; gap: .5rem; font-weight: normal; margin-top: .25rem; }}
legend {{ font-weight: 600; }}
input[type=text], input[type=url], select, textarea {{ font: inherit; padding: .35rem; border: 1px solid #767676; border-radius: 4px; width: 100%; max-width: 40rem; }}
textarea {{ font-family: ui-monospace, monospace; min-height: 4.5rem; }}
form.filters {{ display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; }}
form.filters label {{ margin-top: 0; }}
form.filters select {{ width: auto; }}
.notice {{ background: #e7f3ea; border-left: 4px solid #1e7b34; padding: .5rem .75rem; }}
.problem {{ background: #fbeaea; border-left: 4px solid #b3261e; padding: .5rem .75rem; }}
.badge {{ display: inline-block; padding: 0 .4rem; border-radius: 3px; background: #eee; }}
.badge.ok {{ background: #e7f3ea; color: #145a26; }}
.badge.bad {{ background: #fbeaea; color: #8c1d18; }}
.badge.warn {{ background: #fdf1dc; color: #6b4400; }}
.secret {{ font-size: 1.05rem; background: #f4f4f6; padding: .5rem; word-break: break-all; }}
.chart {{ max-width: 100%; height: auto; }}
.legend {{ display: flex; gap: 1rem; list-style: none; padding: 0; }}
.swatch {{ display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; vertical-align: -1px; }}
.swatch.ok {{ background: #1e7b34; }} .swatch.failed {{ background: #c77700; }} .swatch.dead {{ background: #b3261e; }}
",
        color = brand.primary_color
    )
}
