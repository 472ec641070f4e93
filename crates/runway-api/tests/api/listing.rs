//! Listings cap their response bytes: a page of large items stops before the one
//! that would pass the cap, and paging on returns every item exactly once.

use std::collections::HashSet;

use axum::http::StatusCode;
use runway_api::ApiConfig;
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use serde_json::{Value, json};

use crate::app::TestApp;

/// A cap small enough that a page of 100 large items cannot fit.
const CAP: usize = 16 * 1024;

async fn capped_app(cap: usize) -> TestApp {
    TestApp::with_config(ApiConfig {
        listing_max_bytes: cap,
        ..ApiConfig::default()
    })
    .await
}

/// Pages through `path` (which has a `?`), with `limit=100` if `limit`, checking
/// that every response stays under `cap`; returns every item's id, in order, and
/// how many pages it took.
async fn page_through(
    app: &TestApp,
    token: &str,
    path: &str,
    limit: bool,
    cap: usize,
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = path.to_owned();
        if limit {
            url.push_str("&limit=100");
        }
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = app.get(&url, Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.json());
        assert!(
            r.body.len() <= cap,
            "{url}: a page of {} bytes, past the {cap}-byte cap",
            r.body.len()
        );
        pages += 1;
        let page = r.json();
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty() || page["next_cursor"].is_null() || pages > 1);
        ids.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (ids, pages),
        }
    }
}

#[track_caller]
fn assert_each_once_newest_first(ids: &[String], expected: usize) {
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an item came twice");
    assert_eq!(ids.len(), expected, "an item is missing");
    let mut sorted = ids.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "not newest first");
}

#[tokio::test]
async fn a_job_listing_of_large_jobs_stays_under_the_byte_cap_and_pages_on_to_every_job_once() {
    let app = capped_app(CAP).await;
    let admin = app.admin_token().await;
    const JOBS: usize = 60;
    let labels: Vec<String> = (0..32)
        .map(|n| format!("label-{n:02}-{}", "x".repeat(40)))
        .collect();
    for n in 0..JOBS {
        let r = app
            .post_json(
                "/api/v1/jobs",
                Some(&admin),
                &json!({
                    "name": format!("{n:03} {}", "a long job name ".repeat(12)),
                    "script": "true",
                    "labels": labels,
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    }
    let (ids, pages) = page_through(&app, &admin, "/api/v1/jobs?", true, CAP).await;
    assert_each_once_newest_first(&ids, JOBS);
    // 60 jobs of ~2 KiB fit in one page of 100 but not under a 16 KiB cap.
    assert!(pages >= 6, "only {pages} pages");

    // A filtered listing is capped the same way.
    let (queued, _) = page_through(&app, &admin, "/api/v1/jobs?status=queued", true, CAP).await;
    assert_eq!(queued, ids);
}

#[tokio::test]
async fn an_audit_listing_of_long_events_stays_under_the_byte_cap_and_pages_on_to_every_event_once()
{
    let app = capped_app(CAP).await;
    let admin = app.admin_token().await;
    for n in 0..80 {
        let event = AuditEvent::new(
            Actor::System,
            AuditAction::JobReaped,
            Some(format!("subject-{n}")),
            runway_core::OffsetDateTime::now_utc(),
        )
        .with_detail(format!("{n:03} {}", "d".repeat(480)))
        .unwrap();
        app.store.append_audit(&event).await.unwrap();
    }
    let (all, pages) = page_through(&app, &admin, "/api/v1/audit?", true, CAP).await;
    // The 80 events, the admin's creation and sign-in, and nothing twice.
    let stored = app
        .store
        .list_audit(&runway_core::store::AuditQuery {
            page: runway_core::page::PageRequest {
                limit: 100,
                after: None,
            },
            ..runway_core::store::AuditQuery::default()
        })
        .await
        .unwrap();
    assert_each_once_newest_first(&all, stored.items.len());
    assert!(stored.next_cursor.is_none() && stored.items.len() > 80);
    assert!(pages >= 3, "only {pages} pages");
    let (reaped, _) =
        page_through(&app, &admin, "/api/v1/audit?action=job.reaped", true, CAP).await;
    assert_each_once_newest_first(&reaped, 80);
}

#[tokio::test]
async fn the_registration_token_list_stays_under_the_byte_cap_and_pages_on_to_every_token_once() {
    /// 30 tokens of ~500 bytes (the most one admin may create in a window).
    const TOKEN_CAP: usize = 4 * 1024;
    let app = capped_app(TOKEN_CAP).await;
    let admin = app.admin_token().await;
    let mut created = Vec::new();
    for n in 0..30 {
        let r = app
            .post_json(
                "/api/v1/registration-tokens",
                Some(&admin),
                &json!({"description": format!("{n:02} {}", "fleet ".repeat(32))}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
        created.push(
            r.json()["registration_token"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (ids, pages) = page_through(
        &app,
        &admin,
        "/api/v1/registration-tokens?",
        false,
        TOKEN_CAP,
    )
    .await;
    assert_each_once_newest_first(&ids, created.len());
    assert!(pages >= 2, "only {pages} pages");
    let mut expected = created;
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, expected);

    // A cursor from another listing is refused.
    let jobs_cursor = {
        let admin_jobs: Value = app.get("/api/v1/jobs?limit=1", Some(&admin)).await.json();
        admin_jobs["next_cursor"].as_str().map(str::to_owned)
    };
    let foreign = jobs_cursor.unwrap_or_else(|| "am9icy4wMUpE".into());
    app.get(
        &format!("/api/v1/registration-tokens?cursor={foreign}"),
        Some(&admin),
    )
    .await
    .assert_error(400, "invalid_cursor");
}
