//! One attempt, and its record: build the request (body, signatures,
//! headers; shared with `SendTestEvent` through [`request`]), send it,
//! decide what follows (`outcome`), and record it with its acknowledgement
//! (`completion`), then its metrics and any pause or disable it calls for.
//! An attempt that cannot be made, or that panics, ends the same way, as a
//! dead letter that says why.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use hookline_domain::Ordering;
use hookline_queue::DeliveryTask;
use hookline_watch::CachedSubscription;
use rand::Rng;
use tracing::Instrument;

use crate::{
    admission::ShareSlot,
    dispatch::{Job, Work},
    http::{AttemptError, AttemptResult, Outgoing, span},
    outcome::{Decision, decide, endpoint_unhealthy},
    request::{EventData, Undeliverable, body, headers},
    store::{AttemptRecord, Completion, Next, Recorded},
    worker::{Worker, now_ms},
};

/// The shortest request worth sending: a task with less time left before
/// it may be claimed again is left to that claim.
const MIN_REQUEST: Duration = Duration::from_millis(100);

/// What a caught panic said.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    text.chars().take(200).collect()
}

/// The trace context an attempt continues: its task's (the fan-out's, or
/// the attempt before), else its event's publish (the task was rebuilt
/// from a finished delivery's record, which keeps none).
fn parent_of<'a>(task: &'a DeliveryTask, event: Option<&'a EventData>) -> &'a str {
    match event {
        Some(event) if task.traceparent.is_empty() => &event.traceparent,
        _ => &task.traceparent,
    }
}

impl Worker {
    /// One attempt; if it panics, its delivery is dead-lettered with the
    /// reason rather than left pending to panic again at every claim.
    ///
    /// This is the future each attempt's task runs, so its own state is
    /// kept small: the attempt's (the HTTP request's, the completion's:
    /// kilobytes) is boxed, not copied whole into the task as it is spawned
    /// and again as it finishes.
    pub(crate) async fn guarded_attempt(self: Arc<Self>, job: Job) {
        let Job { work, permit: _permit } = job;
        let attempt = std::panic::AssertUnwindSafe(Box::pin(self.attempt(&work)));
        if let Err(panic) = futures::FutureExt::catch_unwind(attempt).await {
            let message = format!("hookline failed during this attempt (internal error: {})", panic_text(&panic));
            tracing::error!(delivery = %work.task.delivery_id, %message, "an attempt panicked; dead-lettering its delivery");
            metrics::counter!("hookline_delivery_panics_total").increment(1);
            let result = AttemptResult::not_sent(AttemptError::Undeliverable, message);
            Box::pin(self.finish(&work, &result, Decision::DeadLetter, 0)).await;
        }
    }

    /// One attempt, in its own span of the event's trace.
    async fn attempt(&self, work: &Work) {
        let span = span::attempt_span(&work.task, &work.cached);
        let traceparent = hookline_telemetry::continue_trace(&span, parent_of(&work.task, work.event.as_deref()));
        self.run_attempt(work, traceparent).instrument(span).await
    }

    async fn run_attempt(&self, work: &Work, traceparent: String) {
        let Work { task, cached, endpoint, event, read_at, .. } = work;
        let sub = &cached.subscription;
        let _share = ShareSlot { worker: self, subscription: &task.subscription_id };
        if self.request_timeout(cached).saturating_sub(read_at.elapsed()) < MIN_REQUEST {
            // Held here so long (waiting for a slot) that another consumer
            // may claim the task before a request could end: leave it to
            // that claim rather than risk two attempts at once.
            tracing::warn!(delivery = %task.delivery_id, "a task waited too long in this process to be attempted; it will be claimed again");
            self.breakers.not_sent(endpoint);
            return;
        }
        let result = match event {
            Some(event) => match self.build(cached, task, event, &traceparent, *read_at) {
                Ok(out) => {
                    let result = self.sender.send(out).await;
                    let closed = self.breakers.record(endpoint, !endpoint_unhealthy(&result));
                    if !closed.is_empty() {
                        // Deliveries deferred while it was open come back now.
                        self.wake_deferred(&closed, usize::MAX).await;
                    }
                    self.record_pace(&task.subscription_id, result.duration);
                    result
                }
                Err(undeliverable) => AttemptResult::not_sent(AttemptError::Undeliverable, undeliverable.0),
            },
            None => AttemptResult::not_sent(
                AttemptError::EventExpired,
                "the event is past its retention; nothing was sent".into(),
            ),
        };
        span::record(&tracing::Span::current(), &result);
        let jitter = rand::rng().random::<f64>();
        let decision = decide(&result, &sub.spec.retry, task.attempt, self.settings.max_retry_after, jitter);
        let published_ms = event.as_ref().map_or(0, |e| e.published_ms);
        self.finish(work, &result, decision, published_ms).await;
    }

    /// The request of one attempt, its timeout cut by the time the task
    /// already waited here: the attempt still ends before the task could
    /// be claimed again.
    fn build<'a>(
        &self,
        cached: &'a CachedSubscription,
        task: &DeliveryTask,
        event: &EventData,
        traceparent: &str,
        read_at: Instant,
    ) -> Result<Outgoing<'a>, Undeliverable> {
        let timeout = self.request_timeout(cached).saturating_sub(read_at.elapsed()).max(MIN_REQUEST);
        request(cached, &task.event_id, &task.event_type, event, traceparent, timeout).inspect_err(|e| {
            tracing::warn!(delivery = %task.delivery_id, reason = %e.0, "the request cannot be built");
        })
    }

    /// Records an attempt's outcome (with others finishing at the same
    /// time: `completion`), then its metrics and any pause or disable it
    /// calls for.
    async fn finish(&self, work: &Work, result: &AttemptResult, decision: Decision, published_ms: u64) {
        let Work { keys, entry, task, cached, .. } = work;
        let sub = &cached.subscription;
        let now = now_ms();
        let next = match decision {
            Decision::Success => Next::Done,
            Decision::Retry(delay) => Next::RetryAt(now + delay.as_millis() as u64),
            Decision::DeadLetter | Decision::Gone => Next::DeadLetter,
        };
        let trigger = if task.trigger.is_empty() { "scheduled" } else { task.trigger.as_str() };
        let record = AttemptRecord::of(result, task.attempt, trigger);
        let completion = Completion {
            entry: entry.clone(),
            task: task.clone(),
            next,
            attempt: record,
            fifo: sub.spec.ordering == Ordering::Fifo,
            now_ms: now,
        };
        let completed = self.completions.record(keys, completion).await;
        // Its in-flight slot is free (complete.lua removed the lease): a
        // task waiting for one may go.
        self.waiting.wake();
        let streak = match completed {
            Ok(Recorded::Streak(streak)) => Some(streak),
            Ok(Recorded::AlreadyDone) => None,
            Ok(Recorded::Lost) => {
                // The task went with the stream: nothing will claim it again.
                tracing::warn!(
                    delivery = %task.delivery_id, attempt = task.attempt, status = result.status,
                    "the deliveries stream is gone (Redis restarted empty?): this attempt's outcome was not recorded"
                );
                metrics::counter!("hookline_delivery_outcomes_lost_total").increment(1);
                None
            }
            Err(error) => {
                // The task stays pending and is claimed again: delivered at
                // least once, never lost.
                tracing::warn!(delivery = %task.delivery_id, %error, "could not record the attempt; it will be retried");
                return;
            }
        };
        let outcome = match decision {
            Decision::Success => "succeeded",
            Decision::Retry(_) => "retry",
            Decision::DeadLetter => "dead_lettered",
            Decision::Gone => "gone",
        };
        if self.settings.metrics_tenant_label {
            metrics::counter!("hookline_delivery_attempts_total", "outcome" => outcome, "tenant" => task.tenant.clone())
                .increment(1);
        } else {
            metrics::counter!("hookline_delivery_attempts_total", "outcome" => outcome).increment(1);
        }
        metrics::histogram!("hookline_delivery_attempt_duration_seconds").record(result.duration.as_secs_f64());
        if decision == Decision::Success && published_ms > 0 {
            let latency_ms = now.saturating_sub(published_ms);
            metrics::histogram!("hookline_publish_to_delivery_seconds").record(latency_ms as f64 / 1000.0);
        }
        tracing::debug!(
            delivery = %task.delivery_id, subscription = %sub.id, attempt = task.attempt,
            status = result.status, error = result.error.as_str(), ?decision, "attempt"
        );
        if decision == Decision::Gone {
            self.control.disable_gone(sub).await;
        } else if let Some(streak) = streak
            && next != Next::Done
            && self.settings.auto_pause.applies(streak, now)
        {
            let last =
                if result.message.is_empty() { result.error.as_str().to_owned() } else { result.message.clone() };
            self.control.pause_for_failures(sub, streak, &last).await;
        }
    }
}

/// The POST of one event to a subscription (a delivery's attempt, or a
/// test event): its body in the subscription's format, signed, with its
/// headers. A body or headers that cannot be built (or a bug that panics
/// while building them) make it undeliverable instead of taking the
/// caller down.
pub(crate) fn request<'a>(
    cached: &'a CachedSubscription,
    event_id: &str,
    event_type: &str,
    event: &EventData,
    traceparent: &str,
    timeout: Duration,
) -> Result<Outgoing<'a>, Undeliverable> {
    let sub = &cached.subscription;
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let payload = body(&sub.spec, event_id, event_type, event)?;
        let headers = headers(&sub.spec, &cached.secrets, event_id, &payload, traceparent, SystemTime::now());
        Ok((payload, headers))
    }));
    let (payload, headers) = built.unwrap_or_else(|panic| {
        tracing::error!(event = %event_id, panic = panic_text(&panic), "building the request panicked");
        Err(Undeliverable(format!("hookline could not build this request (internal error: {})", panic_text(&panic))))
    })?;
    Ok(Outgoing { url: &sub.spec.url, body: payload, headers, timeout })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_continues_its_task_trace_else_its_event_publish() {
        let mut task = DeliveryTask {
            delivery_id: "dlv_1".into(),
            event_id: "evt_1".into(),
            subscription_id: "sub_1".into(),
            tenant: "acme".into(),
            event_type: "lead_closed".into(),
            traceparent: "00-aaaa-fanout-01".into(),
            enqueued_ms: 0,
            attempt: 1,
            trigger: String::new(),
            fence: Default::default(),
        };
        let event = EventData {
            payload: b"{}".to_vec(),
            variants: Default::default(),
            occurred_ms: 0,
            published_ms: 0,
            traceparent: "00-aaaa-publish-01".into(),
        };
        assert_eq!(parent_of(&task, Some(&event)), "00-aaaa-fanout-01");
        task.traceparent.clear();
        assert_eq!(parent_of(&task, Some(&event)), "00-aaaa-publish-01", "a task rebuilt from a finished record");
        assert_eq!(parent_of(&task, None), "", "no event, nothing to continue");
    }
}
