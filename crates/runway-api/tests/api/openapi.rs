use axum::http::StatusCode;

use crate::app::TestApp;
use crate::matrix::{Caller, ROUTES, Takes};

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_route() {
    let app = TestApp::new().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/json");
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = doc["paths"].as_object().unwrap();
    for &(method, path, caller, _) in ROUTES {
        let op = paths
            .get(path)
            .and_then(|p| p.get(method))
            .unwrap_or_else(|| panic!("{method} {path} is missing from the OpenAPI document"));
        if caller != Caller::Anyone {
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} does not document its 401"
            );
        }
    }
    let listed: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        listed,
        ROUTES.len(),
        "the document lists a route the test does not know"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert_eq!(doc, serde_json::to_value(runway_api::openapi()).unwrap());
}

fn collect_refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v.as_str()) {
                    ("$ref", Some(r)) => out.push(r.to_owned()),
                    _ => collect_refs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_schema_the_document_refers_to_is_defined() {
    let doc = serde_json::to_value(runway_api::openapi()).unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} is not defined"
        );
    }
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = TestApp::new().await;
    for &(method, path, _, _) in ROUTES {
        let path = path.replace("{id}", &ulid::Ulid::new().to_string());
        let method = method.to_uppercase().parse().unwrap();
        let r = app
            .send(
                TestApp::request(method, &path, None)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        if r.status == StatusCode::NOT_FOUND {
            // Only a missing record, never a missing route, may be a 404 here.
            assert!(
                !r.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("route"),
                "{path}"
            );
        }
    }
}

/// Where `url`, as written in the page at `/docs`, takes the browser.
fn resolved_from_the_docs_page(url: &str) -> reqwest::Url {
    reqwest::Url::parse("http://runway.test/docs")
        .unwrap()
        .join(url)
        .unwrap()
}

#[tokio::test]
async fn the_interactive_docs_are_an_html_page_with_a_csp_that_loads_only_same_origin_assets() {
    let app = TestApp::new().await;
    let r = app.get("/docs", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").starts_with("text/html"));
    let csp = r.header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = String::from_utf8_lossy(&r.body);
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("Runway"));
    assert!(!html.contains("<script>"), "no inline script: {html}");

    let urls = referenced_urls(&html);
    assert!(urls.len() >= 5, "{urls:?}");
    let mut scripts = 0;
    for url in &urls {
        assert!(
            !url.contains("//") && !url.starts_with('/'),
            "{url} is not a same-origin relative URL"
        );
        if url.starts_with("data:") || url == "openapi.json" {
            continue;
        }
        let target = resolved_from_the_docs_page(url);
        assert_eq!(target.host_str(), Some("runway.test"), "{url}");
        let path = target.path();
        assert!(path.starts_with("/docs/assets/"), "{path}");
        let asset = app.get(path, None).await;
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert!(!asset.body.is_empty(), "{path}");
        let wanted = if path.ends_with(".js") {
            scripts += 1;
            "text/javascript; charset=utf-8"
        } else {
            assert!(path.ends_with(".css"), "{path}");
            "text/css; charset=utf-8"
        };
        assert_eq!(asset.header("content-type"), wanted, "{path}");
        assert_eq!(asset.header("x-content-type-options"), "nosniff");
        assert_eq!(asset.header("cache-control"), "public, max-age=86400");
        // Not HTML, so the policy that allows nothing.
        assert_eq!(
            asset.header("content-security-policy"),
            "default-src 'none'; frame-ancestors 'none'"
        );
    }
    assert_eq!(scripts, 3, "the bundle, the preset and the initializer");
}

/// Every `src="…"` and `href="…"` in `html`.
fn referenced_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').unwrap();
            urls.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    urls
}

#[tokio::test]
async fn the_docs_initializer_starts_swagger_ui_on_this_servers_own_document() {
    let app = TestApp::new().await;
    let page = app.get("/docs", None).await;
    let html = String::from_utf8_lossy(&page.body);
    let initializer = referenced_urls(&html)
        .into_iter()
        .find(|u| u.starts_with("docs/assets/swagger-initializer.js"))
        .expect("the page loads the initializer");
    let r = app
        .get(resolved_from_the_docs_page(&initializer).path(), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let script = String::from_utf8_lossy(&r.body);
    assert!(script.contains("SwaggerUIBundle({"), "{script}");
    let url = script
        .split("\"url\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no spec url in {script}"));
    assert_eq!(resolved_from_the_docs_page(url).path(), "/openapi.json");
    assert!(script.contains("\"validatorUrl\": \"none\""), "{script}");
    assert!(script.contains("\"layout\": \"BaseLayout\""), "{script}");
    assert!(!script.contains("http"), "no other origin: {script}");
}

#[tokio::test]
async fn only_the_files_the_docs_page_loads_are_served() {
    let app = TestApp::new().await;
    // Swagger UI ships these too; the page does not load them.
    for path in [
        "/docs/assets/swagger-ui-es-bundle.js",
        "/docs/assets/oauth2-redirect.html",
        "/docs/assets/index.html",
        "/docs/assets/swagger-ui-bundle.js.map",
    ] {
        let r = app.get(path, None).await;
        r.assert_error(404, "not_found");
    }
}

/// The operation object of `method path` in the served document.
fn operation<'a>(doc: &'a serde_json::Value, method: &str, path: &str) -> &'a serde_json::Value {
    &doc["paths"][path][method]
}

#[tokio::test]
async fn every_route_documents_the_statuses_its_body_query_and_token_can_bring() {
    let doc = serde_json::to_value(runway_api::openapi()).unwrap();
    for &(method, path, caller, takes) in ROUTES {
        let op = operation(&doc, method, path);
        let mut wanted = vec!["503"];
        match takes {
            Takes::Json | Takes::OptionalJson => {
                wanted.extend(["400", "408", "413", "415", "422"]);
            }
            Takes::Octets => wanted.extend(["408", "413", "415"]),
            Takes::Nothing => {}
        }
        if caller != Caller::Anyone {
            wanted.push("401");
        }
        let has_query = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
        if has_query {
            wanted.push("400");
        }
        for status in wanted {
            let response = &op["responses"][status];
            assert!(
                response["description"].is_string(),
                "{method} {path} does not document its {status}"
            );
            if status != "304" {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_document_states_the_limits_the_validators_enforce() {
    use runway_core::job::limits;
    let doc = serde_json::to_value(runway_api::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];

    let spec = &schemas["JobSpec"];
    assert_eq!(
        spec["additionalProperties"], false,
        "unknown fields are refused"
    );
    let p = &spec["properties"];
    assert_eq!(p["name"]["maxLength"], limits::NAME_MAX);
    assert_eq!(p["script"]["maxLength"], limits::SCRIPT_MAX);
    assert_eq!(p["labels"]["maxItems"], limits::LABELS_MAX);
    assert_eq!(p["labels"]["items"]["maxLength"], limits::LABEL_MAX);
    assert_eq!(p["queue"]["maxLength"], limits::LABEL_MAX);
    assert_eq!(p["env"]["maxProperties"], limits::ENV_MAX);
    assert_eq!(p["env"]["propertyNames"]["maxLength"], limits::ENV_KEY_MAX);
    assert_eq!(
        p["env"]["additionalProperties"]["maxLength"],
        limits::ENV_VALUE_MAX
    );
    assert_eq!(p["secrets"]["writeOnly"], true);
    assert_eq!(p["priority"]["minimum"], *limits::PRIORITY.start());
    assert_eq!(p["priority"]["maximum"], *limits::PRIORITY.end());
    assert_eq!(
        p["timeout_seconds"]["minimum"],
        *limits::TIMEOUT_SECONDS.start()
    );
    assert_eq!(
        p["timeout_seconds"]["maximum"],
        *limits::TIMEOUT_SECONDS.end()
    );
    assert_eq!(p["max_retries"]["maximum"], limits::MAX_RETRIES);

    let register = &schemas["RegisterRequest"]["properties"];
    assert_eq!(
        register["name"]["maxLength"],
        runway_service::dispatch::MAX_AGENT_NAME_LEN
    );
    assert_eq!(
        register["capacity"]["maximum"],
        runway_service::dispatch::MAX_CAPACITY
    );
    assert_eq!(
        register["version"]["maxLength"],
        runway_service::dispatch::MAX_VERSION_LEN
    );
    assert_eq!(
        schemas["HeartbeatRequest"]["properties"]["running_job_ids"]["maxItems"],
        runway_service::dispatch::MAX_REPORTED_JOBS
    );

    let sign_in = &schemas["SignInRequest"]["properties"];
    assert_eq!(
        sign_in["username"]["maxLength"],
        runway_core::user::MAX_USERNAME_LEN
    );
    assert_eq!(
        sign_in["password"]["maxLength"],
        runway_service::accounts::MAX_PASSWORD_LEN
    );
    assert_eq!(
        sign_in["device_name"]["maxLength"],
        runway_service::sessions::MAX_DEVICE_NAME_LEN
    );

    // Every id has the shape `Ulid::from_string` accepts.
    assert_eq!(
        schemas["JobSummary"]["properties"]["id"]["$ref"],
        "#/components/schemas/JobId"
    );
    assert_eq!(schemas["JobId"]["pattern"], runway_core::id::ULID_PATTERN);
    // A listing's `limit` is what `page_request` accepts.
    let limit = operation(&doc, "get", "/api/v1/jobs")["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], runway_core::page::MAX_LIMIT);
    // A parameter is never null, though `Option` made it nullable.
    assert_eq!(limit["schema"]["type"], "integer");
}

#[tokio::test]
async fn every_integer_states_the_range_of_its_rust_type() {
    let doc = serde_json::to_value(runway_api::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let capacity = &schemas["RegisteredAgent"]["properties"]["capacity"];
    assert_eq!(capacity["format"], "uint32");
    assert_eq!(capacity["minimum"], 0);
    assert_eq!(capacity["maximum"], u32::MAX);
    let log_bytes = &schemas["FinishRequest"]["properties"]["log_bytes"];
    assert_eq!(log_bytes["maximum"], u64::MAX);
    let exit_code = &schemas["FinishRequest"]["properties"]["exit_code"];
    assert_eq!(exit_code["minimum"], i32::MIN);
    assert_eq!(exit_code["maximum"], i32::MAX);
    // One a field states itself is kept.
    assert_eq!(
        schemas["JobSpec"]["properties"]["timeout_seconds"]["maximum"],
        172_800
    );
}

#[tokio::test]
async fn a_closed_request_type_flattened_into_a_response_is_open_there() {
    let doc = serde_json::to_value(runway_api::openapi()).unwrap();
    let job = &doc["components"]["schemas"]["Job"];
    let parts = job["allOf"].as_array().expect("Job flattens JobSpec");
    let spec = parts
        .iter()
        .find(|p| p["properties"]["script"].is_object())
        .expect("the spec's fields are inline in Job");
    assert!(spec["additionalProperties"].is_null(), "{spec}");
    assert!(
        parts
            .iter()
            .all(|p| p["$ref"] != "#/components/schemas/JobSpec")
    );
    // The request type itself stays closed.
    assert_eq!(
        doc["components"]["schemas"]["JobSpec"]["additionalProperties"],
        false
    );
}

#[tokio::test]
async fn a_number_without_a_fraction_is_the_integer_the_schema_says_it_is() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let r = app
        .post_json(
            "/api/v1/jobs",
            Some(&admin),
            &serde_json::json!({"name": "n", "script": "true", "priority": -215.0, "timeout_seconds": 60.0}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["priority"], -215);
    assert_eq!(r.json()["timeout_seconds"], 60);
    let r = app
        .post_json(
            "/api/v1/jobs",
            Some(&admin),
            &serde_json::json!({"name": "n", "script": "true", "priority": 1.5}),
        )
        .await;
    let message = r.assert_error(422, "validation_failed");
    assert!(message.starts_with("priority:"), "{message}");
}
