# The function: the `runway` binary, built with
# `cargo lambda build --release --arm64 --output-format zip` (`make lambda`). When it
# finds AWS_LAMBDA_RUNTIME_API it serves the same axum Router through lambda_http,
# on the DynamoDB store.
#
# Why 128 MB: memory is what Lambda bills (GB-seconds), and a Rust binary serving
# JSON over a few DynamoDB calls lives in a few tens of MB and spends its time
# waiting on the network, not the CPU. The Python design needed 512 MB to 1 GB for
# the interpreter, FastAPI and boto3; here the same traffic costs a quarter to an
# eighth. Raise lambda_memory_mb only if BENCHMARKS.md shows CPU-bound latency
# (Argon2 password hashing at sign-in is the one CPU-heavy call).
#
# Why arm64: Graviton is about 20% cheaper per GB-second than x86_64 at equal
# or better speed for this kind of work.

locals {
  function_name = local.name
  log_group     = "/aws/lambda/${local.function_name}"
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (validated; 365 in production). Staging keeps 30 days on purpose: its logs are for debugging, not for audit.
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:No VPC on purpose: the function talks only to DynamoDB, S3, CloudWatch and X-Ray over their public, TLS-authenticated AWS endpoints; a VPC would add NAT or endpoint cost and cold-start latency for no isolation gain.
  #checkov:skip=CKV_AWS_116:No DLQ: API Gateway invokes synchronously and gets every error back as the HTTP response; dead-letter queues apply only to asynchronous invocations.
  #checkov:skip=CKV_AWS_272:No code signing: the zip is built and deployed by the same CI run under an OIDC role that only the deploy workflow can assume; signing would add a signing profile without a separate trust boundary.
  function_name = local.function_name
  description   = "Runway control plane API (${var.environment})"
  role          = aws_iam_role.function.arn
  # The environment can hold the OIDC client secret, so it is encrypted with the
  # stack's key rather than Lambda's AWS-managed one (iam.tf lets the role decrypt
  # it, through Lambda only).
  kms_key_arn = local.kms_key_arn

  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.lambda_architecture]
  memory_size      = var.lambda_memory_mb
  timeout          = var.lambda_timeout_seconds

  # -1 means unreserved. In production a reservation both guarantees capacity and
  # caps it, which caps what a traffic spike can cost and the DynamoDB load it makes.
  reserved_concurrent_executions = var.reserved_concurrency

  # Every code or configuration change publishes a new immutable version. The
  # `live` alias does not follow it: CodeDeploy shifts the alias to it gradually
  # (codedeploy.tf), so Terraform never sends all traffic to untested code.
  publish = true

  tracing_config {
    mode = "Active"
  }

  logging_config {
    # "Text" passes stdout through as written: Runway already writes one JSON
    # object per line (RUNWAY_LOG_FORMAT=json), which Logs Insights parses as it
    # is. The JSON format is for runtimes whose own logger Lambda controls.
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function.name
  }

  environment {
    variables = {
      RUNWAY_STORE                        = "dynamodb"
      RUNWAY_DYNAMODB_TABLE_PREFIX        = local.table_prefix
      RUNWAY_LOG_BUCKET                   = aws_s3_bucket.logs.id
      RUNWAY_LOG_FORMAT                   = "json"
      RUNWAY_LOG                          = var.log_level
      RUNWAY_CORS_ORIGINS                 = join(",", var.cors_origins)
      RUNWAY_SESSION_TTL_SECONDS          = tostring(var.session_ttl_seconds)
      RUNWAY_SESSION_IDLE_TIMEOUT_SECONDS = tostring(var.session_idle_timeout_seconds)
      # Empty values count as unset (crates/runway-server/src/config.rs).
      RUNWAY_PUBLIC_URL                 = var.public_url
      RUNWAY_OIDC_ISSUER_URL            = var.oidc_issuer_url
      RUNWAY_OIDC_CLIENT_ID             = var.oidc_client_id
      RUNWAY_OIDC_CLIENT_SECRET         = var.oidc_client_secret
      RUNWAY_OIDC_ALLOWED_EMAIL_DOMAINS = join(",", var.oidc_allowed_email_domains)
      RUNWAY_OIDC_ADMIN_EMAILS          = join(",", var.oidc_admin_emails)
      RUNWAY_OIDC_ADMIN_GROUP           = var.oidc_admin_group
    }
  }

  tags = local.tags

  depends_on = [
    # The role must be able to write logs before the first invocation.
    aws_iam_role_policy.function,
  ]
}

# The alias API Gateway invokes. Terraform creates it on the first version; from
# then on CodeDeploy owns which version(s) it points at, with a weighted split
# during a canary, so Terraform must not undo a deployment in progress or roll a
# finished one back.
resource "aws_lambda_alias" "live" {
  name             = "live"
  description      = "The version API Gateway serves; moved by CodeDeploy"
  function_name    = aws_lambda_function.this.function_name
  function_version = aws_lambda_function.this.version

  lifecycle {
    ignore_changes = [function_version, routing_config]
  }
}
