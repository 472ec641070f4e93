//! The one place where AWS SDK failures become [`StoreError`]s.
//!
//! By the time an error reaches here the SDK has already retried it (the standard
//! retry mode: three attempts with exponential backoff and jitter for throttling,
//! 5xx, timeouts and transient network failures), within the per-attempt and
//! per-call timeouts set in `lib.rs`, so a stalled call ends as a `TimeoutError`
//! rather than hanging. What is left is sorted into three kinds:
//!
//! * **transient** — throttling (`ProvisionedThroughputExceeded`, `Throttling`,
//!   `RequestLimitExceeded`), DynamoDB's own 5xx, transaction conflicts, timeouts,
//!   and connections that failed or broke → [`StoreError::Unavailable`] with a
//!   one-second hint, which the API turns into 503 + `Retry-After`;
//! * **a condition that did not hold** — `ConditionalCheckFailedException`, or a
//!   `TransactionCanceledException` whose reasons name `ConditionalCheckFailed` —
//!   is not decided here: each call site knows what its condition meant (a taken
//!   username, a missing session, a lost race) and asks [`is_condition_failure`] or
//!   [`failed_condition`] before falling back to this mapping;
//! * **everything else** → [`StoreError::Internal`], keeping the SDK error as the
//!   source so the whole cause chain is logged (never flattened into a string).

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::CancellationReason;
use runway_core::store::StoreError;

/// How long a caller should wait after DynamoDB throttled or failed.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Service error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
    // S3's (the log store): throttling, its own 5xx, and a request it timed out.
    "SlowDown",
    "InternalError",
    "RequestTimeout",
];

/// `CancellationReason` codes of a canceled transaction that mean "try again later".
const TRANSIENT_REASONS: &[&str] = &[
    "TransactionConflict",
    "ProvisionedThroughputExceeded",
    "ThrottlingError",
];

/// Maps any SDK error that is not an expected condition failure.
pub(crate) fn sdk_error<E>(err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_transient(&err) {
        StoreError::unavailable(err, Some(RETRY_AFTER))
    } else {
        StoreError::internal(err)
    }
}

/// Maps a `TransactWriteItems` error that was not an expected condition failure:
/// a transaction canceled only by conflicts or throttling is transient too.
pub(crate) fn transaction_error(err: SdkError<TransactWriteItemsError>) -> StoreError {
    let canceled_transiently = matches!(
        err.as_service_error(),
        Some(TransactWriteItemsError::TransactionCanceledException(canceled))
            if canceled.cancellation_reasons().iter().any(|reason| {
                reason.code().is_some_and(|code| TRANSIENT_REASONS.contains(&code))
            })
    );
    if canceled_transiently {
        StoreError::unavailable(err, Some(RETRY_AFTER))
    } else {
        sdk_error(err)
    }
}

fn is_transient<E>(err: &SdkError<E>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) => true,
        // Refused, reset or timed-out connections; not a request the SDK could not
        // build, nor a TLS certificate it refused (that is `other`, a setup bug).
        SdkError::DispatchFailure(failure) => failure.is_io() || failure.is_timeout(),
        // The response was cut off or garbled on the way.
        SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            err.code()
                .is_some_and(|code| TRANSIENT_CODES.contains(&code))
                || service.raw().status().is_server_error()
        }
        _ => false,
    }
}

/// Whether a single-item write failed because its condition did not hold.
pub(crate) fn is_condition_failure<E>(err: &SdkError<E>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(_))
        && err.code() == Some("ConditionalCheckFailedException")
}

/// The `CancellationReason` of each action of a canceled transaction, or `None` if
/// the transaction was not canceled.
pub(crate) fn cancellation_reasons(
    err: &SdkError<TransactWriteItemsError>,
) -> Option<&[CancellationReason]> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(canceled) => {
            Some(canceled.cancellation_reasons())
        }
        _ => None,
    }
}

/// The `CancellationReason` code of each action of a canceled transaction (`None`
/// for an action that was fine), or `None` if the transaction was not canceled.
pub(crate) fn cancellation_codes(err: &SdkError<TransactWriteItemsError>) -> Option<Vec<&str>> {
    Some(
        cancellation_reasons(err)?
            .iter()
            .map(|reason| reason.code().unwrap_or("None"))
            .collect(),
    )
}

/// The index of the first action whose condition failed, if that is why a
/// transaction was canceled.
pub(crate) fn failed_condition(err: &SdkError<TransactWriteItemsError>) -> Option<usize> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(canceled) => canceled
            .cancellation_reasons()
            .iter()
            .position(|reason| reason.code() == Some("ConditionalCheckFailed")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, ProvisionedThroughputExceededException,
        TransactionCanceledException,
    };
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().expect("valid status"), SdkBody::empty())
    }

    fn put_error(code: &str, status: u16) -> SdkError<PutItemError> {
        let meta = ErrorMetadata::builder().code(code).message("test").build();
        SdkError::service_error(PutItemError::generic(meta), response(status))
    }

    fn canceled(reasons: &[&str]) -> SdkError<TransactWriteItemsError> {
        let mut builder = TransactionCanceledException::builder()
            .message("Transaction cancelled")
            .meta(
                ErrorMetadata::builder()
                    .code("TransactionCanceledException")
                    .build(),
            );
        for code in reasons {
            builder =
                builder.cancellation_reasons(CancellationReason::builder().code(*code).build());
        }
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(builder.build()),
            response(400),
        )
    }

    fn assert_unavailable(err: StoreError) {
        match err {
            StoreError::Unavailable {
                retry_after,
                source,
            } => {
                assert_eq!(retry_after, Some(RETRY_AFTER));
                assert!(
                    source.downcast_ref::<SdkError<PutItemError>>().is_some()
                        || source
                            .downcast_ref::<SdkError<TransactWriteItemsError>>()
                            .is_some()
                );
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    #[test]
    fn throttling_is_unavailable_with_a_one_second_hint() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
        ] {
            assert_unavailable(sdk_error(put_error(code, 400)));
        }
        let typed = SdkError::service_error(
            PutItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .meta(
                        ErrorMetadata::builder()
                            .code("ProvisionedThroughputExceededException")
                            .build(),
                    )
                    .build(),
            ),
            response(400),
        );
        assert_unavailable(sdk_error(typed));
    }

    #[test]
    fn a_service_outage_is_unavailable() {
        assert_unavailable(sdk_error(put_error("InternalServerError", 500)));
        assert_unavailable(sdk_error(put_error("SomethingNew", 503)));
    }

    #[test]
    fn timeouts_and_broken_connections_are_unavailable() {
        assert_unavailable(sdk_error(SdkError::<PutItemError>::timeout_error(
            "operation timed out",
        )));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_unavailable(sdk_error(SdkError::<PutItemError>::dispatch_failure(
            ConnectorError::io(Box::new(refused)),
        )));
    }

    #[test]
    fn a_client_mistake_is_internal_and_keeps_the_sdk_error_as_its_source() {
        let err = sdk_error(put_error("ValidationException", 400));
        let StoreError::Internal(source) = err else {
            panic!("expected internal, got {err:?}");
        };
        let sdk = source
            .downcast_ref::<SdkError<PutItemError>>()
            .expect("the SDK error is the source");
        assert_eq!(sdk.code(), Some("ValidationException"));
        let unauthorized =
            SdkError::<PutItemError>::dispatch_failure(ConnectorError::user("bad request".into()));
        assert!(matches!(sdk_error(unauthorized), StoreError::Internal(_)));
    }

    #[test]
    fn a_failed_condition_is_recognised_on_single_writes_only() {
        let failed = SdkError::service_error(
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .message("The conditional request failed")
                    .meta(
                        ErrorMetadata::builder()
                            .code("ConditionalCheckFailedException")
                            .build(),
                    )
                    .build(),
            ),
            response(400),
        );
        assert!(is_condition_failure(&failed));
        assert!(!is_condition_failure(&put_error(
            "ThrottlingException",
            400
        )));
    }

    #[test]
    fn a_canceled_transaction_names_the_action_whose_condition_failed() {
        assert_eq!(
            failed_condition(&canceled(&["None", "ConditionalCheckFailed"])),
            Some(1)
        );
        assert_eq!(failed_condition(&canceled(&["None", "None"])), None);
    }

    #[test]
    fn a_transaction_canceled_by_a_conflict_is_unavailable_and_otherwise_internal() {
        assert_unavailable(transaction_error(canceled(&[
            "TransactionConflict",
            "None",
        ])));
        assert_unavailable(transaction_error(canceled(&["None", "ThrottlingError"])));
        assert!(matches!(
            transaction_error(canceled(&["ValidationError"])),
            StoreError::Internal(_)
        ));
    }
}
