//! A ceiling under `RUNWAY_LOG` for the crates that log what must never be logged.
//!
//! At `debug` and `trace` the AWS SDK logs its requests and responses: the SigV4
//! canonical request and signing material (`aws_sigv4`), whole DynamoDB items and
//! S3 bodies (`aws_smithy_runtime`, `aws_sdk_*`), credentials as the provider chain
//! resolves them (`aws_config`). The HTTP and TLS stacks below (`hyper`, `h2`,
//! `rustls`, `reqwest`) and the Lambda runtime (`lambda_runtime`, `lambda_http`,
//! whose events carry every request header, cookies and bearer tokens included)
//! log wire-level detail at those levels too.
//!
//! [`WireLevelCap`] keeps every event and span of those targets at `info` or above,
//! **whatever `RUNWAY_LOG` says**. It is a layer of its own rather than directives
//! appended to the `EnvFilter`, because an `EnvFilter` can always be out-specified:
//! `aws_sigv4::sign=trace` beats an appended `aws_sigv4=info` (the more specific
//! target wins), and a span directive such as `[invoke]=trace` enables every target
//! inside the span. A layer that says no to a callsite disables it for the whole
//! subscriber, before the filter is asked.
//!
//! It reports no level hint of its own, so the subscriber's hint stays the
//! filter's and `RUNWAY_LOG=info` costs nothing more than before.

use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, Layered, SubscriberExt as _};

/// The most verbose level the pinned targets may log at.
pub const PINNED_MAX_LEVEL: Level = Level::INFO;

/// Crates (the first `::` segment of a target) pinned at [`PINNED_MAX_LEVEL`],
/// besides every `aws_*` crate.
const PINNED_CRATES: &[&str] = &[
    "h2",
    "hyper",
    "hyper_rustls",
    "hyper_util",
    "lambda_http",
    "lambda_runtime",
    "lambda_runtime_api_client",
    "reqwest",
    "rustls",
    "tokio_rustls",
];

/// Whether `target` belongs to a pinned crate: every `aws_*` crate (the SDK, smithy,
/// sigv4, config, credential types) and [`PINNED_CRATES`].
#[must_use]
pub fn is_pinned(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    krate.starts_with("aws_") || PINNED_CRATES.contains(&krate)
}

/// The layer that disables `debug` and `trace` for the pinned targets.
#[derive(Debug, Clone, Copy, Default)]
pub struct WireLevelCap;

impl WireLevelCap {
    fn allows(metadata: &Metadata<'_>) -> bool {
        // `Level` orders TRACE > DEBUG > INFO > WARN > ERROR: "more verbose" is greater.
        *metadata.level() <= PINNED_MAX_LEVEL || !is_pinned(metadata.target())
    }
}

impl<S: Subscriber> Layer<S> for WireLevelCap {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::allows(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        Self::allows(metadata)
    }
}

/// `subscriber` with [`WireLevelCap`] outermost, so it is asked first.
pub fn capped<S: Subscriber>(subscriber: S) -> Layered<WireLevelCap, S> {
    subscriber.with(WireLevelCap)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::EnvFilter;

    use super::*;

    /// A log destination the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// The subscriber `telemetry::init` installs, writing to `out`.
    fn subscriber(directive: &str, out: &Captured) -> impl Subscriber + Send + Sync + use<> {
        let out = out.clone();
        capped(
            tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new(directive))
                .with_writer(move || out.clone())
                .finish(),
        )
    }

    #[test]
    fn with_runway_log_at_trace_an_aws_sigv4_trace_event_is_disabled() {
        let out = Captured::default();
        tracing::subscriber::with_default(subscriber("trace", &out), || {
            assert!(!tracing::enabled!(target: "aws_sigv4", Level::TRACE));
            assert!(!tracing::enabled!(target: "aws_sigv4::http_request", Level::TRACE));
            assert!(
                !tracing::enabled!(target: "aws_smithy_runtime::client::orchestrator", Level::DEBUG)
            );
            assert!(!tracing::enabled!(target: "aws_sdk_dynamodb", Level::DEBUG));
            assert!(!tracing::enabled!(target: "aws_config::imds", Level::TRACE));
            assert!(!tracing::enabled!(target: "hyper::proto::h1::io", Level::TRACE));
            assert!(!tracing::enabled!(target: "h2::codec", Level::DEBUG));
            assert!(!tracing::enabled!(target: "rustls::client", Level::TRACE));
            assert!(!tracing::enabled!(target: "lambda_runtime", Level::DEBUG));
            assert!(tracing::enabled!(target: "aws_sigv4", Level::INFO));
            assert!(tracing::enabled!(target: "aws_smithy_runtime", Level::WARN));
            assert!(tracing::enabled!(target: "runway_server", Level::TRACE));
            tracing::trace!(target: "aws_sigv4::http_request", "canonical request: AKIAIOSFODNN7EXAMPLE");
            tracing::debug!(target: "aws_smithy_runtime", item = "{\"password_hash\":\"$argon2id$\"}");
            tracing::trace!(target: "runway_api", "our own trace event");
        });
        let text = out.text();
        assert!(!text.contains("AKIA"), "{text}");
        assert!(!text.contains("argon2id"), "{text}");
        assert!(text.contains("our own trace event"), "{text}");
    }

    #[test]
    fn a_more_specific_directive_or_a_span_directive_cannot_lift_the_ceiling() {
        let out = Captured::default();
        let directive =
            "info,aws_sigv4::http_request=trace,aws_smithy_runtime=trace,[invoke]=trace";
        tracing::subscriber::with_default(subscriber(directive, &out), || {
            let span = tracing::info_span!("invoke");
            let _entered = span.enter();
            tracing::trace!(target: "aws_sigv4::http_request", "signing key AKIAIOSFODNN7EXAMPLE");
            tracing::debug!(target: "aws_smithy_runtime::client", "item AKIAIOSFODNN7EXAMPLE");
            tracing::trace!(target: "runway_store_dynamodb", "inside the span");
        });
        let text = out.text();
        assert!(!text.contains("AKIA"), "{text}");
        assert!(text.contains("inside the span"), "{text}");
    }

    #[test]
    fn only_the_pinned_crates_are_pinned() {
        for target in [
            "aws_config",
            "aws_sdk_s3::operation",
            "hyper",
            "hyper_util::client",
            "reqwest::connect",
        ] {
            assert!(is_pinned(target), "{target}");
        }
        for target in [
            "runway_api",
            "runway_store_dynamodb::items",
            "hyperloop",
            "tower_http::trace",
        ] {
            assert!(!is_pinned(target), "{target}");
        }
    }
}
