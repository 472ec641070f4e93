//! `runway lambda`: the same Router as `runway serve`, fed by AWS Lambda.
//!
//! API Gateway (an HTTP API with one `$default` route) turns each HTTP request into
//! a payload-v2.0 JSON event; `lambda_http` turns that event into an
//! `http::Request` (method, `rawPath`, `rawQueryString`, the `cookies` array as one
//! `Cookie` header, base64 bodies decoded) and the Router's response back into the
//! v2.0 response (`Set-Cookie` headers into the `cookies` array). Runway adds two
//! steps around the Router, in [`LambdaHandler`]:
//!
//! * the client address API Gateway saw (`requestContext.http.sourceIp`) becomes
//!   the `ConnectInfo<SocketAddr>` extension that `runway serve` gets from its
//!   socket, so sessions record the same `ip` either way and the API crate needs to
//!   know nothing about Lambda;
//! * a response header that occurs more than once is joined into one
//!   comma-separated value, as the v2.0 format requires (its `headers` is a map of
//!   strings): `lambda_http` would otherwise keep only the first value.
//!
//! Shape of a cold start, following the serverless Rust samples:
//!
//! 1. the environment is checked for the runtime's variables, so running
//!    `runway lambda` outside Lambda fails with a sentence instead of the runtime
//!    crate's panic;
//! 2. the configuration comes from the environment only, logs default to JSON
//!    ([`crate::config::Config::from_env`]);
//! 3. the store — for DynamoDB, the AWS SDK client with its credentials and
//!    connection pool — is built **once**, before the invocation loop, and shared
//!    by every invocation of this execution environment;
//! 4. the first admin is created only when `RUNWAY_ADMIN_PASSWORD` is set. A
//!    generated password would be printed into CloudWatch and nowhere a person
//!    looks; operators create users with `runway admin create-user` against
//!    DynamoDB instead. Without a password no store call is made at cold start at
//!    all;
//! 5. the runtime loop polls the Runtime API for events, one at a time.
//!
//! ## Two triggers, one function
//!
//! The same function is also invoked every minute by an EventBridge schedule, to
//! run the reaper ([`runway_service::reaper`]). [`Invocation`] looks at each raw
//! event: one with `"source": "aws.events"` and `"detail-type": "Scheduled Event"`
//! runs one reaper pass and answers a small JSON report; anything else is handed to
//! `lambda_http`'s own adapter, exactly as `lambda_http::run` would. Telling them
//! apart by those two fields (not by "it is not an HTTP event") means a malformed
//! HTTP event is still rejected as one, and nothing but a schedule can start a pass.
//! (`lambda_http::Adapter` is public but undocumented; the crate's version is pinned
//! in `Cargo.lock`, and the in-process tests feed both kinds of event through it.)
//!
//! The Tokio runtime is single-threaded: Lambda hands an execution environment one
//! event at a time, so worker threads would only cost start-up time and memory (the
//! target is 128 MB). Blocking work (argon2) still runs on the blocking pool.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use anyhow::Context as _;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, header};
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use runway_service::accounts::{self, Bootstrap};
use tower::Service;

use crate::config::Config;
use crate::serve::open_stores;
use crate::telemetry;

/// Set by the Lambda runtime (and by `cargo lambda watch`): the host and port of
/// the Runtime API. Its presence is how `runway` knows it runs inside Lambda.
pub const RUNTIME_API_VAR: &str = "AWS_LAMBDA_RUNTIME_API";

/// The variables the runtime crate reads at start; it panics without them.
const REQUIRED_VARS: [&str; 4] = [
    RUNTIME_API_VAR,
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Fails, naming the variables, unless every one the Lambda runtime sets is present.
///
/// # Errors
/// If any is missing.
pub fn check_environment(is_set: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let missing: Vec<&str> = REQUIRED_VARS
        .into_iter()
        .filter(|name| !is_set(name))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "`runway lambda` runs only inside AWS Lambda (or `cargo lambda watch`): {} not set. \
         To serve on a socket, run `runway serve`",
        match missing.as_slice() {
            [one] => format!("{one} is"),
            many => format!("{} are", many.join(", ")),
        }
    );
    Ok(())
}

/// `runway lambda`: cold start, then serve invocations until the runtime stops us.
///
/// # Errors
/// Outside Lambda, a bad store configuration, a failing bootstrap, or a runtime
/// failure.
pub fn run(config: &Config) -> anyhow::Result<()> {
    check_environment(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))?;
    telemetry::init(&config.log, config.log_format)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let started = Instant::now();
        let (router, service) = cold_start(config).await?;
        tracing::info!(
            store = config.store.as_str(),
            init_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "runway lambda ready"
        );
        lambda_http::lambda_runtime::run(Invocation::new(router, service))
            .await
            .map_err(|err| anyhow::anyhow!(err))
            .context("the Lambda runtime loop failed")
    })
}

/// Everything done once per execution environment: open the store, create the
/// first admin if `RUNWAY_ADMIN_PASSWORD` asks for it, build the Router (and the
/// service the reaper runs on).
///
/// # Errors
/// If the store cannot be set up or the bootstrap fails.
pub async fn cold_start(config: &Config) -> anyhow::Result<(Router, runway_service::Service)> {
    let stores = open_stores(config).await?;
    match config.admin_password.clone() {
        Some(password) => {
            let bootstrap = accounts::ensure_admin(stores.records.as_ref(), Some(password))
                .await
                .context("cannot create the first admin user")?;
            if matches!(bootstrap, Bootstrap::CreatedWithGivenPassword) {
                tracing::info!(
                    user.name = "admin",
                    "created user `admin` with the password from RUNWAY_ADMIN_PASSWORD"
                );
            }
        }
        None => tracing::debug!(
            "RUNWAY_ADMIN_PASSWORD is not set: no first-start admin on Lambda; \
             create users with `runway admin create-user`"
        ),
    }
    let service = stores
        .service(config.lambda_dispatch_settings())
        .with_limits(config.limits.clone());
    let router = runway_api::router(
        service.clone(),
        runway_api::ApiConfig {
            live_log_streams: false,
            ..config.api_config()
        },
    );
    Ok((router, service))
}

/// Whether a raw Lambda event is an EventBridge schedule's tick.
#[must_use]
pub fn is_scheduled_event(event: &serde_json::Value) -> bool {
    event.get("source").and_then(serde_json::Value::as_str) == Some("aws.events")
        && event.get("detail-type").and_then(serde_json::Value::as_str) == Some("Scheduled Event")
}

/// The function's handler: an EventBridge tick runs the reaper, anything else is
/// an API Gateway HTTP event for the Router. See the module docs.
#[derive(Clone)]
pub struct Invocation {
    http: lambda_http::Adapter<'static, axum::response::Response, LambdaHandler>,
    service: runway_service::Service,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Invocation {
    /// Both handlers, over one Router and its service.
    #[must_use]
    pub fn new(router: Router, service: runway_service::Service) -> Self {
        Self {
            http: lambda_http::Adapter::from(LambdaHandler::new(router)),
            service,
        }
    }
}

impl Service<lambda_http::LambdaEvent<serde_json::Value>> for Invocation {
    type Response = serde_json::Value;
    type Error = lambda_http::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<serde_json::Value, lambda_http::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::poll_ready(&mut self.http, cx).map_err(|never: Infallible| match never {})
    }

    fn call(&mut self, event: lambda_http::LambdaEvent<serde_json::Value>) -> Self::Future {
        let lambda_http::LambdaEvent { payload, context } = event;
        if is_scheduled_event(&payload) {
            let service = self.service.clone();
            return Box::pin(async move {
                let report = service.reap().await.map_err(|err| {
                    tracing::error!(error = %err, "the scheduled reaper pass failed");
                    lambda_http::Error::from(format!("the reaper pass failed: {err}"))
                })?;
                tracing::info!(reaper.report = %report, "scheduled reaper pass");
                Ok(serde_json::json!({
                    "reaped": {
                        "lost": report.lost,
                        "requeued": report.requeued,
                        "timed_out": report.timed_out,
                        "canceled": report.canceled,
                        "expired": report.expired,
                    }
                }))
            });
        }
        let request = match serde_json::from_value(payload) {
            Ok(request) => request,
            Err(err) => {
                return Box::pin(async move {
                    Err(lambda_http::Error::from(format!(
                        "the event is neither an API Gateway HTTP event nor a schedule: {err}"
                    )))
                });
            }
        };
        let response = self
            .http
            .call(lambda_http::LambdaEvent::new(request, context));
        Box::pin(async move {
            let response = response.await.map_err(|never: Infallible| match never {})?;
            Ok(serde_json::to_value(response)?)
        })
    }
}

/// The Router as a `lambda_http` service: records the API Gateway client address
/// as `ConnectInfo`, then calls the Router. Clone is cheap (the Router is shared).
#[derive(Debug, Clone)]
pub struct LambdaHandler {
    router: Router,
}

impl LambdaHandler {
    /// Wraps `router`.
    #[must_use]
    pub const fn new(router: Router) -> Self {
        Self { router }
    }
}

/// The future of one invocation. Boxed: one allocation per request is nothing next
/// to the JSON (de)serialisation of the event around it.
pub type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

impl Service<lambda_http::Request> for LambdaHandler {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = HandlerFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<lambda_http::Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut request: lambda_http::Request) -> Self::Future {
        if let Some(ip) = source_ip(&request) {
            // API Gateway does not pass the client's port; 0 stands for "unknown".
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, 0)));
        }
        let response = self.router.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            join_repeated_headers(response.headers_mut());
            Ok(response)
        })
    }
}

/// Joins every header that occurs more than once into one `a, b` value (RFC 9110
/// §5.3), except `Set-Cookie`, which cannot be joined and which `lambda_http` moves
/// into the response's `cookies` array one by one.
fn join_repeated_headers(headers: &mut HeaderMap) {
    let repeated: Vec<header::HeaderName> = headers
        .keys()
        .filter(|name| {
            *name != header::SET_COOKIE && headers.get_all(*name).iter().nth(1).is_some()
        })
        .cloned()
        .collect();
    for name in repeated {
        let values: Vec<&[u8]> = headers
            .get_all(&name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let joined = values.join(&b", "[..]);
        match HeaderValue::from_bytes(&joined) {
            Ok(value) => {
                headers.insert(name, value);
            }
            // Cannot happen (joining valid values with ", " stays valid); keep them.
            Err(_) => tracing::warn!(header = %name, "cannot join a repeated response header"),
        }
    }
}

/// The client address API Gateway saw: `requestContext.http.sourceIp`. It is the
/// TCP peer of API Gateway's edge, not a header a client can forge (unlike
/// `X-Forwarded-For`, whose leftmost entry is whatever the client sent).
fn source_ip(request: &lambda_http::Request) -> Option<IpAddr> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.as_deref()?.parse().ok(),
        // Only the HTTP API event is compiled in, but the enum is non-exhaustive.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_response_headers_are_joined_but_set_cookie_is_left_alone() {
        let mut headers = HeaderMap::new();
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        join_repeated_headers(&mut headers);
        let vary: Vec<_> = headers.get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["origin, accept-encoding"]);
        assert_eq!(headers.get_all(header::SET_COOKIE).iter().count(), 2);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn outside_lambda_the_missing_runtime_variables_are_named() {
        let err = check_environment(|_| false).unwrap_err().to_string();
        assert!(err.contains("AWS_LAMBDA_RUNTIME_API"), "{err}");
        assert!(err.contains("runway serve"), "{err}");
        let err = check_environment(|name| name != "AWS_LAMBDA_FUNCTION_VERSION")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AWS_LAMBDA_FUNCTION_VERSION is not set"),
            "{err}"
        );
        assert!(check_environment(|_| true).is_ok());
    }
}
