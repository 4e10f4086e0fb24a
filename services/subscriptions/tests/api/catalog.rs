//! The event-type catalog and strict tenants.

use hookline_proto::v1;
use tonic::Code;

use crate::support::*;

fn event_type(name: &str) -> v1::CreateEventTypeRequest {
    v1::CreateEventTypeRequest {
        tenant_id: String::new(),
        event_type: Some(v1::EventType {
            name: name.into(),
            description: format!("{name} happened"),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn event_types_are_created_listed_and_archived() {
    let (_redis, _service, mut client) = setup().await;
    for name in ["email_sent", "lead_interested", "campaign_completed"] {
        client.create_event_type(event_type(name)).await.unwrap();
    }
    let dup = client.create_event_type(event_type("email_sent")).await.unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    let bad = client.create_event_type(event_type("no spaces")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let archived = client
        .archive_event_type(v1::ArchiveEventTypeRequest { tenant_id: String::new(), name: "email_sent".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(archived.archived);
    let missing = client
        .archive_event_type(v1::ArchiveEventTypeRequest { tenant_id: String::new(), name: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let names = |r: v1::ListEventTypesResponse| r.event_types.into_iter().map(|t| t.name).collect::<Vec<_>>();
    let live = client.list_event_types(v1::ListEventTypesRequest::default()).await.unwrap().into_inner();
    assert_eq!(names(live), ["campaign_completed", "lead_interested"]);
    let first = client
        .list_event_types(v1::ListEventTypesRequest { include_archived: true, page_size: 2, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let token = first.next_page_token.clone();
    assert_eq!(names(first), ["campaign_completed", "email_sent"]);
    let second = client
        .list_event_types(v1::ListEventTypesRequest {
            include_archived: true,
            page_size: 2,
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(second.next_page_token.is_empty());
    assert_eq!(names(second), ["lead_interested"]);

    let restored = client.create_event_type(event_type("email_sent")).await.unwrap().into_inner();
    assert!(!restored.archived, "creating an archived type again restores it");
}

#[tokio::test]
async fn a_strict_tenant_only_subscribes_to_catalogued_types() {
    let (_redis, service, mut client) = setup().await;
    client.create_event_type(event_type("lead_interested")).await.unwrap();
    let settings = client
        .update_tenant_settings(v1::UpdateTenantSettingsRequest {
            settings: Some(v1::TenantSettings { strict_event_types: true, ..Default::default() }),
            update_mask: mask(&["strict_event_types"]),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(settings.strict_event_types);
    let got = client.get_tenant_settings(v1::GetTenantSettingsRequest::default()).await.unwrap().into_inner();
    assert!(got.strict_event_types);

    let err = create(&mut client, subscription("https://e.com/a", &["lead_unknown"])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("lead_unknown") && err.message().contains("CreateEventType"), "{}", err.message());
    create(&mut client, subscription("https://e.com/a", &["lead_interested", "lead_*", "*"]))
        .await
        .expect("known names and globs");

    // Other tenants are not strict.
    let mut globex = service.client(GLOBEX).await;
    create(&mut globex, subscription("https://e.com/a", &["anything"])).await.expect("globex is lenient");
}
