//! Graceful shutdown on SIGTERM.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{ADMIN_PASSWORD, Server, Start, data_dir};

/// A sign-in request whose body is sent in two halves, so it is in flight between.
fn split_sign_in() -> (String, String, String) {
    let body = format!(r#"{{"username":"admin","password":"{ADMIN_PASSWORD}"}}"#);
    let head = format!(
        "POST /api/v1/auth/sessions HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (first, second) = body.split_at(10);
    (head, first.to_owned(), second.to_owned())
}

fn start_opts(grace: &str) -> Start {
    Start {
        admin_password: Some(ADMIN_PASSWORD),
        env: vec![("RUNWAY_SHUTDOWN_GRACE_SECONDS", grace.to_owned())],
        ..Start::default()
    }
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_with_status_0() {
    let (_tmp, data) = data_dir();
    let mut server = Server::start(&data, start_opts("30")).await;
    let (head, first, second) = split_sign_in();

    let mut conn = TcpStream::connect(server.addr()).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(first.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    // Give the server time to parse the head, so the request is truly in flight.
    tokio::time::sleep(Duration::from_secs(1)).await;

    server.sigterm().await;
    let refused = tokio::time::timeout(Duration::from_secs(20), async {
        while TcpStream::connect(server.addr()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "new connections are refused while draining"
    );

    conn.write_all(second.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut response))
        .await
        .expect("the in-flight request is answered")
        .unwrap();
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "the in-flight sign-in completes: {response}"
    );
    assert!(response.contains("rws_"), "{response}");

    let status = server.wait().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    let stderr = server.stderr();
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
}

#[tokio::test]
async fn a_request_that_outlives_the_grace_period_is_cut_off_and_the_exit_says_so() {
    let (_tmp, data) = data_dir();
    let mut server = Server::start(&data, start_opts("1")).await;
    let (head, first, _never_sent) = split_sign_in();
    let mut conn = TcpStream::connect(server.addr()).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    server.sigterm().await;
    let status = tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .expect("the grace period ends the process");
    assert_eq!(status.code(), Some(1));
    let stderr = server.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    let warned = lines
        .iter()
        .position(|l| l.contains("after the shutdown grace period"))
        .unwrap_or_else(|| panic!("no grace-period warning in:\n{stderr}"));
    let failed = lines
        .iter()
        .position(|l| l.starts_with("error: requests were still in flight"))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    // The log is written out before `main` prints the error, so the story reads
    // in order even if the two take different paths to stderr.
    assert!(warned < failed, "{stderr}");
    drop(conn);
}
