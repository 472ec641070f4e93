//! What bounds a connection before any request exists: the header-read timeout
//! (a slowloris client is cut off) and the connection cap (the connection past it
//! waits until one closes). Raw TCP, because an HTTP client would not misbehave.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{Server, Start, data_dir};

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

fn start_opts(env: &[(&'static str, &str)]) -> Start {
    Start {
        admin_password: Some(crate::support::ADMIN_PASSWORD),
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        ..Start::default()
    }
}

/// Reads until the server closes the connection, at most `within`.
async fn read_to_close(conn: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, conn.read_to_end(&mut out)).await {
        // A reset counts as closed too: the server is gone from this connection.
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_client_that_sends_half_a_request_line_and_stalls_is_disconnected_within_the_header_timeout()
 {
    let (_tmp, data) = data_dir();
    let server = Server::start(
        &data,
        start_opts(&[("RUNWAY_HEADER_READ_TIMEOUT_SECONDS", "1")]),
    )
    .await;

    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    slow.write_all(b"GET /heal").await.unwrap();
    let started = Instant::now();
    let answer = read_to_close(&mut slow, Duration::from_secs(10))
        .await
        .expect("the server closes the stalled connection");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // An idle connection that never sends a byte is closed the same way.
    let mut idle = TcpStream::connect(server.addr()).await.unwrap();
    read_to_close(&mut idle, Duration::from_secs(10))
        .await
        .expect("the server closes the idle connection");

    // And the server still serves everyone else.
    let (status, _) = server
        .send(reqwest::Method::GET, "/health", None, None)
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn the_connection_past_the_cap_is_served_only_once_another_closes() {
    let (_tmp, data) = data_dir();
    let server = Server::start(
        &data,
        start_opts(&[
            ("RUNWAY_MAX_CONNECTIONS", "2"),
            ("RUNWAY_HEADER_READ_TIMEOUT_SECONDS", "60"),
        ]),
    )
    .await;

    let first = TcpStream::connect(server.addr()).await.unwrap();
    let _second = TcpStream::connect(server.addr()).await.unwrap();
    // Let the server accept both, so the third is the one past the cap.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut third = TcpStream::connect(server.addr()).await.unwrap();
    third.write_all(HEALTH).await.unwrap();
    assert!(
        read_to_close(&mut third, Duration::from_millis(1500))
            .await
            .is_none(),
        "the third connection is answered while two are open"
    );

    drop(first);
    let answer = read_to_close(&mut third, Duration::from_secs(10))
        .await
        .expect("the third connection is served once the first closes");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let (_, stderr) = server.stop().await;
    assert!(stderr.contains("connection cap reached"), "{stderr}");
}
