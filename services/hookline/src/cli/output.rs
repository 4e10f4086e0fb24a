//! How results are printed: aligned tables for people, JSON for scripts.
//! The JSON keys are the proto field names.

use hookline_proto::{Timestamp, v1};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
}

/// Something a command prints.
pub(crate) trait Render {
    fn json(&self) -> Value;
    /// Header and rows.
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>);

    fn render(&self, output: Output) -> String {
        match output {
            Output::Json => serde_json::to_string_pretty(&self.json()).unwrap_or_default(),
            Output::Table => {
                let (header, rows) = self.table();
                table(&header, &rows)
            }
        }
    }
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n")
}

fn time(t: Option<&Timestamp>) -> String {
    t.map(|t| {
        // HTTP dates stop at year 9999 (the formatter panics past it).
        let secs = u64::try_from(t.seconds).unwrap_or(0).min(253_402_300_799);
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    })
    .unwrap_or_default()
}

fn state(s: &v1::Subscription) -> String {
    v1::SubscriptionState::try_from(s.state)
        .map(|s| s.as_str_name().to_lowercase())
        .unwrap_or_default()
        .trim_start_matches("subscription_state_")
        .to_owned()
}

fn status(d: &v1::Delivery) -> String {
    v1::DeliveryStatus::try_from(d.status)
        .map(|s| s.as_str_name().to_lowercase())
        .unwrap_or_default()
        .trim_start_matches("delivery_status_")
        .to_owned()
}

fn subscription_json(s: &v1::Subscription) -> Value {
    json!({
        "id": s.id, "tenant_id": s.tenant_id, "name": s.name, "url": s.url, "event_types": s.event_types,
        "state": state(s), "headers": s.headers, "metadata": s.metadata, "max_in_flight": s.max_in_flight,
        "version": s.version, "create_time": time(s.create_time.as_ref()), "update_time": time(s.update_time.as_ref()),
    })
}

fn subscription_row(s: &v1::Subscription) -> Vec<String> {
    vec![s.id.clone(), state(s), s.event_types.join(","), s.url.clone(), s.name.clone()]
}

const SUBSCRIPTION_HEADER: [&str; 5] = ["ID", "STATE", "EVENT TYPES", "URL", "NAME"];

impl Render for v1::Subscription {
    fn json(&self) -> Value {
        subscription_json(self)
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (SUBSCRIPTION_HEADER.to_vec(), vec![subscription_row(self)])
    }
}

impl Render for Vec<v1::Subscription> {
    fn json(&self) -> Value {
        Value::Array(self.iter().map(subscription_json).collect())
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (SUBSCRIPTION_HEADER.to_vec(), self.iter().map(subscription_row).collect())
    }
}

impl Render for v1::CreateSubscriptionResponse {
    fn json(&self) -> Value {
        json!({ "subscription": self.subscription.as_ref().map(subscription_json), "secret": self.secret })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let mut header = SUBSCRIPTION_HEADER.to_vec();
        header.push("SECRET (shown once)");
        let mut row = self.subscription.as_ref().map(subscription_row).unwrap_or_default();
        row.push(self.secret.clone());
        (header, vec![row])
    }
}

impl Render for v1::CreatePortalSessionResponse {
    fn json(&self) -> Value {
        json!({
            "url": self.url,
            "session_id": self.session_id,
            "link_expire_time": time(self.link_expire_time.as_ref()),
        })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (
            vec!["SESSION", "LINK EXPIRES", "URL (opens once)"],
            vec![vec![self.session_id.clone(), time(self.link_expire_time.as_ref()), self.url.clone()]],
        )
    }
}

impl Render for v1::PublishResponse {
    fn json(&self) -> Value {
        json!({ "event_id": self.event_id, "duplicate": self.duplicate })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (vec!["EVENT ID", "DUPLICATE"], vec![vec![self.event_id.clone(), self.duplicate.to_string()]])
    }
}

impl Render for v1::Event {
    fn json(&self) -> Value {
        let payload: Value = serde_json::from_slice(&self.payload).unwrap_or(Value::Null);
        json!({
            "id": self.id, "tenant_id": self.tenant_id, "event_type": self.event_type, "payload": payload,
            "attributes": self.attributes, "matched_subscriptions": self.matched_subscriptions,
            "publish_time": time(self.publish_time.as_ref()),
        })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let row = vec![
            self.id.clone(),
            self.event_type.clone(),
            self.matched_subscriptions.to_string(),
            time(self.publish_time.as_ref()),
        ];
        (vec!["ID", "EVENT TYPE", "MATCHED", "PUBLISHED"], vec![row])
    }
}

fn delivery_json(d: &v1::Delivery) -> Value {
    json!({
        "id": d.id, "subscription_id": d.subscription_id, "event_id": d.event_id, "event_type": d.event_type,
        "status": status(d), "attempt_count": d.attempt_count,
        "last_status_code": d.last_attempt.as_ref().map(|a| a.response_status_code),
        "create_time": time(d.create_time.as_ref()), "next_attempt_time": time(d.next_attempt_time.as_ref()),
    })
}

fn delivery_row(d: &v1::Delivery) -> Vec<String> {
    let code = d.last_attempt.as_ref().map(|a| a.response_status_code.to_string()).unwrap_or_default();
    vec![d.id.clone(), status(d), d.attempt_count.to_string(), code, d.event_id.clone(), d.subscription_id.clone()]
}

const DELIVERY_HEADER: [&str; 6] = ["ID", "STATUS", "ATTEMPTS", "LAST CODE", "EVENT", "SUBSCRIPTION"];

impl Render for v1::Delivery {
    fn json(&self) -> Value {
        delivery_json(self)
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (DELIVERY_HEADER.to_vec(), vec![delivery_row(self)])
    }
}

impl Render for Vec<v1::Delivery> {
    fn json(&self) -> Value {
        Value::Array(self.iter().map(delivery_json).collect())
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (DELIVERY_HEADER.to_vec(), self.iter().map(delivery_row).collect())
    }
}

/// A deleted resource's id.
pub(crate) struct Deleted(pub(crate) String);

impl Render for Deleted {
    fn json(&self) -> Value {
        json!({ "deleted": self.0 })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (vec!["DELETED"], vec![vec![self.0.clone()]])
    }
}

/// An ended portal session's id.
pub(crate) struct Ended(pub(crate) String);

impl Render for Ended {
    fn json(&self) -> Value {
        json!({ "ended": self.0 })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (vec!["ENDED SESSION"], vec![vec![self.0.clone()]])
    }
}

impl Render for v1::RotateSecretResponse {
    fn json(&self) -> Value {
        json!({ "secret": self.secret, "previous_secret_expire_time": time(self.previous_secret_expire_time.as_ref()) })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let row = vec![self.secret.clone(), time(self.previous_secret_expire_time.as_ref())];
        (vec!["NEW SECRET (shown once)", "PREVIOUS SECRET VALID UNTIL"], vec![row])
    }
}

impl Render for v1::SendTestEventResponse {
    fn json(&self) -> Value {
        let attempt = self.attempt.as_ref();
        json!({
            "event_id": self.event_id,
            "response_status_code": attempt.map(|a| a.response_status_code),
            "error_message": attempt.map(|a| a.error_message.clone()),
            "duration_ms": attempt.and_then(|a| a.duration).map(|d| d.seconds * 1000 + i64::from(d.nanos) / 1_000_000),
        })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let attempt = self.attempt.as_ref();
        let row = vec![
            self.event_id.clone(),
            attempt.map(|a| a.response_status_code.to_string()).unwrap_or_default(),
            attempt.map(|a| a.error_message.clone()).unwrap_or_default(),
        ];
        (vec!["TEST EVENT", "STATUS", "ERROR"], vec![row])
    }
}

impl Render for v1::DeliverySummary {
    fn json(&self) -> Value {
        json!({
            "subscription_id": self.subscription_id, "subscriptions": self.subscriptions,
            "attempts": self.attempts, "succeeded": self.succeeded, "failed_attempts": self.failed_attempts,
            "dead_lettered": self.dead_lettered, "in_progress": self.in_progress,
            "consecutive_failures": self.consecutive_failures,
            "failing_since": time(self.failing_since.as_ref()),
            "last_attempt_time": time(self.last_attempt_time.as_ref()),
            "last_success_time": time(self.last_success_time.as_ref()),
        })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let row = [self.attempts, self.succeeded, self.failed_attempts, self.dead_lettered, self.in_progress]
            .iter()
            .map(u64::to_string)
            .chain([self.consecutive_failures.to_string(), time(self.last_success_time.as_ref())])
            .collect();
        (vec!["ATTEMPTS", "SUCCEEDED", "FAILED", "DEAD", "IN PROGRESS", "FAILING IN A ROW", "LAST SUCCESS"], vec![row])
    }
}

fn duration_ms(d: Option<&hookline_proto::Duration>) -> i64 {
    d.map_or(0, |d| d.seconds * 1000 + i64::from(d.nanos) / 1_000_000)
}

/// The error class of a failed attempt (`timeout`, `connect`, …); empty
/// for an answered one.
fn attempt_error(a: &v1::Attempt) -> String {
    let name = v1::AttemptError::try_from(a.error).map(|e| e.as_str_name().to_lowercase()).unwrap_or_default();
    match name.trim_start_matches("attempt_error_") {
        "none" | "unspecified" => String::new(),
        other => other.to_owned(),
    }
}

impl Render for Vec<v1::Attempt> {
    fn json(&self) -> Value {
        Value::Array(
            self.iter()
                .map(|a| {
                    json!({
                        "attempt_number": a.attempt_number, "start_time": time(a.start_time.as_ref()),
                        "duration_ms": duration_ms(a.duration.as_ref()), "response_status_code": a.response_status_code,
                        "error": attempt_error(a), "error_message": a.error_message,
                        "response_body": String::from_utf8_lossy(&a.response_body),
                    })
                })
                .collect(),
        )
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|a| {
                vec![
                    a.attempt_number.to_string(),
                    time(a.start_time.as_ref()),
                    a.response_status_code.to_string(),
                    format!("{} ms", duration_ms(a.duration.as_ref())),
                    attempt_error(a),
                    a.error_message.clone(),
                ]
            })
            .collect();
        (vec!["#", "STARTED", "STATUS", "DURATION", "ERROR", "MESSAGE"], rows)
    }
}

impl Render for v1::ReplayProgress {
    fn json(&self) -> Value {
        json!({ "replayed": self.replayed, "done": self.done })
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (vec!["REPLAYED", "DONE"], vec![vec![self.replayed.to_string(), self.done.to_string()]])
    }
}

fn event_type_json(t: &v1::EventType) -> Value {
    json!({
        "name": t.name, "description": t.description, "archived": t.archived,
        "create_time": time(t.create_time.as_ref()), "update_time": time(t.update_time.as_ref()),
    })
}

fn event_type_row(t: &v1::EventType) -> Vec<String> {
    vec![t.name.clone(), if t.archived { "archived" } else { "active" }.to_owned(), t.description.clone()]
}

const EVENT_TYPE_HEADER: [&str; 3] = ["NAME", "STATE", "DESCRIPTION"];

impl Render for v1::EventType {
    fn json(&self) -> Value {
        event_type_json(self)
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (EVENT_TYPE_HEADER.to_vec(), vec![event_type_row(self)])
    }
}

impl Render for Vec<v1::EventType> {
    fn json(&self) -> Value {
        Value::Array(self.iter().map(event_type_json).collect())
    }
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        (EVENT_TYPE_HEADER.to_vec(), self.iter().map(event_type_row).collect())
    }
}
