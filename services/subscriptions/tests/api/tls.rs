//! Optional TLS on the gRPC port.

use hookline_auth::BearerToken;
use hookline_proto::v1::{self, subscription_service_client::SubscriptionServiceClient};
use hookline_subscriptions::TlsSection;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::support::*;

#[tokio::test]
async fn with_tls_configured_clients_connect_over_tls_only() {
    let dir = std::env::temp_dir().join(format!("hookline-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();

    let redis = RedisServer::start();
    let mut config = config(&redis.url());
    config.tls = Some(TlsSection { cert_path, key_path, client_ca_path: None });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hookline_subscriptions::serve(config, listener, async move {
        let _ = stopped.await;
    }));

    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(cert.cert.pem())).domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{addr}")).unwrap().tls_config(tls).unwrap();
    let mut client =
        SubscriptionServiceClient::with_interceptor(channel.connect_lazy(), BearerToken::new(ACME).unwrap());
    let mut ok = false;
    for _ in 0..100 {
        if client.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "a TLS client is served");

    let plain = Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
    let mut plain = SubscriptionServiceClient::with_interceptor(plain, BearerToken::new(ACME).unwrap());
    assert!(plain.list_subscriptions(v1::ListSubscriptionsRequest::default()).await.is_err(), "plaintext is refused");
    let _ = std::fs::remove_dir_all(dir);
}
