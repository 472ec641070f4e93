//! One test over a real socket, served by axum's own server with `ConnectInfo`. The
//! `runway` binary's accept loop (timeouts, connection cap) is tested over real
//! sockets in runway-server's `tests/cli/connections.rs`.

use std::net::SocketAddr;
use std::sync::Arc;

use runway_api::{ApiConfig, router};
use runway_core::secret::Secret;
use runway_service::accounts;
use serde_json::{Value, json};

use crate::app::ADMIN_PASSWORD;

#[tokio::test]
async fn over_a_real_socket_a_user_signs_in_and_the_session_records_the_address() {
    let service = crate::app::service(runway_service::DispatchSettings::default());
    let store = Arc::clone(service.store());
    accounts::ensure_admin(store.as_ref(), Some(Secret::new(ADMIN_PASSWORD)))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(service, ApiConfig::default());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let signed_in = client
        .post(format!("{base}/api/v1/auth/sessions"))
        .header("user-agent", "socket-test")
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD, "device_name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 201);
    assert!(signed_in.headers().contains_key("x-request-id"));
    let body: Value = signed_in.json().await.unwrap();
    assert_eq!(body["session"]["ip"], "127.0.0.1");
    let token = body["token"].as_str().unwrap();

    let current = client
        .get(format!("{base}/api/v1/auth/session"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), 200);
    let body: Value = current.json().await.unwrap();
    assert_eq!(body["user"]["username"], "admin");
    assert_eq!(body["session"]["ip"], "127.0.0.1");
    assert_eq!(body["session"]["user_agent"], "socket-test");

    let missing = client
        .get(format!("{base}/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let id = missing.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], id.as_str());

    server.abort();
}
