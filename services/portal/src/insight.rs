//! Pages that explain: the event catalog, the delivery summary as charts
//! (per day for 30 days, per hour for 48 hours), and how to verify a
//! signature.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use hookline_proto::v1;
use maud::{Markup, html};

use crate::{
    Answer, App, User,
    pages::{self, Page, Section},
};

pub(crate) async fn catalog(State(app): State<App>, mut user: User) -> Answer {
    let types = user.catalog(&app).await?;
    let body = html! {
        h1 { "Event types" }
        p { "What your endpoints can subscribe to." }
        @if types.is_empty() {
            p { "The catalog is empty: endpoints can name any event type." }
        } @else {
            table {
                caption { "Event types you can receive" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "What it means" } } }
                tbody {
                    @for t in &types {
                        tr { td { code { (t.name) } } td { (t.description) } }
                    }
                }
            }
        }
    };
    Ok(app.page(Page::of(&user, Section::EventTypes, "Event types", body)))
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct SummaryQuery {
    #[serde(default)]
    endpoint: String,
}

const DAY: u64 = 86_400;
const HOUR: u64 = 3_600;

pub(crate) async fn summary(State(app): State<App>, mut user: User, Query(q): Query<SummaryQuery>) -> Answer {
    let endpoints = user.all_endpoints(&app).await?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stats = |granularity: v1::StatsGranularity, start: u64| v1::GetDeliveryStatsRequest {
        subscription_id: q.endpoint.clone(),
        granularity: granularity as i32,
        start_time: Some((UNIX_EPOCH + Duration::from_secs(start)).into()),
        end_time: Some((UNIX_EPOCH + Duration::from_secs(now)).into()),
        ..Default::default()
    };
    // A tenant with many endpoints may be refused the whole tenant's 30
    // days at once (the service bounds what one request reads): then the
    // page asks for one endpoint instead of failing.
    let mut too_much = None;
    let mut read = async |granularity, start| match user.deliveries.get_delivery_stats(stats(granularity, start)).await
    {
        Ok(answer) => Ok(answer.into_inner().buckets),
        Err(status) if status.code() == tonic::Code::InvalidArgument && q.endpoint.is_empty() => {
            too_much = Some(status.message().to_owned());
            Ok(Vec::new())
        }
        Err(status) => Err(app.refused(&status)),
    };
    let daily = read(v1::StatsGranularity::Day, (now / DAY - 29) * DAY).await?;
    let hourly = read(v1::StatsGranularity::Hour, (now / HOUR - 47) * HOUR).await?;
    let body = html! {
        h1 { "Summary" }
        form.filters method="get" action="/summary" {
            (pages::endpoint_picker("s-endpoint", &endpoints, &q.endpoint))
            div { button type="submit" { "Show" } }
        }
        ul.legend {
            li { span.swatch.ok {} "succeeded" }
            li { span.swatch.failed {} "failed attempts" }
            li { span.swatch.dead {} "dead-lettered" }
        }
        @if let Some(reason) = &too_much {
            @let text = format!("Choose one endpoint: every endpoint at once is too much to read ({reason}).");
            (pages::problem(Some(&text)))
        } @else {
            h2 id="daily" { "Per day (UTC), the last 30 days" }
            (chart("daily", &daily, |t| format_time(t, "%m-%d"), 5))
            h2 id="hourly" { "Per hour (UTC), the last 48 hours" }
            (chart("hourly", &hourly, |t| format_time(t, "%H:00"), 6))
        }
    };
    Ok(app.page(Page::of(&user, Section::Summary, "Summary", body)))
}

fn seconds(t: Option<&prost_types::Timestamp>) -> u64 {
    t.map_or(0, |t| t.seconds.max(0) as u64)
}

/// `%m-%d` or `%H:00` of a UTC time.
fn format_time(t: u64, pattern: &str) -> String {
    let text = humantime_serde::re::humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string();
    // 2026-12-02T14:00:00Z
    match pattern {
        "%m-%d" => text.get(5..10).unwrap_or_default().to_owned(),
        _ => format!("{}:00", text.get(11..13).unwrap_or_default()),
    }
}

/// Stacked bars (succeeded, failed attempts, dead-lettered) per bucket, as
/// inline SVG: a picture that needs no script. Each bar has a title (its
/// figures), and the same figures follow as a table for screen readers.
fn chart(id: &str, buckets: &[v1::StatsBucket], label: impl Fn(u64) -> String, label_every: usize) -> Markup {
    const W: f64 = 760.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 44.0;
    const BOTTOM: f64 = 24.0;
    let total = |b: &v1::StatsBucket| b.succeeded + b.failed_attempts + b.dead_lettered;
    let max = buckets.iter().map(total).max().unwrap_or(0).max(1);
    let slot = (W - LEFT) / buckets.len().max(1) as f64;
    let scale = (H - BOTTOM - 8.0) / max as f64;
    let sum: u64 = buckets.iter().map(total).sum();
    let describe = |b: &v1::StatsBucket| {
        format!(
            "{}: {} succeeded, {} failed attempts, {} dead-lettered",
            label(seconds(b.start_time.as_ref())),
            b.succeeded,
            b.failed_attempts,
            b.dead_lettered
        )
    };
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (H) } role="img" aria-labelledby={ (id) "-title" } {
            title id={ (id) "-title" } {
                (sum) " deliveries and attempts counted: "
                (buckets.iter().map(|b| b.succeeded).sum::<u64>()) " succeeded, "
                (buckets.iter().map(|b| b.failed_attempts).sum::<u64>()) " failed attempts, "
                (buckets.iter().map(|b| b.dead_lettered).sum::<u64>()) " dead-lettered"
            }
            line x1=(LEFT) y1=(H - BOTTOM) x2=(W) y2=(H - BOTTOM) stroke="#767676" {}
            text x=(LEFT - 6.0) y=(H - BOTTOM) text-anchor="end" font-size="11" fill="#1d1d1f" { "0" }
            text x=(LEFT - 6.0) y="14" text-anchor="end" font-size="11" fill="#1d1d1f" { (max) }
            @for (i, b) in buckets.iter().enumerate() {
                @let x = LEFT + i as f64 * slot + slot * 0.1;
                @let w = slot * 0.8;
                @let ok = b.succeeded as f64 * scale;
                @let failed = b.failed_attempts as f64 * scale;
                @let dead = b.dead_lettered as f64 * scale;
                @let base = H - BOTTOM;
                g {
                    title { (describe(b)) }
                    rect x=(x) y=(base - ok) width=(w) height=(ok) fill="#1e7b34" {}
                    rect x=(x) y=(base - ok - failed) width=(w) height=(failed) fill="#c77700" {}
                    rect x=(x) y=(base - ok - failed - dead) width=(w) height=(dead) fill="#b3261e" {}
                    // A transparent full-height target, so every bar has a tooltip.
                    rect x=(x) y="0" width=(w) height=(base) fill="transparent" {}
                }
                @if i % label_every == 0 {
                    text x=(x + w / 2.0) y=(H - 6.0) text-anchor="middle" font-size="11" fill="#1d1d1f" {
                        (label(seconds(b.start_time.as_ref())))
                    }
                }
            }
        }
        details {
            summary { "The same figures as a table" }
            table {
                thead { tr {
                    th scope="col" { "From (UTC)" } th scope="col" { "Succeeded" }
                    th scope="col" { "Failed attempts" } th scope="col" { "Dead-lettered" }
                } }
                tbody {
                    @for b in buckets {
                        tr {
                            td { (pages::time(b.start_time.as_ref())) }
                            td { (b.succeeded) } td { (b.failed_attempts) } td { (b.dead_lettered) }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn verifying(State(app): State<App>, user: User) -> Answer {
    let body = html! {
        h1 { "Verifying signatures" }
        p {
            "Every webhook is signed the "
            a href="https://www.standardwebhooks.com/" { "Standard Webhooks" }
            " way, so the libraries below verify it. Check the signature before you trust a request: "
            "anyone can send a POST to your URL."
        }
        h2 { "The headers" }
        dl {
            dt { code { "webhook-id" } } dd { "The event's id: the same on every retry, so you can skip one you already handled." }
            dt { code { "webhook-timestamp" } } dd { "When it was sent, in Unix seconds. Refuse requests more than five minutes old." }
            dt { code { "webhook-signature" } }
            dd { "One or more " code { "v1,<base64>" } " signatures separated by spaces; while a secret is being rotated, one per secret. Accept the request if any of them verifies." }
        }
        p { "Your endpoint's signing secret (" code { "whsec_…" } ") is on its page, behind " em { "Reveal the secret" } "." }
        h2 { "Python" }
        pre { code { (PYTHON) } }
        h2 { "JavaScript (Node.js)" }
        pre { code { (NODE) } }
        h2 { "Go" }
        pre { code { (GO) } }
        h2 { "Without a library" }
        ol {
            li { "Take the secret without its " code { "whsec_" } " prefix and decode it from base64: that is the key." }
            li { "Sign " code { "{webhook-id}.{webhook-timestamp}.{body}" } " with HMAC-SHA256 and that key, using the body exactly as received (before parsing it)." }
            li { "Encode the result in base64 and compare it, in constant time, with each " code { "v1," } " entry of " code { "webhook-signature" } "." }
        }
    };
    Ok(app.page(Page::of(&user, Section::Verifying, "Verifying signatures", body)))
}

const PYTHON: &str = r#"# pip install standardwebhooks
from standardwebhooks.webhooks import Webhook

wh = Webhook("whsec_...")  # your endpoint's signing secret
# body: the raw request body (bytes); headers: the request's headers
event = wh.verify(body, headers)  # raises WebhookVerificationError if it does not verify"#;

const NODE: &str = r#"// npm install standardwebhooks
import { Webhook } from "standardwebhooks";

const wh = new Webhook("whsec_..."); // your endpoint's signing secret
// body: the raw request body (a string); headers: the request's headers
const event = wh.verify(body, headers); // throws if it does not verify"#;

const GO: &str = r#"// go get github.com/standard-webhooks/standard-webhooks/libraries/go
import standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

wh, err := standardwebhooks.NewWebhook("whsec_...") // your endpoint's signing secret
// body: the raw request body ([]byte); r.Header: the request's headers
err = wh.Verify(body, r.Header) // non-nil if it does not verify"#;
