//! What the server logs: one line per request with its status, route, duration and
//! request id, in JSON when asked, and never a token or a password; and every line
//! is on stderr, whole and in order, by the time the process has exited.

use serde_json::Value;

use crate::support::{ADMIN_PASSWORD, Server, Start, data_dir};

/// The stderr lines that parse as JSON objects.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

#[tokio::test]
async fn json_logs_have_one_line_per_request_with_status_route_duration_and_request_id() {
    let (_tmp, data) = data_dir();
    let server = Server::start(
        &data,
        Start {
            admin_password: Some(ADMIN_PASSWORD),
            env: vec![("RUNWAY_LOG_FORMAT", "json".into())],
            ..Start::default()
        },
    )
    .await;
    let token = server.sign_in("admin", ADMIN_PASSWORD).await;
    let job_id = runway_core::id::JobId::new().to_string();
    let response = server
        .http
        .get(format!("{}/api/v1/jobs/{job_id}", server.base))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let (_, stderr) = server.stop().await;

    let lines = json_lines(&stderr);
    assert!(!lines.is_empty(), "no JSON log lines in:\n{stderr}");
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("http.status").is_some())
        .collect();
    let mine: Vec<&&Value> = requests
        .iter()
        .filter(|l| l["request_id"] == "trace-me-1")
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "exactly one line for the request: {requests:#?}"
    );
    let line = mine[0];
    assert_eq!(line["http.status"], 404);
    assert_eq!(line["http.method"], "GET");
    // The route template, never the raw path with its id.
    assert_eq!(line["http.route"], "/api/v1/jobs/{id}");
    assert!(!stderr.contains(&job_id));
    assert_eq!(line["error.code"], "not_found");
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0, "{line}");
    assert_eq!(line["level"], "INFO");
    // The sign-in has its own line, with its own request id.
    assert!(
        requests
            .iter()
            .any(|l| l["http.route"] == "/api/v1/auth/sessions"
                && l["http.status"] == 201
                && l["request_id"].as_str().is_some_and(|id| id.len() == 26))
    );
    // Secrets never reach the log.
    assert!(!stderr.contains(&token));
    assert!(!stderr.contains(ADMIN_PASSWORD));
}

#[tokio::test]
async fn pretty_logs_are_single_readable_lines_with_the_same_fields() {
    let (_tmp, data) = data_dir();
    let server = Server::start(
        &data,
        Start {
            admin_password: Some(ADMIN_PASSWORD),
            ..Start::default()
        },
    )
    .await;
    let (status, _) = server.get("/api/v1/info", "").await;
    assert_eq!(status, 200);
    let (_, stderr) = server.stop().await;
    assert!(
        json_lines(&stderr).is_empty(),
        "pretty is not JSON:\n{stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains(r#"http.route="/api/v1/info""#))
        .unwrap_or_else(|| panic!("no request line for /api/v1/info in:\n{stderr}"));
    for field in [
        "http.status=200",
        r#"http.method="GET""#,
        "duration_ms=",
        "request_id=",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
}

/// The number in a `request_id="order-NNNN"` field of a log line, if any.
fn order_number(line: &str) -> Option<usize> {
    line.split(r#"request_id="order-"#)
        .nth(1)?
        .get(..4)?
        .parse()
        .ok()
}

#[tokio::test]
async fn every_request_logged_right_before_sigterm_is_on_stderr_whole_and_in_order() {
    const REQUESTS: usize = 300;
    let (_tmp, data) = data_dir();
    let server = Server::start(&data, Start::default()).await;
    for n in 0..REQUESTS {
        let response = server
            .http
            .get(server.url("/health"))
            .header("x-request-id", format!("order-{n:04}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // SIGTERM at once: whatever buffers the log, the last lines must not be lost.
    let (_, stderr) = server.stop().await;

    let lines: Vec<&str> = stderr.lines().collect();
    let logged: Vec<(usize, &str)> = lines
        .iter()
        .filter_map(|l| Some((order_number(l)?, *l)))
        .collect();
    let numbers: Vec<usize> = logged.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers,
        (0..REQUESTS).collect::<Vec<_>>(),
        "stderr:\n{stderr}"
    );
    for (_, line) in &logged {
        // A whole line: it starts with its own timestamp and carries every field.
        assert!(line.starts_with("20"), "{line}");
        for field in [r#"http.route="/health""#, "http.status=200", "duration_ms="] {
            assert!(line.contains(field), "{field} missing from {line}");
        }
    }
    // And the shutdown's own last line comes after all of them.
    let last_request = lines
        .iter()
        .rposition(|l| order_number(l).is_some())
        .unwrap();
    let clean = lines
        .iter()
        .position(|l| l.contains("shut down cleanly"))
        .unwrap_or_else(|| panic!("no `shut down cleanly` line in:\n{stderr}"));
    assert!(clean > last_request, "{stderr}");
}
