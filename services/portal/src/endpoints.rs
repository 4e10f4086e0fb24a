//! Endpoints: the list, the form that creates and edits one, and what can
//! be done to one (pause, resume, delete, reveal or rotate its secret, send
//! a test event, replay its dead letters).

use std::convert::Infallible;

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use futures::{StreamExt, future::join_all};
use hookline_domain::EventTypePattern;
use hookline_proto::v1;
use maud::{Markup, PreEscaped, html};

use crate::{
    Answer, App, Refusal, User,
    forms::{self, Draft, Fields},
    pages::{self, Page, Section},
};

/// Endpoints on one page of the list.
const LIST_PAGE: i32 = 50;
/// Deliveries on an endpoint's page (the log has the rest).
const RECENT: i32 = 10;

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    page: String,
    #[serde(flatten)]
    done: pages::Done,
}

pub(crate) async fn list(State(app): State<App>, mut user: User, Query(q): Query<ListQuery>) -> Answer {
    let request = v1::ListSubscriptionsRequest { page_size: LIST_PAGE, page_token: q.page, ..Default::default() };
    let list = app.answer(user.subs.list_subscriptions(request).await)?;
    // Last success and failing streak, one summary per endpoint, at once.
    let summaries = join_all(list.subscriptions.iter().map(|s| {
        let mut client = user.deliveries.clone();
        let request = v1::GetDeliverySummaryRequest { subscription_id: s.id.clone(), ..Default::default() };
        async move { client.get_delivery_summary(request).await.ok().map(tonic::Response::into_inner) }
    }))
    .await;
    let can_change = !user.session.read_only();
    let body = html! {
        (pages::notice(&q.done))
        h1 { "Endpoints" }
        @let scope = session_scope(&user);
        @if !scope.is_empty() {
            p.hint { "This session covers only " @for line in scope.lines() { code { (line) } " " } "." }
        }
        @if can_change { p { a.button href="/endpoints/new" { "Add an endpoint" } } }
        @if list.subscriptions.is_empty() {
            p { "No endpoints yet." }
        } @else {
            table {
                caption { "Where your webhooks are sent" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "URL" } th scope="col" { "Events" }
                    th scope="col" { "State" } th scope="col" { "Last success" } th scope="col" { "Failing streak" }
                } }
                tbody {
                    @for (s, summary) in list.subscriptions.iter().zip(&summaries) {
                        tr {
                            td { a href={ "/endpoints/" (s.id) } { (pages::endpoint_name(s)) } }
                            td.url { (s.url) }
                            td { (s.event_types.join(", ")) }
                            td {
                                (pages::state(s))
                                @if let Some(reason) = s.state_reason.as_ref().filter(|r| !r.message.is_empty()) {
                                    br; small { (reason.message) }
                                }
                            }
                            td { @if let Some(summary) = summary { (pages::time(summary.last_success_time.as_ref())) } }
                            td { @if let Some(summary) = summary { (summary.consecutive_failures) } }
                        }
                    }
                }
            }
            @if !list.next_page_token.is_empty() {
                p { a href={ "/endpoints?page=" (list.next_page_token) } { "More endpoints →" } }
            }
        }
    };
    Ok(app.page(Page::of(&user, Section::Endpoints, "Endpoints", body)))
}

async fn subscription(app: &App, user: &mut User, id: &str) -> Result<v1::Subscription, Refusal> {
    app.answer(user.subs.get_subscription(v1::GetSubscriptionRequest { id: id.to_owned() }).await)
}

fn form(user: &User, action: &str, draft: &Draft, catalog: &[v1::EventType], problem: Option<&str>) -> Markup {
    let ticked = |name: &str| draft.event_types.iter().any(|t| t == name);
    html! {
        (pages::problem(problem))
        form method="post" action=(action) {
            (pages::csrf(user))
            input type="hidden" name="version" value=(draft.version);
            label for="name" { "Name" }
            input type="text" id="name" name="name" value=(draft.name) maxlength="256" aria-describedby="name-hint";
            small id="name-hint" { "What you call it, e.g. \"CRM sync\"." }
            label for="url" { "URL" }
            input type="url" id="url" name="url" value=(draft.url) required aria-describedby="url-hint";
            small id="url-hint" { "Where webhooks are sent: an https:// address that answers POST requests." }
            fieldset {
                legend { "Event types" }
                label { input type="checkbox" name="event_type" value="*" checked[ticked("*")]; "Every event type" }
                @for t in catalog {
                    label {
                        input type="checkbox" name="event_type" value=(t.name) checked[ticked(&t.name)];
                        span { code { (t.name) } @if !t.description.is_empty() { " — " (t.description) } }
                    }
                }
            }
            label for="other_types" { "Other event types or patterns" }
            input type="text" id="other_types" name="other_types" value=(draft.other_types) aria-describedby="other-hint";
            small id="other-hint" { "Comma-separated; a * matches any characters, e.g. order.*" }
            label for="headers" { "Extra headers" }
            textarea id="headers" name="headers" aria-describedby="headers-hint" { (draft.headers) }
            small id="headers-hint" { "Sent with every delivery, one per line: Name: value" }
            label for="filters" { "Filters on the payload" }
            textarea id="filters" name="filters" aria-describedby="filters-hint" { (draft.filters) }
            small id="filters-hint" {
                "Only events whose payload matches every line are sent. One per line: "
                code { "data.status = paid" } ", " code { "data.plan in pro, team" } ", "
                code { "data.email matches *@example.com" } " or " code { "data.vip exists" } "."
            }
            label for="scope" { "Scope" }
            textarea id="scope" name="scope" aria-describedby="scope-hint" { (draft.scope) }
            small id="scope-hint" { "Only events with these attributes, one per line: label = value, value" }
            div.actions { button type="submit" { "Save" } a href="/endpoints" { "Cancel" } }
        }
    }
}

/// A limited session's scope as the form writes it ("" for a whole tenant).
fn session_scope(user: &User) -> String {
    user.session.claims().map_or_else(String::new, |grant| {
        forms::scope_text(grant.scope.labels().iter().map(|(k, v)| (k.as_str(), v.iter().cloned().collect())))
    })
}

pub(crate) async fn new(State(app): State<App>, mut user: User) -> Answer {
    let catalog = user.catalog(&app).await?;
    // A limited session's endpoints are within its scope: start from it.
    let draft = Draft { scope: session_scope(&user), ..Draft::default() };
    let body = html! { h1 { "Add an endpoint" } (form(&user, "/endpoints", &draft, &catalog, None)) };
    Ok(app.page(Page::of(&user, Section::Endpoints, "Add an endpoint", body)))
}

/// The form again, with what was typed and what to fix.
async fn form_again(app: &App, user: &mut User, action: &str, draft: &Draft, problem: &str) -> Answer {
    let catalog = user.catalog(app).await?;
    let title = if draft.version == 0 { "Add an endpoint" } else { "Edit the endpoint" };
    let body = html! { h1 { (title) } (form(user, action, draft, &catalog, Some(problem))) };
    Ok(app.page(Page::of(user, Section::Endpoints, title, body).with_status(StatusCode::BAD_REQUEST)))
}

/// A refusal the person can fix in the form.
fn fixable(status: &tonic::Status) -> bool {
    use tonic::Code;
    // PERMISSION_DENIED here is a scope outside a limited session's.
    matches!(
        status.code(),
        Code::InvalidArgument | Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted | Code::PermissionDenied
    )
}

pub(crate) async fn create(State(app): State<App>, mut user: User, form: Fields) -> Answer {
    user.check(&app, &form)?;
    let draft = Draft::from_form(&form);
    let subscription = match draft.subscription() {
        Ok(s) => s,
        Err(problem) => return form_again(&app, &mut user, "/endpoints", &draft, &problem).await,
    };
    let request = v1::CreateSubscriptionRequest { subscription: Some(subscription), ..Default::default() };
    match user.subs.create_subscription(request).await {
        Ok(created) => {
            let id = created.into_inner().subscription.map(|s| s.id).unwrap_or_default();
            Ok(app.see_other(&format!("/endpoints/{id}?done=created")))
        }
        Err(status) if fixable(&status) => form_again(&app, &mut user, "/endpoints", &draft, status.message()).await,
        Err(status) => Err(app.refused(&status)),
    }
}

pub(crate) async fn edit(State(app): State<App>, mut user: User, Path(id): Path<String>) -> Answer {
    let s = subscription(&app, &mut user, &id).await?;
    let catalog = user.catalog(&app).await?;
    let names: Vec<String> = catalog.iter().map(|t| t.name.clone()).collect();
    let draft = Draft::from_subscription(&s, &names);
    let body = html! {
        p { a href={ "/endpoints/" (id) } { "← " (pages::endpoint_name(&s)) } }
        h1 { "Edit the endpoint" }
        (form(&user, &format!("/endpoints/{id}"), &draft, &catalog, None))
    };
    Ok(app.page(Page::of(&user, Section::Endpoints, "Edit the endpoint", body)))
}

pub(crate) async fn update(State(app): State<App>, mut user: User, Path(id): Path<String>, form: Fields) -> Answer {
    user.check(&app, &form)?;
    let draft = Draft::from_form(&form);
    let action = format!("/endpoints/{id}");
    let mut subscription = match draft.subscription() {
        Ok(s) => s,
        Err(problem) => return form_again(&app, &mut user, &action, &draft, &problem).await,
    };
    subscription.id = id.clone();
    let paths = ["name", "url", "event_types", "headers", "filters", "scope"];
    let request = v1::UpdateSubscriptionRequest {
        subscription: Some(subscription),
        update_mask: Some(prost_types::FieldMask { paths: paths.map(str::to_owned).to_vec() }),
        ..Default::default()
    };
    match user.subs.update_subscription(request).await {
        Ok(_) => Ok(app.see_other(&format!("/endpoints/{id}?done=saved"))),
        Err(status) if fixable(&status) => form_again(&app, &mut user, &action, &draft, status.message()).await,
        Err(status) => Err(app.refused(&status)),
    }
}

/// The event types a test event can be sent as: the catalog's that this
/// endpoint receives, and its exact names (its patterns are not names).
fn test_types(s: &v1::Subscription, catalog: &[v1::EventType]) -> Vec<String> {
    let patterns: Vec<EventTypePattern> =
        s.event_types.iter().filter_map(|t| EventTypePattern::parse(t).ok()).collect();
    let mut names: Vec<String> =
        catalog.iter().filter(|t| patterns.iter().any(|p| p.matches(&t.name))).map(|t| t.name.clone()).collect();
    for t in &s.event_types {
        if matches!(EventTypePattern::parse(t), Ok(EventTypePattern::Exact(_))) && !names.contains(t) {
            names.push(t.clone());
        }
    }
    names
}

pub(crate) async fn show(
    State(app): State<App>,
    mut user: User,
    Path(id): Path<String>,
    Query(q): Query<pages::Done>,
) -> Answer {
    let s = subscription(&app, &mut user, &id).await?;
    let catalog = user.catalog(&app).await?;
    let summary_request = v1::GetDeliverySummaryRequest { subscription_id: id.clone(), ..Default::default() };
    let summary = app.answer(user.deliveries.get_delivery_summary(summary_request).await)?;
    let recent_request =
        v1::ListDeliveriesRequest { subscription_id: id.clone(), page_size: RECENT, ..Default::default() };
    let recent = app.answer(user.deliveries.list_deliveries(recent_request).await)?.deliveries;
    let can_change = !user.session.read_only();
    let paused = s.state == v1::SubscriptionState::Paused as i32;
    let body = html! {
        (pages::notice(&q))
        p { a href="/endpoints" { "← All endpoints" } }
        h1 { (pages::endpoint_name(&s)) }
        p {
            "State: " strong { (pages::state(&s)) }
            @if let Some(reason) = s.state_reason.as_ref().filter(|r| !r.message.is_empty()) {
                " — " (reason.message)
            }
        }
        @if can_change {
            div.actions {
                a.button.quiet href={ "/endpoints/" (id) "/edit" } { "Edit" }
                @if paused {
                    form method="post" action={ "/endpoints/" (id) "/resume" } {
                        (pages::csrf(&user)) button type="submit" { "Resume" }
                    }
                } @else {
                    form method="post" action={ "/endpoints/" (id) "/pause" } {
                        (pages::csrf(&user)) button.quiet type="submit" { "Pause" }
                    }
                }
                a.button.quiet href={ "/endpoints/" (id) "/delete" } { "Delete…" }
            }
        }
        dl {
            dt { "URL" } dd.url { (s.url) }
            dt { "Events" } dd { (s.event_types.join(", ")) }
            @if !s.filters.is_empty() {
                dt { "Filters" }
                dd { @for line in Draft::from_subscription(&s, &[]).filters.lines() { code { (line) } br; } }
            }
            @if !s.scope.is_empty() {
                dt { "Scope" }
                dd { @for line in Draft::from_subscription(&s, &[]).scope.lines() { code { (line) } br; } }
            }
            @if !s.headers.is_empty() {
                dt { "Extra headers" }
                dd { @for (k, v) in &s.headers { code { (k) ": " (v) } br; } }
            }
            dt { "Created" } dd { (pages::time(s.create_time.as_ref())) }
        }
        h2 { "Health" }
        dl {
            dt { "Last success" } dd { (or_never(pages::time(summary.last_success_time.as_ref()))) }
            dt { "Last attempt" } dd { (or_never(pages::time(summary.last_attempt_time.as_ref()))) }
            dt { "Failing streak" }
            dd {
                (summary.consecutive_failures) " failed attempts in a row"
                @if summary.failing_since.is_some() { ", since " (pages::time(summary.failing_since.as_ref())) }
            }
            dt { "All time" }
            dd {
                (summary.succeeded) " succeeded, " (summary.failed_attempts) " failed attempts, "
                (summary.dead_lettered) " dead-lettered, " (summary.in_progress) " in progress"
            }
        }
        p { a href={ "/summary?endpoint=" (id) } { "Deliveries by day and by hour" } }
        @if can_change {
            h2 { "Signing secret" }
            p { "Every delivery is signed with this secret. " a href="/verifying" { "How to verify a signature" } }
            @if s.previous_secret_expire_time.is_some() {
                p { "The previous secret also signs deliveries until " (pages::time(s.previous_secret_expire_time.as_ref())) "." }
            }
            div.actions {
                form method="post" action={ "/endpoints/" (id) "/secret" } {
                    (pages::csrf(&user)) button.quiet type="submit" { "Reveal the secret" }
                }
                form method="post" action={ "/endpoints/" (id) "/rotate" } {
                    (pages::csrf(&user))
                    label for="grace" { "Keep the old secret for" }
                    select id="grace" name="grace" {
                        option value="0" { "no time: stop it now" }
                        option value="3600" { "1 hour" }
                        option value="86400" selected { "24 hours" }
                        option value="604800" { "7 days" }
                    }
                    button.quiet type="submit" { "Rotate the secret" }
                }
            }
            h2 { "Send a test event" }
            form method="post" action={ "/endpoints/" (id) "/test" } {
                (pages::csrf(&user))
                label for="test-type" { "Event type" }
                select id="test-type" name="event_type" {
                    option value="hookline.test" { "hookline.test (a test event)" }
                    @for t in test_types(&s, &catalog) { option value=(t) { (t) } }
                }
                label for="test-payload" { "Payload (JSON, optional)" }
                textarea id="test-payload" name="payload" aria-describedby="payload-hint" {}
                small id="payload-hint" { "Empty: a short test payload." }
                div.actions { button type="submit" { "Send the test event" } }
            }
            h2 { "Dead letters" }
            p { "Deliveries that failed every attempt. Send them again once the endpoint works." }
            form method="post" action={ "/endpoints/" (id) "/replay" } {
                (pages::csrf(&user)) button.quiet type="submit" { "Replay dead-lettered deliveries" }
            }
        }
        h2 { "Recent deliveries" }
        (crate::deliveries::table(&recent, "The latest deliveries to this endpoint, newest first"))
        p { a href={ "/deliveries?endpoint=" (id) } { "All deliveries to this endpoint →" } }
    };
    Ok(app.page(Page::of(&user, Section::Endpoints, pages::endpoint_name(&s).to_owned(), body)))
}

fn or_never(text: String) -> String {
    if text.is_empty() { "never".into() } else { text }
}

pub(crate) async fn pause(State(app): State<App>, mut user: User, Path(id): Path<String>, form: Fields) -> Answer {
    user.check(&app, &form)?;
    let request = v1::PauseSubscriptionRequest {
        id: id.clone(),
        reason: "Paused in the webhooks portal".into(),
        ..Default::default()
    };
    app.answer(user.subs.pause_subscription(request).await)?;
    Ok(app.see_other(&format!("/endpoints/{id}?done=paused")))
}

pub(crate) async fn resume(State(app): State<App>, mut user: User, Path(id): Path<String>, form: Fields) -> Answer {
    user.check(&app, &form)?;
    app.answer(user.subs.resume_subscription(v1::ResumeSubscriptionRequest { id: id.clone() }).await)?;
    Ok(app.see_other(&format!("/endpoints/{id}?done=resumed")))
}

pub(crate) async fn confirm_delete(State(app): State<App>, mut user: User, Path(id): Path<String>) -> Answer {
    let s = subscription(&app, &mut user, &id).await?;
    let body = html! {
        h1 { "Delete " (pages::endpoint_name(&s)) "?" }
        p { "It stops receiving webhooks at " code.url { (s.url) } ". This cannot be undone." }
        div.actions {
            form method="post" action={ "/endpoints/" (id) "/delete" } {
                (pages::csrf(&user))
                input type="hidden" name="version" value=(s.version);
                button.danger type="submit" { "Delete the endpoint" }
            }
            a href={ "/endpoints/" (id) } { "Keep it" }
        }
    };
    Ok(app.page(Page::of(&user, Section::Endpoints, "Delete the endpoint", body)))
}

pub(crate) async fn delete(State(app): State<App>, mut user: User, Path(id): Path<String>, form: Fields) -> Answer {
    user.check(&app, &form)?;
    let version = form.get("version").parse().unwrap_or(0);
    app.answer(user.subs.delete_subscription(v1::DeleteSubscriptionRequest { id, version }).await)?;
    Ok(app.see_other("/endpoints?done=deleted"))
}

fn secret_page(user: &User, s: &v1::Subscription, heading: &str, secret: &str, previous: Option<Markup>) -> Page {
    let body = html! {
        p { a href={ "/endpoints/" (s.id) } { "← " (pages::endpoint_name(s)) } }
        h1 { (heading) }
        p { "Keep it secret: anyone who has it can sign requests as us. It is shown only on this page." }
        p { code.secret data-secret="current" { (secret) } }
        @if let Some(previous) = previous { (previous) }
        p { a href="/verifying" { "How to verify a signature with it" } }
    };
    Page::of(user, Section::Endpoints, heading, body)
}

pub(crate) async fn reveal_secret(
    State(app): State<App>,
    mut user: User,
    Path(id): Path<String>,
    form: Fields,
) -> Answer {
    user.check(&app, &form)?;
    let s = subscription(&app, &mut user, &id).await?;
    let secret = app.answer(user.subs.get_subscription_secret(v1::GetSubscriptionSecretRequest { id }).await)?;
    let previous = (!secret.previous_secret.is_empty()).then(|| {
        html! {
            p {
                "The previous secret also signs deliveries until "
                (pages::time(secret.previous_secret_expire_time.as_ref())) ":"
            }
            p { code.secret data-secret="previous" { (secret.previous_secret) } }
        }
    });
    Ok(app.page(secret_page(&user, &s, "Signing secret", &secret.secret, previous)))
}

pub(crate) async fn rotate_secret(
    State(app): State<App>,
    mut user: User,
    Path(id): Path<String>,
    form: Fields,
) -> Answer {
    user.check(&app, &form)?;
    let grace: u64 = form.get("grace").parse().unwrap_or(86_400).min(7 * 86_400);
    let s = subscription(&app, &mut user, &id).await?;
    let request = v1::RotateSecretRequest {
        id,
        grace_period: Some(prost_types::Duration { seconds: grace as i64, nanos: 0 }),
        ..Default::default()
    };
    let rotated = app.answer(user.subs.rotate_secret(request).await)?;
    let previous = html! {
        @if rotated.previous_secret_expire_time.is_some() {
            p {
                "Deliveries carry a signature with the old secret too until "
                (pages::time(rotated.previous_secret_expire_time.as_ref()))
                ": switch your endpoint to the new one before then."
            }
        } @else {
            p { "The old secret no longer signs anything." }
        }
    };
    Ok(app.page(secret_page(&user, &s, "New signing secret", &rotated.secret, Some(previous))))
}

pub(crate) async fn send_test(State(app): State<App>, mut user: User, Path(id): Path<String>, form: Fields) -> Answer {
    user.check(&app, &form)?;
    let s = subscription(&app, &mut user, &id).await?;
    let request = v1::SendTestEventRequest {
        subscription_id: id,
        event_type: form.get("event_type").to_owned(),
        payload: form.get("payload").trim().as_bytes().to_vec(),
    };
    let sent = app.answer(user.deliveries.send_test_event(request).await)?;
    let attempt = sent.attempt.unwrap_or_default();
    let ok = (200..300).contains(&attempt.response_status_code);
    let body = html! {
        p { a href={ "/endpoints/" (s.id) } { "← " (pages::endpoint_name(&s)) } }
        h1 { "Test event sent" }
        p.notice[ok].problem[!ok] role="status" {
            @if ok { "Your endpoint accepted it: " } @else { "Your endpoint did not accept it: " }
            strong { (pages::answer(&attempt)) }
        }
        dl {
            dt { "Event" } dd { code { (sent.event_id) } }
            dt { "Took" } dd { (pages::duration(attempt.duration.as_ref())) }
            dt { "Response body" }
            dd { @if attempt.response_body.is_empty() { "(empty)" } @else { pre { (pages::excerpt(&attempt.response_body)) } } }
        }
    };
    Ok(app.page(Page::of(&user, Section::Endpoints, "Test event sent", body)))
}

/// Replays the endpoint's dead letters, showing progress as it goes: the
/// page is streamed, each progress report a line as it arrives.
pub(crate) async fn replay(State(app): State<App>, mut user: User, Path(id): Path<String>, form: Fields) -> Answer {
    user.check(&app, &form)?;
    let s = subscription(&app, &mut user, &id).await?;
    let request = v1::ReplayDeliveriesRequest {
        subscription_id: id.clone(),
        status: v1::DeliveryStatus::DeadLettered as i32,
        ..Default::default()
    };
    let progress = app.answer(user.deliveries.replay_deliveries(request).await)?;
    const MARK: &str = "<!--progress-->";
    let body = html! {
        p { a href={ "/endpoints/" (id) } { "← " (pages::endpoint_name(&s)) } }
        h1 { "Replaying dead-lettered deliveries" }
        div role="log" aria-live="polite" { (PreEscaped(MARK)) }
        p { a href={ "/deliveries?endpoint=" (id) } { "See the deliveries →" } }
    };
    let page =
        pages::render(&app.config.brand, app.logo.is_some(), Page::of(&user, Section::Endpoints, "Replay", body));
    let page = page.into_string();
    let (head, tail) =
        page.split_once(MARK).map_or((page.clone(), String::new()), |(h, t)| (h.to_owned(), t.to_owned()));
    let lines = progress.map(|report| {
        Ok::<_, Infallible>(match report {
            Ok(p) if p.done => {
                html! { p.notice role="status" { "Done: " (p.replayed) " deliveries are being sent again." } }
                    .into_string()
            }
            Ok(p) => html! { p { (p.replayed) " sent again so far…" } }.into_string(),
            Err(status) => html! { p.problem role="alert" { "Stopped: " (status.message()) } }.into_string(),
        })
    });
    let stream = futures::stream::once(async move { Ok(head) })
        .chain(lines)
        .chain(futures::stream::once(async move { Ok(tail) }));
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    app.secure(response.headers_mut());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_event_can_be_any_catalog_type_the_endpoint_receives_or_one_of_its_names() {
        let catalog: Vec<v1::EventType> = ["order.paid", "order.refunded", "lead.created"]
            .into_iter()
            .map(|name| v1::EventType { name: name.into(), ..Default::default() })
            .collect();
        let s = v1::Subscription { event_types: vec!["order.*".into(), "invoice.sent".into()], ..Default::default() };
        assert_eq!(test_types(&s, &catalog), ["order.paid", "order.refunded", "invoice.sent"]);
    }
}
