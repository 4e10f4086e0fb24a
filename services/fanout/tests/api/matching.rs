//! Which subscriptions get a delivery task: exact, glob, wildcard, scope,
//! filters, state; and read-your-writes for fresh subscriptions.

use std::collections::HashMap;

use hookline_proto::v1;

use crate::support::*;

fn scoped(mut sub: v1::Subscription, label: &str, values: &[&str]) -> v1::Subscription {
    sub.scope.insert(label.into(), v1::ScopeValues { values: values.iter().map(|v| (*v).into()).collect() });
    sub
}

fn filtered(mut sub: v1::Subscription, path: &str, operator: v1::FilterOperator, values: &[&str]) -> v1::Subscription {
    sub.filters.push(v1::PayloadFilter {
        path: path.into(),
        operator: operator as i32,
        values: values.iter().map(|v| (*v).into()).collect(),
    });
    sub
}

#[tokio::test]
async fn each_event_reaches_exactly_the_subscriptions_that_match_it() {
    let mut stack = Stack::start().await;
    let exact = stack.subscribe(subscription("https://e.com/exact", &["lead_closed"])).await;
    let glob = stack.subscribe(subscription("https://e.com/glob", &["lead_*"])).await;
    let all = stack.subscribe(subscription("https://e.com/all", &["*"])).await;
    let team = stack.subscribe(scoped(subscription("https://e.com/team", &["*"]), "team_id", &["1", "2"])).await;
    let promo = stack
        .subscribe(filtered(
            subscription("https://e.com/promo", &["*"]),
            "campaign_name",
            v1::FilterOperator::Glob,
            &["summer-promo-*"],
        ))
        .await;
    let other_type = stack.subscribe(subscription("https://e.com/email", &["email_sent"])).await;
    let disabled = stack.subscribe(subscription("https://e.com/disabled", &["*"])).await;
    stack
        .subs
        .disable_subscription(v1::DisableSubscriptionRequest { id: disabled.clone(), ..Default::default() })
        .await
        .unwrap();
    let paused = stack.subscribe(subscription("https://e.com/paused", &["*"])).await;
    stack
        .subs
        .pause_subscription(v1::PauseSubscriptionRequest { id: paused.clone(), ..Default::default() })
        .await
        .unwrap();
    // Another tenant's wildcard never sees acme's events.
    let mut globex = stack.admin_subs.clone();
    globex
        .create_subscription(v1::CreateSubscriptionRequest {
            subscription: Some(v1::Subscription {
                tenant_id: "globex".into(),
                ..subscription("https://g.com/", &["*"])
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    let mut events = stack.events(ACME).await;
    let a = publish(
        &mut events,
        with_attributes(event("lead_closed", r#"{"campaign_name":"summer-promo-7"}"#), &[("team_id", "2")]),
    )
    .await;
    let b = publish(
        &mut events,
        with_attributes(event("email_sent", r#"{"campaign_name":"winter"}"#), &[("team_id", "3")]),
    )
    .await;
    let c = publish(&mut events, event("lead_interested", "[1,2,3]")).await;
    stack.wait_tasks(6 + 3 + 3).await;

    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    assert_eq!(stack.receivers(&a.event_id).await, sorted(vec![&exact, &glob, &all, &team, &promo, &paused]));
    assert_eq!(stack.receivers(&b.event_id).await, sorted(vec![&all, &other_type, &paused]));
    assert_eq!(stack.receivers(&c.event_id).await, sorted(vec![&glob, &all, &paused]));

    let got = events.get_event(v1::GetEventRequest { id: a.event_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.fanout_state, v1::FanoutState::Done as i32);
    assert_eq!(got.matched_subscriptions, 6);
    assert_eq!(got.attributes, HashMap::from([("team_id".to_owned(), "2".to_owned())]));
    assert_eq!(got.payload, br#"{"campaign_name":"summer-promo-7"}"#);
}

#[tokio::test]
async fn a_subscription_created_just_before_a_publish_receives_that_event() {
    let mut stack = Stack::start().await;
    let mut events = stack.events(ACME).await;
    let mut expected = Vec::new();
    for i in 0..25 {
        let event_type = format!("fresh_{i}");
        let sub = stack.subscribe(subscription(&format!("https://e.com/{i}"), &[&event_type])).await;
        let published = publish(&mut events, event(&event_type, "{}")).await;
        expected.push((published.event_id, sub));
    }
    stack.wait_tasks(25).await;
    for (event_id, sub) in expected {
        assert_eq!(stack.receivers(&event_id).await, vec![sub], "event {event_id}");
    }
}

#[tokio::test]
async fn delivery_tasks_carry_the_versioned_fields_delivery_needs() {
    let mut stack = Stack::start().await;
    let sub = stack.subscribe(subscription("https://e.com/a", &["a"])).await;
    let mut events = stack.events(ACME).await;
    let mut req = tonic::Request::new(event("a", "{}"));
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    req.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    let published = events.publish(req).await.unwrap().into_inner();
    let task = stack.wait_tasks(1).await.remove(0);
    assert!(task.delivery_id.starts_with("dlv_"));
    assert_eq!((task.event_id.as_str(), task.subscription_id.as_str()), (published.event_id.as_str(), sub.as_str()));
    assert_eq!((task.tenant.as_str(), task.event_type.as_str(), task.attempt), ("acme", "a", 1));
    assert_eq!(task.traceparent, traceparent, "trace context travels into the task");
}
