//! The delivery log (filtered by endpoint, status, event type and time,
//! paginated), one delivery with every attempt, and retrying it.

use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use hookline_proto::v1;
use maud::{Markup, html};

use crate::{
    Answer, App, User,
    forms::Fields,
    pages::{self, Page, Section},
};

const LOG_PAGE: i32 = 25;
const ATTEMPTS_PAGE: i32 = 100;

/// The time filter's choices: (value, label, seconds back).
const SINCE: [(&str, &str, u64); 5] = [
    ("", "any time", 0),
    ("1h", "the last hour", 3_600),
    ("24h", "the last 24 hours", 86_400),
    ("7d", "the last 7 days", 7 * 86_400),
    ("30d", "the last 30 days", 30 * 86_400),
];

const STATUSES: [v1::DeliveryStatus; 6] = [
    v1::DeliveryStatus::Pending,
    v1::DeliveryStatus::Scheduled,
    v1::DeliveryStatus::Held,
    v1::DeliveryStatus::Succeeded,
    v1::DeliveryStatus::DeadLettered,
    v1::DeliveryStatus::Cancelled,
];

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct Filter {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    page: String,
}

impl Filter {
    fn status(&self) -> i32 {
        STATUSES.iter().find(|s| s.as_str_name() == self.status).map_or(0, |s| *s as i32)
    }

    fn start_time(&self) -> Option<prost_types::Timestamp> {
        let (_, _, back) = SINCE.iter().find(|(v, _, _)| *v == self.since)?;
        (*back > 0).then(|| (SystemTime::now() - Duration::from_secs(*back)).into())
    }

    /// This filter's query string for another page.
    fn query(&self, page: &str) -> String {
        let pairs = [
            ("endpoint", self.endpoint.as_str()),
            ("status", self.status.as_str()),
            ("event_type", self.event_type.as_str()),
            ("since", self.since.as_str()),
            ("page", page),
        ];
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs.into_iter().filter(|(_, v)| !v.is_empty()) {
            query.append_pair(name, value);
        }
        query.finish()
    }
}

/// Deliveries as a table, each linking to its attempts.
pub(crate) fn table(deliveries: &[v1::Delivery], caption: &str) -> Markup {
    html! {
        @if deliveries.is_empty() {
            p { "No deliveries here." }
        } @else {
            table {
                caption { (caption) }
                thead { tr {
                    th scope="col" { "Event" } th scope="col" { "Status" } th scope="col" { "Attempts" }
                    th scope="col" { "Last answer" } th scope="col" { "Updated" }
                } }
                tbody {
                    @for d in deliveries {
                        tr {
                            td { a href={ "/deliveries/" (d.id) } { (d.event_type) } br; small { code { (d.event_id) } } }
                            td { (pages::status_badge(d.status)) }
                            td { (d.attempt_count) }
                            td { @if let Some(a) = &d.last_attempt { (pages::answer(a)) } }
                            td { (pages::time(d.update_time.as_ref())) }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn log(State(app): State<App>, mut user: User, Query(filter): Query<Filter>) -> Answer {
    let endpoints = user.all_endpoints(&app).await?;
    let types = user.catalog(&app).await?;
    let request = v1::ListDeliveriesRequest {
        page_size: LOG_PAGE,
        page_token: filter.page.clone(),
        subscription_id: filter.endpoint.clone(),
        status: filter.status(),
        event_type: filter.event_type.clone(),
        start_time: filter.start_time(),
        ..Default::default()
    };
    let list = app.answer(user.deliveries.list_deliveries(request).await)?;
    let body = html! {
        h1 { "Deliveries" }
        form.filters method="get" action="/deliveries" {
            (pages::endpoint_picker("f-endpoint", &endpoints, &filter.endpoint))
            div {
                label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    option value="" { "any status" }
                    @for s in STATUSES {
                        option value=(s.as_str_name()) selected[s.as_str_name() == filter.status] { (pages::status_name(s as i32)) }
                    }
                }
            }
            div {
                label for="f-type" { "Event type" }
                select id="f-type" name="event_type" {
                    option value="" { "every type" }
                    @for t in &types {
                        option value=(t.name) selected[t.name == filter.event_type] { (t.name) }
                    }
                }
            }
            div {
                label for="f-since" { "Recorded in" }
                select id="f-since" name="since" {
                    @for (value, label, _) in SINCE { option value=(value) selected[value == filter.since] { (label) } }
                }
            }
            div { button type="submit" { "Show" } }
        }
        (table(&list.deliveries, "Deliveries, newest first"))
        div.actions {
            @if !filter.page.is_empty() { a href={ "/deliveries?" (filter.query("")) } { "← Newest" } }
            @if !list.next_page_token.is_empty() {
                a href={ "/deliveries?" (filter.query(&list.next_page_token)) } { "Older →" }
            }
        }
    };
    Ok(app.page(Page::of(&user, Section::Deliveries, "Deliveries", body)))
}

pub(crate) async fn show(
    State(app): State<App>,
    mut user: User,
    Path(id): Path<String>,
    Query(q): Query<pages::Done>,
) -> Answer {
    let d = app.answer(user.deliveries.get_delivery(v1::GetDeliveryRequest { id: id.clone() }).await)?;
    let attempts = app.answer(
        user.deliveries
            .list_attempts(v1::ListAttemptsRequest {
                delivery_id: id.clone(),
                page_size: ATTEMPTS_PAGE,
                ..Default::default()
            })
            .await,
    )?;
    let can_retry = !user.session.read_only()
        && !matches!(
            v1::DeliveryStatus::try_from(d.status),
            Ok(v1::DeliveryStatus::Pending | v1::DeliveryStatus::Held)
        );
    let body = html! {
        (pages::notice(&q))
        p { a href={ "/deliveries?endpoint=" (d.subscription_id) } { "← Deliveries to this endpoint" } }
        h1 { (d.event_type) " " (pages::status_badge(d.status)) }
        dl {
            dt { "Delivery" } dd { code { (d.id) } }
            dt { "Event" } dd { code { (d.event_id) } }
            dt { "Endpoint" } dd { a href={ "/endpoints/" (d.subscription_id) } { code { (d.subscription_id) } } }
            @if !d.status_reason.is_empty() { dt { "Why" } dd { (d.status_reason) } }
            @if d.next_attempt_time.is_some() { dt { "Next attempt" } dd { (pages::time(d.next_attempt_time.as_ref())) } }
            dt { "Created" } dd { (pages::time(d.create_time.as_ref())) }
        }
        @if can_retry {
            form method="post" action={ "/deliveries/" (id) "/retry" } {
                (pages::csrf(&user)) button type="submit" { "Retry now" }
            }
        }
        h2 { "Attempts" }
        @if attempts.attempts.is_empty() {
            p { "No attempt yet." }
        } @else {
            table {
                caption { "Every attempt, first to last" }
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Started" } th scope="col" { "Took" }
                    th scope="col" { "Answer" } th scope="col" { "Why it ran" } th scope="col" { "Response body" }
                } }
                tbody {
                    @for a in &attempts.attempts {
                        tr {
                            td { (a.attempt_number) }
                            td { (pages::time(a.start_time.as_ref())) }
                            td { (pages::duration(a.duration.as_ref())) }
                            td { (pages::answer(a)) }
                            td { (pages::trigger(a)) }
                            td { @if !a.response_body.is_empty() { pre { (pages::excerpt(&a.response_body)) } } }
                        }
                    }
                }
            }
        }
    };
    Ok(app.page(Page::of(&user, Section::Deliveries, format!("Delivery of {}", d.event_type), body)))
}

pub(crate) async fn retry(State(app): State<App>, mut user: User, Path(id): Path<String>, form: Fields) -> Answer {
    user.check(&app, &form)?;
    app.answer(user.deliveries.retry_delivery(v1::RetryDeliveryRequest { id: id.clone() }).await)?;
    Ok(app.see_other(&format!("/deliveries/{id}?done=retried")))
}
